"""`Portal`: a seeded emulated portal served over real HTTP on an ephemeral port (tests, benchmarks, CLI).

    with Portal(seed=7, deals=500) as portal:
        requests.get(portal.webhook_url + "crm.deal.list")

The server runs in a background thread (werkzeug, threaded) and stops on exit. `portal.call()` goes through
real HTTP with the header `X-Emulator-Admin: 1`, so test setup is neither counted in stats nor rate limited.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .auth import AuthRegistry
from .clock import Clock
from .data import seed_portal
from .errors import ApiError
from .faults import FaultRule, Faults
from .limits import LeakyBucket, OperatingTime
from .methods import load_all
from .server import Emulator
from .store import Store


class QuietRequestHandler(WSGIRequestHandler):
    """No access log: request lines carry webhook tokens and `auth` params, which must never reach a log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


class BackgroundServer:
    """A WSGI app served on `host:port` (0 = ephemeral) by a threaded werkzeug server in a daemon thread.

    With `ssl_context` it serves HTTPS, as every cloud portal does (some clients, e.g. b24pysdk, only speak it).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None):
        self.host = host
        self.scheme = "https" if ssl_context is not None else "http"
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=QuietRequestHandler, ssl_context=ssl_context
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bitrix24-emulator",
            daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self._server.server_port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _server_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


class Portal:
    """One emulated portal: seeded store, main webhook (user 1), one OAuth app with a first token pair.

    `tls=(certfile, keyfile)` serves HTTPS instead of plain HTTP (URLs then start with `https://`).
    """

    def __init__(
        self,
        seed: int = 7,
        deals: int = 500,
        leads: int = 500,
        contacts: int = 300,
        companies: int = 100,
        invoices: int | None = None,
        users: int = 25,
        timezone: str = "Europe/Moscow",
        rate: float = 2.0,
        burst: int = 50,
        limits: bool = True,
        operating_limit: float = 480.0,
        token_lifetime: int = 3600,
        scopes: Iterable[str] = ("crm", "user", "sale"),
        faults: Iterable[FaultRule | str | dict[str, Any]] | None = None,
        db_path: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        fault_seed: int = 7,
        tls: tuple[str, str] | None = None,
    ):
        self._seed_args = {
            "seed": seed,
            "deals": deals,
            "leads": leads,
            "contacts": contacts,
            "companies": companies,
            "invoices": invoices,
            "users": users,
        }
        self.clock = Clock(timezone)
        self.scopes = tuple(scopes)
        self._db_path = db_path or ":memory:"
        self._host, self._port = host, port
        self._ssl_context = _server_context(*tls) if tls else None
        self.auth = AuthRegistry(self.clock, token_lifetime)
        self.token = self.auth.add_webhook(self.scopes, 1, token)
        self._app = self.auth.add_app(self.scopes)
        fault_rules = Faults(fault_seed)
        for spec in faults or ():
            fault_rules.add(spec)
        self._limits = (limits, rate, burst, operating_limit)
        self._faults = fault_rules
        self._server: BackgroundServer | None = None
        self._session = requests.Session()
        if tls:
            self._session.verify = tls[0]  # the certificate is self-signed: it is its own CA
        self.store: Any = None
        self.emulator: Emulator | None = None
        self.oauth: dict[str, str] = {}

    def __enter__(self) -> Portal:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        load_all()
        self.store = Store(self._db_path, self.clock)
        if self.store.is_empty():
            seed_portal(self.store, **self._seed_args)
        enabled, rate, burst, operating_limit = self._limits
        self.emulator = Emulator(
            store=self.store,
            clock=self.clock,
            auth=self.auth,
            bucket=LeakyBucket(self.clock, rate, burst),
            operating=OperatingTime(self.clock, operating_limit),
            faults=self._faults,
            limits=enabled,
            default_client_id=self._app.client_id,
        )
        self._server = BackgroundServer(self.emulator, self._host, self._port, self._ssl_context)
        self.emulator.base_url = self.base_url
        grant = self.auth.issue(self._app.client_id, 1)
        self.oauth = {
            "client_id": self._app.client_id,
            "client_secret": self._app.client_secret,
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "token_endpoint": f"{self.base_url}/oauth/token/",
            "client_endpoint": f"{self.base_url}/rest/",
        }

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.emulator is not None:
            self.emulator.close()  # after this no request thread touches the store
        if self.store is not None:
            self.store.close()
            self.store = None
        self._session.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the portal is not running"
        return self._server.base_url

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/rest/1/{self.token}/"

    def add_webhook(self, scopes: Iterable[str] = ("crm",), user_id: int = 1) -> str:
        return f"{self.base_url}/rest/{user_id}/{self.auth.add_webhook(tuple(scopes), user_id)}/"

    def authorization_code(self, user_id: int = 1, scopes: Iterable[str] | None = None) -> str:
        """A fresh code for `grant_type=authorization_code` (lives 30 s by the portal clock)."""
        return self.auth.mint_code(self._app.client_id, user_id, tuple(scopes) if scopes is not None else None)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call a method with the main webhook as an admin (not counted, not limited); returns `result`."""
        response = self._session.post(
            self.webhook_url + method, json=params or {}, headers={"X-Emulator-Admin": "1"}, timeout=120
        )
        body = response.json()
        if "error" in body:
            raise ApiError(body["error"], body.get("error_description", ""), response.status_code)
        return body["result"]

    def stats(self) -> dict[str, Any]:
        assert self.emulator is not None
        return self.emulator.stats.snapshot()

    def reset_stats(self) -> None:
        assert self.emulator is not None
        self.emulator.stats.reset()

    def set_faults(self, **spec: Any) -> None:
        """Add a fault rule, e.g. `set_faults(kind="drop", count=1)`; see faults.py."""
        self._faults.add(spec)

    def clear_faults(self) -> None:
        self._faults.clear()
