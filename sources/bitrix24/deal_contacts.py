"""Deal contacts: every contact of a multi-contact deal, from `contactIds` of `crm.item.list` (entityTypeId 2,
`select: [id, contactIds]`), the cheapest read: an ID keyset of 50 deals a page, 2,500 deals per request, its
first page in the discovery batch. `crm.deal.contact.items.get` would cost one command per deal (50 deals per
request) and is only needed for ROLE_ID; `crm.deal.list` cannot return CONTACT_IDS at all.

Deals changed since the last run are re-read (the deal's own `updatedTime` window, kept apart from the deals
resource's cursor so any selection stays exact), and every deal in a sweep every `owner_sweep_hours`, because
linking a contact is not documented to touch the deal's change time. Each deal is one row of `deal_contacts`
with its contacts in the child table `deal_contacts__contacts` (`contact_id`, `sort` as the position the portal
lists it at, `is_primary` for the first): merged on `deal_id`, so a deal's links are replaced whole and an
unlinked contact disappears.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .catalog import DEAL_CONTACTS, EntitySpec
from .paging import Commands, ListQuery
from .plan import PlanPart, RunPlan, SyncOptions
from .state import SourceState
from .window import is_due, utc_now

KEY = "deal_contacts"
COLUMNS: dict[str, dict[str, Any]] = {
    "deal_id": {"data_type": "bigint", "nullable": False},
    "contact_count": {"data_type": "bigint"},
    "read_at": {"data_type": "timestamp", "timezone": True, "description": "the portal's clock when read"},
}
CHILD_COLUMNS: dict[str, dict[str, Any]] = {
    "contact_id": {"data_type": "bigint"},
    "sort": {"data_type": "bigint", "description": "position in the deal's contact list, from 1"},
    "is_primary": {"data_type": "bool"},
}


class DealContactReader(PlanPart):
    def __init__(self, deals: EntitySpec, options: SyncOptions, sweep_hours: float):
        self.deals = deals
        self.options = options
        self.sweep_hours = sweep_hours
        self.sweep = False

    def _query(self) -> ListQuery:
        window: dict[str, Any] = {}
        if not self.sweep:
            window = self.options.window("updatedTime", SourceState.current().owner_cursor(DEAL_CONTACTS, "deals"))
        params = {"entityTypeId": 2, "select": ["id", "contactIds"], "filter": window}
        return ListQuery("crm.item.list", params, "id", ("items",))

    def first_calls(self) -> Commands:
        self.sweep = self.options.backfill is None and is_due(
            SourceState.current().last_sweep(DEAL_CONTACTS), self.sweep_hours, utc_now()
        )
        return {KEY: ("crm.item.list", self._query().page_params(0))}

    def chains(self) -> dict[str, ListQuery]:
        return {KEY: self._query()}

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        started = utc_now().isoformat()
        for page in plan.chain_pages(KEY, self._query(), "dc"):
            yield [_row(item, plan) for item in page]
        if self.options.backfill is None:
            state = SourceState.current()
            state.set_owner_cursor(DEAL_CONTACTS, "deals", plan.next_cursor())
            if self.sweep:
                state.set_last_sweep(DEAL_CONTACTS, started)


def _row(item: dict[str, Any], plan: RunPlan) -> dict[str, Any]:
    ids = [int(c) for c in item.get("contactIds") or [] if str(c).isdigit() and int(c) > 0]
    return {
        "deal_id": int(item["id"]),
        "contact_count": len(ids),
        "read_at": plan.server_time,
        "contacts": [{"contact_id": c, "sort": n + 1, "is_primary": n == 0} for n, c in enumerate(ids)],
    }
