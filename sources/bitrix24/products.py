"""Catalog products (`catalog.product.list`, scope `catalog`): what product rows point at (`product_id`), with
the product's own name, price and state. The method needs the catalog's information block (`filter.iblockId`)
and a `select` that holds `id` and `iblockId` (docs catalog/product/catalog-product-list.md), so the run asks
`catalog.catalog.list` in its discovery batch (every catalog: the products and their offers) and keeps the
catalogs in state.

Each catalog is read forward by ID among the products changed since the newest `timestampX` loaded (`>=`: the
rows of that second come again and merge on `id`); its first page rides in the discovery batch, so a run with
nothing changed costs no request of its own, and a catalog seen for the first time costs one. Without the scope
(or without the administrator rights `catalog.catalog.list` needs) the run goes on without products, in one
line. A reconcile finds deleted products by an ID scan per catalog (`portal_ids.py`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import PRODUCTS
from .fields import CoercionReport, FieldPlan
from .paging import Commands, ListQuery
from .plan import PlanPart, RunPlan, skipped_without_scope
from .state import SourceState
from .window import parse_instant

METHOD = "catalog.product.list"
CATALOGS_METHOD = "catalog.catalog.list"
CATALOGS_KEY = "product_catalogs"
PRODUCT_PLAN = FieldPlan(
    {
        "id": {"type": "integer", "title": "Product ID (product rows' product_id)"},
        "iblockId": {"type": "integer", "title": "Catalog (information block) ID"},
        "iblockSectionId": {"type": "integer", "title": "Section"},
        "name": {"type": "string", "title": "Name"},
        "code": {"type": "string", "title": "Symbolic code"},
        "xmlId": {"type": "string", "title": "External ID"},
        "active": {"type": "char", "title": "Active"},
        "type": {"type": "integer", "title": "1 product, 2 set, 3 with offers, 4 offer, 7 service"},
        "measure": {"type": "integer", "title": "Unit of measure"},
        "purchasingPrice": {"type": "double", "title": "Purchase price"},
        "purchasingCurrency": {"type": "string", "title": "Purchase price currency"},
        "vatId": {"type": "integer", "title": "VAT rate"},
        "vatIncluded": {"type": "char", "title": "VAT included in the price"},
        "dateCreate": {"type": "datetime", "title": "Created at"},
        "timestampX": {"type": "datetime", "title": "Changed at"},
    }
)
SELECT = list(PRODUCT_PLAN.specs)


def chain_key(iblock_id: int) -> str:
    return f"products_{iblock_id}"


@dataclass(frozen=True)
class ProductQuery(ListQuery):
    """The catalog controller's paging: `start` is not documented to take -1, so pages count (start=0)."""

    def page_params(self, after: Any) -> dict[str, Any]:
        return {**super().page_params(after), "start": 0}


def catalog_ids(result: Any) -> list[int]:
    """The information blocks of a `catalog.catalog.list` result (every catalog: products and offers)."""
    catalogs = result.get("catalogs") if isinstance(result, Mapping) else None
    return (
        sorted({int(c["iblockId"]) for c in catalogs if isinstance(c, Mapping)}) if isinstance(catalogs, list) else []
    )


def product_id_query(iblock_id: int) -> ProductQuery:
    """The ID scan of one catalog (a reconcile's)."""
    return ProductQuery(METHOD, {"filter": {"iblockId": iblock_id}, "select": ["id", "iblockId"]}, "id", ("products",))


class ProductReader(PlanPart):
    def __init__(self, asked_for: bool) -> None:
        self.asked_for = asked_for  # named in `resources`: a missing scope is then a warning, else a note
        self._catalogs: list[int] | None = None  # None: not read this run

    @staticmethod
    def _query(iblock_id: int) -> ProductQuery:
        changed = SourceState.current().owner_cursor(PRODUCTS, str(iblock_id))
        window = {"iblockId": iblock_id, **({">=timestampX": changed} if changed else {})}
        return ProductQuery(METHOD, {"filter": window, "select": SELECT}, "id", ("products",))

    def first_calls(self) -> Commands:
        calls: Commands = {CATALOGS_KEY: (CATALOGS_METHOD, {"select": ["id", "iblockId", "productIblockId"]})}
        for iblock_id in SourceState.current().product_catalogs() or []:
            calls[chain_key(iblock_id)] = (METHOD, self._query(iblock_id).page_params(0))
        return calls

    def discovered(self, plan: RunPlan) -> None:
        skipped_without_scope(plan, CATALOGS_KEY, CATALOGS_METHOD, "products", "catalog", self.asked_for)
        result = plan.result(CATALOGS_KEY)
        if result is not None:
            self._catalogs = catalog_ids(result)
            SourceState.current().store_product_catalogs(self._catalogs)

    def chains(self) -> dict[str, ListQuery]:
        return {chain_key(i): self._query(i) for i in self._catalogs or []}

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        state = SourceState.current()
        for iblock_id in self._catalogs or []:
            newest = state.owner_cursor(PRODUCTS, str(iblock_id))
            for page in plan.chain_pages(chain_key(iblock_id), self._query(iblock_id), f"c{iblock_id}_"):
                yield PRODUCT_PLAN.coerce(page, CoercionReport())
                # by the instant, not the text: offsets differ across a DST change
                stamps = [str(row["timestampX"]) for row in page if row.get("timestampX")]
                newest = max([*stamps, *([newest] if newest else [])], key=parse_instant, default=None)
            if newest:
                state.set_owner_cursor(PRODUCTS, str(iblock_id), newest)
