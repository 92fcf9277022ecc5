"""crm.deal.* / crm.lead.* / crm.contact.* / crm.company.*: the deprecated but still-working legacy CRM
methods.

Values are strings, `null` when empty (`""` for empty dates), multi-fields only when named in `select`, errors
`{"error": "", "error_description": "Not found"}` (HTTP 400). Filter keys are case-sensitive field names, as
in core-src (`$fieldsInfo[$fieldName]`): `>id` names no field and is dropped silently, like any unknown key.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ApiError
from ..fieldmeta import ENTITIES, MULTIFIELD_TITLES, UF_NAME_RE, UF_STORAGE, default_settings, multiple_meta
from ..records import (
    as_list,
    as_mapping,
    current_state,
    format_legacy,
    legacy_filter,
    legacy_order,
    legacy_select,
    save,
    stored_fields,
    upper_keys,
)
from ..store import EntityTable, UserField
from ..values import php_intval
from . import MethodContext, MethodResult, method

LEGACY = [k for k, e in ENTITIES.items() if e.legacy]


def _table(ctx: MethodContext, key: str) -> EntityTable:
    return ctx.store.table(key)


def _id(p: dict[str, Any]) -> int:
    rid = php_intval(p.get("ID", 0)) if not isinstance(p.get("ID"), list | dict) else 0
    if rid <= 0:
        raise ApiError("", "ID is not defined or invalid.")
    return rid


# ---- reads
# -----------------------------------------------------------------------------------------------------


def list_records(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    flt = as_mapping(p.get("FILTER"), "filter")
    order = as_mapping(p.get("ORDER"), "order")
    start = php_intval(p.get("START", 0)) if not isinstance(p.get("START"), list | dict) else 0
    with ctx.store.lock:
        table = _table(ctx, key)
        cols, multi = legacy_select(table, as_list(p.get("SELECT")))
        where, args = legacy_filter(table, ctx, flt)
        rows, total, nxt = table.page(cols, where, args, legacy_order(table, order), start, ctx.cost)
        items = format_legacy(table, cols, rows, multi)
    # start=-1: no COUNT; the documented response still carries "total": 0 and no next.
    return MethodResult(items, total=total if total is not None else 0, next=nxt)


def get_record(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    rid = _id(upper_keys(params))
    with ctx.store.lock:
        table = _table(ctx, key)
        cols = list(table.columns.values())
        row = table.get_row(rid, cols)
        if row is None:
            raise ApiError("", "Not found")
        ctx.cost.rows_scanned += 1
        ctx.cost.rows_returned += 1
        # get returns multi-fields that have values, and "" for empty user fields (core-src innerGet).
        rec = format_legacy(table, cols, [row], list(table.kind.multifields), empty_uf="")[0]
    return MethodResult(rec)


# ---- writes
# ----------------------------------------------------------------------------------------------------


def add_record(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    fields = as_mapping(upper_keys(params).get("FIELDS"), "fields")
    with ctx.store.lock:
        table = _table(ctx, key)
        values, multi = stored_fields(table, ctx, fields, creating=True)
        rid = save(table, ctx, values)
        for type_id, changes in multi.items():
            table.write_multifields(rid, type_id, changes)
    return MethodResult(rid)


def update_record(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    rid = _id(p)
    fields = as_mapping(p.get("FIELDS"), "fields")
    with ctx.store.lock:
        table = _table(ctx, key)
        current = current_state(table, rid)
        if current is None:
            raise ApiError("", "Not found")
        values, multi = stored_fields(table, ctx, fields, creating=False)
        values.pop("CATEGORY_ID", None)
        save(table, ctx, values, rid, current)
        for type_id, changes in multi.items():
            table.write_multifields(rid, type_id, changes)
    return MethodResult(True)


def delete_record(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    rid = _id(upper_keys(params))
    with ctx.store.lock:
        table = _table(ctx, key)
        if not table.exists(rid):
            raise ApiError("", "Not found")
        table.delete(rid)
        ctx.cost.rows_scanned += 1
    return MethodResult(True)


# ---- metadata ----------------------------------------------------------------------------------------------


def uf_label(uf: UserField, kind: str, lang: str = "en") -> str:
    labels = uf.labels.get(lang) or uf.labels.get("en") or next(iter(uf.labels.values()), {})
    return labels.get(kind, "") if labels else ""


def uf_meta(uf: UserField) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "type": uf.user_type,
        "isRequired": uf.mandatory,
        "isReadOnly": False,
        "isImmutable": False,
        "isMultiple": uf.multiple,
        "isDynamic": True,
        "title": uf.name,
        "listLabel": uf_label(uf, "list"),
        "formLabel": uf_label(uf, "edit"),
        "filterLabel": uf_label(uf, "filter"),
        "settings": uf.settings,
    }
    if uf.user_type == "enumeration":
        meta["items"] = [{"ID": str(i["ID"]), "VALUE": i["VALUE"]} for i in uf.items]
    return meta


# Multiple-binding fields that `fields` describes but the legacy lists neither select nor filter (docs
# crm-deal-fields.md, crm-lead-fields.md, crm-contact-fields.md, crm-company-fields.md): entity -> anchor field
# -> (name, type, title), listed right after the anchor.
_BINDINGS = {
    "deal": {"CONTACT_ID": ("CONTACT_IDS", "crm_contact", "Contacts")},
    "lead": {"CONTACT_ID": ("CONTACT_IDS", "crm_contact", "CONTACT_IDS")},
    "contact": {"COMPANY_ID": ("COMPANY_IDS", "crm_company", "COMPANY_IDS")},
    "company": {"DATE_MODIFY": ("CONTACT_ID", "crm_contact", "Contact")},
}


def fields_meta(table: EntityTable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bindings = _BINDINGS.get(table.kind.key, {})
    for f in table.kind.fields:
        if not f.listed:
            continue
        out[f.name] = f.meta()
        if f.name in bindings:
            name, type_, title = bindings[f.name]
            out[name] = multiple_meta(type_, title)
    for m in table.kind.multifields:
        out[m] = multiple_meta("crm_multifield", MULTIFIELD_TITLES[m])
    for uf in table.userfields:
        out[uf.name] = uf_meta(uf)
    return out


def fields(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        return MethodResult(fields_meta(_table(ctx, key)))


def _uf_row(uf: UserField, lang: str | None) -> dict[str, Any]:
    def label(kind: str) -> Any:
        if lang:
            return uf_label(uf, kind, lang)
        return {code: texts.get(kind, "") for code, texts in uf.labels.items()}

    row: dict[str, Any] = {
        "ID": str(uf.id),
        "ENTITY_ID": uf.entity_id,
        "FIELD_NAME": uf.name,
        "USER_TYPE_ID": uf.user_type,
        "XML_ID": uf.xml_id,
        "SORT": str(uf.sort),
        "MULTIPLE": "Y" if uf.multiple else "N",
        "MANDATORY": "Y" if uf.mandatory else "N",
        "SHOW_FILTER": uf.show_filter,
        "SHOW_IN_LIST": uf.show_in_list,
        "EDIT_IN_LIST": uf.edit_in_list,
        "IS_SEARCHABLE": uf.is_searchable,
        "SETTINGS": uf.settings,
        "EDIT_FORM_LABEL": label("edit"),
        "LIST_COLUMN_LABEL": label("list"),
        "LIST_FILTER_LABEL": label("filter"),
        "ERROR_MESSAGE": None,
        "HELP_MESSAGE": None,
    }
    if uf.user_type == "enumeration":
        row["LIST"] = [
            {
                "ID": str(i["ID"]),
                "SORT": str(i["SORT"]),
                "VALUE": i["VALUE"],
                "DEF": i["DEF"],
                "XML_ID": i["XML_ID"],
            }
            for i in uf.items
        ]
    return row


def userfield_list(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Labels: with filter LANG a string in that language, without it an object per language."""
    p = upper_keys(params)
    flt = {str(k).upper(): v for k, v in as_mapping(p.get("FILTER"), "filter").items()}
    order = as_mapping(p.get("ORDER"), "order") or {"SORT": "ASC", "ID": "ASC"}
    lang = flt.pop("LANG", None)
    with ctx.store.lock:
        rows = [_uf_row(uf, str(lang) if lang else None) for uf in _table(ctx, key).userfields]
    rows = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in flt.items() if k in r)]
    for name, direction in reversed(list(order.items())):
        name = str(name).upper()
        numeric = name in ("ID", "SORT")
        rows.sort(
            key=lambda r, n=name, num=numeric: int(r[n]) if num else str(r.get(n) or ""),
            reverse=str(direction).upper() == "DESC",
        )
    return MethodResult(rows)


