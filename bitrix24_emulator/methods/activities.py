"""crm.activity.list / fields / add / update / delete and crm.activity.todo.add (docs
crm/timeline/activities/activity-base/*.md, crm/timeline/activities/todo/crm-activity-todo-add.md).

Legacy style: string values, `null` when empty, unknown filter keys dropped, 50 a page ordered by START_TIME
unless told. `COMMUNICATIONS` only when named in `select`. LAST_UPDATED changes on every write (read-only).
To-dos are activities with PROVIDER_ID `CRM_TODO` (there is no list method of their own).
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError
from ..flat_lists import FlatList
from ..records import as_list, as_mapping, upper_keys
from ..values import php_intval
from . import MethodContext, MethodResult, method

_TEXT, _INT, _TIME = "text", "int", "datetime"
_FIELDS: dict[str, tuple[str, str, str]] = {  # name -> (storage, Bitrix type, title)
    "ID": (_INT, "integer", "ID"),
    "OWNER_ID": (_INT, "integer", "Owner ID"),
    "OWNER_TYPE_ID": (_INT, "integer", "Owner type ID"),
    "TYPE_ID": (_INT, "crm_enum_activitytype", "Type"),
    "PROVIDER_ID": (_TEXT, "string", "Provider ID"),
    "PROVIDER_TYPE_ID": (_TEXT, "string", "Provider type ID"),
    "SUBJECT": (_TEXT, "string", "Subject"),
    "CREATED": (_TIME, "datetime", "Created on"),
    "LAST_UPDATED": (_TIME, "datetime", "Last Updated Date"),
    "START_TIME": (_TIME, "datetime", "Start time"),
    "END_TIME": (_TIME, "datetime", "End time"),
    "DEADLINE": (_TIME, "datetime", "Deadline"),
    "COMPLETED": (_TEXT, "char", "Completed"),
    "STATUS": (_INT, "crm_enum_activitystatus", "Status"),
    "RESPONSIBLE_ID": (_INT, "user", "Responsible person"),
    "PRIORITY": (_INT, "crm_enum_activitypriority", "Priority"),
    "DESCRIPTION": (_TEXT, "string", "Description"),
    "DIRECTION": (_INT, "crm_enum_activitydirection", "Direction"),
    "AUTHOR_ID": (_INT, "user", "Created by"),
    "EDITOR_ID": (_INT, "user", "Modified by"),
}
_READ_ONLY = {"ID", "CREATED", "LAST_UPDATED", "AUTHOR_ID", "EDITOR_ID"}
LISTING = FlatList(
    "activity",
    {name: (name, storage) for name, (storage, _t, _n) in _FIELDS.items()},
    default_order='"START_TIME" ASC, "ID" ASC',
    strict=False,
    error_code="",
)


def communications(conn: Any, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    rows = conn.execute(
        "SELECT ID, ACTIVITY_ID, TYPE, VALUE, ENTITY_TYPE_ID, ENTITY_ID FROM activity_communication "
        f"WHERE ACTIVITY_ID IN ({','.join('?' * len(ids))}) ORDER BY ID",
        ids,
    )
    for cid, aid, kind, value, etype, eid in rows:
        out.setdefault(aid, []).append(
            {
                "ID": str(cid),
                "TYPE": kind,
                "VALUE": value,
                "ENTITY_ID": str(eid),
                "ENTITY_TYPE_ID": str(etype),
                "ENTITY_SETTINGS": [],
            }
        )
    return out


@method("crm.activity.list", "crm")
def activity_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    start = php_intval(p.get("START", 0)) if not isinstance(p.get("START"), list | dict) else 0
    select = {str(s) for s in as_list(p.get("SELECT"))}
    with ctx.store.lock:
        rows, total, nxt = LISTING.page(
            ctx, as_mapping(p.get("FILTER"), "filter"), as_mapping(p.get("ORDER"), "order"), start
        )
        comms = communications(ctx.store.conn, [r["ID"] for r in rows]) if "COMMUNICATIONS" in select else {}
        items = []
        for row in rows:
            item = LISTING.strings(row, ctx.store.tf)
            if select - {"*", "COMMUNICATIONS"}:
                item = {k: v for k, v in item.items() if k in select or k == "ID"}
            if "COMMUNICATIONS" in select:
                item["COMMUNICATIONS"] = comms.get(row["ID"], [])
            items.append(item)
    return MethodResult(items, total=total if total is not None else 0, next=nxt)


@method("crm.activity.fields", "crm")
def activity_fields(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    out: dict[str, Any] = {}
    for name, (_s, kind, title) in _FIELDS.items():
        out[name] = {
            "type": kind,
            "isRequired": name in ("OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID", "SUBJECT"),
            "isReadOnly": name in _READ_ONLY,
            "isImmutable": False,
            "isMultiple": False,
            "isDynamic": False,
            "title": title,
        }
    out["COMMUNICATIONS"] = {
        "type": "crm_activity_communication",
        "isRequired": True,
        "isReadOnly": False,
        "isImmutable": False,
        "isMultiple": True,
        "isDynamic": False,
        "title": "Communication Channel",
    }
    return MethodResult(out)


def _stored(ctx: MethodContext, fields: dict[str, Any]) -> dict[str, Any]:
    tf = ctx.store.tf
    values: dict[str, Any] = {}
    for name, value in fields.items():
        name = str(name).upper()
        if name not in _FIELDS or name in _READ_ONLY:
            continue
        storage = _FIELDS[name][0]
        if storage == _TIME:
            values[name] = tf.to_ts(value) if value not in (None, "") else None
        elif storage == _INT:
            values[name] = php_intval(value)
        else:
            values[name] = "" if value is None else str(value)
    return values


def insert_activity(conn: Any, values: dict[str, Any], comms: list[dict[str, Any]]) -> int:
    names = list(values)
    cur = conn.execute(
        f"INSERT INTO activity ({', '.join(names)}) VALUES ({','.join('?' * len(names))})", [values[n] for n in names]
    )
    aid = int(cur.lastrowid or 0)
    conn.executemany(
        "INSERT INTO activity_communication (ACTIVITY_ID, TYPE, VALUE, ENTITY_TYPE_ID, ENTITY_ID) VALUES (?,?,?,?,?)",
        [
            (
                aid,
                str(c.get("TYPE") or "PHONE"),
                str(c.get("VALUE") or ""),
                php_intval(c.get("ENTITY_TYPE_ID") or values["OWNER_TYPE_ID"]),
                php_intval(c.get("ENTITY_ID") or values["OWNER_ID"]),
            )
            for c in comms
            if isinstance(c, dict)
        ],
    )
    return aid


def _add(ctx: MethodContext, values: dict[str, Any], comms: list[dict[str, Any]]) -> int:
    now = int(ctx.clock.now_seconds().timestamp())
    for name in ("OWNER_ID", "OWNER_TYPE_ID"):
        if not values.get(name):
            raise ApiError("", f"The field {name} is not defined or invalid.")
    owner = ctx.store.by_type_id(values["OWNER_TYPE_ID"])
    if owner is None or not owner.exists(values["OWNER_ID"]):
        raise ApiError("", "Could not find owner.")
    defaults = {
        "TYPE_ID": 6,
        "PROVIDER_ID": "CRM_REST",
        "SUBJECT": "",
        "COMPLETED": "N",
        "STATUS": 1,
        "PRIORITY": 2,
        "DIRECTION": 0,
        "RESPONSIBLE_ID": ctx.user_id,
        "START_TIME": now,
    }
    for name, value in defaults.items():
        if values.get(name) in (None, ""):
            values[name] = value
    values.update(CREATED=now, LAST_UPDATED=now, AUTHOR_ID=ctx.user_id, EDITOR_ID=ctx.user_id)
    return insert_activity(ctx.store.conn, values, comms)


@method("crm.activity.add", "crm")
def activity_add(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    fields = {str(k).upper(): v for k, v in as_mapping(upper_keys(params).get("FIELDS"), "fields").items()}
    with ctx.store.lock:
        return MethodResult(_add(ctx, _stored(ctx, fields), as_list(fields.get("COMMUNICATIONS"))))


@method("crm.activity.todo.add", "crm")
def todo_add(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    values = {
        "OWNER_TYPE_ID": php_intval(params.get("ownerTypeId")),
        "OWNER_ID": php_intval(params.get("ownerId")),
        "TYPE_ID": 6,
        "PROVIDER_ID": "CRM_TODO",
        "PROVIDER_TYPE_ID": "TODO",
        "SUBJECT": str(params.get("title") or ""),
        "DESCRIPTION": str(params.get("description") or ""),
        "DEADLINE": ctx.store.tf.to_ts(params.get("deadline")) if params.get("deadline") else None,
        "RESPONSIBLE_ID": php_intval(params.get("responsibleId")) or ctx.user_id,
    }
    with ctx.store.lock:
        return MethodResult({"id": _add(ctx, values, [])})


@method("crm.activity.update", "crm")
def activity_update(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    aid = php_intval(p.get("ID"))
    values = _stored(ctx, {str(k).upper(): v for k, v in as_mapping(p.get("FIELDS"), "fields").items()})
    values.pop("OWNER_ID", None)
    values.pop("OWNER_TYPE_ID", None)
    with ctx.store.lock:
        conn = ctx.store.conn
        if not conn.execute("SELECT 1 FROM activity WHERE ID = ?", (aid,)).fetchone():
            raise ApiError("", "Not found")
        values.update(LAST_UPDATED=int(ctx.clock.now_seconds().timestamp()), EDITOR_ID=ctx.user_id)
        conn.execute(
            f"UPDATE activity SET {', '.join(f'{n} = ?' for n in values)} WHERE ID = ?", [*values.values(), aid]
        )
    return MethodResult(True)


@method("crm.activity.delete", "crm")
def activity_delete(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    aid = php_intval(upper_keys(params).get("ID"))
    with ctx.store.lock:
        conn = ctx.store.conn
        if not conn.execute("SELECT 1 FROM activity WHERE ID = ?", (aid,)).fetchone():
            raise ApiError("", "Not found")
        conn.execute("DELETE FROM activity WHERE ID = ?", (aid,))
        conn.execute("DELETE FROM activity_communication WHERE ACTIVITY_ID = ?", (aid,))
    return MethodResult(True)
