"""Product rows (what was sold: `crm.item.productrow.list`) of deals, smart invoices, quotes and the smart
processes that link products. Rows have no change time, and whether editing them touches the owner's change
time is not documented, so two reads:

* owners changed since the product rows' own owner cursor: an ID-only keyset of each owner entity's window
  (2,500 ids per request, its first page in the discovery batch: a run with nothing changed costs nothing; no
  request at all when the owner entity reads that window in the same run: `plan.covered_scans`),
* every `owner_sweep_hours`, every owner (rows edited without the owner changing arrive at the latest then).

Per 200 owners one `crm.item.productrow.list` chain (`=ownerType`, `=ownerId` as an array, keyset on `id`; the
filter needs both keys, so the owners are listed), and the chains share their batches (`packing.pooled_chains`):
a group's later pages ride with other groups' first pages, so k owners cost about ceil(k/2500) id-scan requests
plus one request per 50 pages of rows. Every group ends with a page that is not full, so fewer, larger groups
waste less: 173,558 rows of 127,884 deals took 4,650 pages in groups of 50 owners, 3,900 in groups of 200, 3,600
in groups of 900 (the floor is 3,472). But every page of a group repeats its owner ids in its filter: groups of
900 sent 3.2M ids (4x those of 200): that 100k full sync passed 180 CPU s and 420 MB before it ended, where
groups of 200 took 176.5 CPU s and peaked at 345 MB in all (same machine, same day), so 200 (within
`MAX_FILTER_IDS`: the portal parses a command with PHP's parse_str, which drops what lies beyond 1,000
variables). Each owner read is one row of `product_rows` with its rows in the child table `product_rows__items`,
merged on (owner_type_id, owner_id): an owner's rows are replaced whole, so a deleted row disappears and an
owner whose rows were all removed keeps an empty list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .api import Bitrix24Client
from .catalog import PRODUCT_ROWS, EntitySpec
from .entities import id_query
from .fields import CoercionReport, FieldPlan
from .packing import pooled_chains
from .paging import BATCH_SIZE, PAGE_SIZE, Commands, ListQuery, Page
from .plan import PlanPart, RunPlan, SyncOptions
from .state import SourceState
from .window import is_due, utc_now

METHOD = "crm.item.productrow.list"
GROUP_OWNERS = 200  # owners per crm.item.productrow.list chain (at most MAX_FILTER_IDS)
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
        groups = (group for owner in self.owners for group in self._groups(plan, owner))
        read: list[dict[str, Any]] = []
        for ended in pooled_chains(self.client, groups, "r"):
            read.extend(row for (owner, ids), pages in ended for row in self._owner_rows(plan, owner, ids, pages))
            if len(read) >= BATCH_SIZE * PAGE_SIZE:
                yield read
                read = []
        if read:
            yield read
        if self.options.backfill is None:
            state = SourceState.current()
            for owner in self.owners:
                state.set_owner_cursor(PRODUCT_ROWS, owner.resource, plan.next_cursor())
            if self.sweep:
                state.set_last_sweep(PRODUCT_ROWS, started)

    def _groups(self, plan: RunPlan, owner: EntitySpec) -> Iterator[tuple[tuple[EntitySpec, list[int]], ListQuery]]:
        """Per `GROUP_OWNERS` owners of the owner id scan, the query of their product rows (one pool for all the
        owner entities: the last groups of one share batches with the first of the next)."""
        ids: list[int] = []
        for page in plan.chain_pages(owners_key(owner), self._owner_query(owner), "po"):
            ids.extend(int(r[owner.id_field]) for r in page)
            while len(ids) >= GROUP_OWNERS:
                yield self._group(owner, ids[:GROUP_OWNERS])
                ids = ids[GROUP_OWNERS:]
        if ids:
            yield self._group(owner, ids)

    @staticmethod
    def _group(owner: EntitySpec, ids: list[int]) -> tuple[tuple[EntitySpec, list[int]], ListQuery]:
        where = {"=ownerType": owner.product_owner_type, "=ownerId": ids}
        return (owner, ids), ListQuery(METHOD, {"filter": where}, "id", ("productRows",))

    def _owner_rows(
        self, plan: RunPlan, owner: EntitySpec, ids: list[int], pages: list[Page]
    ) -> Iterator[dict[str, Any]]:
        """One row per owner with its product rows (an owner without any keeps an empty list)."""
        found: dict[int, list[dict[str, Any]]] = {}
        for page in pages:
            for row in ROW_PLAN.coerce(page, CoercionReport()):
                # a key that is null in every row would be a column dlt cannot type: leave nulls out
                found.setdefault(int(row["ownerId"]), []).append({k: v for k, v in row.items() if v is not None})
        for owner_id in ids:
            items = found.get(owner_id, [])
            yield {
                "owner_type_id": owner.entity_type_id,
                "owner_id": owner_id,
                "owner_type": owner.product_owner_type,
                "row_count": len(items),
                "read_at": plan.server_time,
                "items": items,
            }
