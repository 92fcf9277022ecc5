"""Pure unit tests of the client's building blocks: php_query, webhook URL validation, the leaky bucket's
arithmetic (on a fake clock), response classification and redaction. HTTP behaviour is tested against the
emulator in tests/e2e/test_client_http.py."""

from __future__ import annotations

import datetime as dt
import logging
import pickle
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from sources.bitrix24.api import (
    AuthError,
    Bitrix24Client,
    Bitrix24Error,
    ConfigError,
    LeakyBucket,
    MethodNotFoundError,
    ScopeError,
    TransientError,
    WebhookAuth,
    php_query,
    redact,
)
from sources.bitrix24.api.outcomes import interpret
from sources.bitrix24.api.phpquery import MAX_INPUT_VARS
from sources.bitrix24.api.redaction import SecretFilter
from sources.bitrix24.paging import MAX_FILTER_IDS, filter_chunks

CODE = "k3x9q2m7v1b8n4zt"
URL = f"https://example.bitrix24.com/rest/1/{CODE}/"


# --------------------------------------------------------------------------- php_query


def test_php_query_flattens_nested_params_like_http_build_query() -> None:
    query = php_query(
        {
            "order": {"ID": "ASC"},
            "filter": {">ID": 5, "=STAGE_ID": ["NEW", "WON"]},
            "select": ["ID", "TITLE"],
            "start": -1,
        }
    )
    assert query == (
        "order[ID]=ASC&filter[%3EID]=5&filter[%3DSTAGE_ID][0]=NEW&filter[%3DSTAGE_ID][1]=WON"
        "&select[0]=ID&select[1]=TITLE&start=-1"
    )


def test_php_query_scalars_follow_php() -> None:
    # PHP: true -> 1, false -> 0, null and [] vanish, "" stays as an empty value.
    assert php_query({"a": True, "b": False, "c": None, "d": [], "e": {}, "f": "", "g": 1.5}) == "a=1&b=0&f=&g=1.5"
    assert php_query({"filter": {">=DATE_MODIFY": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}}) == (
        "filter[%3E%3DDATE_MODIFY]=2024-01-02T03%3A04%3A05%2B00%3A00"
    )
    assert php_query({}) == ""
    assert php_query({"n": Decimal("10.50")}) == "n=10.50"


def test_php_query_encodes_special_characters_and_round_trips() -> None:
    params = {"filter": {"%TITLE": "a&b=c d+e?#[x]", "ID": "$result[p0][49][ID]"}, "ключ": "значение 🙂"}
    query = php_query(params)
    assert " " not in query and "+" not in query and "#" not in query
    assert query.count("&") == 2  # the literal & inside a value is encoded
    decoded = dict(parse_qsl(query))
    assert decoded == {
        "filter[%TITLE]": "a&b=c d+e?#[x]",
        "filter[ID]": "$result[p0][49][ID]",
        "ключ": "значение 🙂",
    }


def test_php_query_rejects_what_php_cannot_express() -> None:
    with pytest.raises(TypeError):
        php_query({"x": object()})
    with pytest.raises(TypeError):
        php_query("not a mapping")  # type: ignore[arg-type]


def test_php_query_refuses_a_command_the_portal_would_cut_short() -> None:
    """The portal's parse_str keeps 1,000 variables (PHP's max_input_vars) and drops the rest unseen, `start`
    included: such a command is a bug of ours, refused before it is sent."""
    fits = {"filter": {"@ID": list(range(MAX_FILTER_IDS))}, "select": ["ID", "TITLE"], "start": -1}
    assert php_query(fits).count("&") + 1 == MAX_FILTER_IDS + 3 <= MAX_INPUT_VARS == 1000
    assert all(len(chunk) <= MAX_FILTER_IDS for chunk in filter_chunks(list(range(2 * MAX_FILTER_IDS + 1))))
    with pytest.raises(ValueError, match="1,001 variables"):
        php_query({"filter": {"@ID": list(range(1000))}, "start": -1})


# --------------------------------------------------------------------------- WebhookAuth


