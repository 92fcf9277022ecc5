"""Payments: per-owner documents without a modification time, read three ways.

* Payments of owners (deals, smart invoices: the catalog's entities that own payments) changed since the payments' own
  owner cursor: an ID-only keyset scan of the owners' window (2,500 ids per request; its first page rides in
  the discovery batch), then, per 2,500 owners, their orders (`crm.orderentity.list`) and the orders' payments
  (`sale.payment.list`) when the webhook has the `sale` scope (about 2 requests), or else one batch of 50
  `crm.item.payment.list` calls per 50 owners.
* With the `sale` scope, new payments portal-wide: a `sale.payment.list` keyset on `id` after the last id seen
  (first page in the discovery batch), owners mapped with one `crm.orderentity.list` command (`start=-1`: all
  bindings) per 900 orders of a batch of payments, riding in the keyset's next request (three seats of its 50 for
  2,450 payments: a command's filter holds at most `MAX_FILTER_IDS` ids).
  Without the scope the probe fails with `insufficient_scope` in the discovery batch, which costs no request.
* A periodic sweep re-reads every payment (a payment marked paid does not touch its deal): with `sale`,
  about ceil(P/2350) keyset requests + one for the last batch's mapping; without, ceil(D/2500) id-scan requests +
  ceil(D/50) payment-list requests for D owners.

The owner scan keeps its own cursor rather than reusing the deals resource's rows, so payments stay exact
whichever resources a run selects, at a cost of ceil(k/2500) id-scan requests for k changed owners (none when
they fit in the 50 ids the discovery batch already returned or in the continuation batches it shares with the
other chains: `packing.py`; none either when the owner entity reads the same window in the same run: the plan
serves the scan from that chain's ids, `plan.covered_scans`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dlt

from .api import Bitrix24Client, Bitrix24Error, TransientError
from .catalog import EntitySpec
from .entities import id_query
from .fields import CoercionReport, FieldPlan
from .paging import BATCH_SIZE, CallResult, Commands, ListQuery, Page, batch_calls, filter_chunks, keyset_batches
from .plan import PlanPart, RunPlan, SyncOptions
from .state import SourceState
from .window import is_due, utc_now

SALE_KEY = "sale"
SALE_METHOD = "sale.payment.list"
MAPPING_KEY = "m"  # the owner mapping riding in a sale.payment.list batch: m0, m1, ...
PAYMENT_KEYS = (
    "id",
    "accountNumber",
    "paid",
    "datePaid",
    "empPaidId",
    "paySystemId",
    "sum",
    "currency",
    "paySystemName",
)
_META = {
    "id": {"type": "integer", "title": "Payment ID"},
    "accountNumber": {"type": "string", "title": "Payment number"},
    "paid": {"type": "char", "title": "Paid"},
    "datePaid": {"type": "datetime", "title": "Paid on"},
    "empPaidId": {"type": "user", "title": "Marked paid by"},
    "paySystemId": {"type": "integer", "title": "Payment system"},
    "sum": {"type": "double", "title": "Amount"},
    "currency": {"type": "crm_currency", "title": "Currency"},
    "paySystemName": {"type": "string", "title": "Payment system name"},
    "ownerTypeId": {"type": "integer", "title": "Owner CRM entityTypeId (2 = deal, 31 = smart invoice)"},
    "ownerId": {"type": "integer", "title": "Owner ID"},
}
PAYMENT_PLAN = FieldPlan(_META)
ORDERS_PER_COMMAND = 25  # orders per sale.payment.list command, at most: about a page of payments
ORDERS_ROUTE_MIN_OWNERS = 2 * BATCH_SIZE  # up to here, crm.item.payment.list per owner is as cheap (2 requests)


@dataclass
class PaymentCoverage:
    """What a run re-read completely: the payments of these owners (or of the whole portal, in a sweep with
    the sale scope). After the load, payments of covered owners that did not arrive with the run's load
    package (`load_id`) were deleted on the portal (`pipelines.deletes.apply_payment_coverage`): the
    warehouse's `_dlt_load_id` says which rows the run brought, so no payment id is held in memory (a set of
    them was about 50 MB at 1M deals)."""

    owners: set[tuple[int, int]] = field(default_factory=set)  # (ownerTypeId, ownerId)
    everything: bool = False
    load_id: str | None = None  # the package the re-read payments were extracted into

    def add(self, owner_type_id: int, owner_ids: Iterable[int]) -> None:
        self.owners.update((owner_type_id, owner_id) for owner_id in owner_ids)


def _owners_key(owner: EntitySpec) -> str:
    return f"owners_{owner.resource}"


class PaymentReader(PlanPart):
    def __init__(
        self,
        client: Bitrix24Client,
        options: SyncOptions,
        owners: tuple[EntitySpec, ...],
        coverage: PaymentCoverage | None = None,
    ):
        self.client = client
        self.options = options
        self.owners = owners
        self.coverage = coverage if coverage is not None else PaymentCoverage()
        self.invalid: Counter[str] = Counter()
        self.sweep = False
        self.sweep_started_at = ""
        self._plan: RunPlan | None = None

    # ------------------------------------------------------------------ plan

    def first_calls(self) -> Commands:
        now = utc_now()
        backfill = self.options.backfill
        self.sweep = backfill is None and is_due(
            SourceState.current().last_payment_sweep(), self.options.payment_sweep_hours, now
        )
        self.sweep_started_at = now.isoformat()
        commands: Commands = {
            _owners_key(owner): (owner.list_method, self._owner_query(owner).page_params(0)) for owner in self.owners
        }
        commands[SALE_KEY] = (SALE_METHOD, self._sale_query().page_params(self._sale_after()))
        return commands

    def discovered(self, plan: RunPlan) -> None:
        self._plan = plan

    def chains(self) -> dict[str, ListQuery]:
        """The owner id scans `pages` will read (none in a sweep through the sale scope)."""
        if self._sale_available() and self.sweep:
            return {}
        return {_owners_key(owner): self._owner_query(owner) for owner in self.owners}

    def _sale_after(self) -> int:
        return 0 if self.sweep else SourceState.current().last_payment_id()

    def _sale_query(self) -> ListQuery:
        return ListQuery(SALE_METHOD, {"select": [*PAYMENT_KEYS, "orderId"]}, "id", ("payments",))

    def _owner_query(self, owner: EntitySpec) -> ListQuery:
        if self.sweep:
            start = self.options.start_date
            window = {f">={owner.cursor_field}": start} if start else {}
        else:
            window = self.options.window(owner.cursor_field, SourceState.current().payment_owner_cursor(owner.resource))
        return id_query(owner, window)

    def _sale_available(self) -> bool:
        """The sale route works when the probe succeeded or failed transiently (the chain fetches it again);
        `insufficient_scope` or no admin rights mean: crm.item.payment.list per owner."""
        assert self._plan is not None, "discover() first"
        error = self._plan.failure(SALE_KEY, SALE_METHOD)
        return error is None or isinstance(error, TransientError)

    # ------------------------------------------------------------------ pages

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        self.coverage.load_id = dlt.current.load_package_state()["load_id"]
        use_sale = self._sale_available()
        backfill = self.options.backfill is not None
        last_id = self._sale_after()
        if use_sale and not backfill:
            for rows in self._sale_payments(plan, last_id):
                last_id = max(last_id, max(int(r["id"]) for r in rows))
                yield rows
            self.coverage.everything = self.sweep
        if not (use_sale and self.sweep):
            for owner in self.owners:
                yield from self._owner_payments(plan, owner, use_sale)
        if backfill:
            return
        SourceState.current().store_payment_progress(
            {owner.resource: plan.next_cursor() for owner in self.owners},
            last_id if use_sale else None,
            self.sweep_started_at if self.sweep else None,
        )

    def _sale_payments(self, plan: RunPlan, after: int) -> Iterator[list[dict[str, Any]]]:
        """Keyset over all payments after `after`; the owners of a batch's payments are mapped by a command
        riding in the next batch (the last batch's by a request of its own)."""
        query = self._sale_query()
        head = plan.head(SALE_KEY, query)
        read: list[Page] = []
        for batch in keyset_batches(
            self.client, query, first_page=head, after=after, prefix="s", rider=self._mapping_of
        ):
            if read:
                yield from self._with_owners(read, batch.rode, batch.riders)
            read = batch.pages
        if read:
            yield from self._with_owners(read, self._mapping_of(read), {})

    @staticmethod
    def _mapping_of(pages: list[Page]) -> Commands:
        """The owners of these payments' orders with `crm.orderentity.list` commands (`MAX_FILTER_IDS` orders
        each): `start=-1` returns every binding of the filter's orders at once (this method's own meaning of
        -1, `crm-order-entity-list.md`), so 2,500 payments cost three commands, without `next` rounds."""
        order_ids = sorted({i for page in pages for p in page if (i := _int(p.get("orderId")))})
        return {
            f"{MAPPING_KEY}{n}": ("crm.orderentity.list", {"filter": {"@orderId": chunk}, "start": -1})
            for n, chunk in enumerate(filter_chunks(order_ids))
        }

    def _with_owners(
        self, pages: list[Page], mapping: Commands, mapped: Mapping[str, CallResult | Bitrix24Error]
    ) -> Iterator[list[dict[str, Any]]]:
        """The payments with their owners, from the `mapping` commands' results that rode along (`mapped`);
        the commands that did not (the last batch) or failed are sent now (a failure that is not transient is
        raised)."""
        results: list[CallResult] = []
        unsent: Commands = {}
        for key, command in mapping.items():
            outcome = mapped.get(key)
            if isinstance(outcome, CallResult):
                results.append(outcome)
                continue
            if isinstance(outcome, Bitrix24Error) and not isinstance(outcome, TransientError):
                raise outcome
            unsent[key] = command
        results.extend(batch_calls(self.client, unsent).values())
        owners = self._order_owners(results)
        for page in pages:
            yield self._typed([_payment_row(p, owners.get(_int(p.get("orderId")), (None, None))) for p in page])

    def _all_pages(self, commands: Commands) -> list[CallResult]:
        """Results of offset-paged commands, following `next` for the rare result longer than a page (an
        order bound to several owners)."""
        results: list[CallResult] = []
        while commands:
            done = batch_calls(self.client, commands)
            results.extend(done.values())
            commands = {
                key: (commands[key][0], {**commands[key][1], "start": call.next})
                for key, call in done.items()
                if call.next
            }
        return results

    def _order_owners(self, results: list[CallResult]) -> dict[int, tuple[int | None, int | None]]:
        """orderId -> (ownerTypeId, ownerId), preferring an owner type that owns payments."""
        owner_types = {o.entity_type_id for o in self.owners}
        owners: dict[int, tuple[int | None, int | None]] = {}
        for call in results:
            for row in _rows(call.result, "orderEntity"):
                order_id, owner = _int(row.get("orderId")), (_int(row.get("ownerTypeId")), _int(row.get("ownerId")))
                if order_id is not None and (order_id not in owners or owner[0] in owner_types):
                    owners[order_id] = owner
        return owners

    def _owner_payments(self, plan: RunPlan, owner: EntitySpec, via_sale: bool) -> Iterator[list[dict[str, Any]]]:
        """Payments of the owners in the owner window: per 2,500 owners, through their orders with the sale
        scope (crm.orderentity.list, then sale.payment.list: about 2 requests); else one batch of
        `crm.item.payment.list` per 50 owners."""
        query = self._owner_query(owner)
        id_pages = plan.chain_pages(_owners_key(owner), query, "o")
        if not via_sale:
            yield from self._listed_per_owner(owner, id_pages)
            return
        group: list[Page] = []
        for id_page in id_pages:
            group.append(id_page)
            if len(group) == BATCH_SIZE:
                yield from self._through_orders(owner, group)
                group = []
        if sum(len(page) for page in group) > ORDERS_ROUTE_MIN_OWNERS:
            yield from self._through_orders(owner, group)
        else:  # a few owners: their payment lists cost no more requests than the orders route
            yield from self._listed_per_owner(owner, iter(group))

    def _through_orders(self, owner: EntitySpec, id_pages: list[Page]) -> Iterator[list[dict[str, Any]]]:
        owner_ids = [int(r[owner.id_field]) for page in id_pages for r in page]
        bindings: Commands = {
            f"e{n}": (
                "crm.orderentity.list",
                {"filter": {"@ownerId": chunk, "ownerTypeId": owner.entity_type_id}, "start": -1},
            )
            for n, chunk in enumerate(filter_chunks(owner_ids))
        }
        links = list(batch_calls(self.client, bindings).values())
        orders: dict[int, tuple[int, int]] = {}
        for call in links:
            for row in _rows(call.result, "orderEntity"):
                order_id, owner_id = _int(row.get("orderId")), _int(row.get("ownerId"))
                if order_id and owner_id and _int(row.get("ownerTypeId")) == owner.entity_type_id:
                    orders[order_id] = (owner.entity_type_id, owner_id)
        order_ids = sorted(orders)
        per = orders_per_command(len(order_ids))
        found = self._all_pages(
            {
                f"q{i}": (
                    SALE_METHOD,
                    {"select": [*PAYMENT_KEYS, "orderId"], "filter": {"@orderId": order_ids[i : i + per]}},
                )
                for i in range(0, len(order_ids), per)
            }
        )
        rows = [
            _payment_row(p, orders[order_id])
            for call in found
            for p in _rows(call.result, "payments")
            if (order_id := _int(p.get("orderId"))) in orders
        ]
        self.coverage.add(owner.entity_type_id, owner_ids)
        for start in range(0, len(rows), 500):
            yield self._typed(rows[start : start + 500])

    def _listed_per_owner(self, owner: EntitySpec, id_pages: Iterator[Page]) -> Iterator[list[dict[str, Any]]]:
        for id_page in id_pages:
            ids = [int(r[owner.id_field]) for r in id_page]
            commands: Commands = {
                f"y{i}": (
                    "crm.item.payment.list",
                    {"entityTypeId": owner.entity_type_id, "entityId": owner_id},
                )
                for i, owner_id in enumerate(ids)
            }
            results = batch_calls(self.client, commands)
            rows = [
                _payment_row(p, (owner.entity_type_id, owner_id))
                for i, owner_id in enumerate(ids)
                for p in (results[f"y{i}"].result or [])
            ]
            self.coverage.add(owner.entity_type_id, ids)
            if rows:
                yield self._typed(rows)

    def _typed(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        report = CoercionReport()
        typed = PAYMENT_PLAN.coerce(rows, report)
        self.invalid.update(report.invalid)
        return typed


def orders_per_command(orders: int) -> int:
    """Orders per `sale.payment.list` command: at most 25 (about 50 payments, one page), spread evenly over the
    commands of as many requests as that takes, so an order with several payments rarely overflows a page
    (which would cost a round of `next` pages: 350 orders took 14 commands and then 4 more)."""
    requests = max(1, -(-orders // (ORDERS_PER_COMMAND * BATCH_SIZE)))
    return max(1, min(ORDERS_PER_COMMAND, -(-orders // (requests * BATCH_SIZE))))


def _payment_row(payment: Mapping[str, Any], owner: tuple[int | None, int | None]) -> dict[str, Any]:
    row = {key: payment.get(key) for key in PAYMENT_KEYS}
    row["ownerTypeId"], row["ownerId"] = owner
    return row


def _rows(result: Any, key: str) -> list[dict[str, Any]]:
    rows = result.get(key) if isinstance(result, Mapping) else None
    return rows if isinstance(rows, list) else []


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
