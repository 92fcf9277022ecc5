"""crm.type.list / get / add / update / delete: smart-process types (docs
crm/universal/user-defined-object-types/crm-type-*.md). Rows under `result.types`, camelCase, flags as "Y"/"N";
`add` makes the type's table, a default pipeline and its stages at once, `delete` refuses while items exist.
"""

from __future__ import annotations

import json
from typing import Any

from .. import smart_types
from ..errors import ApiError, missing_parameter
from ..flat_lists import FlatList
from ..records import as_mapping
from ..values import php_intval
from . import MethodContext, MethodResult, method

_LIST = FlatList(
    "crm_type",
    {
        "id": ("ID", "int"),
        "entityTypeId": ("ENTITY_TYPE_ID", "int"),
        "title": ("TITLE", "text"),
        "code": ("CODE", "text"),
        "createdBy": ("CREATED_BY", "int"),
        "flags": ("FLAGS", "text"),
        "createdTime": ("CREATED_TIME", "datetime"),
        "updatedTime": ("UPDATED_TIME", "datetime"),
    },
)


def _type(ctx: MethodContext, row: dict[str, Any]) -> dict[str, Any]:
    typed = _LIST.typed(row, ctx.store.tf)
    flags = json.loads(typed.pop("flags"))
    return {
        "id": typed["id"],
        "title": typed["title"],
        "code": typed["code"],
        "createdBy": typed["createdBy"],
        "entityTypeId": typed["entityTypeId"],
        "customSectionId": None,
        **flags,
        "createdTime": typed["createdTime"],
        "updatedTime": typed["updatedTime"],
        "updatedBy": typed["createdBy"],
    }


def _one(ctx: MethodContext, type_id: int) -> dict[str, Any]:
    rows, _t, _n = _LIST.page(ctx, {"id": type_id}, {}, -1)
    if not rows:
        raise ApiError("NOT_FOUND", "Smart process not found")
    return _type(ctx, rows[0])


def _id(params: dict[str, Any]) -> int:
    if params.get("id") in (None, ""):
        raise missing_parameter("id")
    return php_intval(params["id"]) if not isinstance(params["id"], list | dict) else 0


@method("crm.type.list", "crm")
def type_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    start = php_intval(params.get("start", 0)) if not isinstance(params.get("start"), list | dict) else 0
    flt = as_mapping(params.get("filter"), "filter", legacy=False)
    with ctx.store.lock:
        rows, total, nxt = _LIST.page(ctx, flt, as_mapping(params.get("order"), "order", legacy=False), start)
        types = [_type(ctx, row) for row in rows]
    return MethodResult({"types": types}, total=total, next=nxt)


@method("crm.type.get", "crm")
def type_get(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        return MethodResult({"type": _one(ctx, _id(params))})


@method("crm.type.add", "crm")
def type_add(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    fields = as_mapping(params.get("fields"), "fields", legacy=False)
    title = str(fields.get("title") or "").strip()
    if not title:
        raise ApiError("REQUIRED_FIELD_EMPTY", "Field title is required")
    now = int(ctx.clock.now_seconds().timestamp())
    with ctx.store.lock:
        conn = ctx.store.conn
        entity_type_id = php_intval(fields.get("entityTypeId")) or smart_types.next_entity_type_id(conn)
        if ctx.store.by_type_id(entity_type_id) is not None:
            raise ApiError("INVALID_ARG_VALUE", f"entityTypeId {entity_type_id} is already used")
        type_id = smart_types.insert_type(
            conn, entity_type_id, title, smart_types.flags_of(fields), now, ctx.user_id, str(fields.get("code") or "")
        )
        ctx.store.add_smart_process(type_id, entity_type_id)
        return MethodResult({"type": _one(ctx, type_id)})


@method("crm.type.update", "crm")
def type_update(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    type_id = _id(params)
    fields = as_mapping(params.get("fields"), "fields", legacy=False)
    now = int(ctx.clock.now_seconds().timestamp())
    with ctx.store.lock:
        current = _one(ctx, type_id)
        flags = {f: current[f] for f in smart_types.FLAGS}
        flags.update({k: v for k, v in smart_types.flags_of({**flags, **fields}).items() if k in fields})
        ctx.store.conn.execute(
            "UPDATE crm_type SET TITLE = ?, CODE = ?, FLAGS = ?, UPDATED_TIME = ? WHERE ID = ?",
            (
                str(fields.get("title") or current["title"]),
                str(fields.get("code", current["code"])),
                json.dumps(flags),
                now,
                type_id,
            ),
        )
        return MethodResult({"type": _one(ctx, type_id)})


@method("crm.type.delete", "crm")
def type_delete(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    type_id = _id(params)
    with ctx.store.lock:
        entity_type_id = _one(ctx, type_id)["entityTypeId"]
        table = ctx.store.by_type_id(entity_type_id)
        if table is not None and ctx.store.conn.execute(f'SELECT 1 FROM "{table.kind.key}" LIMIT 1').fetchone():
            raise ApiError("ERROR_CANNOT_DELETE", "Cannot delete a smart process that has items")
        ctx.store.drop_smart_process(entity_type_id)
        smart_types.forget_type(ctx.store.conn, entity_type_id)
    return MethodResult(None)
