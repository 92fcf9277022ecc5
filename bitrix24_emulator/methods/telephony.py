"""voximplant.statistic.get (scope `telephony`, docs telephony/voximplant/voximplant-statistic-get.md): call
records, 50 a page; FILTER / SORT (one field) / ORDER / start, legacy string values."""

from __future__ import annotations

from typing import Any

from ..flat_lists import FlatList
from ..records import as_mapping, upper_keys
from ..values import php_intval
from . import MethodContext, MethodResult, method

CALLS = FlatList(
    "call",
    {
        name: (name, storage)
        for name, storage in (
            ("ID", "int"),
            ("CALL_ID", "text"),
            ("PORTAL_USER_ID", "int"),
            ("PHONE_NUMBER", "text"),
            ("CALL_TYPE", "int"),
            ("CALL_DURATION", "int"),
            ("CALL_START_DATE", "datetime"),
            ("CALL_FAILED_CODE", "text"),
            ("CALL_FAILED_REASON", "text"),
            ("COST", "real"),
            ("COST_CURRENCY", "text"),
            ("CRM_ENTITY_TYPE", "text"),
            ("CRM_ENTITY_ID", "int"),
            ("CRM_ACTIVITY_ID", "int"),
        )
    },
    strict=False,
    error_code="",
)


@method("voximplant.statistic.get", "telephony")
def statistic_get(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    start = php_intval(p.get("START", 0)) if not isinstance(p.get("START"), list | dict) else 0
    sort = str(p.get("SORT") or "CALL_START_DATE")
    order = {sort: str(p.get("ORDER") or "DESC")}
    with ctx.store.lock:
        rows, total, nxt = CALLS.page(ctx, as_mapping(p.get("FILTER"), "filter"), order, start)
        items = [CALLS.strings(r, ctx.store.tf) for r in rows]
    return MethodResult(items, total=total if total is not None else 0, next=nxt)
