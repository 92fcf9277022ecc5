"""Product rows (what was sold: `crm.item.productrow.list`) of deals, smart invoices, quotes and the smart
processes that link products. Rows have no change time, and whether editing them touches the owner's change
time is not documented, so two reads:

* owners changed since the product rows' own owner cursor: an ID-only keyset of each owner entity's window
  (2,500 ids per request, its first page in the discovery batch: a run with nothing changed costs nothing),
* every `owner_sweep_hours`, every owner (rows edited without the owner changing arrive at the latest then).

Per 50 owners one `crm.item.productrow.list` command (`=ownerType`, `=ownerId` as an array, keyset on `id`),
50 commands a batch: ceil(k/2500) requests for k owners when they have under 50 rows per 50 owners, one more
page per further 50 rows. Each owner read is one row of `product_rows` with its rows in the child table
`product_rows__items`, merged on (owner_type_id, owner_id): an owner's rows are replaced whole, so a deleted
row disappears and an owner whose rows were all removed keeps an empty list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .api import Bitrix24Client
from .catalog import PRODUCT_ROWS, EntitySpec
from .entities import id_query
from .fields import CoercionReport, FieldPlan
from .packing import chain_pages, continue_chains
from .paging import BATCH_SIZE, Commands, ListQuery, Page, batch_calls
from .plan import PlanPart, RunPlan, SyncOptions
from .state import SourceState
from .window import is_due, utc_now

METHOD = "crm.item.productrow.list"
PRIMARY_KEY = ("owner_type_id", "owner_id")
COLUMNS: dict[str, dict[str, Any]] = {
    "owner_type_id": {"data_type": "bigint", "nullable": False, "description": "2 deal, 7 quote, 31 invoice, ..."},
    "owner_id": {"data_type": "bigint", "nullable": False},
    "owner_type": {"data_type": "text", "description": "crm.item.productrow.list ownerType: D, Q, SI, T<hex>"},
    "row_count": {"data_type": "bigint"},
    "read_at": {"data_type": "timestamp", "timezone": True, "description": "the portal's clock when read"},
}
_MONEY = ("price", "priceAccount", "priceExclusive", "priceNetto", "priceBrutto", "discountSum", "discountRate",
          "taxRate", "quantity")  # fmt: skip
ROW_PLAN = FieldPlan(
    {
        **{k: {"type": "integer"} for k in ("id", "ownerId", "productId", "discountTypeId", "measureCode", "sort",
                                            "type", "storeId")},
        **{k: {"type": "double"} for k in _MONEY},
        "taxIncluded": {"type": "char"},
        "customized": {"type": "char"},
    }
)  # fmt: skip


def owners_key(owner: EntitySpec) -> str:
    return f"product_owners_{owner.resource}"


class ProductRowReader(PlanPart):
    def __init__(self, client: Bitrix24Client, options: SyncOptions, owners: Sequence[EntitySpec]):
        self.client = client
        self.options = options
        self.owners = tuple(owners)
        self.sweep = False

    def _owner_query(self, owner: EntitySpec) -> ListQuery:
        if self.sweep:
            return id_query(owner)
        return id_query(
            owner,
            self.options.window(owner.cursor_field, SourceState.current().owner_cursor(PRODUCT_ROWS, owner.resource)),
        )

    def first_calls(self) -> Commands:
        self.sweep = self.options.backfill is None and is_due(
            SourceState.current().last_sweep(PRODUCT_ROWS), self.options.owner_sweep_hours, utc_now()
        )
        return {owners_key(o): (o.list_method, self._owner_query(o).page_params(0)) for o in self.owners}

    def chains(self) -> dict[str, ListQuery]:
        return {owners_key(o): self._owner_query(o) for o in self.owners}

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        started = utc_now().isoformat()
        for owner in self.owners:
            group: list[list[int]] = []
            for page in plan.chain_pages(owners_key(owner), self._owner_query(owner), "po"):
                group.append([int(r[owner.id_field]) for r in page])
                if len(group) == BATCH_SIZE:
                    yield self._rows_of(plan, owner, group)
                    group = []
            if group:
                yield self._rows_of(plan, owner, group)
        if self.options.backfill is None:
            state = SourceState.current()
            for owner in self.owners:
                state.set_owner_cursor(PRODUCT_ROWS, owner.resource, plan.next_cursor())
            if self.sweep:
                state.set_last_sweep(PRODUCT_ROWS, started)

    def _rows_of(self, plan: RunPlan, owner: EntitySpec, groups: list[list[int]]) -> list[dict[str, Any]]:
        """The rows of up to 2,500 owners: one batch of first pages, then what a group has beyond 50 rows."""
        queries = {
            f"r{i}": ListQuery(
                METHOD, {"filter": {"=ownerType": owner.product_owner_type, "=ownerId": ids}}, "id", ("productRows",)
            )
            for i, ids in enumerate(groups)
        }
        firsts = batch_calls(self.client, {k: (METHOD, q.page_params(0)) for k, q in queries.items()})
        heads: dict[str, tuple[ListQuery, Page]] = {k: (q, q.rows(firsts[k].result) or []) for k, q in queries.items()}
        packed = continue_chains(self.client, heads)
        found: dict[int, list[dict[str, Any]]] = {}
        for key, (query, head) in heads.items():
            for page in chain_pages(self.client, query, head, packed.get(key), f"{key}x"):
                for row in ROW_PLAN.coerce(page, CoercionReport()):
                    # a key that is null in every row would be a column dlt cannot type: leave nulls out
                    found.setdefault(int(row["ownerId"]), []).append({k: v for k, v in row.items() if v is not None})
        return [
            {
                "owner_type_id": owner.entity_type_id,
                "owner_id": owner_id,
                "owner_type": owner.product_owner_type,
                "row_count": len(found.get(owner_id, [])),
                "read_at": plan.server_time,
                "items": found.get(owner_id, []),
            }
            for ids in groups
            for owner_id in ids
        ]
