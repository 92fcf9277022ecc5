"""`bitrix24-sync check`: is everything in place, and what would a full sync cost?

Two requests to the portal: `scope` (connection, token, scopes), then ONE batch that, per CRM entity, lists
the first page with `start=0` and `select: ["ID"]` (the answer's `total` is the row count: it costs the portal
a COUNT, so this is not free for a large portal, but it is one request) and reads its field metadata (user
fields). The estimate uses the sync's own arithmetic: a batch carries 50 pages of 50 rows, so an entity of R
rows takes ceil(R/2500) + 1 requests; payments take 2 x ceil(P/2500) through the sale scope (payments, then
their owners) or ceil(D/2500) + ceil(D/50) without it (D = deals and invoices: per-owner payment lists); one
more request is the run's discovery batch. The portal lets 50 requests through at once, then 2 per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sources.bitrix24.client import Bitrix24Client, ScopeError
from sources.bitrix24.settings import ENTITIES, PAYMENTS, EntitySpec

ROWS_PER_REQUEST = 2500
REQUIRED_SCOPES = ("crm", "user")  # entities and reference lists; users
OPTIONAL_SCOPES = {"sale": "payments are then read per owner (crm.item.payment.list), which takes more requests"}
SALE_KEY = "payments"


@dataclass
class EntityCount:
    resource: str
    rows: int | None  # None: the portal does not offer it (e.g. smart invoices switched off)
    user_fields: int | None
    problem: str = ""

    @property
    def requests(self) -> int:
        return math.ceil((self.rows or 0) / ROWS_PER_REQUEST) + 1 if self.rows is not None else 0

    @property
    def arithmetic(self) -> str:
        return f"ceil({self.rows}/{ROWS_PER_REQUEST}) + 1" if self.rows is not None else "-"


@dataclass
class Inventory:
    entities: list[EntityCount] = field(default_factory=list)
    payments: int | None = None  # via sale.payment.list; None without the sale scope

    def payment_requests(self) -> tuple[int, str]:
        if self.payments is not None:
            return 2 * math.ceil(self.payments / ROWS_PER_REQUEST), f"2 x ceil({self.payments}/{ROWS_PER_REQUEST})"
        owners = sum(e.rows or 0 for e in self.entities if _spec(e.resource).owns_payments)
        return (
            math.ceil(owners / ROWS_PER_REQUEST) + math.ceil(owners / 50),
            f"ceil({owners}/{ROWS_PER_REQUEST}) + ceil({owners}/50) (no sale scope)",
        )

    def total_requests(self) -> int:
        return 1 + sum(e.requests for e in self.entities) + self.payment_requests()[0]


def seconds_at(requests: int, rate: float, burst: int) -> float:
    """How long `requests` take under the portal's leaky bucket: the first `burst` at once, then `rate`/s."""
    return max(0, requests - burst) / rate


def scopes(client: Bitrix24Client) -> list[str]:
    """The credential's scopes (`scope` needs none itself: it proves the connection and the token)."""
    result = client.call("scope").result
    return sorted(str(s) for s in result) if isinstance(result, list) else []


def missing_scopes(have: list[str]) -> list[str]:
    return [s for s in REQUIRED_SCOPES if s not in have]


def inventory(client: Bitrix24Client, with_sale: bool) -> Inventory:
    """One batch: per entity, the row count and the field metadata; with the sale scope, the payment count."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec in ENTITIES:
        commands[spec.resource] = (spec.list_method, {**spec.base_params(), "select": [spec.id_field], "start": 0})
        commands[f"{spec.resource}_fields"] = (spec.fields_method, spec.base_params())
    if with_sale:
        commands[SALE_KEY] = ("sale.payment.list", {"select": ["id"], "start": 0})
    response = client.batch(commands)
    found = Inventory()
    for spec in ENTITIES:
        if spec.resource in response.errors:
            error = client.subcall_error(spec.list_method, response.errors[spec.resource])
            if isinstance(error, ScopeError):
                raise error
            found.entities.append(EntityCount(spec.resource, None, None, error.description or str(error)))
            continue
        fields = spec.fields_of(response.result.get(f"{spec.resource}_fields"))
        user_fields = sum(1 for k in fields if spec.is_user_field(k)) if isinstance(fields, dict) else None
        rows = response.total.get(spec.resource, _row_count(response.result.get(spec.resource)))
        found.entities.append(EntityCount(spec.resource, rows, user_fields))
    if with_sale and SALE_KEY not in response.errors:
        found.payments = response.total.get(SALE_KEY, 0)
    return found


def _row_count(result: Any) -> int:
    rows = result.get("items") if isinstance(result, dict) else result
    return len(rows) if isinstance(rows, list) else 0


def _spec(resource: str) -> EntitySpec:
    return next(e for e in ENTITIES if e.resource == resource)


def estimate_lines(found: Inventory, rate: float, burst: int) -> list[str]:
    """The table `check` prints: entities, rows, user fields, requests with their arithmetic, the total."""
    lines = [f"{'entity':<12} {'rows':>10} {'user fields':>12} {'requests':>9}  arithmetic"]
    for e in found.entities:
        if e.rows is None:
            lines.append(f"{e.resource:<12} {'-':>10} {'-':>12} {0:>9}  not available: {e.problem}")
            continue
        uf = "-" if e.user_fields is None else str(e.user_fields)
        lines.append(f"{e.resource:<12} {e.rows:>10,} {uf:>12} {e.requests:>9}  {e.arithmetic}")
    pay_requests, pay_arithmetic = found.payment_requests()
    pay_rows = f"{found.payments:,}" if found.payments is not None else "?"
    lines.append(f"{PAYMENTS:<12} {pay_rows:>10} {'':>12} {pay_requests:>9}  {pay_arithmetic}")
    lines.append(f"{'discovery':<12} {'':>10} {'':>12} {1:>9}  one batch per run (with the reference lists)")
    total = found.total_requests()
    seconds = seconds_at(total, rate, burst)
    lines.append(
        f"a full sync takes about {total} requests: {seconds:.0f} s at {rate:g} requests/s after the first "
        f"{burst} (burst)"
    )
    return lines