@pytest.mark.parametrize(
    "url",
    [URL, URL.rstrip("/"), f"  {URL}  ", f"https://portal.example.com:8443/rest/17/{CODE}/"],
)
def test_webhook_url_accepted(url: str) -> None:
    auth = WebhookAuth(url)
    assert auth.url_for("crm.deal.list").endswith(f"/rest/{auth.user_id}/{CODE}/crm.deal.list")
    assert auth.secrets == (CODE,)
    assert auth.params() == {}
    assert CODE not in repr(auth)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("example.bitrix24.com/rest/1/x", "must look like https://"),
        ("ftp://example.bitrix24.com/rest/1/" + CODE, "must look like https://"),
        ("https://example.bitrix24.com/", "must look like https://"),
        ("https://example.bitrix24.com/rest/admin/" + CODE, "must look like https://"),
        ("https://example.bitrix24.com/rest/1/", "must look like https://"),
        (URL + "crm.deal.list.json", "goes on after the code (crm.deal.list.json)"),
        (URL + "crm.deal.list/", "goes on after the code (crm.deal.list)"),
        (f"https://example.bitrix24.com/rest/1/tooshort/{CODE}/", "goes on after the code (extra path)"),
        (URL + "crm.deal.list?start=0", "query string"),
        ("https://example.bitrix24.com/rest/1/short/", "does not look like a Bitrix24 webhook code"),
        (f"http://example.bitrix24.com/rest/1/{CODE}/", "plain http"),
        (f"http://10.0.0.5/rest/1/{CODE}/", "plain http"),
    ],
)
def test_webhook_url_rejected_with_a_fix_and_without_the_code(url: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        WebhookAuth(url)
    message = str(info.value)
    assert hint in message
    assert CODE not in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"])
def test_plain_http_allowed_for_loopback(host: str) -> None:
    assert WebhookAuth(f"http://{host}:8080/rest/1/{CODE}/").host in (host.strip("[]"),)


def test_plain_http_allowed_elsewhere_only_when_asked() -> None:
    auth = WebhookAuth(f"http://crm.internal/rest/1/{CODE}", allow_http=True)
    assert auth.base_url == f"http://crm.internal/rest/1/{CODE}/"


# --------------------------------------------------------------------------- LeakyBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, burst=50, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire() for _ in range(50)] == [0.0] * 50
    assert clock.slept == []
    assert bucket.acquire() == pytest.approx(0.5)
    assert bucket.acquire() == pytest.approx(0.5)
    assert clock.slept == pytest.approx([0.5, 0.5])
    assert bucket.level == pytest.approx(50.0)


def test_bucket_drains_while_idle() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=5.0, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    clock.now += 1.0  # 5 slots drained
    assert [bucket.acquire() for _ in range(5)] == [0.0] * 5
    assert bucket.acquire() == pytest.approx(0.2)
    clock.now += 100.0
    assert bucket.level == 0.0  # never negative


def test_bucket_reserves_slots_so_waits_queue_up() -> None:
    # Callers that arrive together while the bucket is full each wait one slot longer than the previous one.
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, burst=1, clock=clock, sleep=lambda s: None)
    assert [bucket.acquire() for _ in range(4)] == pytest.approx([0.0, 0.5, 1.0, 1.5])


def test_bucket_fill_paces_the_next_request() -> None:
    clock = FakeClock()
    bucket = LeakyBucket(rate=2.0, burst=50, clock=clock, sleep=clock.sleep)
    bucket.fill()
    assert bucket.acquire() == pytest.approx(0.5)


def test_bucket_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        LeakyBucket(rate=0, burst=50)
    with pytest.raises(ValueError):
        LeakyBucket(rate=2, burst=0)


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("status", "body", "kind", "error_class", "reason"),
    [
        (200, b'{"result": [], "time": {}}', "ok", Bitrix24Error, ""),
        (200, b'{"result": [1, 2', "retry", Bitrix24Error, "bad_response"),
        (200, b"", "retry", Bitrix24Error, "bad_response"),
        (
            503,
            b'{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}',
            "retry",
            TransientError,
            "QUERY_LIMIT_EXCEEDED",
        ),
        (
            429,
            b'{"error":"OPERATION_TIME_LIMIT","error_description":"blocked"}',
            "retry",
            TransientError,
            "OPERATION_TIME_LIMIT",
        ),
        (
            500,
            b'{"error":"INTERNAL_SERVER_ERROR","error_description":"Internal server error"}',
            "retry",
            TransientError,
            "INTERNAL_SERVER_ERROR",
        ),
        (502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "retry", TransientError, "http_502"),
        (504, b"", "retry", TransientError, "http_504"),
        (
            401,
            b'{"error":"NO_AUTH_FOUND","error_description":"Wrong authorization data"}',
            "fail",
            AuthError,
            "",
        ),
        (
            401,
            b'{"error":"INVALID_CREDENTIALS","error_description":"Invalid request credentials"}',
            "fail",
            AuthError,
            "",
        ),
        (
            401,
            b'{"error":"invalid_token","error_description":"Unable to get application by token"}',
            "expired",  # revoked by a refresh elsewhere: the auth gets one chance to renew
            AuthError,
            "",
        ),
        (401, b'{"error":"expired_token","error_description":"expired"}', "expired", AuthError, ""),
        (403, b'{"error":"insufficient_scope","error_description":""}', "fail", ScopeError, ""),
        (
            404,
            b'{"error":"ERROR_METHOD_NOT_FOUND","error_description":"Method not found!"}',
            "fail",
            MethodNotFoundError,
            "",
        ),
        (404, b"<html>Not Found</html>", "fail", AuthError, ""),
        (403, b"<html>Forbidden</html>", "fail", AuthError, ""),
        (400, b'{"error":"","error_description":"Not found"}', "fail", Bitrix24Error, ""),
        (
            400,
            b'{"error":100,"error_description":"Could not find value for parameter {id}"}',
            "fail",
            Bitrix24Error,
            "",
        ),
        (400, b"<html>Bad Request</html>", "fail", Bitrix24Error, ""),
    ],
)
def test_interpret_classifies_responses(
    status: int, body: bytes, kind: str, error_class: type[Bitrix24Error], reason: str
) -> None:
    outcome = interpret(status, body)
    assert (outcome.kind, outcome.error_class, outcome.reason) == (kind, error_class, reason)


