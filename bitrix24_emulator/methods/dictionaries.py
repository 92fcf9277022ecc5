"""Dictionaries the records refer to: crm.status.* (stages, statuses, sources, types), crm.category.list
(pipelines) and user.get. Built from the same tables the generator used, so every STAGE_ID / STATUS_ID /
SOURCE_ID in a record is listed here.
"""

from __future__ import annotations

import json
from typing import Any

from ..dictionaries_seed import DEAL_CATEGORIES, ENTITY_TYPES, SMART_INVOICE_CATEGORY, deal_stage_entity
from ..errors import ApiError, missing_parameter
from ..filters import FilterColumn, FilterCompiler, FilterError
from ..records import as_list, as_mapping, upper_keys
from ..store import PAGE
from ..values import php_intval
from . import MethodContext, MethodResult, method

_STATUS_COLUMNS = {
    "ID": "int",
    "ENTITY_ID": "text",
    "STATUS_ID": "text",
    "NAME": "text",
    "NAME_INIT": "text",
    "SORT": "int",
    "SYSTEM": "text",
    "CATEGORY_ID": "int",
    "COLOR": "text",
    "SEMANTICS": "text",
}
_EXTRA = {None: "process", "S": "success", "F": "failure"}


def _compile(ctx: MethodContext, columns: dict[str, str], flt: dict[str, Any]) -> tuple[str, list[Any]]:
    def resolve(name: str) -> FilterColumn | None:
        storage = columns.get(name.upper())
        return FilterColumn(f'"{name.upper()}"', "string", storage) if storage else None

    try:
        return FilterCompiler(resolve, ctx.store.tf, strict=False, allow_logic=False).compile(flt)
    except FilterError as exc:
        raise ApiError("", f"Invalid filter value for '{exc.field}'") from exc


def _order_sql(columns: dict[str, str], order: dict[str, Any], default: str) -> str:
    parts = [
        f'"{str(k).upper()}" {"DESC" if str(v).upper() == "DESC" else "ASC"}'
        for k, v in order.items()
        if str(k).upper() in columns
    ]
    return ", ".join(parts) or default


def _status_row(row: tuple[Any, ...]) -> dict[str, Any]:
    sid, entity, status, name, name_init, sort, system, category, color, semantics = row
    out: dict[str, Any] = {
        "ID": str(sid),
        "ENTITY_ID": entity,
        "STATUS_ID": status,
        "NAME": name,
        "NAME_INIT": name_init,
        "SORT": str(sort),
        "SYSTEM": system,
        "CATEGORY_ID": None if category is None else str(category),
        "COLOR": color,
        "SEMANTICS": semantics,
    }
    if color is not None:  # stages and lead statuses carry their semantics and colour in EXTRA
        extra = "apology" if status.split(":")[-1] == "APOLOGY" else _EXTRA.get(semantics, "process")
        out["EXTRA"] = {"SEMANTICS": extra, "COLOR": color}
    return out


@method("crm.status.list", "crm")
def status_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    with ctx.store.lock:
        where, args = _compile(ctx, _STATUS_COLUMNS, as_mapping(p.get("FILTER"), "filter"))
        order = _order_sql(_STATUS_COLUMNS, as_mapping(p.get("ORDER"), "order"), '"ENTITY_ID", "SORT", "ID"')
        rows = ctx.store.conn.execute(
            f"SELECT {', '.join(_STATUS_COLUMNS)} FROM status WHERE {where} ORDER BY {order}", args
        ).fetchall()
    ctx.cost.rows_scanned += len(rows)
    ctx.cost.rows_returned += len(rows)
    return MethodResult([_status_row(r) for r in rows], total=len(rows))


