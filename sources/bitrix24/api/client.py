"""The one place that sends requests to a Bitrix24 portal: `Bitrix24Client`.

It owns everything that must hold for every request: authentication (an `Auth`: webhook or OAuth app), the
client-side leaky bucket that keeps us under the portal's request rate, bounded retries with backoff, the
mapping of Bitrix24's error envelopes onto a few exception classes (`outcomes.py`), and secret redaction
(`redaction.py`). The OAuth token endpoint is called through the client's own session too.

Secrets: exception messages are built from our own words, the method name, the host and the portal's error
code/description, then passed through `auth.redact()`; `requests`/`urllib3` exception texts are never copied;
public exceptions are raised outside `except` blocks, so `__context__`/`__cause__` are None (dlt serialises
the whole chain into its trace, even through `raise ... from None`).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from dlt.common.runtime import signals

from .auth import Auth
from .bucket import LeakyBucket
from .errors import AuthError, Bitrix24Error, TransientError, UnreachableError
from .outcomes import EXPIRED, FAIL, RETRY, TRANSPORT_ERRORS, Outcome, error_outcome, interpret, network_outcome
from .phpquery import php_query
from .redaction import SecretFilter

log = logging.getLogger("bitrix24_sync.client")

MAX_BATCH_COMMANDS = 50
UNREACHABLE_ATTEMPTS = 2  # a host that never answered: one quick retry, then a configuration error


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


def pause(seconds: float) -> None:
    """A backoff wait that a stop request (SIGINT/SIGTERM under dlt's signal interception) ends at once."""
    signals.sleep(seconds)
    signals.raise_if_signalled()


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
        self.burst = burst  # the portal's burst, as configured (the bucket keeps one slot of headroom)
        self.stats = ClientStats()
        self._session = session or requests.Session()
        self._stats_lock = threading.Lock()
        self._answered = False  # any HTTP response yet: after one, an unreachable host is an outage, not a typo
        self._secret_filter = SecretFilter(lambda: self.auth.secrets)
        self._secret_filter.install()
        # the filter goes with the client: on close(), or when the client is collected without one
        self._release = weakref.finalize(self, self._secret_filter.uninstall)
        bind = getattr(auth, "bind_transport", None)
        if bind is not None:  # OAuth: the token endpoint goes through this client's session
            bind(self._session)

    @property
    def requests_made(self) -> int:
        return self.stats.requests

    def close(self) -> None:
        self._session.close()
        self._release()

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

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], halt: bool = False) -> BatchResponse:
        """Run up to 50 `(method, params)` commands in one request. Failed sub-calls come back in `errors`;
        the whole batch is retried on transient failures of the outer request (the sync only batches reads).
        """
        if not 1 <= len(commands) <= MAX_BATCH_COMMANDS:
            raise ValueError(f"a batch takes 1 to {MAX_BATCH_COMMANDS} commands, got {len(commands)}")
        cmd = {key: f"{method}?{php_query(params)}" if params else method for key, (method, params) in commands.items()}
        envelope = self._request("batch", {"halt": 1 if halt else 0, "cmd": cmd})
        inner = _as_dict(envelope.get("result"))
        return BatchResponse(
            result=_as_dict(inner.get("result")),
            errors={k: _as_dict(v) for k, v in _as_dict(inner.get("result_error")).items()},
            total={k: n for k, v in _as_dict(inner.get("result_total")).items() if (n := _optional_int(v)) is not None},
            next={k: n for k, v in _as_dict(inner.get("result_next")).items() if (n := _optional_int(v)) is not None},
            time=_as_dict(inner.get("result_time")),
            batch_time=_as_dict(envelope.get("time")),
        )

    def subcall_error(self, method: str, error: Mapping[str, Any]) -> Bitrix24Error:
        """The exception a failed batch sub-call (`BatchResponse.errors[key]`) stands for, mapped like a
        direct call's error: `TransientError` for limits (retry later), `ScopeError`, `AuthError`, ... Not
        raised here."""
        outcome = error_outcome(error, None)
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
            if outcome.kind == EXPIRED and not refreshed:
                refreshed = True
                self._refresh_auth(method, outcome)
                self._count_retry("expired_token")
                continue
            if outcome.kind != RETRY:
                raise self._exception(method, outcome, outcome.detail)
            if outcome.reason == "QUERY_LIMIT_EXCEEDED":
                self.bucket.fill()
            delay = self._backoff(attempts - 1, outcome.wait_hint)
            elapsed = time.monotonic() - started
            if outcome.unreachable and not self._answered and attempts >= UNREACHABLE_ATTEMPTS:
                raise self._exception(
                    method,
                    outcome,
                    f"{outcome.detail}; gave up after {attempts} attempts"
                    + ("" if "check" in outcome.detail else ": check the host name and port in the URL"),
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
                self.auth.redact(f"{method}: {outcome.detail}; retry {attempts}/{self.max_retries} in {delay:.2f}s"),
            )
            pause(delay)

    def _attempt(self, method: str, payload: dict[str, Any]) -> Outcome:
        body = orjson.dumps({**payload, **self.auth.params()}, option=orjson.OPT_NON_STR_KEYS, default=_json_default)
        url = self.auth.url_for(method)
        slept = self.bucket.acquire()
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.bucket_sleep_seconds += slept
        log.debug("POST %s (%d bytes)", method, len(body))
        try:
            response = self._session.post(url, data=body, headers=_HEADERS, timeout=self.timeout, allow_redirects=False)
        except TRANSPORT_ERRORS as exc:
            return network_outcome(exc, self.auth.host, self.timeout)
        if response.is_redirect:
            self._answered = True
            target = urlsplit(response.headers.get("Location", "")).hostname or "another address"
            return Outcome(
                FAIL,
                error_class=AuthError,
                status=response.status_code,
                detail=f"the portal {self.auth.host} redirects to {target} (HTTP "
                f"{response.status_code}): it was probably renamed; update the webhook URL",
            )
        outcome = interpret(response.status_code, response.content)
        self._answered = self._answered or not outcome.unreachable  # a web page is not the portal answering
        log.debug(
            "%s: HTTP %d, %d bytes, %s",
            method,
            response.status_code,
            len(response.content),
            outcome.reason or outcome.kind,
        )
        return outcome

    def _refresh_auth(self, method: str, expired: Outcome) -> None:
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
        self._secret_filter.install()  # loggers made since (the filter reads the auth's secrets itself)

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
        self, method: str, outcome: Outcome, detail: str, error_class: type[Bitrix24Error] | None = None
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