def test_interpret_keeps_codes_as_sent() -> None:
    assert interpret(400, b'{"error":100,"error_description":"x"}').code == 100
    assert interpret(400, b'{"error":"","error_description":"Not found"}').code == ""
    assert interpret(400, b'{"error":"","error_description":"Not found"}').description == "Not found"


def test_operating_reset_is_measured_on_the_portal_clock() -> None:
    body = b'{"error":"OPERATION_TIME_LIMIT","time":{"finish":5000.5,"operating_reset_at":5030}}'
    assert interpret(429, body).wait_hint == pytest.approx(29.5)
    assert interpret(429, b'{"error":"OPERATION_TIME_LIMIT","error_description":""}').wait_hint is None


def test_client_backoff_is_exponential_jittered_and_bounded() -> None:
    client = Bitrix24Client(WebhookAuth(URL), backoff_base=1.0, backoff_cap=8.0, max_retry_seconds=100.0)
    for n, base in enumerate([1, 2, 4, 8, 8]):
        delay = client._backoff(n, None)
        assert base * 0.5 <= delay <= base
    assert client._backoff(0, 42.0) == 42.0  # the portal's reset time wins over a shorter backoff
    assert client._backoff(0, 10_000.0) == 100.0  # but never more than the whole budget


def test_batch_rejects_too_many_or_no_commands_before_any_request() -> None:
    client = Bitrix24Client(WebhookAuth(URL))
    with pytest.raises(ValueError):
        client.batch({f"c{i}": ("crm.deal.list", {}) for i in range(51)})
    with pytest.raises(ValueError):
        client.batch({})
    assert client.requests_made == 0


def test_subcall_errors_map_like_direct_errors() -> None:
    client = Bitrix24Client(WebhookAuth(URL))
    error = client.subcall_error("crm.deal.list", {"error": "insufficient_scope", "error_description": ""})
    assert isinstance(error, ScopeError) and error.method == "crm.deal.list"
    limit = client.subcall_error("crm.deal.list", {"error": "OPERATION_TIME_LIMIT", "error_description": ""})
    assert isinstance(limit, TransientError)


# --------------------------------------------------------------------------- redaction


def test_redact_masks_every_occurrence() -> None:
    assert redact(f"/rest/1/{CODE}/x {CODE}", [CODE]) == "/rest/1/***/x ***"
    assert redact("nothing", ["", CODE]) == "nothing"


def test_errors_keep_attributes_through_pickle() -> None:
    error = ScopeError(
        "crm.deal.list: no scope",
        code="insufficient_scope",
        description="",
        status=401,
        method="crm.deal.list",
    )
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), str(clone), clone.code, clone.status, clone.method) == (
        ScopeError,
        "crm.deal.list: no scope",
        "insufficient_scope",
        401,
        "crm.deal.list",
    )


def test_secret_filter_redacts_urllib3_records(caplog: pytest.LogCaptureFixture) -> None:
    secret_filter = SecretFilter(lambda: [CODE])
    secret_filter.install()
    logger = logging.getLogger("urllib3.connectionpool")
    assert secret_filter in logger.filters
    with caplog.at_level(logging.DEBUG):
        logger.debug(
            '%s://%s:%s "%s %s %s" %s %s',
            "https",
            "h",
            443,
            "POST",
            f"/rest/1/{CODE}/batch",
            "HTTP/1.1",
            200,
            None,
        )
        try:
            raise OSError(f"failed for /rest/1/{CODE}/")
        except OSError:
            logger.warning("retrying", exc_info=True)
    assert "/rest/1/***/batch" in caplog.text
    assert "failed for /rest/1/***/" in caplog.text
    assert CODE not in caplog.text
    secret_filter.uninstall()
    assert secret_filter not in logger.filters
