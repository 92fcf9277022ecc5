"""The sync through an OAuth app, configured the dlt way (SOURCES__BITRIX24__OAUTH__*): `oauth exchange` turns an
authorization code into a stored pair, a full sync survives an access-token expiry in the middle and leaves the
rotated pair in the store, and the configuration mistakes are one-line errors with their exit codes."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.exit_codes import EXIT_AUTH, EXIT_USAGE
from pipelines.run_meter import ResourceMeter, RunMeter
from pipelines.runner import sync
from sources.bitrix24 import connect
from sources.bitrix24.api.oauth import OAuthAuth
from sources.bitrix24.api.token_store import TokenStore
from tests.e2e.syncutil import assert_warehouse_equals_portal, new_pipeline

LIFETIME = 600
PORTAL = {"deals": 260, "leads": 30, "contacts": 20, "companies": 10, "users": 5, "limits": False}


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(token_lifetime=LIFETIME, **PORTAL) as p:
        yield p


@pytest.fixture
def oauth_env(portal: Portal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app configured through the environment (no webhook); returns the token store's path."""
    monkeypatch.delenv("SOURCES__BITRIX24__WEBHOOK_URL", raising=False)
    store = tmp_path / "tokens" / "bitrix24.json"
    for key in ("client_id", "client_secret", "client_endpoint", "token_endpoint"):
        monkeypatch.setenv(f"SOURCES__BITRIX24__OAUTH__{key.upper()}", portal.oauth[key])
    monkeypatch.setenv("SOURCES__BITRIX24__OAUTH__TOKEN_STORE", str(store))
    return store


def where(tmp_path: Path) -> list[str]:
    return ["--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "pipelines")]


def test_exchange_a_code_then_sync_with_the_stored_pair(
    portal: Portal, oauth_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = portal.authorization_code()
    assert main(["oauth", "exchange", "--code", f"https://app.example/install?code={code}&state=x"]) == 0
    out, err = capsys.readouterr()
    pair = TokenStore(oauth_env).load()
    assert pair is not None and pair.version == 1 and stat.S_IMODE(os.stat(oauth_env).st_mode) == 0o600
    assert str(oauth_env) in out and "scopes: crm, sale, user" in out
    for secret in (code, pair.access_token, pair.refresh_token, portal.oauth["client_secret"]):
        assert secret not in out + err

    assert main(["run", "--resources", "deals,stages", *where(tmp_path)]) == 0
    assert re.search(rf"^ +deals +{PORTAL['deals']} ", capsys.readouterr().out, re.M)
    assert TokenStore(oauth_env).load() == pair  # no refresh without an expiry

    assert main(["oauth", "exchange", "--code", code]) == 0  # the store already holds this code's chain
    assert TokenStore(oauth_env).load() == pair

    stale = portal.authorization_code()
    portal.clock.advance(31)  # a code lives 30 seconds
    assert main(["oauth", "exchange", "--code", stale]) == EXIT_AUTH
    err = capsys.readouterr().err
    assert "authorization code was already used or expired" in err and stale not in err
    assert TokenStore(oauth_env).load() == pair  # the working pair is kept


def test_a_full_sync_across_an_access_token_expiry_stores_the_rotated_pair(
    portal: Portal, oauth_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = portal.auth.issue(portal.oauth["client_id"], 1)
    monkeypatch.setenv("SOURCES__BITRIX24__OAUTH__REFRESH_TOKEN", first.refresh_token)
    client = connect()
    assert isinstance(client.auth, OAuthAuth)

    def expire_once(run: RunMeter, meter: ResourceMeter) -> None:
        if meter.name == "deals" and meter.pages == 1:  # the rest of the chain needs a new access token
            portal.clock.advance(LIFETIME + 1)

    pipeline = new_pipeline(tmp_path, "duckdb")
    report = sync(pipeline, client=client, meter=RunMeter(expire_once))

    assert client.stats.retries["expired_token"] == 1 and client.auth.token_requests == 2
    assert report.row_counts["deals"] == PORTAL["deals"]
    assert_warehouse_equals_portal(pipeline, portal)
    stored = TokenStore(oauth_env).load()
    assert stored is not None and stored.version == 2  # bootstrap, then the one refresh
    assert stored.access_token == client.auth.params()["auth"]
    assert stored.access_token not in json.dumps(pipeline.state, default=str)  # tokens never in dlt state


def test_both_a_webhook_and_an_app_is_a_usage_error(
    portal: Portal, oauth_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(["run", *where(tmp_path)]) == EXIT_USAGE
    assert "remove one of them" in capsys.readouterr().err


def test_a_spent_refresh_token_is_an_auth_error_saying_how_to_authorize(
    portal: Portal, oauth_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spent = portal.auth.issue(portal.oauth["client_id"], 1).refresh_token
    monkeypatch.setenv("SOURCES__BITRIX24__OAUTH__REFRESH_TOKEN", spent)
    assert main(["-q", "run", "--resources", "stages", *where(tmp_path)]) == 0  # spends it
    oauth_env.unlink()  # the new pair is lost: the configured token is the only credential left
    assert main(["run", "--resources", "leads", *where(tmp_path)]) == EXIT_AUTH
    err = capsys.readouterr().err
    assert "authorize the app again" in err and spent not in err and len(err.strip().splitlines()) == 1


def test_exchange_without_an_app_configured_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("CLIENT_ID", "CLIENT_SECRET", "CLIENT_ENDPOINT", "TOKEN_ENDPOINT", "TOKEN_STORE"):
        monkeypatch.delenv(f"SOURCES__BITRIX24__OAUTH__{key}", raising=False)
    assert main(["oauth", "exchange", "--code", "abc"]) == EXIT_USAGE
    assert "no OAuth app configured" in capsys.readouterr().err
