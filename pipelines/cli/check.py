"""`bitrix24-sync check`: is everything in place, and what would a full sync cost?

Two requests to the portal: `scope` (connection, token, scopes), then ONE batch that, per CRM entity, lists
the first page with `start=0` and `select: ["ID"]` (the answer's `total` is the row count: it costs the portal
a COUNT, so this is not free for a large portal, but it is one request) and reads its field metadata (user
fields). The estimate uses the sync's own arithmetic: a batch carries 50 pages of 50 rows, so an entity of R
rows takes ceil(R/2500) + 1 requests; payments take 2 x ceil(P/2500) through the sale scope (payments, then
their owners) or ceil(D/2500) + ceil(D/50) without it (D = deals and invoices: per-owner payment lists); one
more request is the run's discovery batch. Stage history takes ceil(H/2500) per entity type, product rows
2 x ceil(O/2500) for O owners (their id scan, then 50 owners a call), deal contacts ceil(D/2500), calls
ceil(C/2500) with the telephony scope, products ceil(P/2500) per catalog with the catalog scope; currencies and
smart-process types ride in the discovery batch. A smart process the pipeline has not met yet costs one more
request here (its counts), and so do the product catalogs' counts. The portal lets 50 requests through at once,
then 2 per second.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.cli.common import CHECK_RETRIES, Command, destination_options, pipeline_from
from pipelines.destinations import DestinationError
from pipelines.runner import check_destination, pipeline_catalog
from sources.bitrix24 import (
    CALLS,
    DEAL_CONTACTS,
    PAYMENTS,
    PRODUCT_ROWS,
    PRODUCTS,
    STAGE_HISTORY,
    Bitrix24Client,
    Catalog,
    ScopeError,
    catalog_ids,
    connect,
    count_params,
    product_id_query,
    smart_process_specs,
    types_of,
)

ROWS_PER_REQUEST = 2500
REQUIRED_SCOPES = ("crm", "user")  # entities and reference lists; users
OPTIONAL_SCOPES = {
    "sale": "payments are then read per owner (crm.item.payment.list), which takes more requests",
    "telephony": "calls are not read",
    "catalog": "products are not read",
}
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
    history: dict[int, int] = field(default_factory=dict)  # entityTypeId -> stage history rows
    calls: int | None = None  # None without the telephony scope
    products: dict[int, int] | None = None  # catalog iblockId -> products; None without the catalog scope
    owners: tuple[str, ...] = ()  # resources that own payments
    product_owners: tuple[str, ...] = ()

    def rows_of(self, resources: tuple[str, ...]) -> int:
        return sum(e.rows or 0 for e in self.entities if e.resource in resources)

    def wider(self) -> list[tuple[str, str, int, str]]:
        """(table, rows, requests, arithmetic) of the tables beside the entities and payments."""
        history = sum(self.history.values())
        owners, deals = self.rows_of(self.product_owners), self.rows_of(("deals",))
        lines = [
            (STAGE_HISTORY, f"{history:,}", sum(math.ceil(h / ROWS_PER_REQUEST) for h in self.history.values()),
             f"ceil(rows/{ROWS_PER_REQUEST}) per entity type ({len(self.history)})"),
            (PRODUCT_ROWS, f"{owners:,} owners", 2 * math.ceil(owners / ROWS_PER_REQUEST),
             f"2 x ceil({owners}/{ROWS_PER_REQUEST})"),
            (DEAL_CONTACTS, f"{deals:,} deals", math.ceil(deals / ROWS_PER_REQUEST),
             f"ceil({deals}/{ROWS_PER_REQUEST})"),
        ]  # fmt: skip
        if self.calls is None:
            lines.append((CALLS, "-", 0, "not read: no telephony scope"))
        else:
            lines.append((CALLS, f"{self.calls:,}", math.ceil(self.calls / ROWS_PER_REQUEST),
                          f"ceil({self.calls}/{ROWS_PER_REQUEST})"))  # fmt: skip
        if self.products is None:
            lines.append((PRODUCTS, "-", 0, "not read: no catalog scope"))
        else:
            count = sum(self.products.values())
            lines.append((PRODUCTS, f"{count:,}", sum(math.ceil(n / ROWS_PER_REQUEST) for n in self.products.values()),
                          f"ceil(rows/{ROWS_PER_REQUEST}) per catalog ({len(self.products)})"))  # fmt: skip
        return lines

    def payment_requests(self) -> tuple[int, str]:
        if self.payments is not None:
            return 2 * math.ceil(self.payments / ROWS_PER_REQUEST), f"2 x ceil({self.payments}/{ROWS_PER_REQUEST})"
        owners = sum(e.rows or 0 for e in self.entities if e.resource in self.owners)
        return (
            math.ceil(owners / ROWS_PER_REQUEST) + math.ceil(owners / 50),
            f"ceil({owners}/{ROWS_PER_REQUEST}) + ceil({owners}/50) (no sale scope)",
        )

    def total_requests(self) -> int:
        wider = sum(requests for _t, _r, requests, _a in self.wider())
        return 1 + sum(e.requests for e in self.entities) + self.payment_requests()[0] + wider


def seconds_at(requests: int, rate: float, burst: int) -> float:
    """How long `requests` take under the portal's leaky bucket: the first `burst` at once, then `rate`/s."""
    return max(0, requests - burst) / rate