@method("crm.status.entity.types", "crm")
def status_entity_types(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    out: list[dict[str, Any]] = [dict(t) for t in ENTITY_TYPES]
    for cid, (name, _sort, stages) in DEAL_CATEGORIES.items():
        info = {
            "START_FIELD": stages[0].status_id,
            "FINAL_SUCCESS_FIELD": next(s.status_id for s in stages if s.semantics == "S"),
            "FINAL_UNSUCCESS_FIELD": next(s.status_id for s in stages if s.semantics == "F"),
            "FINAL_SORT": 0,
        }
        row: dict[str, Any] = {
            "ID": deal_stage_entity(cid),
            "NAME": f"Deal stages ({name})" if cid else "Deal stages",
            "SEMANTIC_INFO": info,
        }
        if cid:
            row.update(PARENT_ID="DEAL_STAGE", PREFIX=f"C{cid}", CATEGORY_ID=str(cid))
        row["ENTITY_TYPE_ID"] = 2
        out.append(row)
    out.append(
        {
            "ID": f"SMART_INVOICE_STAGE_{SMART_INVOICE_CATEGORY}",
            "NAME": "Invoice stages",
            "PREFIX": f"DT31_{SMART_INVOICE_CATEGORY}",
            "CATEGORY_ID": SMART_INVOICE_CATEGORY,
            "ENTITY_TYPE_ID": 31,
        }
    )
    return MethodResult(out)


@method("crm.status.entity.items", "crm")
def status_entity_items(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    entity = params.get("entityId") or upper_keys(params).get("ENTITYID")
    if not entity:
        raise ApiError("", "The parameter entityId is not defined or invalid.")
    with ctx.store.lock:
        rows = ctx.store.conn.execute(
            "SELECT NAME, SORT, STATUS_ID FROM status WHERE ENTITY_ID = ? ORDER BY SORT, ID", (str(entity),)
        ).fetchall()
    return MethodResult([{"NAME": n, "SORT": s, "STATUS_ID": sid} for n, s, sid in rows])


# Doc: api-reference/crm/universal/category/crm-category-list.md (errors NOT_FOUND "Smart process not found",
# ENTITY_TYPE_NOT_SUPPORTED for types without pipelines; the default pipeline 0 has no originId/originatorId).
_NO_PIPELINES = {1: "LEAD", 7: "QUOTE"}


def _category(cid: int, name: str, sort: int, type_id: int, default: str) -> dict[str, Any]:
    category: dict[str, Any] = {"id": cid, "name": name, "sort": sort, "entityTypeId": type_id, "isDefault": default}
    if cid != 0:
        category.update(originId="", originatorId="")
    return category


@method("crm.category.list", "crm")
def category_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    raw = params.get("entityTypeId")
    if raw is None or raw == "":
        raise missing_parameter("entityTypeId")
    type_id = php_intval(raw) if not isinstance(raw, list | dict) else 0
    with ctx.store.lock:
        rows = ctx.store.conn.execute(
            "SELECT ID, NAME, SORT, IS_DEFAULT FROM category WHERE ENTITY_TYPE_ID = ? ORDER BY SORT, ID",
            (type_id,),
        ).fetchall()
    if not rows:
        defaults = {3: "Contacts", 4: "Companies"}
        if type_id in _NO_PIPELINES:
            raise ApiError("ENTITY_TYPE_NOT_SUPPORTED", f"Entity type {_NO_PIPELINES[type_id]} is not supported")
        if type_id not in defaults:
            raise ApiError("NOT_FOUND", "Smart process not found")
        rows = [(0, defaults[type_id], 500, "Y")]
    categories = [_category(cid, name, sort, type_id, default) for cid, name, sort, default in rows]
    return MethodResult({"categories": categories}, total=len(categories))


# ---- users
# ---------------------------------------------------------------------------------------------------

_USER_COLUMNS = {
    "ID": "int",
    "ACTIVE": "bool",
    "NAME": "text",
    "LAST_NAME": "text",
    "SECOND_NAME": "text",
    "EMAIL": "text",
    "WORK_POSITION": "text",
    "PERSONAL_GENDER": "text",
    "PERSONAL_MOBILE": "text",
    "PERSONAL_CITY": "text",
    "DATE_REGISTER": "datetime",
    "LAST_LOGIN": "datetime",
    "TIME_ZONE": "text",
}
_USER_FILTER_SKIP = {"FILTER", "SORT", "ORDER", "START", "ADMIN_MODE", "AUTH", "SELECT", "IMAGE_RESIZE"}


def _user_selected(user: dict[str, Any], select: list[Any]) -> dict[str, Any]:
    """Doc api-reference/user/user-get.md: `select` names fields, `*` = all, `UF_*` = user fields; unknown
    names are skipped without an error; no select = all fields."""
    names = {str(n) for n in select}
    if not names or "*" in names:
        return user
    return {k: v for k, v in user.items() if k in names or ("UF_*" in names and k.startswith("UF_"))}


@method("user.get", "user")
def user_get(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Filter fields either top-level (`{"ID": 5}`) or under FILTER; `sort`/`order`; pages of 50."""
    p = upper_keys(params)
    flt = {k: v for k, v in p.items() if k not in _USER_FILTER_SKIP}
    flt.update(as_mapping(p.get("FILTER"), "filter"))
    if "UF_DEPARTMENT" in flt:
        dept = flt.pop("UF_DEPARTMENT")
        flt["__DEPT"] = dept
    dept_filter = flt.pop("__DEPT", None)
    raw_start = p.get("START", 0)
    start = php_intval(raw_start) if not isinstance(raw_start, list | dict) else 0
    offset = max(0, (start // PAGE) * PAGE)
    order_dir = "DESC" if str(p.get("ORDER", "ASC")).upper() == "DESC" else "ASC"
    sort = str(p.get("SORT", "ID")).upper()
    sort = sort if sort in _USER_COLUMNS else "ID"
    with ctx.store.lock:
        where, args = _compile(ctx, _USER_COLUMNS, flt)
        if dept_filter not in (None, ""):
            where += " AND EXISTS (SELECT 1 FROM json_each(user.UF_DEPARTMENT) d WHERE d.value = ?)"
            args.append(php_intval(dept_filter))
        cols = ", ".join(f'"{c}"' for c in (*_USER_COLUMNS, "UF_DEPARTMENT"))
        rows = ctx.store.conn.execute(
            f'SELECT {cols} FROM user WHERE {where} ORDER BY "{sort}" {order_dir} LIMIT {PAGE} OFFSET {offset}',
            args,
        ).fetchall()
        total = ctx.store.conn.execute(f"SELECT COUNT(*) FROM user WHERE {where}", args).fetchone()[0]
    ctx.cost.rows_scanned += offset + len(rows)
    ctx.cost.rows_returned += len(rows)
    ctx.cost.counted += total
    tf = ctx.store.tf
    users = []
    for row in rows:
        rec = dict(zip((*_USER_COLUMNS, "UF_DEPARTMENT"), row, strict=True))
        users.append(
            {
                "ID": str(rec["ID"]),
                "XML_ID": None,
                "ACTIVE": bool(rec["ACTIVE"]),
                "NAME": rec["NAME"],
                "LAST_NAME": rec["LAST_NAME"],
                "SECOND_NAME": rec["SECOND_NAME"] or "",
                "EMAIL": rec["EMAIL"],
                "LAST_LOGIN": tf.datetime(rec["LAST_LOGIN"]) if rec["LAST_LOGIN"] else "",
                # both in the portal's wall clock without an offset, each in its own format (real responses),
                # and an empty PHP array when unset (docs user-get.md's example)
                "TIMESTAMP_X": tf.wall(rec["DATE_REGISTER"], "%d.%m.%Y %H:%M:%S") if rec["DATE_REGISTER"] else {},
                "LAST_ACTIVITY_DATE": tf.wall(rec["LAST_LOGIN"], "%Y-%m-%d %H:%M:%S") if rec["LAST_LOGIN"] else {},
                "DATE_REGISTER": tf.datetime(rec["DATE_REGISTER"]) if rec["DATE_REGISTER"] else "",
                "IS_ONLINE": "N",
                "TIME_ZONE": rec["TIME_ZONE"] or "",
                "PERSONAL_GENDER": rec["PERSONAL_GENDER"] or "",
                "PERSONAL_BIRTHDAY": "",
                "PERSONAL_MOBILE": rec["PERSONAL_MOBILE"] or "",
                "PERSONAL_CITY": rec["PERSONAL_CITY"] or "",
                "WORK_PHONE": "",
                "WORK_POSITION": rec["WORK_POSITION"] or "",
                "UF_EMPLOYMENT_DATE": "",
                "UF_DEPARTMENT": json.loads(rec["UF_DEPARTMENT"]),
                "USER_TYPE": "employee",
            }
        )
    users = [_user_selected(user, as_list(p.get("SELECT"))) for user in users]
    nxt = offset + PAGE if offset + PAGE < total else None
    return MethodResult(users, total=total, next=nxt)
