"""The only module of the sync that speaks HTTP to a Bitrix24 portal.

It owns everything that must hold for every request: authentication (pluggable: a webhook now, OAuth later),
the client-side leaky bucket that keeps us under the portal's request rate, bounded retries with backoff, the
mapping of Bitrix24's error envelopes onto a few exception classes, and secret redaction.

Secrets. A webhook's code sits in the URL path, so any text that mentions the URL leaks it. Therefore:

* exception messages are built from our own words, the method name, the host and the portal's error
  code/description, then passed through `auth.redact()`; `requests`/`urllib3` exception texts are never
  copied;
* public exceptions are raised outside `except` blocks, so `__context__`/`__cause__` are None (dlt serialises
  the whole chain into its trace, even through `raise ... from None`);
* urllib3 logs its request lines (`"POST /rest/1/<code>/batch HTTP/1.1" 200`) at DEBUG. Instead of silencing
  urllib3 (a `--debug` run should still show connection activity), the client installs `SECRET_FILTER` on
  urllib3's loggers and its own: a `logging.Filter` that rewrites any record containing a registered secret.
  Filters on a logger apply to that logger's own records only (not to children's), so it is installed on every
  `urllib3.*` logger by name.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import logging
import random
import re
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
import requests
import urllib3.exceptions

from .phpquery import php_query

__all__ = [
    "Auth",
    "AuthError",
    "BatchResponse",
    "Bitrix24Client",
    "Bitrix24Error",
    "ClientStats",
    "ConfigError",
    "LeakyBucket",
    "MethodNotFoundError",
    "Response",
    "SECRET_FILTER",
    "PlanError",
    "ScopeError",
    "TransientError",
    "UnreachableError",
    "WebhookAuth",
    "php_query",
    "redact",
]

log = logging.getLogger("bitrix24_sync.client")

MAX_BATCH_COMMANDS = 50
REDACTED = "***"
UNREACHABLE_ATTEMPTS = 2  # a host that never answered: one quick retry, then a configuration error


# --------------------------------------------------------------------------------- exceptions


class ConfigError(ValueError):
    """A mistake the user can fix (bad webhook URL): a one-line message saying how, never a secret."""


class Bitrix24Error(Exception):
    """A call failed. The message never holds a secret; `code` is the portal's `error` ("" and ints occur)."""

    def __init__(
        self,
        message: str,
        code: str | int | None = None,
        description: str = "",
        status: int | None = None,
        method: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.description = description
        self.status = status
        self.method = method

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the attributes when pickled (dlt may ship exceptions between processes).
        return (type(self), (str(self), self.code, self.description, self.status, self.method))


class AuthError(Bitrix24Error):
    """The portal refused the credentials or the URL is wrong (NO_AUTH_FOUND, 401s, a 404 HTML page, ...)."""


class ScopeError(Bitrix24Error):
    """The webhook/app lacks the scope a method needs (`insufficient_scope`)."""


class PlanError(AuthError):
    """`ACCESS_DENIED` "REST is available only on commercial plans": the portal's plan, not the credentials."""


class MethodNotFoundError(Bitrix24Error):
    """`ERROR_METHOD_NOT_FOUND`: unknown method, or one this portal/plan does not offer."""


class TransientError(Bitrix24Error):
    """Retries exhausted on rate limits, 5xx, network failures or unusable bodies; a later run may succeed."""


class UnreachableError(ConfigError, TransientError):
    """The host does not resolve or refuses connections, and it has not answered once since the client was
    made: almost always a typo in the URL, so it is a configuration error after one quick retry instead of
    minutes of backoff. (Also a `TransientError`: a portal down at the very start is possible too.)"""

    __init__ = Bitrix24Error.__init__


# --------------------------------------------------------------------------------- redaction


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret in `text` by `***` (longest first, so overlapping secrets vanish whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Rewrites log records that contain a registered secret (message, args and exception text)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets = self._secrets | {s for s in secrets if s}

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself; nothing of ours to redact
            return True
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info:
            record.exc_text = redact(
                "".join(traceback.format_exception(*record.exc_info)).rstrip("\n"), secrets
            )
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


SECRET_FILTER = SecretFilter()


def install_secret_filter(secrets: Iterable[str]) -> None:
    """Register `secrets`; make sure `SECRET_FILTER` sits on our logger and every urllib3/requests logger."""
    SECRET_FILTER.register(secrets)
    names = {"urllib3", "requests", log.name}
    names.update(n for n in logging.root.manager.loggerDict if n.startswith(("urllib3.", "requests.")))
    for name in names:
        logger = logging.getLogger(name)
        if SECRET_FILTER not in logger.filters:
            logger.addFilter(SECRET_FILTER)


# --------------------------------------------------------------------------------- auth


class Auth(Protocol):
    """What the client needs from an authentication method (webhook now; OAuth later with the same shape)."""

    host: str
    secrets: tuple[str, ...]

    def url_for(self, method: str) -> str: ...

    def params(self) -> dict[str, Any]: ...

    def redact(self, text: str) -> str: ...

    def refresh(self, session: requests.Session, timeout: float) -> bool:
        """Called once per call on a 401 `expired_token`; True if the call should be repeated (new token)."""
        ...


_WEBHOOK_SHAPE = "https://<portal>/rest/<user id>/<webhook code>/"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
_MIN_CODE_LENGTH = 8
_METHOD_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", re.IGNORECASE)


class WebhookAuth:
    """An incoming webhook: the URL itself is the credential (`https://host/rest/<user_id>/<code>/`)."""

    def __init__(self, webhook_url: str, allow_http: bool = False):
        parts = urlsplit(str(webhook_url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"the webhook URL must look like {_WEBHOOK_SHAPE}; copy it from the webhook's page"
            )
        host = parts.hostname
        if parts.query or parts.fragment:
            raise ConfigError(
                f"the webhook URL for {host} must not carry a query string; use {_WEBHOOK_SHAPE}"
            )
        segments = parts.path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "rest" or not segments[1].isdigit():
            raise ConfigError(f"the webhook URL for {host} must look like {_WEBHOOK_SHAPE}")
        code = segments[2]
        if len(segments) > 3:
            # Name the extra part only when it is plainly a method name: anything else might be a secret.
            suffix = (
                segments[3] if len(segments) == 4 and _METHOD_NAME.fullmatch(segments[3]) else "extra path"
            )
            raise ConfigError(
                f"the webhook URL for {host} goes on after the code ({suffix}); give it only up to the code: "
                f"{parts.scheme}://{parts.netloc}/rest/{segments[1]}/<code>/"
            )
        if len(code) < _MIN_CODE_LENGTH or not code.isalnum():
            raise ConfigError(
                f"the webhook code in the URL for {host} does not look like a Bitrix24 webhook code "
                "(letters and digits, usually 16); copy the URL again from the webhook's page"
            )
        if parts.scheme == "http" and not (allow_http or is_loopback(host)):
            raise ConfigError(
                f"the webhook URL for {host} uses plain http, which would send the webhook code unencrypted; "
                "use https:// (the allow_http setting permits plain http on a trusted network)"
            )
        self.host = host
        self.user_id = int(segments[1])
        self.base_url = f"{parts.scheme}://{parts.netloc}/rest/{segments[1]}/{code}/"
        self.secrets: tuple[str, ...] = (code,)

    def url_for(self, method: str) -> str:
        return self.base_url + method

    def params(self) -> dict[str, Any]:
        return {}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def refresh(self, session: requests.Session, timeout: float) -> bool:
        return False  # a webhook cannot be refreshed: an expired one is an AuthError

    def __repr__(self) -> str:
        return f"WebhookAuth({self.redact(self.base_url)!r})"


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------- leaky bucket


class LeakyBucket:
    """Client-side mirror of the portal's limiter: the level drains at `rate`/s, each request adds 1, and a
    request that would overflow `burst` waits until it fits. Thread-safe; a request reserves its slot before
    sleeping, so concurrent callers queue instead of stampeding."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("the request rate must be > 0 and the burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take one slot, sleeping only if the bucket is full; returns the seconds slept."""
        with self._lock:
            self._drain()
            wait = max(0.0, (self._level + 1 - self.burst) / self.rate)
            self._level += 1
        if wait > 0:
            self._sleep(wait)
        return wait

    def fill(self) -> None:
        """The portal said it is full (QUERY_LIMIT_EXCEEDED): pace the next requests at `rate`."""
        with self._lock:
            self._drain()
            self._level = max(self._level, float(self.burst))

    @property
    def level(self) -> float:
        with self._lock:
            self._drain()
            return self._level


# --------------------------------------------------------------------------------- results


@dataclass
class Response:
    result: Any
    total: int | None
    next: int | None
    time: dict[str, Any]


@dataclass
class BatchResponse:
    """A batch's sub-results keyed by command key. `errors` holds every failed sub-call's error envelope (a
    batch with failed sub-calls is still an HTTP success: the caller decides); `time` is per command
    (`result_time`), `batch_time` the outer call's `time`."""

    result: dict[str, Any]
    errors: dict[str, dict[str, Any]]
    total: dict[str, int]
    next: dict[str, int]
    time: dict[str, Any]
    batch_time: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientStats:
    """Per-run counters for the CLI summary."""

    requests: int = 0
    retries: Counter[str] = field(default_factory=Counter)  # reason -> count
    bucket_sleep_seconds: float = 0.0
    backoff_sleep_seconds: float = 0.0

    def summary(self) -> str:
        retries = ", ".join(f"{reason} {n}" for reason, n in sorted(self.retries.items())) or "none"
        return (
            f"{self.requests} HTTP requests; retries: {retries}; waited {self.bucket_sleep_seconds:.1f}s "
            f"for the rate limit and {self.backoff_sleep_seconds:.1f}s backing off"
        )


# --------------------------------------------------------------------------------- outcomes

_RETRY, _FAIL, _EXPIRED = "retry", "fail", "expired"

_AUTH_CODES = frozenset(
    {
        "NO_AUTH_FOUND",
        "INVALID_CREDENTIALS",
        "invalid_token",
        "expired_token",
        "authorization_error",
        "APPLICATION_NOT_FOUND",
        "ERROR_OAUTH",
        "NOT_INSTALLED",
        "METHOD_CONFIRM_WAITING",
        "METHOD_CONFIRM_DENIED",
        "user_access_error",
        "WRONG_AUTH_TYPE",
        "INVALID_REQUEST",  # "Https required"
        "PORTAL_DELETED",
        "invalid_client",
        "invalid_grant",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "QUERY_LIMIT_EXCEEDED",
        "OPERATION_TIME_LIMIT",
        "OVERLOAD_LIMIT",
        "INTERNAL_SERVER_ERROR",
        "ERROR_UNEXPECTED_ANSWER",
    }
)


@dataclass(frozen=True)
class _Outcome:
    """What one HTTP attempt (or one batch sub-call) came to. Holds only plain data: never an exception or
    response, which would carry the URL."""

    kind: str  # "ok" | _RETRY | _FAIL | _EXPIRED
    reason: str = ""  # statistics key: the error code, "http_502", "timeout", "connection", "bad_response"
    detail: str = ""  # human-readable, still to be redacted
    error_class: type[Bitrix24Error] = Bitrix24Error
    code: str | int | None = None
    description: str = ""
    status: int | None = None
    envelope: dict[str, Any] | None = None
    wait_hint: float | None = None  # seconds the portal told us to wait (operating_reset_at)
    unreachable: bool = False  # the host name does not resolve or the port refuses connections


def _code_text(code: Any) -> str:
    return "an error without a code" if code in ("", None) else f"error {code}"


def _error_outcome(body: Mapping[str, Any], status: int | None) -> _Outcome:
    """Map an error envelope `{"error": ..., "error_description": ...}` (outer call or batch sub-call)."""
    code = body.get("error")
    description = str(body.get("error_description") or "")
    if isinstance(code, Mapping):  # REST 3.0 shape: {"error": {"code": ..., "message": ...}}
        code, description = code.get("code"), str(code.get("message") or description)
    if not isinstance(code, str | int | None):
        code = str(code)
    said = f"{_code_text(code)}" + (f" ({description})" if description else "")
    http = f" (HTTP {status})" if status else ""
    common = {"code": code, "description": description, "status": status}
    if code in _TRANSIENT_CODES or (code not in _AUTH_CODES and status is not None and (status >= 500)):
        return _Outcome(
            _RETRY,
            reason=str(code or f"http_{status}"),
            detail=f"the portal answered {said}{http}",
            error_class=TransientError,
            wait_hint=_operating_wait(body),
            **common,
        )
    if code in ("expired_token", "invalid_token"):  # invalid_token: revoked by a refresh elsewhere, or dead
        return _Outcome(
            _EXPIRED, detail=f"the access token is no longer valid: {said}", error_class=AuthError, **common
        )
    if code == "insufficient_scope":
        return _Outcome(
            _FAIL,
            detail=f"the webhook lacks the scope this method needs: {said}; add the scope "
            "(e.g. crm) to the webhook on the portal",
            error_class=ScopeError,
            **common,
        )
    if code == "ACCESS_DENIED" and "plan" in description.lower():
        return _Outcome(
            _FAIL,
            detail=f"the portal's Bitrix24 plan does not allow this REST call: {said}{http}; "
            "REST needs a commercial plan: upgrade the portal's plan",
            error_class=PlanError,
            **common,
        )
    if code == "ERROR_METHOD_NOT_FOUND":
        return _Outcome(
            _FAIL,
            detail=f"the portal does not offer this method: {said}",
            error_class=MethodNotFoundError,
            **common,
        )
    if code in _AUTH_CODES or status in (401, 403):
        return _Outcome(
            _FAIL,
            detail=f"the portal refused the credentials: {said}{http}; check the webhook URL "
            "and that the webhook is still active",
            error_class=AuthError,
            **common,
        )
    return _Outcome(_FAIL, detail=f"the portal answered {said}{http}", **common)


def _operating_wait(body: Mapping[str, Any]) -> float | None:
    """Seconds until `time.operating_reset_at`, measured on the portal's own clock (its `finish`/`start`) when
    the envelope has one, so that clock skew between us and the portal does not matter."""
    timing = body.get("time")
    if not isinstance(timing, Mapping) or not isinstance(timing.get("operating_reset_at"), int | float):
        return None
    now = timing.get("finish", timing.get("start"))
    now = now if isinstance(now, int | float) else time.time()
    return max(0.0, float(timing["operating_reset_at"]) - float(now))


def _interpret(status: int, content: bytes) -> _Outcome:
    """Classify a complete HTTP response (redirects are handled before)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return _error_outcome(body, status)
    if status == 200:
        if isinstance(body, dict) and "result" in body:
            return _Outcome("ok", envelope=body, status=status)
        return _Outcome(
            _RETRY,
            reason="bad_response",
            status=status,
            detail="the portal's answer was not a complete JSON envelope (truncated or not JSON)",
        )
    shape = "JSON" if body is not None else "non-JSON"
    if status in (401, 403):
        return _Outcome(
            _FAIL,
            error_class=AuthError,
            status=status,
            detail=f"the portal refused the request (HTTP {status}, {shape} body); check the webhook URL",
        )
    if status == 404:
        return _Outcome(
            _FAIL,
            error_class=AuthError,
            status=status,
            detail=f"the portal answered HTTP 404 ({shape} body): the webhook URL is probably wrong; "
            f"check the host and the /rest/<user id>/<code>/ part",
        )
    if status == 429 or status >= 500:
        return _Outcome(
            _RETRY,
            reason=f"http_{status}",
            status=status,
            error_class=TransientError,
            detail=f"the portal answered HTTP {status} with a {shape} body",
        )
    return _Outcome(_FAIL, status=status, detail=f"the portal answered HTTP {status} with a {shape} body")


# requests wraps transport failures in RequestException; the others are caught too in case one slips through
# unwrapped, since their texts may contain the URL.
_TRANSPORT_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def _network_outcome(exc: BaseException, host: str, timeout: float) -> _Outcome:
    """Describe a transport failure in our own words (requests' texts contain the URL, hence the code)."""
    chain = _exception_chain(exc)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(socket.gaierror, ConnectionRefusedError):
        return _Outcome(
            _RETRY,
            reason="connection",
            error_class=TransientError,
            detail=f"cannot reach the portal host {host}: "
            + ("the host name does not resolve" if has(socket.gaierror) else "connection refused"),
            unreachable=True,
        )
    if isinstance(exc, requests.ConnectTimeout) or has(urllib3.exceptions.ConnectTimeoutError):
        reason = f"no connection within {timeout:g}s"
    elif isinstance(exc, requests.Timeout) or has(TimeoutError, urllib3.exceptions.ReadTimeoutError):
        return _Outcome(
            _RETRY,
            reason="timeout",
            error_class=TransientError,
            detail=f"the portal {host} did not answer within {timeout:g}s",
        )
    elif has(urllib3.exceptions.SSLError, requests.exceptions.SSLError):
        reason = "TLS handshake failed"
    elif has(ConnectionResetError):
        return _connection_broke(host, "the connection was reset")
    elif has(http.client.RemoteDisconnected):
        return _connection_broke(host, "the server closed the connection without answering")
    elif has(
        http.client.IncompleteRead, urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError
    ):
        return _connection_broke(host, "the response was cut off")
    elif has(urllib3.exceptions.NewConnectionError):
        reason = "the connection failed"
    else:
        return _connection_broke(host, type(chain[-1]).__name__)
    return _Outcome(
        _RETRY,
        reason="connection",
        error_class=TransientError,
        detail=f"cannot reach the portal host {host}: {reason}",
    )


def _connection_broke(host: str, reason: str) -> _Outcome:
    return _Outcome(
        _RETRY,
        reason="connection",
        error_class=TransientError,
        detail=f"the connection to the portal host {host} broke: {reason}",
    )


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """`exc` and everything it wraps (`__cause__`, `__context__`, urllib3's `.reason`, exception args)."""
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return seen


def _json_default(value: Any) -> str:
    """Values orjson refuses, encoded as `php_query` encodes them: datetime subclasses such as pendulum's as
    ISO 8601, decimals as text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} value to the portal")


def _as_dict(value: Any) -> dict[str, Any]:
    """PHP serialises an empty array as `[]` and a 0..n-1 keyed one as a list: normalise both to a dict."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def _optional_int(value: Any) -> int | None:
    """`total`/`next` are ints, but PHP may send them as digit strings."""
    return int(value) if isinstance(value, int | str) and str(value).lstrip("-").isdigit() else None


# --------------------------------------------------------------------------------- client

_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": "bitrix24-sync",
}


class Bitrix24Client:
    """JSON POSTs to one portal through one `requests.Session`, paced by a `LeakyBucket`, retried with
    exponential backoff and jitter within `max_retries` retries and `max_retry_seconds`, errors mapped to
    `Bitrix24Error`s."""

    def __init__(
        self,
        auth: Auth,
        *,
        rate: float = 2.0,
        burst: int = 50,
        timeout: float = 60.0,
        max_retries: int = 8,
        max_retry_seconds: float = 300.0,
        session: requests.Session | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ):
        self.auth = auth
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_seconds = max_retry_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # One slot of headroom: paced exactly at the portal's limit, a request that travels faster than the
        # one before it would find the portal's bucket still full and be refused about every other time.
        self.bucket = LeakyBucket(rate, max(1, burst - 1))
        self.stats = ClientStats()
        self._session = session or requests.Session()
        self._stats_lock = threading.Lock()
        self._answered = False  # any HTTP response yet: after one, an unreachable host is an outage, not a typo
        install_secret_filter(auth.secrets)

    @property
    def requests_made(self) -> int:
        return self.stats.requests

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Bitrix24Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Response:
        """Call one method; raises a `Bitrix24Error` subclass on failure."""
        envelope = self._request(method, dict(params or {}))
        return Response(
            result=envelope.get("result"),
            total=_optional_int(envelope.get("total")),
            next=_optional_int(envelope.get("next")),
            time=_as_dict(envelope.get("time")),
        )

    def batch(
        self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], halt: bool = False
    ) -> BatchResponse:
        """Run up to 50 `(method, params)` commands in one request. Failed sub-calls come back in `errors`;
        the whole batch is retried on transient failures of the outer request (the sync only batches reads).
        """
        if not 1 <= len(commands) <= MAX_BATCH_COMMANDS:
            raise ValueError(f"a batch takes 1 to {MAX_BATCH_COMMANDS} commands, got {len(commands)}")
        cmd = {
            key: f"{method}?{php_query(params)}" if params else method
            for key, (method, params) in commands.items()
        }
        envelope = self._request("batch", {"halt": 1 if halt else 0, "cmd": cmd})
        inner = _as_dict(envelope.get("result"))
        return BatchResponse(
            result=_as_dict(inner.get("result")),
            errors={k: _as_dict(v) for k, v in _as_dict(inner.get("result_error")).items()},
            total={
                k: n
                for k, v in _as_dict(inner.get("result_total")).items()
                if (n := _optional_int(v)) is not None
            },
            next={
                k: n
                for k, v in _as_dict(inner.get("result_next")).items()
                if (n := _optional_int(v)) is not None
            },
            time=_as_dict(inner.get("result_time")),
            batch_time=_as_dict(envelope.get("time")),
        )

    def subcall_error(self, method: str, error: Mapping[str, Any]) -> Bitrix24Error:
        """The exception a failed batch sub-call (`BatchResponse.errors[key]`) stands for, mapped like a
        direct call's error: `TransientError` for limits (retry later), `ScopeError`, `AuthError`, ... Not
        raised here."""
        outcome = _error_outcome(error, None)
        return self._exception(method, outcome, outcome.detail)

    # ------------------------------------------------------------------ the retry loop

    def _request(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        attempts = 0
        refreshed = False
        while True:
            attempts += 1
            outcome = self._attempt(method, payload)
            if outcome.kind == "ok":
                assert outcome.envelope is not None
                return outcome.envelope
            if outcome.kind == _EXPIRED and not refreshed:
                refreshed = True
                self._refresh_auth(method, outcome)
                self._count_retry("expired_token")
                continue
            if outcome.kind != _RETRY:
                raise self._exception(method, outcome, outcome.detail)
            if outcome.reason == "QUERY_LIMIT_EXCEEDED":
                self.bucket.fill()
            delay = self._backoff(attempts - 1, outcome.wait_hint)
            elapsed = time.monotonic() - started
            if outcome.unreachable and not self._answered and attempts >= UNREACHABLE_ATTEMPTS:
                raise self._exception(
                    method,
                    outcome,
                    f"{outcome.detail}; gave up after {attempts} attempts: check the host name and port "
                    "in the URL",
                    UnreachableError,
                )
            if attempts > self.max_retries or elapsed + delay > self.max_retry_seconds:
                why = (
                    f"gave up after {attempts} attempts in {elapsed:.1f}s"
                    if attempts > self.max_retries
                    else f"gave up after {attempts} attempts: waiting {delay:.0f}s more would exceed "
                    f"the retry budget of {self.max_retry_seconds:g}s"
                )
                raise self._exception(method, outcome, f"{outcome.detail}; {why}", TransientError)
            self._count_retry(outcome.reason, delay)
            log.log(
                logging.DEBUG if outcome.unreachable and not self._answered else logging.INFO,  # a typo? quiet probe
                "%s",
                self.auth.redact(
                    f"{method}: {outcome.detail}; retry {attempts}/{self.max_retries} in {delay:.2f}s"
                ),
            )
            time.sleep(delay)

    def _attempt(self, method: str, payload: dict[str, Any]) -> _Outcome:
        body = orjson.dumps(
            {**payload, **self.auth.params()}, option=orjson.OPT_NON_STR_KEYS, default=_json_default
        )
        url = self.auth.url_for(method)
        slept = self.bucket.acquire()
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.bucket_sleep_seconds += slept
        log.debug("POST %s (%d bytes)", method, len(body))
        try:
            response = self._session.post(
                url, data=body, headers=_HEADERS, timeout=self.timeout, allow_redirects=False
            )
        except _TRANSPORT_ERRORS as exc:
            return _network_outcome(exc, self.auth.host, self.timeout)
        self._answered = True
        if response.is_redirect:
            target = urlsplit(response.headers.get("Location", "")).hostname or "another address"
            return _Outcome(
                _FAIL,
                error_class=AuthError,
                status=response.status_code,
                detail=f"the portal {self.auth.host} redirects to {target} (HTTP "
                f"{response.status_code}): it was probably renamed; update the webhook URL",
            )
        outcome = _interpret(response.status_code, response.content)
        log.debug(
            "%s: HTTP %d, %d bytes, %s",
            method,
            response.status_code,
            len(response.content),
            outcome.reason or outcome.kind,
        )
        return outcome

    def _refresh_auth(self, method: str, expired: _Outcome) -> None:
        """Let the auth renew an expired token once (OAuth); a webhook cannot, which makes it an AuthError."""
        failure: Bitrix24Error | None = None
        try:
            renewed = self.auth.refresh(self._session, self.timeout)
            problem = "" if renewed else "it cannot be renewed; check that the webhook is still active"
        except Bitrix24Error as exc:  # the auth's own user-facing error, built without secrets (OAuthAuth)
            failure, problem = exc, ""
        except Exception as exc:  # the auth's own failure: reported by type only, its text may hold a token
            problem = f"renewing it failed ({type(exc).__name__})"
        if failure is not None:
            raise failure
        if problem:
            raise self._exception(method, expired, f"{expired.detail}; {problem}", AuthError)
        install_secret_filter(self.auth.secrets)

    def _backoff(self, retry_index: int, wait_hint: float | None) -> float:
        """Exponential backoff with jitter (50-100 % of base * 2**n, capped); at least what the portal asked
        for, but never more than the whole retry budget."""
        delay = min(self.backoff_cap, self.backoff_base * 2**retry_index) * random.uniform(0.5, 1.0)
        if wait_hint is not None:
            delay = max(delay, min(wait_hint, self.max_retry_seconds))
        return delay

    def _count_retry(self, reason: str, slept: float = 0.0) -> None:
        with self._stats_lock:
            self.stats.retries[reason] += 1
            self.stats.backoff_sleep_seconds += slept

    def _exception(
        self, method: str, outcome: _Outcome, detail: str, error_class: type[Bitrix24Error] | None = None
    ) -> Bitrix24Error:
        cls = error_class or outcome.error_class
        redact_ = self.auth.redact
        return cls(
            redact_(f"{method}: {detail}"),
            code=outcome.code,
            description=redact_(outcome.description),
            status=outcome.status,
            method=method,
        )
