"""Fixtures for the emulator's server tests: the real server over loopback, with small test-only methods.

The server side (routing, auth, limits, batch, faults) is tested against tiny methods registered here, so
these tests neither depend on nor pay for the seeded CRM data (test_server_portal.py covers the Portal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from bitrix24_emulator.auth import App, AuthRegistry
from bitrix24_emulator.clock import Clock
from bitrix24_emulator.errors import ApiError
from bitrix24_emulator.faults import Faults
from bitrix24_emulator.limits import LeakyBucket, OperatingTime
from bitrix24_emulator.methods import MethodContext, MethodResult, method, system  # noqa: F401  (scope, methods)
from bitrix24_emulator.portal import BackgroundServer
from bitrix24_emulator.server import Emulator

ROWS = [{"ID": str(i), "TITLE": f"Row {i}"} for i in range(1, 121)]  # 120 rows: pages of 50, 50, 20


@method("test.row.list", scope="crm")
def _row_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Legacy-list arithmetic over ROWS: `filter[>ID]`, `start` (-1 = no count), pages of 50."""
    after = int((params.get("filter") or {}).get(">ID", 0) or 0) if isinstance(params.get("filter"), dict) else 0
    matching = [row for row in ROWS if int(row["ID"]) > after]
    start = int(params.get("start", 0) or 0)
    if start < 0:
        page = matching[:50]
        ctx.cost.rows_scanned += len(page)
        ctx.cost.rows_returned += len(page)
        return MethodResult(page)
    start -= start % 50
    page = matching[start : start + 50]
    ctx.cost.rows_scanned += start + len(page)
    ctx.cost.rows_returned += len(page)
    ctx.cost.counted += len(matching)
    more = start + len(page) < len(matching)
    return MethodResult(page, total=len(matching), next=start + len(page) if more else None)


@method("test.echo", scope="crm")
def _echo(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    return MethodResult(params)


@method("test.fail", scope="crm")
def _fail(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    raise ApiError("", "Not found", 400)


@method("test.expensive", scope="crm")
def _expensive(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Costs what `rows` says (scanned), for operating-time tests."""
    ctx.cost.rows_scanned += int(params.get("rows", 0))
    return MethodResult(True)


@method("test.user.only", scope="user")
def _user_only(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    return MethodResult(ctx.user_id)


@dataclass
class Server:
    emulator: Emulator
    clock: Clock
    auth: AuthRegistry
    app: App
    base_url: str
    token: str

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/rest/1/{self.token}/"

    @property
    def faults(self) -> Faults:
        return self.emulator.faults

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.base_url}/_emulator/stats", timeout=10).json()


@pytest.fixture
def server_factory() -> Iterator[Any]:
    """Builds emulators with test methods only (no store); every one is stopped after the test."""
    running: list[BackgroundServer] = []

    def build(
        rate: float = 2.0,
        burst: int = 50,
        limits: bool = True,
        operating_limit: float = 480.0,
        token_lifetime: int = 3600,
        scopes: tuple[str, ...] = ("crm", "user", "sale"),
    ) -> Server:
        clock = Clock("Europe/Moscow")
        clock.freeze()
        auth = AuthRegistry(clock, token_lifetime)
        token = auth.add_webhook(scopes, 1)
        app = auth.add_app(scopes)
        emulator = Emulator(
            store=None,
            clock=clock,
            auth=auth,
            bucket=LeakyBucket(clock, rate, burst),
            operating=OperatingTime(clock, operating_limit),
            faults=Faults(7),
            limits=limits,
            default_client_id=app.client_id,
        )
        background = BackgroundServer(emulator)
        running.append(background)
        emulator.base_url = background.base_url
        return Server(emulator, clock, auth, app, background.base_url, token)

    yield build
    for background in running:
        background.stop()


@pytest.fixture
def server(server_factory: Any) -> Server:
    return server_factory()
