"""crm.stagehistory.list (docs crm/crm-stage-history-list.md): the stage log of leads, deals, smart invoices
and smart processes, rows under `result.items` with integer ids (b24-rest-docs PR #147), `start` paging of 50.

Leads answer STATUS_ID / STATUS_SEMANTIC_ID, the others STAGE_ID / STAGE_SEMANTIC_ID / CATEGORY_ID. A record's
rows of an earlier pipeline are not returned once it has moved on: the behaviour a maintainer confirmed in
bitrix24/b24restdocs#8 ("returning only stages that is from the category in what this deal is right now").
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, missing_parameter
from ..flat_lists import FlatList
from ..records import as_list, as_mapping
from ..values import php_intval
from ..workflow import has_history
from . import MethodContext, MethodResult, method

_COMMON = {
    "ID": ("ID", "int"),
    "TYPE_ID": ("TYPE_ID", "int"),
    "OWNER_ID": ("OWNER_ID", "int"),
    "CREATED_TIME": ("CREATED_TIME", "datetime"),
}
_STAGES = FlatList(
    "stage_history",
    {
        **_COMMON,
        "CATEGORY_ID": ("CATEGORY_ID", "int"),
        "STAGE_SEMANTIC_ID": ("STAGE_SEMANTIC_ID", "text"),
        "STAGE_ID": ("STAGE_ID", "text"),
    },
)
_STATUSES = FlatList(
    "stage_history",
    {**_COMMON, "STATUS_SEMANTIC_ID": ("STAGE_SEMANTIC_ID", "text"), "STATUS_ID": ("STAGE_ID", "text")},
)


@method("crm.stagehistory.list", "crm")
def stage_history_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    raw = params.get("entityTypeId")
    if raw in (None, ""):
        raise missing_parameter("entityTypeId")
    type_id = php_intval(raw) if not isinstance(raw, list | dict) else 0
    start = php_intval(params.get("start", 0)) if not isinstance(params.get("start"), list | dict) else 0
    with ctx.store.lock:
        owner = ctx.store.by_type_id(type_id)
        if owner is None or not has_history(owner.kind):
            raise ApiError("ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {type_id} is not supported")
        listing = _STATUSES if type_id == 1 else _STAGES
        where, args = "ENTITY_TYPE_ID = ?", (type_id,)
        if "CATEGORY_ID" in owner.columns:
            where += f' AND CATEGORY_ID IS (SELECT o.CATEGORY_ID FROM "{owner.kind.key}" o WHERE o.ID = OWNER_ID)'
        rows, total, nxt = listing.page(
            ctx,
            as_mapping(params.get("filter"), "filter", legacy=False),
            as_mapping(params.get("order"), "order", legacy=False),
            start,
            where,
            args,
        )
        select = {str(s) for s in as_list(params.get("select"))} - {"*"}
        items = [listing.typed(row, ctx.store.tf) for row in rows]
    if select:
        items = [{k: v for k, v in item.items() if k in select} for item in items]
    return MethodResult({"items": items}, total=total, next=nxt)
