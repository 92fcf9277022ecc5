"""crm.item.list / get / fields / add / update / delete for leads (1), deals (2), contacts (3), companies (4),
quotes (7), smart invoices (31) and every smart process: camelCase names, typed values, `ufCrm*` user fields,
`result.items`.

Unlike the legacy lists, an unknown filter or order field is an error (INVALID_ARG_VALUE), and `start=-1`
drops the whole navigation block (no `total`, no `next`: core-src RestManager::getNavigationData; the sample
output in settings/performance/huge-data.md shows `"total": 0`, but its code cannot have produced it, as it
reads crm.item.list's `result` as a flat list).
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, missing_parameter
from ..fieldmeta import multiple_meta
from ..records import (
    as_list,
    as_mapping,
    current_state,
    format_item,
    item_column,
    item_filter,
    item_order,
    item_select,
    save,
    stored_fields,
)
from ..store import EntityTable
from ..values import php_intval
from . import MethodContext, MethodResult, method
from .crm_legacy import uf_meta


def _table(ctx: MethodContext, params: dict[str, Any]) -> EntityTable:
    raw = params.get("entityTypeId")
    if raw is None or raw == "":
        raise missing_parameter("entityTypeId")
    table = ctx.store.by_type_id(php_intval(raw)) if not isinstance(raw, list | dict) else None
    if table is None:
        raise ApiError("NOT_FOUND", "SPA not found")
    return table


def _uf_names(table: EntityTable, params: dict[str, Any]) -> dict[str, str]:
    """camelCase -> original name of every user field when `useOriginalUfNames=Y` (docs crm-item-list.md,
    crm-item-get.md, crm-item-fields.md: `Y` gives `UF_CRM_...` names, `N`, the default, camelCase), else {}."""
    if str(params.get("useOriginalUfNames", "N")).upper() not in ("Y", "1", "TRUE"):
        return {}
    return {col.camel: col.name for col in table.columns.values() if col.uf is not None}


def _renamed(item: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names.get(key, key): value for key, value in item.items()} if names else item


@method("crm.item.list", "crm")
def item_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    start = php_intval(params.get("start", 0)) if not isinstance(params.get("start"), list | dict) else 0
    with ctx.store.lock:
        table = _table(ctx, params)
        cols, with_fm, keep = item_select(table, as_list(params.get("select")))
        where, args = item_filter(table, ctx, as_mapping(params.get("filter"), "filter", legacy=False))
        order = item_order(table, as_mapping(params.get("order"), "order", legacy=False))
        rows, total, nxt = table.page(cols, where, args, order, start, ctx.cost)
        items = format_item(table, cols, rows, with_fm, keep)
        names = _uf_names(table, params)
    return MethodResult({"items": [_renamed(item, names) for item in items]}, total=total, next=nxt)


@method("crm.item.get", "crm")
def item_get(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    if params.get("id") in (None, ""):
        raise missing_parameter("id")
    rid = php_intval(params["id"]) if not isinstance(params["id"], list | dict) else 0
    with ctx.store.lock:
        table = _table(ctx, params)
        cols = list(table.columns.values())
        row = table.get_row(rid, cols)
        if row is None:
            raise ApiError("NOT_FOUND", "Element not found")
        ctx.cost.rows_scanned += 1
        ctx.cost.rows_returned += 1
        item = _renamed(format_item(table, cols, [row], bool(table.kind.multifields))[0], _uf_names(table, params))
    return MethodResult({"item": item})


def _multiple(type_: str, title: str, upper: str) -> dict[str, Any]:
    return {**multiple_meta(type_, title), "upperName": upper}


# The multiple bindings crm.item.fields lists (docs crm-item-fields.md): `contactIds` comes in the rows,
# `contacts` only when written; `observers` in the rows of every kind but contacts and companies.
_MULTIPLE_BINDINGS = {
    "contacts": {
        "contactIds": _multiple("crm_contact", "CONTACT_IDS", "CONTACT_IDS"),
        "contacts": _multiple("crm_contact", "CONTACTS", "CONTACTS"),
    },
    "observers": {"observers": _multiple("user", "Observers", "OBSERVERS")},
}


@method("crm.item.fields", "crm")
def item_fields(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        table = _table(ctx, params)
        out: dict[str, Any] = {}
        for col in table.columns.values():
            if col.std is not None and col.std.listed:
                meta = col.std.item_meta()
            elif col.uf is not None:
                meta = uf_meta(col.uf)
            else:
                continue
            meta["upperName"] = col.name
            out[col.camel] = meta
            if col.name == "CONTACT_ID":
                out.update(_MULTIPLE_BINDINGS["contacts"])
        if table.kind.observed:
            out.update(_MULTIPLE_BINDINGS["observers"])
        if table.kind.multifields:
            out["fm"] = _multiple("crm_multifield", "Multifields", "FM")
    return MethodResult({"fields": _renamed(out, _uf_names(table, params))})


def _item_id(params: dict[str, Any]) -> int:
    if params.get("id") in (None, ""):
        raise missing_parameter("id")
    return php_intval(params["id"]) if not isinstance(params["id"], list | dict) else 0


def _upper_fields(table: EntityTable, fields: dict[str, Any]) -> dict[str, Any]:
    """camelCase (or UPPER_CASE) field names of a write -> the stored names; unknown ones are dropped."""
    out = {}
    for name, value in fields.items():
        col = item_column(table, str(name))
        if col is not None:
            out[col.name] = value
    return out


def _written(table: EntityTable, rid: int) -> dict[str, Any]:
    cols = list(table.columns.values())
    return format_item(table, cols, [table.get_row(rid, cols)], False)[0]  # type: ignore[list-item]


@method("crm.item.add", "crm")
def item_add(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        table = _table(ctx, params)
        fields = _upper_fields(table, as_mapping(params.get("fields"), "fields", legacy=False))
        values, _multi = stored_fields(table, ctx, fields, creating=True)
        return MethodResult({"item": _written(table, save(table, ctx, values))})


@method("crm.item.update", "crm")
def item_update(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    rid = _item_id(params)
    with ctx.store.lock:
        table = _table(ctx, params)
        current = current_state(table, rid)
        if current is None:
            raise ApiError("NOT_FOUND", "Element not found")
        fields = _upper_fields(table, as_mapping(params.get("fields"), "fields", legacy=False))
        values, _multi = stored_fields(table, ctx, fields, creating=False)
        if "CATEGORY_ID" in fields:  # crm.item.update may move a record to another pipeline
            values["CATEGORY_ID"] = php_intval(fields["CATEGORY_ID"])
        save(table, ctx, values, rid, current)
        return MethodResult({"item": _written(table, rid)})


@method("crm.item.delete", "crm")
def item_delete(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    rid = _item_id(params)
    with ctx.store.lock:
        table = _table(ctx, params)
        if not table.exists(rid):
            raise ApiError("NOT_FOUND", "Element not found")
        table.delete(rid)
        ctx.cost.rows_scanned += 1
    return MethodResult([])
