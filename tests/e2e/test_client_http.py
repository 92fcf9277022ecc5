"""The client over real HTTP against the emulator (`bitrix24_emulator.Portal`): round trips, every fault kind,
the portal's own limits and errors. Nothing here mocks `requests`; see also test_client_network.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal

import pendulum
import pytest
import requests

from bitrix24_emulator import Portal
from sources.bitrix24.api import (
    AuthError,
    Bitrix24Client,
    Bitrix24Error,
    MethodNotFoundError,
    ScopeError,
    TransientError,
    redact,
)

from .test_client_network import assert_no_secret, make_client

LIST_PARAMS = {"order": {"ID": "ASC"}, "filter": {">ID": 0}, "select": ["ID", "TITLE"], "start": -1}


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(seed=7, deals=120, leads=10, contacts=10, companies=5, limits=False) as portal:
        yield portal


@pytest.fixture(autouse=True)
def no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "portal" in request.fixturenames:
        request.getfixturevalue("portal").clear_faults()


# ------------------------------------------------------------------------------- round trips


def test_call_round_trip(portal: Portal) -> None:
    client = make_client(portal.webhook_url)
    params = {"order": {"ID": "ASC"}, "select": ["ID", "TITLE"], "start": 50}
    response = client.call("crm.deal.list", params)
    assert response.result == portal.call("crm.deal.list", params)
    assert response.total == 120 and response.next == 100
    assert set(response.result[0]) == {"ID", "TITLE"}
    assert isinstance(response.time, dict)
    assert client.requests_made == 1 and client.stats.requests == 1


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({">=DATE_MODIFY": pendulum.datetime(2000, 1, 1, tz="Europe/Berlin")}, 120),
        ({">=DATE_MODIFY": pendulum.datetime(2100, 1, 1, tz="Europe/Berlin")}, 0),
        ({">OPPORTUNITY": Decimal("-1.5")}, 120),
        ({">OPPORTUNITY": Decimal("999999999999.99")}, 0),
    ],
)
def test_datetimes_and_decimals_are_sent_in_call_and_batch(portal: Portal, condition: dict, expected: int) -> None:
    client = make_client(portal.webhook_url)
    params = {"filter": condition, "select": ["ID"]}
    assert client.call("crm.deal.list", params).total == expected
    assert client.batch({"p0": ("crm.deal.list", params)}).total == {"p0": expected}


def test_batch_round_trip_with_references_and_a_failed_subcall(portal: Portal) -> None:
    portal.reset_stats()
    client = make_client(portal.webhook_url)
    chained = {**LIST_PARAMS, "filter": {">ID": "$result[p0][49][ID]"}}
    batch = client.batch(
        {
            "p0": ("crm.deal.list", LIST_PARAMS),
            "p1": ("crm.deal.list", chained),
            "fields": ("crm.deal.fields", {}),
            "bad": ("crm.no.such.method", {"x": 1}),
        }
    )
    pages = [{**LIST_PARAMS, "start": start} for start in (0, 50)]
    assert batch.result["p0"] + batch.result["p1"] == [
        row for page in pages for row in portal.call("crm.deal.list", page)
    ]
    assert "ID" in batch.result["fields"]
    assert set(batch.errors) == {"bad"} and batch.errors["bad"]["error"] == "ERROR_METHOD_NOT_FOUND"
    assert isinstance(client.subcall_error("crm.no.such.method", batch.errors["bad"]), MethodNotFoundError)
    assert set(batch.time) >= {"p0", "p1", "fields"} and batch.batch_time
    assert client.requests_made == 1 and portal.stats()["requests"] == 1


def test_batch_subcall_fault_is_reported_not_dropped(portal: Portal) -> None:
    portal.set_faults(kind="batch_subcall_error", count=1, index=1)
    client = make_client(portal.webhook_url)
    batch = client.batch({f"p{i}": ("crm.deal.list", {**LIST_PARAMS, "filter": {">ID": i * 50}}) for i in range(3)})
    assert set(batch.result) == {"p0", "p2"} and set(batch.errors) == {"p1"}
    assert isinstance(client.subcall_error("crm.deal.list", batch.errors["p1"]), TransientError)


def test_client_bucket_keeps_under_the_portal_limit() -> None:
    # Same limits on both sides, a burst and then pacing: the portal never has to refuse.
    with Portal(seed=7, deals=5, leads=1, contacts=1, companies=1, rate=20.0, burst=3) as portal:
        paced = make_client(portal.webhook_url, rate=20.0, burst=3)
        for _ in range(8):
            paced.call("crm.deal.list", {"select": ["ID"]})
        assert portal.stats()["refused"]["QUERY_LIMIT_EXCEEDED"] == 0
        assert paced.stats.bucket_sleep_seconds > 0 and paced.requests_made == 8


def test_real_rate_limit_refusals_are_retried() -> None:
    with Portal(seed=7, deals=5, leads=1, contacts=1, companies=1, rate=40.0, burst=2) as portal:
        greedy = make_client(portal.webhook_url, rate=1000.0, burst=1000, max_retries=8)
        for _ in range(6):
            greedy.call("crm.deal.list", {"select": ["ID"]})
        refused = portal.stats()["refused"]["QUERY_LIMIT_EXCEEDED"]
        assert refused > 0 and greedy.stats.retries["QUERY_LIMIT_EXCEEDED"] == refused
        assert greedy.requests_made == 6 + refused


# ------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "reason", "extra"),
    [
        ("rate_limit", "QUERY_LIMIT_EXCEEDED", {}),
        ("operation_limit", "OPERATION_TIME_LIMIT", {}),
        ("server_error", "INTERNAL_SERVER_ERROR", {}),
        ("bad_gateway", "http_502", {}),
        ("drop", "connection", {}),
        ("slow", "timeout", {"seconds": 1.0}),
        ("truncated", "bad_response", {}),
    ],
)
def test_each_fault_is_retried_to_success(portal: Portal, kind: str, reason: str, extra: dict) -> None:
    portal.set_faults(kind=kind, count=2, **extra)
    client = make_client(portal.webhook_url, timeout=0.3)
    batch = client.batch({"p0": ("crm.deal.list", LIST_PARAMS)})
    assert len(batch.result["p0"]) == 50 and not batch.errors
    assert client.requests_made == 3
    assert dict(client.stats.retries) == {reason: 2}


def test_bounded_failure_raises_transient_error_without_the_token(
    portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    portal.set_faults(kind="bad_gateway", share=1.0)
    client = make_client(portal.webhook_url, max_retries=2)
    with pytest.raises(TransientError) as info:
        client.call("crm.deal.list", LIST_PARAMS)
    error = info.value
    assert "crm.deal.list" in str(error) and "HTTP 502" in str(error) and "3 attempts" in str(error)
    assert client.requests_made == 3
    assert "/rest/1/***/crm.deal.list" in caplog.text  # urllib3 logged the request line, redacted
    assert_no_secret(error, portal.token, caplog.text)


@pytest.mark.parametrize("kind", ["drop", "truncated", "slow"])
def test_network_level_failures_leak_nothing(portal: Portal, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    caplog.set_level(logging.DEBUG)
    portal.set_faults(kind=kind, share=1.0, seconds=0.5)
    client = make_client(portal.webhook_url, max_retries=1, timeout=0.2)
    with pytest.raises(TransientError) as info:
        client.batch({"p0": ("crm.deal.list", LIST_PARAMS)})
    assert "batch" in str(info.value) and "2 attempts" in str(info.value)
    assert_no_secret(info.value, portal.token, caplog.text)


def test_retry_time_budget_bounds_the_wait(portal: Portal) -> None:
    portal.set_faults(kind="server_error", share=1.0)
    client = make_client(portal.webhook_url, max_retries=1000, backoff_base=0.05, max_retry_seconds=0.3)
    with pytest.raises(TransientError, match="retry budget") as info:
        client.call("crm.deal.list")
    assert client.requests_made < 10
    assert_no_secret(info.value, portal.token)


# ------------------------------------------------------------------------------- user errors


def test_wrong_token_is_an_auth_error(portal: Portal, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrongtoken1234567890"
    client = make_client(f"{portal.base_url}/rest/1/{wrong}/")
    with pytest.raises(AuthError) as info:
        client.call("crm.deal.list")
    assert "crm.deal.list" in str(info.value) and "webhook" in str(info.value)
    assert client.requests_made == 1  # not retried
    assert_no_secret(info.value, wrong, caplog.text)


def test_expired_token_on_a_webhook_is_an_auth_error(portal: Portal) -> None:
    portal.set_faults(kind="expired_token", count=1)
    client = make_client(portal.webhook_url)
    with pytest.raises(AuthError, match="expired") as info:
        client.call("crm.deal.list")
    assert client.requests_made == 1
    assert_no_secret(info.value, portal.token)


class AccessTokenAuth:
    """An OAuth-shaped auth (token in the body as `auth`, base URL without secrets), to show the client's auth
    interface fits OAuth: params are sent, and `refresh` is asked once on `expired_token`."""

    def __init__(self, oauth: dict[str, str], refresh_fails: bool = False):
        self.endpoint = oauth["client_endpoint"]
        self.host = "127.0.0.1"
        self.token = oauth["access_token"]
        self.secrets = (self.token, oauth["refresh_token"], oauth["client_secret"])
        self.refresh_fails = refresh_fails
        self.refreshes = 0

    def url_for(self, method: str) -> str:
        return self.endpoint + method

    def params(self) -> dict[str, str]:
        return {"auth": self.token}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def refresh(self, session: requests.Session, timeout: float) -> bool:
        self.refreshes += 1
        if self.refresh_fails:  # what a careless token endpoint error would say
            raise RuntimeError(f"GET /oauth/token/?refresh_token={self.secrets[1]}&client_secret={self.secrets[2]}")
        return True


def test_oauth_shaped_auth_sends_its_params(portal: Portal) -> None:
    client = Bitrix24Client(AccessTokenAuth(portal.oauth))
    assert client.call("crm.deal.list", {"select": ["ID"]}).total == 120


@pytest.mark.parametrize(("expired", "succeeds"), [(1, True), (2, False)])
def test_expired_token_is_refreshed_once(portal: Portal, expired: int, succeeds: bool) -> None:
    portal.set_faults(kind="expired_token", count=expired)
    auth = AccessTokenAuth(portal.oauth)
    client = Bitrix24Client(auth, backoff_base=0.01)
    if succeeds:
        assert client.call("crm.deal.list", {"select": ["ID"]}).total == 120
    else:
        with pytest.raises(AuthError):
            client.call("crm.deal.list", {"select": ["ID"]})
    assert auth.refreshes == 1 and client.requests_made == 2


def test_failed_refresh_is_an_auth_error_without_secrets(portal: Portal, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    portal.set_faults(kind="expired_token", count=1)
    auth = AccessTokenAuth(portal.oauth, refresh_fails=True)
    client = Bitrix24Client(auth)
    with pytest.raises(AuthError, match=r"expired.*renewing it failed \(RuntimeError\)") as info:
        client.call("crm.deal.list")
    for secret in auth.secrets:
        assert_no_secret(info.value, secret, caplog.text)


def test_missing_scope_is_a_scope_error(portal: Portal) -> None:
    client = make_client(portal.add_webhook(scopes=("user",)))
    with pytest.raises(ScopeError, match="scope") as info:
        client.call("crm.deal.list")
    assert info.value.code == "insufficient_scope" and client.requests_made == 1


def test_unknown_method(portal: Portal) -> None:
    client = make_client(portal.webhook_url)
    with pytest.raises(MethodNotFoundError) as info:
        client.call("crm.deal.frobnicate")
    assert info.value.code == "ERROR_METHOD_NOT_FOUND" and info.value.status == 404


def test_method_error_keeps_the_portals_code(portal: Portal) -> None:
    client = make_client(portal.webhook_url)
    with pytest.raises(Bitrix24Error) as info:
        client.call("crm.deal.get", {"id": 999_999_999})
    assert type(info.value) is Bitrix24Error
    assert info.value.code == "" and info.value.description == "Not found" and client.requests_made == 1
