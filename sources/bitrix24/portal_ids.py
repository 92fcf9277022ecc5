"""Deletes by reconciliation, the portal's half: which IDs exist now.

No REST method lists deleted CRM records (offline delete events need an app, not a webhook), so deletes are
found by comparing the portal's full ID sets with the warehouse's. The sets are read the cheap way: an
ID-only keyset scan (`select: [ID]`, `order ID ASC`, `>ID`, `start=-1`) chained 50 pages per batch, 2,500
IDs per HTTP request, so an entity of N records costs floor(N/2500) + 1 requests (the last, short page ends
the chain).

Products (scope `catalog`): `catalog.catalog.list`, then an ID scan per catalog: 1 + floor(P/2500) + 1 per
catalog.

Payments: with the `sale` scope one `sale.payment.list` ID scan covers every payment, floor(P/2500) + 1
requests (+ 1 failed probe when the scope is missing). Without it, the payments of each owner the warehouse
holds payments for are listed with `crm.item.payment.list`, 50 owners per batch: ceil(O/50) requests for O
owners; payments of owners deleted from the portal are gone with them (no request).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .api import Bitrix24Client, ScopeError
from .catalog import Catalog, EntitySpec
from .entities import id_query
from .paging import ListQuery, batch_calls, keyset_pages
from .products import CATALOGS_METHOD, catalog_ids, product_id_query

SALE_PAYMENT_IDS = ListQuery("sale.payment.list", {"select": ["id"]}, "id", ("payments",))


def scan_ids(client: Bitrix24Client, query: ListQuery) -> set[int]:
    return {query.row_id(row) for page in keyset_pages(client, query, prefix="r") for row in page}


@dataclass
class PortalScan:
    """The portal's ID sets, each read at most once per reconcile."""

    client: Bitrix24Client
    catalog: Catalog
    _ids: dict[str, set[int]] = field(default_factory=dict)

    def entity_ids(self, spec: EntitySpec) -> set[int]:
        if spec.resource not in self._ids:
            self._ids[spec.resource] = scan_ids(self.client, id_query(spec))
        return self._ids[spec.resource]

    def product_ids(self) -> set[int]:
        """Every product of every catalog (scope `catalog`): the catalogs, then an ID scan per catalog."""
        catalogs = self.client.call(CATALOGS_METHOD, {"select": ["iblockId"]}).result
        return set().union(*(scan_ids(self.client, product_id_query(i)) for i in catalog_ids(catalogs)))

    def payment_ids(self, owners_in_warehouse: Iterable[tuple[int, int]]) -> set[int]:
        """Every payment ID on the portal (sale scope), else the payments of the given (ownerTypeId,
        ownerId) pairs that still exist."""
        try:
            return scan_ids(self.client, SALE_PAYMENT_IDS)
        except ScopeError:
            pass
        existing = [
            (type_id, owner_id)
            for type_id, owner_id in sorted(set(owners_in_warehouse))
            if (owner := self.catalog.owner_of_type(type_id)) is not None and owner_id in self.entity_ids(owner)
        ]
        return owner_payment_ids(self.client, existing)


def owner_payment_ids(client: Bitrix24Client, owners: list[tuple[int, int]]) -> set[int]:
    """IDs of the payments of existing owners, one `crm.item.payment.list` per owner, 50 per batch."""
    commands = {
        f"y{i}": ("crm.item.payment.list", {"entityTypeId": type_id, "entityId": owner_id})
        for i, (type_id, owner_id) in enumerate(owners)
    }
    results = batch_calls(client, commands)
    return {int(p["id"]) for call in results.values() for p in (call.result or []) if isinstance(p, Mapping)}
