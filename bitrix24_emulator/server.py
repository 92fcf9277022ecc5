"""The emulator's WSGI app: everything around a method call, the way a Bitrix24 cloud portal does it.

Request flow for `/rest/...` (order as in core-src `CRestServer::process`): fault injection, the portal's
leaky bucket (503), parameter decoding (query string, then the body overrides it), unknown method (404), auth
(401s), scope (401 insufficient_scope), operating-time limit per method (429), the handler, the envelope.
`batch` runs its sub-calls through the same steps (minus bucket and faults) and reports their errors inside
its result.

Also served, outside `/rest/`: the OAuth token endpoint `/oauth/token/` and the test-only `/_emulator/*`
endpoints (stats, faults, clock, webhooks, OAuth codes, limits). Requests with the header `X-Emulator-Admin:
1` are neither counted in stats nor limited nor faulted (Portal.call uses it to set up tests).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from werkzeug.wrappers import Request, Response

from .auth import AuthRegistry, Identity, OAuthError, no_auth
from .batch import Outcome, run_batch
from .clock import Clock
from .errors import ApiError
from .faults import BAD_GATEWAY_HTML, ERRORS, FaultRule, Faults
from .limits import CostModel, LeakyBucket, OperatingLedger, OperatingTime
from .methods import METHODS, MethodContext, MethodResult, MethodSpec
from .phpquery import assemble, parse_str
from .stats import Stats

log = logging.getLogger("bitrix24_emulator")

JSON_TYPE = "application/json; charset=utf-8"
BASE_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "origin, content-type, accept"),
    ("X-Content-Type-Options", "nosniff"),
)
AUTH_PARAMS = ("auth", "access_token", "auth_connector")
_BEARER = re.compile(r"^Bearer\s+", re.IGNORECASE)


def method_not_found() -> ApiError:
    return ApiError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)


def query_limit() -> ApiError:
    return ApiError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)


def operation_limit() -> ApiError:
    return ApiError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit", 429)


def encode(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS, default=str)


@dataclass
class Emulator:
    """One portal: its store, clock, callers, limits, faults and stats, served as a WSGI app."""

    store: Any
    clock: Clock
    auth: AuthRegistry
    bucket: LeakyBucket
    operating: OperatingTime
    faults: Faults = field(default_factory=Faults)
    stats: Stats = field(default_factory=Stats)
    cost_model: CostModel = field(default_factory=CostModel)
    limits: bool = True
    base_url: str = ""  # "http://127.0.0.1:<port>", set once the server is bound
    default_client_id: str = ""  # the app /_emulator/oauth/code mints codes for unless told otherwise
    closing: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _busy: int = field(default=0, init=False, repr=False)  # requests in flight
    _idle: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._idle:
            self._busy += 1
        try:
            request = Request(environ)
            path = request.path
            if path.startswith("/rest/"):
                response = self.rest(request)
            elif path.rstrip("/") == "/oauth/token":
                response = self.oauth_token(request)
            elif path.startswith("/_emulator/"):
                response = self.control(request)
            else:
                response = Response("Not Found", 404, content_type="text/plain; charset=utf-8")
            return response(environ, start_response)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Cut short `slow` faults and wait for requests in flight, so none touches a store about to close."""
        self.closing.set()
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout)

    # /rest/

    def rest(self, request: Request) -> Response | DroppedConnection:
        started = time.perf_counter()
        start = self.clock.time()
        admin = request.headers.get("X-Emulator-Admin") == "1"
        webhook, method = _route(request.path)
        if not admin:
            self.stats.request(method)
            fault = self.faults.for_request(method)
            if fault is not None:
                self.stats.fault()
                injected = self._inject(fault, request)
                if injected is not None:
                    request.get_data()  # read the body: left in the socket it would be parsed as the next request
                    return injected
            if self.limits and not self.bucket.try_acquire():
                self.stats.refused("QUERY_LIMIT_EXCEEDED")
                request.get_data()
                return _error_response(query_limit())
        else:
            fault = None
        identity: Identity | None = None
        ledger: OperatingLedger | None = None
        try:
            params = decode_params(request)
            spec = METHODS.get(method)
            if spec is None and method != "batch":
                raise method_not_found()
            identity = self._authenticate(webhook, request, params)
            ledger = OperatingLedger(self.operating, identity.key)
            if spec is None:
                result = run_batch(
                    params,
                    lambda name, sub: self._subcall(identity, ledger, admin, name, sub),
                    None if admin else self._pick_failing,
                )
                processing = time.perf_counter() - started
            else:
                identity.require(spec.scope)
                self._check_operating(ledger, method, admin)
                result, processing = self._invoke(spec, identity, params, ledger, start, admin)
            body = encode(self._envelope(result, start, started, processing, ledger, method))
        except ApiError as error:
            return _error_response(error, identity)
        except Exception:
            log.exception("method %s failed", method)
            return _error_response(ApiError("INTERNAL_SERVER_ERROR", "Internal server error", 500), identity)
        finally:
            if ledger is not None:
                ledger.commit()
        if fault is not None and fault.kind == "truncated":
            body = body[: len(body) // 2]
        return _json_response(body, 200, identity, processing)

    def _authenticate(self, webhook: tuple[str, str] | None, request: Request, params: dict[str, Any]) -> Identity:
        if webhook is not None:
            return self.auth.webhook(*webhook)
        token: str | None = None
        header = request.headers.get("Authorization")
        if header is not None and _BEARER.match(header):
            token = _BEARER.sub("", header)
        if token is None:
            for key in ("auth", "access_token"):
                value = params.get(key)
                if value is not None and not isinstance(value, (dict, list)):
                    token = str(value)
                    break
        for key in AUTH_PARAMS:
            params.pop(key, None)
        if not token:
            raise no_auth()
        return self.auth.access(token)

    def _check_operating(self, ledger: OperatingLedger, method: str, admin: bool) -> None:
        if self.limits and not admin and ledger.blocked(method):
            self.stats.refused("OPERATION_TIME_LIMIT")
            raise operation_limit()

    def _invoke(
        self,
        spec: MethodSpec,
        identity: Identity,
        params: dict[str, Any],
        ledger: OperatingLedger,
        start: float,
        admin: bool,
    ) -> tuple[MethodResult, float]:
        """Run a handler; charge its cost to the ledger and stats. Returns the result and handler time."""
        context = MethodContext(self.store, self.clock, identity.user_id, identity.scopes)
        began = time.perf_counter()
        try:
            result = spec.handler(context, params)
        finally:  # a failing call has cost the portal its time too
            if not admin:
                seconds = self.cost_model.seconds(context.cost)
                ledger.charge(spec.name, seconds, start)
                self.stats.cost(context.cost, seconds)
        return result, time.perf_counter() - began

    def _subcall(
        self, identity: Identity, ledger: OperatingLedger, admin: bool, name: str, params: dict[str, Any]
    ) -> Outcome:
        started = time.perf_counter()
        start = self.clock.time()
        method = name.lower()
        if not admin:
            self.stats.subcall(method)
        spec = METHODS.get(method)
        try:
            if spec is None:
                raise method_not_found()
            identity.require(spec.scope, in_batch=True)
            self._check_operating(ledger, method, admin)
            result, processing = self._invoke(spec, identity, params, ledger, start, admin)
        except ApiError as error:
            return Outcome(error=error.body())
        except Exception:
            log.exception("batch sub-call %s failed", method)
            return Outcome(error=ApiError("INTERNAL_SERVER_ERROR", "Internal server error", 500).body())
        return Outcome(result, self._time(start, started, processing, ledger, method))

    def _pick_failing(self, methods: list[str]) -> int | None:
        position = self.faults.for_batch(methods)
        if position is not None:
            self.stats.fault()
        return position

    def _envelope(
        self,
        result: MethodResult,
        start: float,
        started: float,
        processing: float,
        ledger: OperatingLedger,
        method: str,
    ) -> dict[str, Any]:
        envelope: dict[str, Any] = {"result": result.result}
        if result.next is not None:
            envelope["next"] = int(result.next)
        if result.total is not None:
            envelope["total"] = int(result.total)
        envelope["time"] = self._time(start, started, processing, ledger, method)
        return envelope

    def _time(
        self, start: float, started: float, processing: float, ledger: OperatingLedger, method: str
    ) -> dict[str, Any]:
        """The `time` block; `finish` is `start` plus the real time spent, so a frozen clock shows it too."""
        finish = start + (time.perf_counter() - started)
        return {
            "start": start,
            "finish": finish,
            "duration": finish - start,
            "processing": processing,
            "date_start": self._iso(start),
            "date_finish": self._iso(finish),
            "operating_reset_at": ledger.reset_at(method, start),
            "operating": round(ledger.used(method), 6),
        }

    def _iso(self, unix: float) -> str:
        return self.clock.isoformat(datetime.fromtimestamp(unix, self.clock.tz))

    def _inject(self, fault: FaultRule, request: Request) -> Response | DroppedConnection | None:
        """Answer for an injected fault, or None when the request is to be served (slow, truncated)."""
        if fault.kind == "slow":
            if self.closing.wait(fault.seconds):  # the portal is stopping: never reach the store
                return DroppedConnection()
            return None
        if fault.kind == "truncated":
            return None
        if fault.kind == "drop":
            return DroppedConnection()
        if fault.kind == "bad_gateway":
            return Response(BAD_GATEWAY_HTML, 502, content_type="text/html", headers={"Server": "nginx"})
        return _error_response(ERRORS[fault.kind])

    # /oauth/token/

    def oauth_token(self, request: Request) -> Response:
        params = decode_params(request)
        try:
            grant = self.auth.token_endpoint(params)
        except OAuthError as error:
            return _json_response(encode(error.body()), error.status)
        body = {
            "access_token": grant.access_token,
            "client_endpoint": f"{self.base_url}/rest/",
            "domain": self.base_url.split("://", 1)[-1],
            "expires": grant.expires,
            "expires_in": self.auth.token_lifetime,
            "member_id": self.auth.member_id,
            "refresh_token": grant.refresh_token,
            "scope": ",".join(sorted(grant.scopes)),
            "server_endpoint": f"{self.base_url}/oauth/rest/",
            "status": "L",
            "user_id": grant.user_id,
        }
        if params.get("grant_type") == "authorization_code":  # the docs' first response has neither
            del body["expires"], body["user_id"]
        return _json_response(encode(body), 200)

    # /_emulator/

    def control(self, request: Request) -> Response:
        path = request.path.rstrip("/")[len("/_emulator") :]
        verb = request.method
        body = _json_body(request)
        spec: dict[str, Any] = body if isinstance(body, dict) else {}
        if path == "/stats" and verb == "GET":
            return _plain_json(self.stats.snapshot())
        if path == "/stats/reset" and verb == "POST":
            self.stats.reset()
            return _plain_json(self.stats.snapshot())
        if path == "/faults" and verb == "GET":
            return _plain_json({"faults": self.faults.active()})
        if (path == "/faults" and verb == "DELETE") or (path == "/faults/clear" and verb == "POST"):
            self.faults.clear()
            return _plain_json({"faults": []})
        if path == "/faults" and verb == "POST":
            specs = spec.get("faults", [spec]) if isinstance(body, dict) else body
            try:
                for item in specs:
                    self.faults.add(item)
            except (TypeError, ValueError) as error:
                return _plain_json({"error": str(error)}, 400)
            return _plain_json({"faults": self.faults.active()})
        if path == "/clock":
            if verb == "POST":
                self._move_clock(spec)
            return _plain_json(self.clock_state())
        if path == "/webhooks" and verb == "POST":
            token = self.auth.add_webhook(spec.get("scopes", ()), int(spec.get("user_id", 1)))
            return _plain_json({"url": f"{self.base_url}/rest/{int(spec.get('user_id', 1))}/{token}/"})
        if path == "/oauth/code" and verb == "POST":
            return self._mint_code(spec)
        if path == "/limits":
            if verb == "POST":
                self._set_limits(spec)
            return _plain_json(self.limits_state())
        return _plain_json({"error": "unknown emulator endpoint"}, 404)

    def clock_state(self) -> dict[str, Any]:
        now = self.clock.time()
        return {"time": now, "date": self._iso(now), "frozen": self.clock.frozen}

    def limits_state(self) -> dict[str, Any]:
        return {
            "enabled": self.limits,
            "rate": self.bucket.rate,
            "burst": self.bucket.burst,
            "bucket_level": self.bucket.level(),
            "operating_limit": self.operating.limit,
        }

    def _move_clock(self, spec: dict[str, Any]) -> None:
        if spec.get("unfreeze"):
            self.clock.unfreeze()
        if spec.get("freeze"):
            self.clock.freeze()
        if spec.get("advance"):
            self.clock.advance(float(spec["advance"]))

    def _set_limits(self, spec: dict[str, Any]) -> None:
        if "enabled" in spec:
            self.limits = bool(spec["enabled"])
        if "rate" in spec:
            self.bucket.rate = float(spec["rate"])
        if "burst" in spec:
            self.bucket.burst = int(spec["burst"])
        if "operating_limit" in spec:
            self.operating.limit = float(spec["operating_limit"])
        if spec.get("reset"):
            self.bucket.reset()
            self.operating.reset()

    def _mint_code(self, spec: dict[str, Any]) -> Response:
        client_id = spec.get("client_id") or self.default_client_id
        try:
            code = self.auth.mint_code(client_id, int(spec.get("user_id", 1)), spec.get("scopes"))
        except KeyError:
            return _plain_json({"error": "unknown client_id"}, 400)
        return _plain_json({"code": code, "client_id": client_id, "expires_in": 30})


class DroppedConnection:
    """A 'response' that closes the connection without sending anything (fault `drop`)."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)  # the client sees the peer close before any byte of a response
        raise ConnectionAbortedError("fault injection: connection dropped")


def _route(path: str) -> tuple[tuple[str, str] | None, str]:
    """`/rest/1/abc/crm.deal.list.json/` -> (("1", "abc"), "crm.deal.list"); `/rest/x` -> (None, "x")."""
    parts = path[len("/rest/") :].rstrip("/").split("/")
    if len(parts) == 3:
        webhook: tuple[str, str] | None = (parts[0], parts[1])
        name = parts[2]
    elif len(parts) == 1:
        webhook, name = None, parts[0]
    else:
        return None, ""
    name = name.lower()
    if name.endswith(".json"):
        name = name[: -len(".json")]
    return webhook, name


def decode_params(request: Request) -> dict[str, Any]:
    """Query string PHP-style; a POST body (JSON, form or raw query string) overrides it key by key.

    As in core-src `CRestUtil::getRequestData`, an undecodable JSON body silently becomes no parameters.
    """
    params = parse_str(request.query_string.decode("utf-8", "replace"))
    if request.method != "POST":
        return params
    mimetype = request.mimetype
    body: Any
    if mimetype == "application/json":
        try:
            body = orjson.loads(request.get_data())
        except orjson.JSONDecodeError:
            body = {}
        if not isinstance(body, dict):
            body = {}
    elif mimetype == "multipart/form-data":
        body = assemble(request.form.items(multi=True))
    else:
        raw = request.get_data().strip()
        body = parse_str(raw.decode("utf-8", "replace")) if raw else {}
    params.update(body)
    return params


def _json_body(request: Request) -> Any:
    if request.method not in ("POST", "DELETE"):
        return {}
    try:
        return orjson.loads(request.get_data() or b"{}")
    except orjson.JSONDecodeError:
        return {}


def _headers(identity: Identity | None, processing: float | None) -> list[tuple[str, str]]:
    headers = list(BASE_HEADERS)
    if identity is not None and identity.client_id:
        headers.append(("X-Bitrix-Rest-Application", identity.client_id))
    if processing is not None:
        headers.append(("X-Bitrix-Rest-Time", f"{processing:.10f}"))
    return headers


def _json_response(
    body: bytes, status: int, identity: Identity | None = None, processing: float | None = None
) -> Response:
    return Response(body, status, headers=_headers(identity, processing), content_type=JSON_TYPE)


def _error_response(error: ApiError, identity: Identity | None = None) -> Response:
    return _json_response(encode(error.body()), error.status, identity)


def _plain_json(payload: Any, status: int = 200) -> Response:
    return Response(encode(payload), status, content_type=JSON_TYPE)