def scopes(client: Bitrix24Client) -> list[str]:
    """The credential's scopes (`scope` needs none itself: it proves the connection and the token)."""
    result = client.call("scope").result
    return sorted(str(s) for s in result) if isinstance(result, list) else []


def missing_scopes(have: list[str]) -> list[str]:
    return [s for s in REQUIRED_SCOPES if s not in have]


def _counts(catalog: Catalog, specs: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for spec in specs:
        commands[spec.resource] = (spec.list_method, count_params(spec))
        commands[f"{spec.resource}_fields"] = (spec.fields_method, spec.base_params())
        if spec.has_stage_history:
            commands[f"history_{spec.entity_type_id}"] = (
                "crm.stagehistory.list",
                {"entityTypeId": spec.entity_type_id, "select": ["ID"], "start": 0},
            )
    return commands


def product_counts(client: Bitrix24Client, catalogs: Any) -> dict[int, int]:
    """Products per catalog (one request: a counted first page per catalog)."""
    iblocks = catalog_ids(catalogs)
    if not iblocks:
        return {}
    queries = {f"products_{i}": product_id_query(i) for i in iblocks}
    counted = client.batch({key: (q.method, {**q.params, "start": 0}) for key, q in queries.items()})
    return {i: counted.total.get(f"products_{i}", 0) for i in iblocks if f"products_{i}" not in counted.errors}


def inventory(
    client: Bitrix24Client,
    catalog: Catalog,
    with_sale: bool,
    with_telephony: bool = False,
    with_catalog: bool = False,
) -> Inventory:
    """One batch: per entity, the row count and the field metadata (and its stage history's); with the sale
    scope, the payment count; the portal's smart-process types. One more for types the catalog lacks."""
    commands = _counts(catalog, catalog.entities)
    commands["types"] = ("crm.type.list", {"order": {"id": "ASC"}})
    if with_sale:
        commands[SALE_KEY] = ("sale.payment.list", {"select": ["id"], "start": 0})
    if with_telephony:
        commands[CALLS] = ("voximplant.statistic.get", {"FILTER": {">ID": 0}})
    if with_catalog:
        commands[PRODUCTS] = ("catalog.catalog.list", {"select": ["iblockId"]})
    response = client.batch(commands)
    types = types_of(response.result.get("types")) if "types" not in response.errors else None
    if types is not None:
        known = set(catalog.entity_resources)
        portal = Catalog.for_portal(smart_process_specs(types))
        new = [spec for spec in portal.entities if spec.resource not in known]
        if new:
            more = client.batch(_counts(portal, new))
            for part in ("result", "errors", "total"):
                getattr(response, part).update(getattr(more, part))
        catalog = Catalog.for_portal([*catalog.smart_processes, *portal.smart_processes])
    found = Inventory(
        owners=tuple(e.resource for e in catalog.payment_owners),
        product_owners=tuple(e.resource for e in catalog.product_owners),
    )
    for spec in catalog.history_owners:
        key = f"history_{spec.entity_type_id}"
        if key not in response.errors and key in response.total:
            found.history[spec.entity_type_id] = response.total[key]
    if with_telephony and CALLS not in response.errors:
        found.calls = response.total.get(CALLS, 0)
    if with_catalog and PRODUCTS not in response.errors:
        found.products = product_counts(client, response.result.get(PRODUCTS))
    for spec in catalog.entities:
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
    for table, rows, requests, arithmetic in found.wider():
        lines.append(f"{table:<12} {rows:>10} {'':>12} {requests:>9}  {arithmetic}")
    lines.append(
        f"{'discovery':<12} {'':>10} {'':>12} {1:>9}  one batch per run (reference lists, currencies, smart-process "
        "types)"
    )
    total = found.total_requests()
    seconds = seconds_at(total, rate, burst)
    lines.append(
        f"a full sync takes about {total} requests: {seconds:.0f} s at {rate:g} requests/s after the first "
        f"{burst} (burst)"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    """Prints each verified item as it passes; the first failure raises (the caller prints its one line)."""
    client = connect(**CHECK_RETRIES)
    auth = client.auth
    kind = "OAuth app " + auth.client_id if hasattr(auth, "client_id") else f"webhook of user {auth.user_id}"
    print(f"{'portal':<12} {auth.host} ({kind})")
    have = scopes(client)
    print(f"{'connection':<12} ok")
    print(f"{'token':<12} accepted" + (f" (token store {auth.store.path})" if hasattr(auth, "store") else ""))
    missing = missing_scopes(have)
    if missing:
        raise ScopeError(
            f"the credential lacks the {', '.join(missing)} scope(s) (it has: {', '.join(have) or 'none'}); add "
            "them to the webhook or app on the portal (crm, user and sale)",
            code="insufficient_scope",
        )
    notes = [f"; no {s}: {why}" for s, why in OPTIONAL_SCOPES.items() if s not in have]
    print(f"{'scopes':<12} {', '.join(have)}{''.join(notes)}")
    pipeline = pipeline_from(args)
    warehouse = Path(args.duckdb_path).expanduser().resolve()
    if pipeline.destination.destination_name == "duckdb" and not warehouse.exists():
        # opening it would create an empty file: check only that the first run can create it
        folder = warehouse.parent
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            raise DestinationError(
                f"cannot use the duckdb destination: the folder {folder} does not exist or is read-only"
            )
        print(f"{'destination':<12} duckdb {warehouse}: does not exist yet, the first run creates it")
    else:
        check_destination(pipeline)
        print(f"{'destination':<12} {pipeline.destination.destination_name} dataset {pipeline.dataset_name}: ok")
    found = inventory(
        client,
        pipeline_catalog(pipeline),
        with_sale="sale" in have,
        with_telephony="telephony" in have,
        with_catalog="catalog" in have,
    )
    print("\nwhat the portal has (row counts from list totals: one request, a COUNT per entity on the portal):")
    for line in estimate_lines(found, client.bucket.rate, client.bucket.burst + 1):
        print(line)
    print(f"\ncheck used {client.stats.requests} HTTP requests")
    return 0


COMMAND = Command(
    "check",
    "verify the connection, token, scopes and destination; show what a full sync would take",
    destination_options,
    run,
    ("bitrix24-sync check", "bitrix24-sync check --destination postgres"),
    order=40,
)
