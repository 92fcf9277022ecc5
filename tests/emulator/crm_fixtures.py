"""A small seeded store and a direct caller for the CRM method tests (no HTTP: the handlers themselves).

Test modules load it with `pytest_plugins`; it has no asserts to rewrite (PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bitrix24_emulator.clock import Clock
from bitrix24_emulator.data import seed_portal
from bitrix24_emulator.errors import ApiError
from bitrix24_emulator.methods import (  # noqa: F401  (register)
    METHODS,
    Cost,
    MethodContext,
    MethodResult,
    crm_items,
    crm_legacy,
    dictionaries,
    payments,
    products,
)
from bitrix24_emulator.store import Store

SIZES = {"deals": 120, "leads": 60, "contacts": 40, "companies": 15, "invoices": 12, "users": 8}
NOW = 1_795_000_000  # 2026-11-18T...: after every generated timestamp


@dataclass
class Called:
    result: Any
    total: int | None
    next: int | None
    cost: Cost


Caller = Callable[..., Called]


def make_store(seed: int = 7, **sizes: int) -> Store:
    clock = Clock("Europe/Moscow")
    clock.freeze(NOW)
    store = Store(":memory:", clock)
    seed_portal(store, seed=seed, **{**SIZES, **sizes})
    return store


def caller(store: Store, user_id: int = 1) -> Caller:
    def call(name: str, params: dict[str, Any] | None = None) -> Called:
        ctx = MethodContext(store, store.clock, user_id, frozenset({"crm", "sale", "user"}))
        out: MethodResult = METHODS[name].handler(ctx, params or {})
        return Called(out.result, out.total, out.next, ctx.cost)

    return call


def api_error(call: Caller, name: str, params: dict[str, Any] | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(name, params)
    return info.value


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    """Read-only tests share one store per module; tests that write use `fresh`."""
    s = make_store()
    yield s
    s.close()


@pytest.fixture(scope="module")
def call(store: Store) -> Caller:
    return caller(store)


@pytest.fixture
def fresh() -> Iterator[tuple[Store, Caller]]:
    s = make_store()
    yield s, caller(s)
    s.close()
