"""A page of typed rows as Arrow tables: the root table with every column typed from the field plan, and one
table per multiple field, so dlt writes them as they are (no row normalizer, no JSONL round trip).

dlt (1.31) cannot take a nested table from a resource (its extract metrics need a resource on every table,
and a nested table may not have one), so a multiple field's table is a table of its own with the join columns
of dlt's nested tables (`_dlt_parent_id`, `_dlt_root_id`, `_dlt_list_idx`, `_dlt_id`). Its rows are replaced per
record like a nested table's: it is merged with `_dlt_root_id` as the merge key, and a record whose list is now
empty sends one marker row (`REPLACED` true, dlt's `hard_delete`) that deletes its old values and is never
stored. For that the root row's `_dlt_id` is stable: the record's id.

`tables` is pure; `entities.py` yields what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from .fields import (
    AMOUNT_SUFFIX,
    COLUMN_TYPE,
    CURRENCY_SUFFIX,
    DECIMAL_PRECISION,
    DECIMAL_SCALE,
    RAW_SUFFIX,
    FieldPlan,
    FieldSpec,
)

ROOT_KEY = "_dlt_root_id"
REPLACED = "_replaced"  # marks a record's empty list: its old values are deleted, the row itself is not stored
_TEXT = pa.string()
_DECIMAL = pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
_ARROW_TYPE: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "link": pa.int64(),
    "enum": pa.int64(),
    "double": pa.float64(),
    "decimal": _DECIMAL,
    "bool": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "text": _TEXT,
    "json": _TEXT,  # JSON text; the column's hint says json
}
_MONEY_ITEM = {"value": _TEXT, "amount": _DECIMAL, "currency": _TEXT}
# dlt's own columns of a nested table, as its relational normalizer writes them
_CHILD_LINKS = {"_dlt_parent_id": _TEXT, "_dlt_list_idx": pa.int64(), ROOT_KEY: _TEXT, "_dlt_id": _TEXT}

CHILD_HINTS: dict[str, dict[str, Any]] = {
    REPLACED: {
        "data_type": "bool",
        "nullable": True,
        "hard_delete": True,
        "description": "never stored: marks a record whose list became empty",
    },
    ROOT_KEY: {"data_type": "text", "nullable": False, "merge_key": True},
}


class _JsonAsText(logging.Filter):
    """dlt warns, per page, that a column its hints call json arrived as Arrow text. That is how dlt itself hands
    json to Arrow (`get_py_arrow_datatype`), and the json hint is kept, so for the tables built here the warning
    says nothing; every other difference is left to warn (the only one these tables have: `tables` declares the
    key columns not null, as the hints do)."""

    def __init__(self) -> None:
        super().__init__()
        self.resources: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "when merging arrow schema with dlt schema" not in message:
            return True
        return not any(f"In resource: {name}," in message for name in self.resources)


_JSON_AS_TEXT = _JsonAsText()


def quiet_json_notice(resource: str) -> None:
    """Drop dlt's json-as-text warning for `resource` (whose json columns `tables` builds as JSON text)."""
    _JSON_AS_TEXT.resources.add(resource)
    dlt_log = logging.getLogger("dlt")
    if _JSON_AS_TEXT not in dlt_log.filters:
        dlt_log.addFilter(_JSON_AS_TEXT)


@dataclass
class ArrowPage:
    root: pa.Table
    children: dict[str, pa.Table]  # a multiple field's code -> its rows (and markers) for the page's records


def root_id(record_id: Any) -> str:
    """The stable `_dlt_id` of a record's root row (its child rows point at it)."""
    return str(record_id)


def tables(
    plan: FieldPlan,
    rows: Sequence[Mapping[str, Any]],
    *,
    id_field: str,
    load_id: str,
) -> ArrowPage:
    """`rows`: one page typed by `plan.coerce`."""
    ids = [root_id(r[id_field]) for r in rows]
    columns: dict[str, pa.Array] = {}
    children: dict[str, pa.Table] = {}
    for key in _keys(rows):
        spec = plan.specs.get(key)
        values = [r.get(key) for r in rows]
        if spec is not None and spec.multiple:
            children[key] = _child(spec, values, ids, load_id)
        else:
            columns[key] = _column(_type_of(plan, key), values)
    columns["_dlt_id"] = pa.array(ids, _TEXT)
    columns["_dlt_load_id"] = pa.array([load_id] * len(rows), _TEXT)
    return ArrowPage(_table(columns, required=id_field), children)


