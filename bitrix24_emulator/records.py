"""Reading and writing CRM records for the method handlers: select/order resolution, filters, formatting,
writes.

Shared by the legacy (`crm.deal.*`) and universal (`crm.item.*`) handlers, which differ only in names (UPPER
vs camelCase), value formats and error codes.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from . import deal_contacts, workflow
from .errors import ApiError
from .fieldmeta import MULTIFIELD_TYPES
from .filters import FilterColumn, FilterCompiler, FilterError
from .methods import MethodContext
from .store import Column, EntityTable
from .values import php_intval, store_uf_value, store_value


def upper_keys(params: dict[str, Any]) -> dict[str, Any]:
    """Legacy methods read top-level params case-insensitively (FILTER/filter, ID/id)."""
    return {str(k).upper(): v for k, v in params.items()}


def as_mapping(value: Any, param: str, legacy: bool = True) -> dict[str, Any]:
    """A PHP array parameter: dict as is, list as {index: item}, empty/absent as {}; else an error."""
    if value is None or value == "" or value == []:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    if legacy:
        raise ApiError("", f"Parameter '{param}' must be array.")
    raise ApiError("INVALID_ARG_VALUE", f"Invalid value of parameter '{param}'")


def as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return value
    return [value]


# ---- filters
# ---------------------------------------------------------------------------------------------------


def legacy_filter(table: EntityTable, ctx: MethodContext, flt: dict[str, Any]) -> tuple[str, list[Any]]:
    """Legacy lists: exact (case-sensitive) field names, unknown keys dropped, no OR groups."""
    multi = set(table.kind.multifields)

    def resolve(name: str) -> FilterColumn | None:
        col = table.columns.get(name)
        if col is not None:
            return col.filter_column()
        if name in multi:
            return FilterColumn("", "crm_multifield", "text", multifield=name, entity=table.kind.type_name)
        return None

    try:
        return FilterCompiler(resolve, ctx.store.tf, strict=False, allow_logic=False).compile(flt)
    except FilterError as exc:
        raise ApiError("", "Failed to get list. General error.") from exc


def item_column(table: EntityTable, name: str) -> Column | None:
    """crm.item.* field names: camelCase, or a field's UPPER_CASE name, which the server keeps as is (core-src
    `OrmObject::convertFieldNameFromCamelCaseToUpperCase`; b24pysdk's fast list sends `order[ID]`).
    """
    return table.by_camel.get(name) or table.columns.get(name)


def item_filter(table: EntityTable, ctx: MethodContext, flt: dict[str, Any]) -> tuple[str, list[Any]]:
    """crm.item.list: camelCase (or UPPER_CASE) names, nested logic groups, unknown fields rejected."""

    def resolve(name: str) -> FilterColumn | None:
        col = item_column(table, name)
        return col.filter_column() if col is not None else None

    try:
        return FilterCompiler(resolve, ctx.store.tf, strict=True, allow_logic=True).compile(flt)
    except FilterError as exc:
        if exc.kind == "unknown":
            raise ApiError(
                "INVALID_ARG_VALUE", f"Invalid filter: field '{exc.field}' is not allowed in filter"
            ) from exc
        raise ApiError("INVALID_ARG_VALUE", f"Invalid filter: field '{exc.field}' has invalid value") from exc


# ---- order
# -----------------------------------------------------------------------------------------------------


def _stage_sort(col: Column) -> Column:
    """order[STAGE_ID] sorts deals by the stage's position in its pipeline, not alphabetically (core-src)."""
    expr = '(SELECT s.SORT FROM status s WHERE s.STATUS_ID = "t"."STAGE_ID" AND s.ENTITY_ID LIKE \'DEAL_STAGE%\')'
    return _ExprColumn(col, expr)


class _ExprColumn(Column):
    def __init__(self, base: Column, expr: str):
        super().__init__(
            base.name,
            base.camel,
            base.type,
            base.storage,
            base.multiple,
            base.std,
            base.uf,
            base.legacy,
            base.item,
        )
        self._expr = expr

    @property
    def sql(self) -> str:
        return self._expr


def legacy_order(table: EntityTable, order: dict[str, Any]) -> list[tuple[Column, str]]:
    out = []
    for name, direction in order.items():
        col = table.columns.get(str(name))
        if col is None or col.multiple:
            continue
        if table.kind.key == "deal" and col.name == "STAGE_ID":
            col = _stage_sort(col)
        out.append((col, "DESC" if str(direction).upper() == "DESC" else "ASC"))
    return out


