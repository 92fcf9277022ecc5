"""Stage history (`crm.stagehistory.list`): an append-only log per entityTypeId (leads, deals, smart invoices,
smart processes with stages), read forward by ID after the last ID loaded; each type's first page rides in the
discovery batch, so a run with nothing new costs no request of its own.

Rows are merged on (entity_type_id, id) and never removed by us: the portal itself stops returning a record's
rows of an earlier pipeline once it has moved to another one (bitrix24/b24restdocs#8) and drops a deleted
record's rows, but what was read stays in the warehouse; `v_stage_history` leaves out owners marked deleted.
Leads answer STATUS_ID / STATUS_SEMANTIC_ID: they load as `stage_id` / `stage_semantic_id` like the others.
The rows leave as Arrow tables of 2,500 rows typed column by column (`arrow_pages.tables`): the log is the
largest table of a portal (seven rows per deal on the generated one), so dlt's row normalizer would be most of
its CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dlt

from .arrow_pages import tables
from .catalog import STAGE_HISTORY, EntitySpec
from .entities import GROUP_ROWS, vanished
from .fields import CoercionReport, FieldPlan
from .paging import Commands, ListQuery
from .plan import PlanPart, RunPlan
from .state import SourceState

log = logging.getLogger("bitrix24_sync.source")

METHOD = "crm.stagehistory.list"
EVENT_TYPES = {1: "created", 2: "intermediate", 3: "final", 5: "pipeline change"}
HISTORY_PLAN = FieldPlan(
    {
        "id": {"type": "integer", "title": "History row ID (per entity type)"},
        "entity_type_id": {"type": "integer", "title": "Owner's entityTypeId (1 lead, 2 deal, 31 invoice, ...)"},
        "owner_id": {"type": "integer", "title": "Owner ID"},
        "type_id": {"type": "integer", "title": "1 created, 2 intermediate stage, 3 final stage, 5 pipeline change"},
        "event": {"type": "string", "title": "created / intermediate / final / pipeline change"},
        "category_id": {"type": "integer", "title": "Pipeline (null for leads)"},
        "stage_id": {"type": "string", "title": "Stage (a lead's STATUS_ID)"},
        "stage_semantic_id": {"type": "string", "title": "P in progress, S success, F failure"},
        "created_time": {"type": "datetime", "title": "Moved to the stage at"},
    }
)
PRIMARY_KEY = ("entity_type_id", "id")


def history_key(spec: EntitySpec) -> str:
    return f"history_{spec.entity_type_id}"


class StageHistoryReader(PlanPart):
    def __init__(self, owners: Sequence[EntitySpec]):
        self.owners = tuple(owners)

    def _query(self, spec: EntitySpec) -> ListQuery:
        after = SourceState.current().last_id(STAGE_HISTORY, str(spec.entity_type_id))
        # the lower bound sits in the filter too: a chain restarted from scratch still starts after it
        params = {"entityTypeId": spec.entity_type_id, "filter": {">=ID": after + 1}}
        return ListQuery(METHOD, params, "ID", ("items",))

    def first_calls(self) -> Commands:
        return {history_key(spec): (METHOD, self._query(spec).page_params(0)) for spec in self.owners}

    def chains(self) -> Mapping[str, ListQuery]:
        return {history_key(spec): self._query(spec) for spec in self.owners}

    def pages(self, plan: RunPlan) -> Iterator[Any]:
        plan.discover()
        state = SourceState.current()
        load_id = dlt.current.load_package_state()["load_id"]
        for spec in self.owners:
            key = history_key(spec)
            if spec.discovered and vanished(plan.failure(key, METHOD)):
                log.info("%s: no stage history (the smart process is gone)", spec.resource)
                continue
            last = None
            group: list[dict[str, Any]] = []
            for page in plan.chain_pages(key, self._query(spec), f"h{spec.entity_type_id}x"):
                group.extend(_row(spec, r) for r in page)
                last = page[-1]["ID"]
                if len(group) >= GROUP_ROWS:
                    yield tables(HISTORY_PLAN, group, CoercionReport(), key=PRIMARY_KEY, load_id=load_id).root
                    group = []
            if group:
                yield tables(HISTORY_PLAN, group, CoercionReport(), key=PRIMARY_KEY, load_id=load_id).root
            if last is not None:
                state.set_last_id(STAGE_HISTORY, str(spec.entity_type_id), int(last))


def _row(spec: EntitySpec, row: Mapping[str, Any]) -> dict[str, Any]:
    type_id = row.get("TYPE_ID")
    return {
        "id": row.get("ID"),
        "entity_type_id": spec.entity_type_id,
        "owner_id": row.get("OWNER_ID"),
        "type_id": type_id,
        "event": EVENT_TYPES.get(int(type_id)) if str(type_id or "").isdigit() else None,
        "category_id": row.get("CATEGORY_ID"),
        "stage_id": row.get("STAGE_ID", row.get("STATUS_ID")),
        "stage_semantic_id": row.get("STAGE_SEMANTIC_ID", row.get("STATUS_SEMANTIC_ID")),
        "created_time": row.get("CREATED_TIME"),
    }