_LABEL_KEYS = {"EDIT_FORM_LABEL": "edit", "LIST_COLUMN_LABEL": "list", "LIST_FILTER_LABEL": "filter"}


def userfield_add(key: str, ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    f = {str(k).upper(): v for k, v in as_mapping(p.get("FIELDS"), "fields").items()}
    raw = str(f.get("FIELD_NAME") or "").strip().upper()
    user_type = str(f.get("USER_TYPE_ID") or "").strip()
    if not raw:
        raise ApiError("", "FIELD_NAME is not defined.")
    if not user_type:
        raise ApiError("", "USER_TYPE_ID is not defined.")
    if user_type not in UF_STORAGE:
        raise ApiError("", f"User type '{user_type}' is not supported.")
    with ctx.store.lock:
        table = _table(ctx, key)
        name = raw if raw.startswith(table.kind.uf_prefix) else table.kind.uf_prefix + raw
        if not UF_NAME_RE.match(name) or len(name) > 50:
            raise ApiError("", "Invalid field name.")
        if name in table.columns:
            raise ApiError("", f"Field '{name}' already exists.")
        labels: dict[str, dict[str, str]] = {}
        base = f.get("LABEL")
        for field_key, kind in _LABEL_KEYS.items():
            val = f.get(field_key, base)
            if isinstance(val, dict):
                for lang, text in val.items():
                    labels.setdefault(str(lang), {})[kind] = str(text)
            elif val:
                labels.setdefault("en", {})[kind] = str(val)
        settings = default_settings(user_type)
        if isinstance(f.get("SETTINGS"), dict):
            settings.update(f["SETTINGS"])
        items = [
            {
                "VALUE": str(i.get("VALUE", "")),
                "SORT": php_intval(i.get("SORT", (n + 1) * 10)),
                "DEF": str(i.get("DEF", "N")),
                "XML_ID": i.get("XML_ID"),
            }
            for n, i in enumerate(as_list(f.get("LIST")))
            if isinstance(i, dict)
        ]
        uf = UserField(
            0,
            table.kind.uf_entity,
            name,
            user_type,
            str(f.get("MULTIPLE", "N")).upper() == "Y",
            str(f.get("MANDATORY", "N")).upper() == "Y",
            php_intval(f.get("SORT", 100)),
            f.get("XML_ID"),
            settings,
            labels,
            items=items,
        )
        for attr, key_ in (
            ("show_filter", "SHOW_FILTER"),
            ("show_in_list", "SHOW_IN_LIST"),
            ("edit_in_list", "EDIT_IN_LIST"),
            ("is_searchable", "IS_SEARCHABLE"),
        ):
            if f.get(key_):
                setattr(uf, attr, str(f[key_]))
        table.add_userfield(uf)
    return MethodResult(uf.id)


# ---- registration ------------------------------------------------------------------------------------------

_ACTIONS = {
    "list": list_records,
    "get": get_record,
    "add": add_record,
    "update": update_record,
    "delete": delete_record,
    "fields": fields,
    "userfield.list": userfield_list,
    "userfield.add": userfield_add,
}


def _register() -> None:
    for key in LEGACY:
        for action, fn in _ACTIONS.items():

            def handler(ctx: MethodContext, params: dict[str, Any], fn: Any = fn, key: str = key) -> MethodResult:
                return fn(key, ctx, params)

            handler.__name__ = f"crm_{key}_{re.sub(r'[^a-z]', '_', action)}"
            method(f"crm.{key}.{action}", "crm")(handler)


_register()
