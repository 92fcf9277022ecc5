"""`OAuthAuth` against the emulator's portal and token endpoint over real HTTP: bootstrap, refresh exactly
once on expiry, persistence before use, concurrent refreshes inside one process, the token endpoint's errors,
and secrets nowhere. Processes and crashes: test_oauth_process.py."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from bitrix24_emulator import Portal
from sources.bitrix24.api import AuthError, Bitrix24Client, TransientError
from sources.bitrix24.api.oauth import OAuthAuth
from sources.bitrix24.api.token_store import TokenStore

from .test_client_network import assert_no_secret, closed_port

LIFETIME = 600
PAGE = {"order": {"ID": "ASC"}, "select": ["ID"], "start": 0}


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(deals=120, leads=5, contacts=5, companies=5, limits=False, token_lifetime=LIFETIME) as portal:
        yield portal


@pytest.fixture
def chain(portal: Portal) -> Iterator[dict[str, str]]:
    """A fresh refresh token of its own per test (the portal's first one is single-use, like every other)."""
    grant = portal.auth.issue(portal.oauth["client_id"], 1)
    yield {**portal.oauth, "refresh_token": grant.refresh_token, "access_token": grant.access_token}
    portal.clear_faults()


def make_auth(oauth: dict[str, str], store: TokenStore | Path, **overrides: Any) -> OAuthAuth:
    settings: dict[str, Any] = {"refresh_token": oauth["refresh_token"], **overrides}
    return OAuthAuth(
        oauth["client_id"],
        settings.pop("client_secret", oauth["client_secret"]),
        oauth["client_endpoint"],
        store,
        oauth["token_endpoint"],
        **settings,
    )


def make_client(auth: OAuthAuth, session: requests.Session | None = None) -> Bitrix24Client:
    return Bitrix24Client(auth, rate=50.0, max_retries=2, backoff_base=0.01, timeout=10.0, session=session)


def refresh_is_spent(portal: Portal, oauth: dict[str, str], refresh_token: str) -> bool:
    response = requests.get(
        oauth["token_endpoint"],
        params={
            "grant_type": "refresh_token",
            "client_id": oauth["client_id"],
            "client_secret": oauth["client_secret"],
            "refresh_token": refresh_token,
        },
        timeout=10,
    )
    return response.status_code == 400 and response.json()["error"] == "invalid_grant"


def secrets_of(auth: OAuthAuth, oauth: dict[str, str]) -> list[str]:
    return [*auth.secrets, oauth["client_secret"], oauth["refresh_token"]]


class RecordingSession(requests.Session):
    """A real session that, at the moment each portal call leaves, notes the token it carries and what the
    store file on disk holds then (its access token and mode)."""

    def __init__(self, store: TokenStore):
        super().__init__()
        self.store = store
        self.sent: list[tuple[str, str | None, int | None]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:
        token = orjson.loads(data)["auth"]
        on_disk = self.store.load()
        mode = stat.S_IMODE(os.stat(self.store.path).st_mode) if on_disk else None
        self.sent.append((token, on_disk.access_token if on_disk else None, mode))
        return super().post(url, data=data, json=json, **kwargs)


# --------------------------------------------------------------------------------- the happy paths


def test_sync_across_an_access_token_expiry_refreshes_exactly_once(
    portal: Portal, chain: dict[str, str], tmp_path: Path
) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    auth = make_auth(chain, store)
    session = RecordingSession(store)
    client = make_client(auth, session)
    for start in (0, 50):  # pages before the expiry
        assert len(client.call("crm.deal.list", {**PAGE, "start": start}).result) == 50
    assert auth.token_requests == 1 and store.load().version == 1  # the bootstrap grant only
    assert refresh_is_spent(portal, chain, chain["refresh_token"])
    first_access = store.load().access_token

    portal.clock.advance(LIFETIME + 1)
    assert len(client.call("crm.deal.list", {**PAGE, "start": 100}).result) == 20  # expired, refreshed, repeated
    for _ in range(3):
        client.call("crm.deal.list", PAGE)

    assert auth.token_requests == 2 and client.stats.retries["expired_token"] == 1
    renewed = store.load()
    assert renewed.version == 2 and renewed.access_token != first_access
    tokens = [sent for sent, _, _ in session.sent]
    assert tokens == [first_access] * 3 + [renewed.access_token] * 4
    # Every call, the repeated one included, carried exactly the pair that was already on disk, owner-only.
    assert all(sent == on_disk and mode == 0o600 for sent, on_disk, mode in session.sent)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_no_refresh_without_an_expiry(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    auth = make_auth(chain, tmp_path / "tokens.json")
    client = make_client(auth)
    for _ in range(10):
        client.call("crm.deal.list", PAGE)
    client.batch({"a": ("crm.deal.list", PAGE), "b": ("crm.lead.list", {})})
    assert auth.token_requests == 1 and client.stats.retries["expired_token"] == 0


def test_expired_token_fault_refreshes_once_and_repeats(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    auth = make_auth(chain, tmp_path / "tokens.json")
    client = make_client(auth)
    client.call("crm.deal.list", PAGE)
    portal.set_faults(kind="expired_token", count=1, method="crm.deal.fields")
    assert "ID" in client.call("crm.deal.fields").result
    assert auth.token_requests == 2 and auth.store.load().version == 2


def test_a_later_run_continues_the_stored_chain(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    """The configured refresh token was spent by the first run: the second must not use it again."""
    make_client(make_auth(chain, tmp_path / "tokens.json")).call("crm.deal.list", PAGE)
    again = make_auth(chain, tmp_path / "tokens.json")
    make_client(again).call("crm.deal.list", PAGE)
    assert again.token_requests == 0


def test_authorization_code_bootstrap(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    code = portal.authorization_code()
    auth = make_auth(chain, tmp_path / "tokens.json", refresh_token=None, authorization_code=code)
    assert make_client(auth).call("crm.deal.list", PAGE).total == 120
    assert auth.token_requests == 1 and auth.store.load().expires is None  # the code grant has no `expires`

    # The same code configured again: the stored chain was started from it, nothing is exchanged.
    rerun = make_auth(chain, tmp_path / "tokens.json", refresh_token=None, authorization_code=code)
    make_client(rerun).call("crm.deal.list", PAGE)
    assert rerun.token_requests == 0

    # A new code starts a new chain (the user authorized again).
    fresh = make_auth(
        chain, tmp_path / "tokens.json", refresh_token=None, authorization_code=portal.authorization_code()
    )
    make_client(fresh).call("crm.deal.list", PAGE)
    assert fresh.token_requests == 1 and fresh.store.load().version == 2


def test_another_object_sharing_the_store_picks_up_a_refreshed_pair(
    portal: Portal, chain: dict[str, str], tmp_path: Path
) -> None:
    """Stands for a second process: the first one refreshed (which revokes the old access token); the second
    notices the new file before its next call instead of failing with invalid_token."""
    first = make_auth(chain, TokenStore(tmp_path / "tokens.json"))
    second = make_auth(chain, TokenStore(tmp_path / "tokens.json"))
    first_client, second_client = make_client(first), make_client(second)
    first_client.call("crm.deal.list", PAGE)
    second_client.call("crm.deal.list", PAGE)
    portal.set_faults(kind="expired_token", count=1, method="crm.deal.fields")
    first_client.call("crm.deal.fields")
    assert second_client.call("crm.deal.list", PAGE).total == 120
    assert (first.token_requests, second.token_requests) == (2, 0)
    assert second_client.stats.retries["expired_token"] == 0


# --------------------------------------------------------------------------------- concurrency in one process


def test_concurrent_refreshes_in_threads_spend_the_refresh_token_once(
    portal: Portal, chain: dict[str, str], tmp_path: Path
) -> None:
    """Four threads whose calls all failed with the same expired token refresh at the same moment: one grant,
    the others adopt it; without the lock the losers would send a spent refresh token (invalid_grant)."""
    auth = make_auth(chain, tmp_path / "tokens.json")
    make_client(auth).call("crm.deal.list", PAGE)
    portal.clock.advance(LIFETIME + 1)
    barrier = threading.Barrier(4)
    outcomes: list[object] = []

    def worker() -> None:
        client = make_client(auth)
        auth.params()  # this thread's call went out with the (now expired) pair
        barrier.wait(10)
        try:
            outcomes.append(auth.refresh(requests.Session(), 10.0))
            outcomes.append(client.call("crm.deal.list", PAGE).total)
        except Exception as exc:  # collected for the assertion below
            outcomes.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(map(str, outcomes)) == ["120"] * 4 + ["True"] * 4
    assert auth.token_requests == 2 and auth.store.load().version == 2


# --------------------------------------------------------------------------------- errors


def test_spent_refresh_token_says_authorize_again(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    make_auth(chain, tmp_path / "first.json").params()  # spends the configured refresh token
    auth = make_auth(chain, tmp_path / "second.json")
    with pytest.raises(AuthError) as caught:
        make_client(auth).call("crm.deal.list", PAGE)
    error = caught.value
    assert str(error).startswith("OAuth for 127.0.0.1: the refresh token was already used or expired")
    assert f"oauth/authorize/?client_id={chain['client_id']}" in str(error) and "\n" not in str(error)
    assert (error.code, error.status) == ("invalid_grant", 400)
    for secret in secrets_of(auth, chain):
        assert_no_secret(error, secret)
    assert not auth.store.path.exists()  # nothing was saved


def test_used_authorization_code(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    code = portal.authorization_code()
    make_auth(chain, tmp_path / "first.json", refresh_token=None, authorization_code=code).params()
    auth = make_auth(chain, tmp_path / "second.json", refresh_token=None, authorization_code=code)
    with pytest.raises(AuthError, match="the authorization code was already used or expired") as caught:
        auth.params()
    assert_no_secret(caught.value, code)


def test_wrong_client_secret(portal: Portal, chain: dict[str, str], tmp_path: Path) -> None:
    auth = make_auth(chain, tmp_path / "tokens.json", client_secret="wrongsecret0123456789")
    with pytest.raises(AuthError) as caught:
        make_client(auth).call("crm.deal.list", PAGE)
    message = str(caught.value)
    assert "rejected the client id or client secret (invalid_client)" in message and "\n" not in message
    assert caught.value.code == "invalid_client"
    for secret in [*secrets_of(auth, chain), "wrongsecret0123456789"]:
        assert_no_secret(caught.value, secret)
    assert not refresh_is_spent(portal, chain, chain["refresh_token"])  # the chain is intact


def test_refresh_failing_inside_a_call_is_an_auth_error_without_secrets(
    portal: Portal, chain: dict[str, str], tmp_path: Path
) -> None:
    """The stored refresh token is spent behind our back (say, a copy of the store was used elsewhere)."""
    auth = make_auth(chain, tmp_path / "tokens.json")
    client = make_client(auth)
    client.call("crm.deal.list", PAGE)
    assert refresh_is_spent(portal, chain, chain["refresh_token"])
    stolen = auth.store.load()
    assert not refresh_is_spent(portal, chain, stolen.refresh_token)  # spends it: now it is
    with pytest.raises(AuthError) as caught:
        client.call("crm.deal.list", PAGE)  # the old access token was revoked with it: invalid_token
    for secret in secrets_of(auth, chain):
        assert_no_secret(caught.value, secret)

    portal.set_faults(kind="expired_token", count=1, method="crm.deal.fields")
    with pytest.raises(AuthError) as caught:
        client.call("crm.deal.fields")  # expired -> refresh -> invalid_grant
    for secret in secrets_of(auth, chain):
        assert_no_secret(caught.value, secret)
    with pytest.raises(AuthError, match="authorize the app again"):
        auth.refresh(requests.Session(), 10.0)


def test_unreachable_token_endpoint_is_transient(chain: dict[str, str], tmp_path: Path) -> None:
    oauth = {**chain, "token_endpoint": f"http://127.0.0.1:{closed_port()}/oauth/token/"}
    auth = make_auth(oauth, tmp_path / "tokens.json")
    with pytest.raises(TransientError, match="cannot connect to the OAuth server") as caught:
        auth.params()
    for secret in secrets_of(auth, chain):
        assert_no_secret(caught.value, secret)


def test_no_secret_in_debug_logs(
    portal: Portal, chain: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 logs the token request line, query string included, at DEBUG: the filter must catch it."""
    with caplog.at_level(logging.DEBUG):
        auth = make_auth(chain, tmp_path / "tokens.json")
        client = make_client(auth)
        client.call("crm.deal.list", PAGE)
        portal.clock.advance(LIFETIME + 1)
        client.call("crm.deal.list", PAGE)
        with pytest.raises(AuthError):
            make_auth(chain, tmp_path / "other.json").params()  # invalid_grant, logged nowhere with secrets
    assert auth.token_requests == 2
    assert "client_secret=***" in caplog.text and "refresh_token=***" in caplog.text  # the request lines
    assert "access token refreshed" in caplog.text
    for secret in secrets_of(auth, chain):
        assert secret not in caplog.text
