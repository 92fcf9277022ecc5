"""Fault injection and the other /_emulator/ control endpoints."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import requests
from werkzeug.test import EnvironBuilder

from bitrix24_emulator.faults import FaultRule
from tests.emulator.conftest import Server


def add_fault(server: Server, **spec: Any) -> None:
    response = requests.post(f"{server.base_url}/_emulator/faults", json=spec, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("rate_limit", 503, "QUERY_LIMIT_EXCEEDED"),
        ("operation_limit", 429, "OPERATION_TIME_LIMIT"),
        ("server_error", 500, "INTERNAL_SERVER_ERROR"),
        ("expired_token", 401, "expired_token"),
    ],
)
def test_error_faults_answer_the_next_requests(server: Server, kind: str, status: int, code: str) -> None:
    add_fault(server, kind=kind, count=2)
    for _ in range(2):
        response = requests.get(server.webhook_url + "test.echo", timeout=10)
        assert (response.status_code, response.json()["error"]) == (status, code)
    assert requests.get(server.webhook_url + "test.echo", timeout=10).status_code == 200
    assert server.stats()["faults_injected"] == 2


def test_bad_gateway_is_an_html_page(server: Server) -> None:
    add_fault(server, kind="bad_gateway", count=1)
    response = requests.get(server.webhook_url + "test.echo", timeout=10)
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


def test_drop_closes_the_connection_without_a_response(server: Server) -> None:
    add_fault(server, kind="drop", count=1)
    with pytest.raises(requests.ConnectionError):
        requests.post(server.webhook_url + "test.echo", json={"a": 1}, timeout=5)
    assert requests.get(server.webhook_url + "test.echo", timeout=10).status_code == 200


@pytest.mark.parametrize("refusal", ["drop", "rate_limit", "bucket"])
def test_early_answers_read_the_request_body(server_factory: Any, refusal: str) -> None:
    """A body left unread stays in the keep-alive socket and werkzeug parses it as the next request line
    (`code 400, Bad request syntax ('{}')` in the log): every answer given before the params are decoded
    (faults, the leaky bucket) reads the body first."""
    server = server_factory(burst=0 if refusal == "bucket" else 50)
    emulator = server.emulator
    if refusal != "bucket":
        emulator.faults.add({"kind": refusal, "count": 1})
    body = b'{"filter": {">ID": 5}}'
    path = f"/rest/1/{server.token}/test.echo"
    environ = EnvironBuilder(method="POST", path=path, data=body, content_type="application/json").get_environ()
    try:
        b"".join(emulator(environ, lambda *args: None))
    except ConnectionAbortedError:
        assert refusal == "drop"
    assert environ["wsgi.input"].read() == b""


def test_slow_answers_after_a_delay(server: Server) -> None:
    add_fault(server, kind="slow", count=1, seconds=0.2)
    with pytest.raises(requests.Timeout):
        requests.get(server.webhook_url + "test.echo", timeout=0.05)


def test_truncated_body_is_invalid_json_with_status_200(server: Server) -> None:
    add_fault(server, kind="truncated", count=1)
    response = requests.get(server.webhook_url + "test.row.list", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_fault_restricted_to_a_method(server: Server) -> None:
    add_fault(server, kind="server_error", count=1, method="test.row.list")
    assert requests.get(server.webhook_url + "test.echo", timeout=10).status_code == 200
    assert requests.get(server.webhook_url + "test.row.list", timeout=10).status_code == 500


def test_batch_subcall_error(server: Server) -> None:
    add_fault(server, kind="batch_subcall_error", count=1, index=1)
    cmd = {"cmd": {"a": "test.echo?x=1", "b": "test.echo?x=2", "c": "test.echo?x=3"}}
    result = requests.post(server.webhook_url + "batch", json=cmd, timeout=10).json()["result"]
    assert result["result_error"] == {
        "b": {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}
    }
    assert set(result["result"]) == {"a", "c"}
    again = requests.post(server.webhook_url + "batch", json=cmd, timeout=10).json()["result"]
    assert again["result_error"] == []


def test_share_faults_are_seeded_and_clearable(server: Server) -> None:
    add_fault(server, kind="server_error", share=0.5)
    statuses = [requests.get(server.webhook_url + "test.echo", timeout=10).status_code for _ in range(40)]
    assert 5 < statuses.count(500) < 35 and statuses.count(200) + statuses.count(500) == 40
    assert requests.post(f"{server.base_url}/_emulator/faults/clear", timeout=10).json() == {"faults": []}
    assert {requests.get(server.webhook_url + "test.echo", timeout=10).status_code for _ in range(5)} == {200}


def test_fault_specs_are_validated() -> None:
    assert FaultRule.parse("drop:0.1:CRM.Deal.List") == FaultRule("drop", share=0.1, method="crm.deal.list")
    for bad in ("nonsense:0.1", "drop:x", "drop:1.5"):
        with pytest.raises(ValueError):
            FaultRule.parse(bad)
    with pytest.raises(ValueError):
        FaultRule("drop")  # neither share nor count


def test_clock_endpoint_moves_time(server: Server) -> None:
    url = f"{server.base_url}/_emulator/clock"
    before = requests.get(url, timeout=10).json()
    assert before["frozen"] is True
    after = requests.post(url, json={"advance": 3600}, timeout=10).json()
    assert after["time"] == pytest.approx(before["time"] + 3600)
    assert after["date"].endswith("+03:00")
    assert requests.post(url, json={"unfreeze": True}, timeout=10).json()["frozen"] is False


def test_webhooks_endpoint_and_stats_reset(server: Server) -> None:
    url = requests.post(
        f"{server.base_url}/_emulator/webhooks", json={"scopes": ["user"], "user_id": 1}, timeout=10
    ).json()["url"]
    assert requests.get(url + "scope", timeout=10).json()["result"] == ["user"]
    assert server.stats()["requests"] == 1
    reset = requests.post(f"{server.base_url}/_emulator/stats/reset", timeout=10).json()
    assert reset["requests"] == 0 and reset["requests_by_method"] == {}


def test_limits_endpoint(server_factory) -> None:
    server = server_factory(burst=1)
    assert requests.get(server.webhook_url + "test.echo", timeout=10).status_code == 200
    assert requests.get(server.webhook_url + "test.echo", timeout=10).status_code == 503
    state = requests.post(f"{server.base_url}/_emulator/limits", json={"reset": True, "burst": 3}, timeout=10).json()
    assert state["burst"] == 3 and state["bucket_level"] == 0
    assert requests.get(server.webhook_url + "test.echo", timeout=10).status_code == 200
