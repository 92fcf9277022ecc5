"""Smart processes, discovered: `crm.type.list` rides in every discovery batch (no request of its own) and its
answer is cached in state, which is what the next run's catalog is built from (`catalog_of`). So a type added
on the portal gets its `sp_<entityTypeId>` resource on the next run with no configuration, and a deleted type
drops out of the catalog (its table stays). The first run of a pipeline has no cache: the source asks once
before it builds its resources (`fetch_types`, one request).

crm.type.list needs CRM administrator rights: a webhook without them gets ACCESS_DENIED, which is logged once
and leaves the catalog without smart processes instead of failing the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from .api import AuthError, Bitrix24Client, Bitrix24Error, ScopeError, TransientError
from .catalog import EntitySpec, smart_process_spec
from .fields import CoercionReport, FieldPlan
from .paging import Commands
from .plan import PlanPart, RunPlan
from .state import SourceState
from .window import utc_now

log = logging.getLogger("bitrix24_sync.source")

TYPES_KEY = "smart_process_types"
TYPES_METHOD = "crm.type.list"
TYPES_PARAMS: dict[str, Any] = {"order": {"id": "ASC"}}
_KEPT = ("id", "entityTypeId", "title", "code", "createdTime", "updatedTime")
_META = {
    "id": {"type": "integer", "title": "crm.type id"},
    "entityTypeId": {"type": "integer", "title": "entityTypeId (table sp_<entityTypeId>)"},
    "title": {"type": "string", "title": "Name"},
    "code": {"type": "string", "title": "Symbolic code"},
    "createdTime": {"type": "datetime", "title": "Created on"},
    "updatedTime": {"type": "datetime", "title": "Changed on"},
}
TYPES_PLAN = FieldPlan({**_META, **{flag: {"type": "char"} for flag in (
    "isCategoriesEnabled", "isStagesEnabled", "isClientEnabled", "isLinkWithProductsEnabled",
    "isPaymentsEnabled", "isObserversEnabled", "isRecyclebinEnabled", "isAutomationEnabled",
    "isBizProcEnabled", "isDocumentsEnabled", "isSourceEnabled", "isMycompanyEnabled",
    "isBeginCloseDatesEnabled", "isUseInUserfieldEnabled", "isSetOpenPermissions", "isCountersEnabled",
)}})  # fmt: skip


def smart_process_specs(types: Sequence[dict[str, Any]] | None) -> list[EntitySpec]:
    return [smart_process_spec(int(t["entityTypeId"]), t) for t in types or () if t.get("entityTypeId")]


def types_of(result: Any) -> list[dict[str, Any]] | None:
    """The types of a crm.type.list result (None when it is not one)."""
    types = result.get("types") if isinstance(result, dict) else None
    return [t for t in types if isinstance(t, dict)] if isinstance(types, list) else None


def fetch_types(client: Bitrix24Client, start: int | None = 0) -> list[dict[str, Any]] | None:
    """The portal's types now (a pipeline's first run): one request, more only past 50 types. None when the
    webhook itself is refused or the portal is busy: the run's discovery batch meets the same error and reports
    it where it belongs, and the types are asked again next time."""
    types: list[dict[str, Any]] = []
    while start is not None:
        try:
            response = client.call(TYPES_METHOD, {**TYPES_PARAMS, "start": start})
        except (AuthError, ScopeError, TransientError):
            return None
        except Bitrix24Error as exc:
            log.warning("smart processes are not read: %s (crm.type.list needs CRM administrator rights)", exc)
            return []
        types.extend(types_of(response.result) or [])
        start = response.next
    return types


class SmartProcessTypes(PlanPart):
    """Refreshes the cached types from the discovery batch; the `smart_processes` table from them."""

    def __init__(self, client: Bitrix24Client, known: Sequence[EntitySpec]):
        self.client = client
        self.known = {spec.entity_type_id for spec in known}
        self.types: list[dict[str, Any]] | None = None

    def first_calls(self) -> Commands:
        return {TYPES_KEY: (TYPES_METHOD, TYPES_PARAMS)}

    def discovered(self, plan: RunPlan) -> None:
        failure = plan.failure(TYPES_KEY, TYPES_METHOD)
        types = types_of(plan.result(TYPES_KEY))
        if isinstance(failure, AuthError | ScopeError):
            return  # every other read fails the same way and says so
        if failure is not None or types is None:
            log.warning("smart-process types not refreshed: %s", failure or "crm.type.list answered oddly")
            return
        more = fetch_types(self.client, plan.found.next[TYPES_KEY]) if plan.found.next.get(TYPES_KEY) else []
        if more is None:  # the pages past 50 types could not be read: keep the whole cached list this time
            return
        types = [*types, *more]
        found = {int(t["entityTypeId"]) for t in types if t.get("entityTypeId")}
        for new in sorted(found - self.known):
            log.info("a new smart process (entityTypeId %s) is read from the next run on, as sp_%s", new, new)
        for gone in sorted(self.known - found):
            log.info("smart process %s is gone from the portal: table sp_%s is kept, no longer read", gone, gone)
        self.types = [{k: t.get(k) for k in (*_KEPT, *TYPES_PLAN.specs)} for t in types]
        SourceState.current().store_smart_process_types(self.types, utc_now().isoformat())

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        types = self.types if self.types is not None else SourceState.current().smart_process_types() or []
        rows = TYPES_PLAN.coerce(types, CoercionReport())
        if rows:
            yield [{**row, "table_name": f"sp_{row['entityTypeId']}"} for row in rows]