def _table(columns: dict[str, pa.Array], required: str) -> pa.Table:
    """The table, its key column declared not null as dlt's hints have it."""
    fields = [pa.field(name, array.type, nullable=name != required) for name, array in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def _keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The page's keys in the order of its first row (rows of one list call have the same keys, but a key
    the plan passes through is left out where it is empty)."""
    first = rows[0].keys()
    if all(r.keys() == first for r in rows):
        return list(first)
    return list(dict.fromkeys(k for r in rows for k in r))


def _type_of(plan: FieldPlan, key: str) -> pa.DataType | None:
    spec = plan.specs.get(key)
    if spec is not None:
        return _TEXT if spec.kind == "money" else _ARROW_TYPE[spec.kind]
    if key.endswith(RAW_SUFFIX):
        return _TEXT
    for suffix, kind in ((AMOUNT_SUFFIX, _DECIMAL), (CURRENCY_SUFFIX, _TEXT)):
        money = plan.specs.get(key[: -len(suffix)]) if key.endswith(suffix) else None
        if money is not None and money.kind == "money":
            return kind
    return None  # a key the metadata does not describe: typed by its values


def _column(kind: pa.DataType | None, values: list[Any]) -> pa.Array:
    if kind is None:
        return _untyped(values)
    if kind == _TEXT:
        values = [v if v is None or isinstance(v, str) else _text(v) for v in values]
    return pa.array(values, kind)


def _untyped(values: list[Any]) -> pa.Array:
    """A passed-through key (crm.item's `entityTypeId`, a contact's FACE_ID): numbers, booleans and text as
    they come, anything else as JSON text."""
    present = {type(v) for v in values if v is not None}
    if present <= {str} or present <= {int} or present <= {bool} or present <= {float, int}:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, OverflowError):
            pass
    return pa.array([None if v is None else _text(v) for v in values], _TEXT)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _child(spec: FieldSpec, lists: list[Any], ids: list[str], load_id: str) -> pa.Table:
    """One multiple field's table: a row per element, a `REPLACED` marker per record without elements."""
    parents: list[str] = []
    positions: list[int] = []
    elements: list[Any] = []
    markers: list[bool | None] = []
    for parent, items in zip(ids, lists, strict=True):
        if items:
            for position, item in enumerate(items):
                parents.append(parent)
                positions.append(position)
                elements.append(item)
                markers.append(None)
        else:
            parents.append(parent)
            positions.append(-1)
            elements.append(None)
            markers.append(True)
    columns = _element_columns(spec, elements)
    columns["_dlt_parent_id"] = pa.array(parents, _TEXT)
    columns["_dlt_list_idx"] = pa.array(positions, pa.int64())
    columns[ROOT_KEY] = columns["_dlt_parent_id"]
    columns["_dlt_id"] = pa.array([f"{p}.{i}" for p, i in zip(parents, positions, strict=True)], _TEXT)
    columns["_dlt_load_id"] = pa.array([load_id] * len(parents), _TEXT)
    columns[REPLACED] = pa.array(markers, pa.bool_())
    return _table(columns, required=ROOT_KEY)


def _element_columns(spec: FieldSpec, elements: list[Any]) -> dict[str, pa.Array]:
    """An element's columns as dlt's normalizer named them: `value` for a plain value; the keys of a
    multi-field entry ({ID, VALUE_TYPE, VALUE, TYPE_ID}) or a money entry ({value, amount, currency})."""
    if spec.kind == "money":
        return {k: pa.array([e and e.get(k) for e in elements], t) for k, t in _MONEY_ITEM.items()}
    if spec.kind != "multifield":
        return {"value": _column(_ARROW_TYPE.get(spec.kind, _TEXT), elements)}
    keys = list(dict.fromkeys(k for e in elements if e for k in e))
    return {
        key: _column(pa.int64() if key == "ID" else _TEXT, [e.get(key) if e else None for e in elements])
        for key in keys
    }


def child_columns(spec: FieldSpec, merged: bool = True) -> dict[str, dict[str, Any]]:
    """dlt hints of a multiple field's table: the element's type and label, the merge key, the marker (a
    plain column while the table is appended to: dlt applies `hard_delete` to merges only)."""
    described = {"description": spec.label} if spec.label else {}
    if spec.kind == "money":
        value = {
            "value": {"data_type": "text", **described},
            "amount": COLUMN_TYPE["decimal"],
            "currency": {"data_type": "text"},
        }
    elif spec.kind == "multifield":
        value = {"id": {"data_type": "bigint"}}
    else:
        value = {"value": {**COLUMN_TYPE[spec.kind], **described}}
    if not merged:
        return {**value, REPLACED: {"data_type": "bool", "nullable": True}}
    return {**value, **CHILD_HINTS}
