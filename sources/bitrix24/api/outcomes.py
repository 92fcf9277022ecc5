"""What one HTTP attempt (or one batch sub-call) came to: the classification of Bitrix24's error envelopes,
HTTP statuses and transport failures into retry / fail / expired, in our own words (never a library's text,
which would carry the URL)."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests
import urllib3.exceptions

from .errors import AuthError, Bitrix24Error, MethodNotFoundError, PlanError, ScopeError, TransientError

RETRY, FAIL, EXPIRED = "retry", "fail", "expired"

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
class Outcome:
    """What one HTTP attempt (or one batch sub-call) came to. Holds only plain data: never an exception or
    response, which would carry the URL."""

    kind: str  # "ok" | RETRY | FAIL | EXPIRED
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


def error_outcome(body: Mapping[str, Any], status: int | None) -> Outcome:
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
        return Outcome(
            RETRY,
            reason=str(code or f"http_{status}"),
            detail=f"the portal answered {said}{http}",
            error_class=TransientError,
            wait_hint=_operating_wait(body),
            **common,
        )
    if code in ("expired_token", "invalid_token"):  # invalid_token: revoked by a refresh elsewhere, or dead
        return Outcome(EXPIRED, detail=f"the access token is no longer valid: {said}", error_class=AuthError, **common)
    if code == "insufficient_scope":
        return Outcome(
            FAIL,
            detail=f"the webhook lacks the scope this method needs: {said}; add the scope "
            "(e.g. crm) to the webhook on the portal",
            error_class=ScopeError,
            **common,
        )
    if code == "ACCESS_DENIED" and "plan" in description.lower():
        return Outcome(
            FAIL,
            detail=f"the portal's Bitrix24 plan does not allow this REST call: {said}{http}; "
            "REST needs a commercial plan: upgrade the portal's plan",
            error_class=PlanError,
            **common,
        )
    if code == "ERROR_METHOD_NOT_FOUND":
        return Outcome(
            FAIL,
            detail=f"the portal does not offer this method: {said}",
            error_class=MethodNotFoundError,
            **common,
        )
    if code in _AUTH_CODES or status in (401, 403):
        return Outcome(
            FAIL,
            detail=f"the portal refused the credentials: {said}{http}; check the webhook URL "
            "and that the webhook is still active",
            error_class=AuthError,
            **common,
        )
    return Outcome(FAIL, detail=f"the portal answered {said}{http}", **common)


def _operating_wait(body: Mapping[str, Any]) -> float | None:
    """Seconds until `time.operating_reset_at`, measured on the portal's own clock (its `finish`/`start`) when
    the envelope has one, so that clock skew between us and the portal does not matter."""
    timing = body.get("time")
    if not isinstance(timing, Mapping) or not isinstance(timing.get("operating_reset_at"), int | float):
        return None
    now = timing.get("finish", timing.get("start"))
    now = now if isinstance(now, int | float) else time.time()
    return max(0.0, float(timing["operating_reset_at"]) - float(now))


def interpret(status: int, content: bytes) -> Outcome:
    """Classify a complete HTTP response (redirects are handled before)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return error_outcome(body, status)
    if status == 200:
        if isinstance(body, dict) and "result" in body:
            return Outcome("ok", envelope=body, status=status)
        if body is None and content.lstrip()[:1] == b"<":  # a login page, a parked domain: not a REST API
            return Outcome(
                RETRY,
                reason="bad_response",
                status=status,
                detail="the address answers with a web page, not the Bitrix24 REST API (a login page or another "
                "site?): check the webhook URL",
                unreachable=True,
            )
        return Outcome(
            RETRY,
            reason="bad_response",
            status=status,
            detail="the portal's answer was not a complete JSON envelope (truncated or not JSON)",
        )
    shape = "JSON" if body is not None else "non-JSON"
    if status in (401, 403):
        return Outcome(
            FAIL,
            error_class=AuthError,
            status=status,
            detail=f"the portal refused the request (HTTP {status}, {shape} body); check the webhook URL",
        )
    if status == 404:
        return Outcome(
            FAIL,
            error_class=AuthError,
            status=status,
            detail=f"the portal answered HTTP 404 ({shape} body): the webhook URL is probably wrong; "
            f"check the host and the /rest/<user id>/<code>/ part",
        )
    if status == 429 or status >= 500:
        return Outcome(
            RETRY,
            reason=f"http_{status}",
            status=status,
            error_class=TransientError,
            detail=f"the portal answered HTTP {status} with a {shape} body",
        )
    return Outcome(FAIL, status=status, detail=f"the portal answered HTTP {status} with a {shape} body")


# requests wraps transport failures in RequestException; the others are caught too in case one slips through
# unwrapped, since their texts may contain the URL.
TRANSPORT_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def network_outcome(exc: BaseException, host: str, timeout: float) -> Outcome:
    """Describe a transport failure in our own words (requests' texts contain the URL, hence the code)."""
    chain = _exception_chain(exc)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(socket.gaierror, ConnectionRefusedError):
        return Outcome(
            RETRY,
            reason="connection",
            error_class=TransientError,
            detail=f"cannot reach the portal host {host}: "
            + ("the host name does not resolve" if has(socket.gaierror) else "connection refused"),
            unreachable=True,
        )
    if isinstance(exc, requests.ConnectTimeout) or has(urllib3.exceptions.ConnectTimeoutError):
        reason = f"no connection within {timeout:g}s"
    elif isinstance(exc, requests.Timeout) or has(TimeoutError, urllib3.exceptions.ReadTimeoutError):
        return Outcome(
            RETRY,
            reason="timeout",
            error_class=TransientError,
            detail=f"the portal {host} did not answer within {timeout:g}s",
        )
    elif has(urllib3.exceptions.SSLError, requests.exceptions.SSLError):
        return Outcome(
            RETRY,
            reason="connection",
            error_class=TransientError,
            detail=f"the TLS handshake with {host} failed: check the URL's scheme and port (an address that serves "
            "plain http needs http://)",
            unreachable=True,
        )
    elif has(ConnectionResetError):
        return _connection_broke(host, "the connection was reset")
    elif has(http.client.RemoteDisconnected):
        return _connection_broke(host, "the server closed the connection without answering")
    elif has(http.client.IncompleteRead, urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError):
        return _connection_broke(host, "the response was cut off")
    elif has(urllib3.exceptions.NewConnectionError):
        reason = "the connection failed"
    else:
        return _connection_broke(host, type(chain[-1]).__name__)
    return Outcome(
        RETRY,
        reason="connection",
        error_class=TransientError,
        detail=f"cannot reach the portal host {host}: {reason}",
    )


def _connection_broke(host: str, reason: str) -> Outcome:
    return Outcome(
        RETRY,
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
