"""Calls (`voximplant.statistic.get`, scope `telephony` and the "call statistics: view" permission): read
forward by ID after the last one loaded, `SORT=ID`, 50 a page; the first page rides in the discovery batch.
Without the scope or the permission the probe fails there, which costs no request: the run goes on without
calls and says so in one line.

A call record can be completed later (a recording, a transcript, its cost): rows already read are not read
again, so such late changes are not loaded (`run --full-refresh --resources calls` re-reads them all).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .catalog import CALLS
from .fields import CoercionReport, FieldPlan
from .paging import Commands, ListQuery
from .plan import PlanPart, RunPlan, skipped_without_scope
from .state import SourceState

METHOD = "voximplant.statistic.get"
CALL_PLAN = FieldPlan(
    {
        **{k: {"type": "integer"} for k in ("ID", "PORTAL_USER_ID", "CALL_TYPE", "CALL_DURATION", "CRM_ENTITY_ID",
                                            "CRM_ACTIVITY_ID", "PORTAL_NUMBER_ID", "REDIAL_ATTEMPT")},
        "CALL_START_DATE": {"type": "datetime", "title": "Call started at"},
        "COST": {"type": "double", "title": "Cost"},
        "CALL_TYPE": {"type": "integer", "title": "1 outgoing, 2 incoming, 3 incoming redirected, 4 callback"},
        "CRM_ENTITY_TYPE": {"type": "string", "title": "LEAD, CONTACT, COMPANY or DEAL"},
    }
)  # fmt: skip


@dataclass(frozen=True)
class CallQuery(ListQuery):
    """voximplant.statistic.get names its paging in capitals and orders by one SORT field."""

    def page_params(self, after: Any) -> dict[str, Any]:
        return {"FILTER": {**dict(self.params.get("FILTER") or {}), f">{self.id_field}": after}, "SORT": "ID",
                "ORDER": "ASC"}  # fmt: skip


class CallReader(PlanPart):
    def __init__(self, asked_for: bool) -> None:
        self.asked_for = asked_for  # named in `resources`: a missing scope is then a warning, else a note
        self._skipped = False

    def _query(self) -> CallQuery:
        after = SourceState.current().last_id(CALLS, CALLS)
        return CallQuery(METHOD, {"FILTER": {">=ID": after + 1}}, "ID")

    def first_calls(self) -> Commands:
        return {CALLS: (METHOD, self._query().page_params(0))}

    def chains(self) -> dict[str, ListQuery]:
        return {} if self._skipped else {CALLS: self._query()}

    def discovered(self, plan: RunPlan) -> None:
        self._skipped = skipped_without_scope(plan, CALLS, METHOD, "calls", "telephony", self.asked_for)

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        if self._skipped:
            return
        last = None
        for page in plan.chain_pages(CALLS, self._query(), "v"):
            yield CALL_PLAN.coerce(page, CoercionReport())
            last = page[-1]["ID"]
        if last is not None:
            SourceState.current().set_last_id(CALLS, CALLS, int(last))
