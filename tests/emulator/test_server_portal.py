"""The seeded Portal end to end: Portal handle, CLI process, and the benchmark-sized batch."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bitrix24_emulator import Portal
from bitrix24_emulator.errors import ApiError


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(seed=7, deals=120, leads=10, contacts=10, companies=5, users=5, burst=5) as running:
        yield running


def test_portal_handle(portal: Portal) -> None:
    assert portal.webhook_url == f"{portal.base_url}/rest/1/{portal.token}/"
    assert len(portal.token) >= 16 and portal.token.isalnum() and portal.token.islower()
    portal.reset_stats()
    for _ in range(10):  # admin calls: neither limited (burst is 5) nor counted
        assert portal.call("server.time")
    assert portal.stats()["requests"] == 0
    profile = portal.call("profile")
    assert profile["ID"] == "1" and profile["ADMIN"] is True
    with pytest.raises(ApiError) as raised:
        portal.call("crm.nothing.list")
    assert (raised.value.code, raised.value.status) == ("ERROR_METHOD_NOT_FOUND", 404)


def test_portal_faults_and_clock(portal: Portal) -> None:
    portal.set_faults(kind="server_error", count=1, method="crm.deal.list")
    assert requests.get(portal.webhook_url + "server.time", timeout=10).status_code == 200
    assert requests.get(portal.webhook_url + "crm.deal.list", timeout=10).status_code == 500
    portal.set_faults(kind="drop", share=1.0)
    portal.clear_faults()
    assert requests.get(portal.webhook_url + "crm.deal.list", timeout=10).status_code == 200
    before = portal.call("server.time")
    portal.clock.advance(60)
    assert portal.call("server.time") > before


def test_portal_oauth_and_extra_webhooks(portal: Portal) -> None:
    oauth = portal.oauth
    assert oauth["client_endpoint"] == f"{portal.base_url}/rest/"
    auth = {"auth": oauth["access_token"]}
    response = requests.get(oauth["client_endpoint"] + "scope", params=auth, timeout=10)
    assert response.json()["result"] == ["crm", "sale", "user"]
    exchange = {
        "grant_type": "authorization_code",
        "client_id": oauth["client_id"],
        "client_secret": oauth["client_secret"],
        "code": portal.authorization_code(scopes=("crm",)),
    }
    granted = requests.get(oauth["token_endpoint"], params=exchange, timeout=10).json()
    assert granted["scope"] == "crm" and granted["client_endpoint"] == oauth["client_endpoint"]
    user_only = portal.add_webhook(scopes=("user",))
    denied = requests.get(user_only + "crm.deal.list", timeout=10)
    assert (denied.status_code, denied.json()["error"]) == (401, "insufficient_scope")


def keyset_batch(pages: int) -> dict[str, Any]:
    """The SDK fast-list pattern: chained keyset pages with all fields and user fields."""
    cmd = {}
    for i in range(pages):
        after = f"$result[p{i - 1}][49][ID]" if i else "0"
        cmd[f"p{i}"] = f"crm.deal.list?order[ID]=ASC&filter[%3EID]={after}&select[]=*&select[]=UF_*&start=-1"
    return {"halt": 0, "cmd": cmd}


def test_keyset_batch_over_seeded_deals() -> None:
    with Portal(seed=7, deals=2500, leads=1, contacts=1, companies=1, users=2, limits=False) as big:
        response = requests.post(big.webhook_url + "batch", json=keyset_batch(50), timeout=60)
        result = response.json()["result"]
        assert result["result_error"] == []
        ids = [int(row["ID"]) for page in result["result"].values() for row in page]
        assert len(ids) == 2500 and ids == sorted(set(ids))
        assert any(key.startswith("UF_CRM_") for key in result["result"]["p0"][0])
        stats = big.stats()
        assert stats["requests"] == 1 and stats["subcalls_by_method"] == {"crm.deal.list": 50}


def test_cli_prints_the_webhook_url_first_and_stops_on_sigterm() -> None:
    options = "--port 0 --deals 20 --leads 5 --contacts 5 --companies 2 --users 3 --token clitoken0123456789"
    faults = ["--fault", "server_error:1:crm.deal.list"]
    command = [sys.executable, "-m", "bitrix24_emulator", *options.split(), *faults]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/rest/1/clitoken0123456789/")
        assert requests.get(url + "server.time", timeout=10).json()["result"].endswith("+03:00")
        assert requests.get(url + "crm.deal.list", timeout=10).status_code == 500
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0
        assert "clitoken" not in stderr  # no access log: request lines carry the secret
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_stop_cuts_short_a_slow_request_without_touching_the_closed_store(caplog: pytest.LogCaptureFixture) -> None:
    """A `slow` fault still sleeping when the Portal stops used to wake up on a closed store ("Cannot operate
    on a closed database" in the log); now the stop wakes it, it drops the connection, and the stop waits for it.
    """
    outcome: list[BaseException] = []

    def slow_call(url: str) -> None:
        try:
            requests.post(url + "crm.deal.list", json={}, timeout=60)
        except requests.ConnectionError as error:
            outcome.append(error)

    with Portal(seed=7, deals=5, leads=1, contacts=1, companies=1, users=2) as small:
        small.set_faults(kind="slow", count=1, seconds=60)
        caller = threading.Thread(target=slow_call, args=(small.webhook_url,))
        caller.start()
        while small.stats()["faults_injected"] == 0:  # the request is in, asleep in the fault
            caller.join(0.01)
    caller.join(10)
    assert not caller.is_alive() and len(outcome) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
