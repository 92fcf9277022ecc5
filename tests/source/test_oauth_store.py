"""The token store's file guarantees and `OAuthAuth`'s configuration checks (no server needed; the HTTP side
is in tests/e2e/test_oauth_*.py)."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from sources.bitrix24.api import ConfigError
from sources.bitrix24.api.oauth import OAuthAuth
from sources.bitrix24.api.token_store import TokenPair, TokenStore

ACCESS, REFRESH, SECRET = "accesstokenvalue0001", "refreshtokenvalue0001", "clientsecretvalue0001"


def pair(version: int = 1, **changes: object) -> TokenPair:
    fields: dict[str, object] = {
        "client_id": "local.app",
        "access_token": f"{ACCESS}-{version}",
        "refresh_token": f"{REFRESH}-{version}",
        "client_endpoint": "https://portal.example/rest/",
        "expires": 1_800_000_000,
        "version": version,
        "seed": "abc",
        **changes,
    }
    return TokenPair(**fields)  # type: ignore[arg-type]


def test_round_trip_owner_only_and_no_temporary_files(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    assert store.load() is None and store.stamp() is None
    old_umask = os.umask(0)  # the mode must come from creation itself, not from a friendly umask
    try:
        with store.locked():
            store.save(pair(1))
    finally:
        os.umask(old_umask)
    assert store.load() == pair(1)
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.path.parent).st_mode) == 0o700
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_a_save_replaces_the_file_and_changes_the_stamp(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with store.locked():
        store.save(pair(1))
    first = store.stamp()
    with store.locked():
        store.save(pair(2))
    assert store.stamp() != first
    assert store.load() == pair(2)


def test_leftover_temporary_file_of_a_crashed_save_is_removed(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    leftover = tmp_path / ".tokens.json.abc123.tmp"
    leftover.write_text('{"format": 1, "access_token": "half')
    unrelated = tmp_path / ".other.json.abc123.tmp"
    unrelated.write_text("not ours")
    with store.locked():
        store.save(pair(1))
    assert not leftover.exists() and unrelated.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"format": 1, "client_id": "local.app", "access_token": "' + ACCESS.encode(),
        b"[]",
        b'{"format": 2}',
    ],
)
def test_a_broken_store_is_a_config_error_that_quotes_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        TokenStore(path).load()
    message = str(caught.value)
    assert str(path) in message and "authorize the app again" in message
    assert ACCESS not in message and caught.value.__context__ is None


def test_a_record_missing_a_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    record = pair(1).to_json()
    del record["refresh_token"]
    path.write_text(json.dumps(record))
    with pytest.raises(ConfigError):
        TokenStore(path).load()


def test_a_store_readable_by_others_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with store.locked():
        store.save(pair(1))
    os.chmod(store.path, 0o644)
    with caplog.at_level(logging.WARNING, logger="bitrix24_sync.oauth"):
        assert store.load() == pair(1)
    assert "readable by other users" in caplog.text and ACCESS not in caplog.text
    with store.locked():
        store.save(pair(2))
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_tokens_stay_out_of_repr() -> None:
    text = repr(pair(1))
    assert ACCESS not in text and REFRESH not in text and "version=1" in text


def test_locked_excludes_other_store_objects_on_the_same_file(tmp_path: Path) -> None:
    """Two objects on one path stand for two processes: only the flock keeps them apart."""
    first, second = TokenStore(tmp_path / "tokens.json"), TokenStore(tmp_path / "tokens.json")
    inside = threading.Event()
    order: list[str] = []

    def hold() -> None:
        with first.locked():
            inside.set()
            time.sleep(0.2)
            order.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(5)
    with second.locked():
        order.append("second in")
    holder.join(5)
    assert order == ["first out", "second in"]


# --------------------------------------------------------------------------------- OAuthAuth configuration


def make(tmp_path: Path, **overrides: object) -> OAuthAuth:
    settings: dict[str, object] = {
        "client_id": "local.app",
        "client_secret": SECRET,
        "client_endpoint": "https://portal.example/rest/",
        "token_store": tmp_path / "tokens.json",
        "refresh_token": REFRESH,
        **overrides,
    }
    return OAuthAuth(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "endpoint", ["https://portal.example", "https://portal.example/", "https://portal.example/rest"]
)
def test_client_endpoint_is_normalised(tmp_path: Path, endpoint: str) -> None:
    auth = make(tmp_path, client_endpoint=endpoint)
    assert auth.url_for("crm.deal.list") == "https://portal.example/rest/crm.deal.list"
    assert auth.host == "portal.example" and auth.portal_url == "https://portal.example/"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"client_endpoint": "https://portal.example/rest/1/webhookcode123/"},
            "a webhook URL does not belong",
        ),
        ({"client_endpoint": "portal.example"}, "client_endpoint must look like"),
        ({"client_endpoint": "http://portal.example/rest/"}, "plain http"),
        ({"token_endpoint": "http://oauth.example/oauth/token/"}, "plain http"),
        ({"client_secret": ""}, "client_id and client_secret"),
        ({"authorization_code": "somecode"}, "either refresh_token or authorization_code"),
    ],
)
def test_configuration_mistakes(tmp_path: Path, overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        make(tmp_path, **overrides)
    assert "webhookcode123" not in str(caught.value) and SECRET not in str(caught.value)


def test_plain_http_allowed_on_request_or_for_loopback(tmp_path: Path) -> None:
    make(tmp_path, client_endpoint="http://portal.example/rest/", allow_http=True)
    make(
        tmp_path,
        client_endpoint="http://127.0.0.1:8080/rest/",
        token_endpoint="http://localhost/oauth/token/",
    )


def test_without_credentials_or_store_the_first_call_says_how_to_authorize(tmp_path: Path) -> None:
    auth = make(tmp_path, refresh_token=None)
    with pytest.raises(ConfigError, match="does not exist yet; set refresh_token or authorization_code") as caught:
        auth.params()
    assert "https://portal.example/oauth/authorize/?client_id=local.app" in str(caught.value)


def test_a_stored_chain_is_used_without_configured_credentials(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with store.locked():
        store.save(pair(3, seed="from-an-earlier-authorization"))
    auth = make(tmp_path, refresh_token=None, token_store=store)
    assert auth.params() == {"auth": f"{ACCESS}-3"}
    assert f"{ACCESS}-3" in auth.secrets and f"{REFRESH}-3" in auth.secrets


def test_secrets_and_repr(tmp_path: Path) -> None:
    auth = make(tmp_path)
    assert SECRET in auth.secrets and REFRESH in auth.secrets
    assert SECRET not in repr(auth) and REFRESH not in repr(auth)
    assert auth.redact(f"x {SECRET} y {REFRESH}") == "x *** y ***"
