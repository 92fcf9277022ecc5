"""A group of pages as Arrow tables: the root table with every column typed from the field plan (column by
column: `arrow_columns.py`), and one table per multiple field, so dlt writes them as they are (no row
normalizer, no JSONL round trip).

dlt (1.31) cannot take a nested table from a resource (its extract metrics need a resource on every table,
and a nested table may not have one), so a multiple field's table is a table of its own with the join columns
of dlt's nested tables (`_dlt_parent_id`, `_dlt_root_id`, `_dlt_list_idx`, `_dlt_id`). Its rows are replaced per
record like a nested table's: it is merged with `_dlt_root_id` as the merge key, and a record whose list is now
empty sends one marker row (`REPLACED` true, dlt's `hard_delete`) that deletes its old values and is never
stored. For that the root row's `_dlt_id` is stable: the record's id as text.

`tables` is pure; `entities.py` yields what it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .arrow_columns import ARROW_TYPE, DECIMAL, TEXT, per_value, typed_array, typed_column, typed_lists, value_array
from .fields import COLUMN_TYPE, CoercionReport, FieldPlan, FieldSpec

ROOT_KEY = "_dlt_root_id"
REPLACED = "_replaced"  # marks a record's empty list: its old values are deleted, the row itself is not stored
_MONEY_ITEM = {"value": TEXT, "amount": DECIMAL, "currency": TEXT}

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


Elements = tuple[pa.Array, dict[str, pa.Array]]  # a multiple field's elements: their record, their columns


@dataclass
class ArrowPage:
    root: pa.Table
    children: dict[str, pa.Table]  # a multiple field's code -> its rows (and markers) for the page's records


def tables(
    plan: FieldPlan,
    rows: Sequence[Mapping[str, Any]],
    report: CoercionReport,
    *,
    key: Sequence[str],
    load_id: str,
) -> ArrowPage:
    """`rows`: one group of pages as the portal sent them, typed here column by column (`arrow_columns.py`);
    what did not parse is counted in `report`. `key`: the record's id column(s); a row's `_dlt_id` is their
    text (joined by `:`)."""
    columns: dict[str, pa.Array] = {}
    elements: dict[str, Elements] = {}
    for code, values in _columns(rows).items():
        spec = plan.specs.get(code)
        if spec is not None and spec.multiple:
            fast = typed_lists(plan, code, values)
            if fast is None:
                typed = plan.coerce_column(code, values, report)
                fast = _flattened(spec, typed.pop(code))
                columns.update((name, value_array(plan, name, column)) for name, column in typed.items())
            elements[code] = fast
        elif spec is not None:
            columns.update(typed_column(plan, code, values, report))
        else:
            columns.update(per_value(plan, code, values, report))
    texts = [pc.cast(columns[name], TEXT) for name in key]
    ids = texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, ":")
    children = {key: _child(parts, ids, load_id) for key, parts in elements.items()}
    columns["_dlt_id"] = ids
    columns["_dlt_load_id"] = pa.array([load_id] * len(rows), TEXT)
    return ArrowPage(_table(columns, required=key), children)


def _table(columns: dict[str, pa.Array], required: Sequence[str]) -> pa.Table:
    """The table, its key columns declared not null as dlt's hints have them."""
    fields = [pa.field(name, array.type, nullable=name not in required) for name, array in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, Sequence[Any]]:
    """The group's values by key, in the order of its first row. Rows of one list call have the same keys in
    the same order, so the group is transposed in one pass; otherwise a missing key is None."""
    first = tuple(rows[0])
    if all(tuple(r) == first for r in rows):
        return dict(zip(first, zip(*(r.values() for r in rows), strict=True), strict=True))
    keys = dict.fromkeys(k for r in rows for k in r)
    return {key: [r.get(key) for r in rows] for key in keys}


def _flattened(spec: FieldSpec, lists: list[list[Any]]) -> Elements:
    """Typed lists (value by value) as their elements and the record each belongs to."""
    records = [record for record, items in enumerate(lists) for _ in items]
    flat = [item for items in lists for item in items]
    return pa.array(records, pa.int64()), _element_columns(spec, flat)


def _child(parts: Elements, ids: pa.Array, load_id: str) -> pa.Table:
    """One multiple field's table: a row per element in the record's order, a `REPLACED` marker per record
    without elements."""
    records, values = parts
    record_list = records.to_pylist()
    positions: list[int] = []
    last, position = -1, 0
    for record in record_list:
        position = position + 1 if record == last else 0
        positions.append(position)
        last = record
    listed = set(record_list)
    empty = [record for record in range(len(ids)) if record not in listed]
    marked = len(empty)
    table = pa.table(
        {
            **{name: pa.concat_arrays([array, pa.nulls(marked, array.type)]) for name, array in values.items()},
            "_record": pa.concat_arrays([records, pa.array(empty, pa.int64())]),
            "_dlt_list_idx": pa.array(positions + [-1] * marked, pa.int64()),
            REPLACED: pa.array([None] * len(positions) + [True] * marked, pa.bool_()),
        }
    ).sort_by([("_record", "ascending"), ("_dlt_list_idx", "ascending")])
    parent = ids.take(table["_record"])
    columns = {name: table[name].combine_chunks() for name in values}
    columns["_dlt_parent_id"] = parent
    columns["_dlt_list_idx"] = table["_dlt_list_idx"].combine_chunks()
    columns[ROOT_KEY] = parent
    columns["_dlt_id"] = pc.binary_join_element_wise(parent, pc.cast(columns["_dlt_list_idx"], TEXT), ".")
    columns["_dlt_load_id"] = pa.array([load_id] * len(parent), TEXT)
    columns[REPLACED] = table[REPLACED].combine_chunks()
    return _table(columns, required=(ROOT_KEY,))


def _element_columns(spec: FieldSpec, elements: list[Any]) -> dict[str, pa.Array]:
    """An element's columns as dlt's normalizer named them: `value` for a plain value; the keys of a
    multi-field entry ({ID, VALUE_TYPE, VALUE, TYPE_ID}) or a money entry ({value, amount, currency})."""
    if spec.kind == "money":
        return {k: pa.array([e.get(k) for e in elements], t) for k, t in _MONEY_ITEM.items()}
    if spec.kind != "multifield":
        return {"value": typed_array(spec.kind if spec.kind in ARROW_TYPE else "text", elements)}
    keys = list(dict.fromkeys(k for e in elements for k in e))
    return {key: typed_array("int" if key == "ID" else "text", [e.get(key) for e in elements]) for key in keys}


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
