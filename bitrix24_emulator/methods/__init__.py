"""The registry of REST methods the emulator serves, and what a method handler receives and returns.

The server (server.py) owns everything around a call: routing, auth, scopes, rate and operating limits, faults,
envelopes, `batch` and stats. A handler only turns parameters into a result using the store, and reports its cost
(rows scanned, rows returned, whether it counted) so the limits can charge operating time like a real portal.
Modules in this package register their handlers with `@method("crm.deal.list", scope="crm")`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..clock import Clock
    from ..store import Store


@dataclass
class Cost:
    """What a call cost the portal's database; the server turns it into `time.operating` seconds."""

    rows_scanned: int = 0
    rows_returned: int = 0
    counted: int = 0  # rows a COUNT(*) had to visit (0 when start=-1)

    def add(self, other: Cost) -> None:
        self.rows_scanned += other.rows_scanned
        self.rows_returned += other.rows_returned
        self.counted += other.counted


@dataclass
class MethodContext:
    store: Store
    clock: Clock
    user_id: int
    scopes: frozenset[str]
    cost: Cost = field(default_factory=Cost)


@dataclass
class MethodResult:
    result: Any
    total: int | None = None
    next: int | None = None


Handler = Callable[[MethodContext, dict[str, Any]], MethodResult]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    scope: str
    handler: Handler


METHODS: dict[str, MethodSpec] = {}


def method(name: str, scope: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name.lower()] = MethodSpec(name.lower(), scope, fn)
        return fn

    return register


def load_all() -> dict[str, MethodSpec]:
    """Import every method module so their decorators run; returns the registry."""
    from . import (  # noqa: F401
        activities,
        crm_history,
        crm_items,
        crm_legacy,
        crm_types,
        currencies,
        deal_contacts,
        dictionaries,
        payments,
        products,
        system,
        telephony,
    )

    return METHODS