def item_order(table: EntityTable, order: dict[str, Any]) -> list[tuple[Column, str]]:
    out = []
    for name, direction in order.items():
        col = item_column(table, str(name))
        if col is None:
            raise ApiError("INVALID_ARG_VALUE", f"Invalid order: field '{name}' is not allowed in order")
        d = str(direction).upper()
        if d not in ("ASC", "DESC"):
            raise ApiError(
                "INVALID_ARG_VALUE",
                f"Invalid order: allowed sort directions are ASC, DESC. But got '{direction}' for field '{name}'",
            )
        out.append((col, d))
    return out


# ---- select
# ----------------------------------------------------------------------------------------------------


def legacy_select(table: EntityTable, select: list[Any]) -> tuple[list[Column], list[str]]:
    """(columns in field order, multifield types). '*' = standard fields, 'UF_*' = user fields, names as
    given; multifields only by name; unknown names ignored; default '*' + 'UF_*'.
    """
    names = [str(s) for s in select] or ["*", "UF_*"]
    wanted: set[str] = set()
    for n in names:
        if n == "*":
            wanted.update(c.name for c in table.columns.values() if c.std is not None)
        elif n == "UF_*":
            wanted.update(c.name for c in table.columns.values() if c.uf is not None)
        elif n in table.columns:
            wanted.add(n)
    multi = [m for m in table.kind.multifields if m in names]
    return [c for c in table.columns.values() if c.name in wanted], multi


def item_select(table: EntityTable, select: list[Any]) -> tuple[list[Column], bool, set[str] | None]:
    """(columns to read, with fm, names to output or None for all). Default and '*': every field incl.
    ufCrm*, `entityTypeId`, plus `fm` where multifields exist. Otherwise only the fields named (camelCase or
    UPPER_CASE; 'UF_*' = every user field) come back, not even `id` unless asked for: core-src
    `Item::getJsonForItems` intersects each item with the select.
    """
    names = {str(s) for s in select} or {"*"}
    if "*" in names:
        listed = [c for c in table.columns.values() if c.std is None or c.std.listed]
        return listed, bool(table.kind.multifields), None
    every_uf = "UF_*" in names
    if "contactIds" in names:
        names.add("contactId")
    cols = [
        c
        for c in table.columns.values()
        if (c.std is None or c.std.listed) and (c.camel in names or c.name in names or (every_uf and c.uf is not None))
    ]
    keep = {c.camel for c in cols if c.camel in names or c.name in names or c.uf is not None}
    keep |= names & {"contactIds", "observers", "entityTypeId"}
    if "contactId" not in select and "CONTACT_ID" not in select:
        keep.discard("contactId")
    return cols, False, keep


# ---- formatting
# ------------------------------------------------------------------------------------------------


def format_legacy(
    table: EntityTable,
    cols: list[Column],
    rows: Iterable[tuple[Any, ...]],
    multi: list[str],
    empty_uf: Any = None,
) -> list[dict[str, Any]]:
    rows = list(rows)
    fmts = [(c.name, c.legacy, c.uf is not None) for c in cols]
    mf = table.multifields([r[0] for r in rows], multi) if multi else {}
    out = []
    for row in rows:
        rid = row[0]
        rec = {}
        for (name, fmt, is_uf), v in zip(fmts, row[1:], strict=True):
            rec[name] = empty_uf if (is_uf and v is None) else fmt(v, rid)
        if multi:
            per = mf.get(rid, {})
            for t in multi:
                if t in per:
                    rec[t] = [{"ID": str(mid), "VALUE_TYPE": vt, "VALUE": val, "TYPE_ID": t} for mid, vt, val in per[t]]
        out.append(rec)
    return out


def format_item(
    table: EntityTable,
    cols: list[Column],
    rows: Iterable[tuple[Any, ...]],
    with_fm: bool,
    keep: set[str] | None = None,
) -> list[dict[str, Any]]:
    rows = list(rows)
    fmts = [(c.camel, c.item) for c in cols]
    mf = table.multifields([r[0] for r in rows], list(MULTIFIELD_TYPES)) if with_fm else {}
    with_contacts = "CONTACT_ID" in table.columns and (keep is None or "contactIds" in keep)
    bound = (
        deal_contacts.bindings(table.store.conn, [r[0] for r in rows])
        if with_contacts and table.kind.key == "deal"
        else None
    )
    out = []
    for row in rows:
        rid = row[0]
        rec = {name: fmt(v, rid) for (name, fmt), v in zip(fmts, row[1:], strict=True)}
        if bound is not None:
            rec["contactIds"] = [b["CONTACT_ID"] for b in bound.get(rid, [])]
        elif with_contacts:  # one contact per record outside deals: the list holds the contactId link
            rec["contactIds"] = [rec["contactId"]] if rec.get("contactId") else []
        if table.kind.observed:
            rec["observers"] = []  # the emulator keeps no observers
        if with_fm:
            rec["fm"] = [
                {"id": mid, "valueType": vt, "value": val, "typeId": t}
                for t, items in mf.get(rid, {}).items()
                for mid, vt, val in items
            ]
            rec["fm"].sort(key=lambda m: m["id"])
        rec["entityTypeId"] = table.kind.type_id
        out.append(rec if keep is None else {k: v for k, v in rec.items() if k in keep})
    return out


# ---- writes
# ----------------------------------------------------------------------------------------------------


def stored_fields(
    table: EntityTable, ctx: MethodContext, fields: dict[str, Any], *, creating: bool
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """Client fields -> (column values, multifield changes); read-only fields and unknown names are skipped,
    immutable ones only accepted when creating.
    """
    values: dict[str, Any] = {}
    multi: dict[str, list[dict[str, Any]]] = {}
    tf = ctx.store.tf
    for name, value in fields.items():
        name = str(name)
        if name in table.kind.multifields:
            # a list, a PHP-style {"0": {...}, "1": {...}} map, or one {"VALUE": ...} object
            multi[name] = [value] if isinstance(value, dict) and "VALUE" in value else as_list(value)
            continue
        col = table.columns.get(name)
        if col is None:
            continue
        if col.uf is not None and col.uf.user_type == "file":
            values[name] = _file_ids(value, col.multiple)
        elif col.uf is not None:
            values[name] = store_uf_value(col.uf.value_storage, col.multiple, value, tf)
        elif col.std is not None and col.std.type == "file":
            continue  # PHOTO / LOGO uploads are not emulated
        elif col.std is not None and not col.std.read_only and (creating or not col.std.immutable):
            values[name] = store_value(col.storage, value, tf)
    return values, multi


def _file_ids(value: Any, multiple: bool) -> Any:
    """Uploads (`{"fileData": [name, base64]}`) get an id derived from their content; ids stay as given."""
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if isinstance(item, dict) and "fileData" in item:
            ids.append(zlib.crc32(json.dumps(item["fileData"], sort_keys=True).encode()) % 10_000_000 + 100_000)
        elif isinstance(item, dict) and item.get("id"):
            ids.append(php_intval(item["id"]))
        elif item not in (None, "", [], {}) and not isinstance(item, dict | list):
            ids.append(php_intval(item))
    if not ids:
        return None
    return json.dumps(ids) if multiple else ids[0]


# ---- the write path both dialects share
# ---------------------------------------------------------------------------------------------------

_STATE_COLUMNS = ("CATEGORY_ID", "STAGE_ID", "STATUS_ID")
_NO_FLAGS = ("HAS_PHONE", "HAS_EMAIL", "HAS_IMOL", "IS_RECURRING", "IS_RETURN_CUSTOMER", "IS_REPEATED_APPROACH",
             "EXPORT", "IS_MY_COMPANY")  # fmt: skip


def current_state(table: EntityTable, rid: int) -> dict[str, Any] | None:
    """A record's pipeline and stage before a write (None: no such record)."""
    names = [c for c in _STATE_COLUMNS if c in table.columns]
    row = table.get_row(rid, [table.columns[c] for c in names])
    return None if row is None else dict(zip(names, row[1:], strict=True))


def save(
    table: EntityTable,
    ctx: MethodContext,
    values: dict[str, Any],
    rid: int | None = None,
    current: dict[str, Any] | None = None,
) -> int:
    """Insert (`rid` None, with a new record's defaults) or update a record: stamps the change, keeps the stage
    in its pipeline and writes the stage history (`workflow`), keeps a deal's contact bindings."""
    now = int(ctx.clock.now_seconds().timestamp())
    conn = ctx.store.conn
    if rid is None:
        defaults: dict[str, Any] = {"OPENED": "Y", "ASSIGNED_BY_ID": ctx.user_id}
        if "CURRENCY_ID" in table.columns:
            defaults.update(CURRENCY_ID="RUB", OPPORTUNITY=0.0, IS_MANUAL_OPPORTUNITY="N")
        defaults.update({name: "N" for name in _NO_FLAGS})
        for name, value in defaults.items():
            if name in table.columns and values.get(name) is None:
                values[name] = value
        values.update(DATE_CREATE=now, CREATED_BY_ID=ctx.user_id)
    values.update(DATE_MODIFY=now, MODIFY_BY_ID=ctx.user_id)
    event = workflow.apply(table.kind, conn, values, current, now, ctx.user_id)
    if rid is None:
        rid = table.insert(values)
    else:
        table.update(rid, values)
    workflow.log(conn, table.kind, rid, event, now)
    if table.kind.type_id == 2 and "CONTACT_ID" in values:
        deal_contacts.bind(conn, rid, [(int(values["CONTACT_ID"] or 0), 10, True)])
    ctx.cost.rows_scanned += 1
    return rid
