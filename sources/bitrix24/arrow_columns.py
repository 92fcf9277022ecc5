"""One field's values of a page as a typed Arrow column, converted column-wise.

Where every value of the column has a grammar that Arrow's cast and the field's converter (`fields.py`) read
alike (digits for an integer, `YYYY-MM-DDTHH:MM:SS+HH:MM` for a datetime, `Y`/`N` for a boolean, `300|EUR` for
money, lists of such values for a multiple field, ...), the column is one vectorized cast. Otherwise the whole
column goes value by value through `FieldPlan.coerce_column`, the converters themselves, so a value that does not
parse keeps its contract (NULL, its text in `<code>__raw`, counted) and the result never depends on which way was
taken (`tests/source/test_arrow_columns.py` types pages both ways and compares them). Keys the metadata does not
describe and a multiple money field always go value by value (they are few).

`typed_column` and `typed_lists` are pure: `arrow_pages.tables` calls them per column of a group of pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .fields import AMOUNT_SUFFIX, CURRENCY_SUFFIX, DECIMAL_PRECISION, DECIMAL_SCALE, CoercionReport, FieldPlan

TEXT = pa.string()
DECIMAL = pa.decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPE: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "link": pa.int64(),
    "enum": pa.int64(),
    "double": pa.float64(),
    "decimal": DECIMAL,
    "bool": pa.bool_(),
    "date": pa.date32(),
    "datetime": TIMESTAMP,
    "text": TEXT,
    "json": TEXT,  # JSON text; the column's hint says json
}
# What both readers accept alike. An integer fits int64; a decimal fits decimal(38, 9) exactly (no more than 9
# decimals: `to_decimal` refuses more even when they are zeros, where Arrow's cast would accept them).
_INTEGER = r"^-?[0-9]{1,18}$"
_DECIMAL = r"^-?[0-9]{1,29}(\.[0-9]{1,9})?$"
_DOUBLE = r"^-?[0-9]{1,300}(\.[0-9]+)?$"
_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-]([01][0-9]|2[0-3]):[0-5][0-9]$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_FLAG = r"^[YN01]$"
_MONEY = r"^-?[0-9]{1,29}(\.[0-9]{1,9})?\|[A-Z]{3}$"


def typed_column(plan: FieldPlan, key: str, values: Sequence[Any], report: CoercionReport) -> dict[str, pa.Array]:
    """The column(s) of one single-valued field: `{key: typed}`, plus `key__raw` where a value did not parse
    (money: its amount and currency columns too). The plan's kind decides; the values decide the way."""
    spec = plan.specs[key]
    if spec.kind == "json":  # the converter keeps any value: JSON text, or NULL for an empty one
        return {key: pa.array([None if _is_blank(v) else v if type(v) is str else as_text(v) for v in values], TEXT)}
    fast = _money(key, values) if spec.kind == "money" else _scalar(plan, key, values, report)
    return fast if fast is not None else per_value(plan, key, values, report)


def per_value(plan: FieldPlan, key: str, values: Sequence[Any], report: CoercionReport) -> dict[str, pa.Array]:
    """The column(s) of one key typed value by value by the converters (`FieldPlan.coerce_column`)."""
    return {name: value_array(plan, name, column) for name, column in plan.coerce_column(key, values, report).items()}


def typed_lists(plan: FieldPlan, key: str, values: Sequence[Any]) -> tuple[pa.Array, dict[str, pa.Array]] | None:
    """A multiple field's elements by Arrow's casts: the record of each element and the element's columns
    (`value`; a multi-field entry's keys), an empty element dropped as `FieldPlan` drops it (and a value that is
    not a list taken as a list of one); None where an element needs the converter (money entries always)."""
    spec = plan.specs[key]
    if spec.kind != "multifield" and (spec.kind not in ARROW_TYPE or spec.kind == "json"):
        return None
    array = _inferred([v if type(v) is list else [] if _is_blank(v) else [v] for v in values])
    if array is None or not pa.types.is_list(array.type):
        return None
    try:
        flat = array.flatten()
        typed = _entries(flat) if spec.kind == "multifield" else _cast(spec.kind, flat, plan.offset_now)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    if typed is None:
        return None
    kept = pc.is_valid(flat if spec.kind == "multifield" else typed)
    columns = typed if isinstance(typed, dict) else {"value": typed}
    return pc.list_parent_indices(array).filter(kept), {name: column.filter(kept) for name, column in columns.items()}


def _entries(flat: pa.Array) -> dict[str, pa.Array] | None:
    """PHONE/EMAIL/WEB/IM entries ({ID, VALUE_TYPE, VALUE, TYPE_ID}): the id an integer, the rest text as sent."""
    if not pa.types.is_struct(flat.type):
        return None
    columns: dict[str, pa.Array] = {}
    for index, field in enumerate(flat.type):
        column = flat.field(index)
        if field.name == "ID":
            column = _cast("int", column, None)
        elif pa.types.is_null(column.type):
            column = column.cast(TEXT)
        elif not pa.types.is_string(column.type):
            return None
        if column is None:
            return None
        columns[field.name] = column
    return columns


def _scalar(plan: FieldPlan, key: str, values: Sequence[Any], report: CoercionReport) -> dict[str, pa.Array] | None:
    array = _vectorized(plan.specs[key].kind, values, plan.offset_now)
    if array is None:
        return None
    options = plan.options(key)
    if options:
        found = pc.sum(pc.is_in(array, value_set=_option_array(options))).as_py() or 0
        if unknown := len(array) - array.null_count - found:
            report.unknown_options[key] += unknown
    return {key: array}


def _money(key: str, values: Sequence[Any]) -> dict[str, pa.Array] | None:
    """`300|EUR`: the text as it is, the amount as a decimal, the currency code."""
    array = _inferred(values)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return {
            key + suffix: pa.nulls(len(array), kind)
            for suffix, kind in (("", TEXT), (AMOUNT_SUFFIX, DECIMAL), (CURRENCY_SUFFIX, TEXT))
        }
    if not pa.types.is_string(array.type):
        return None
    array = _blank_to_null(array)
    if not _all_match(array, _MONEY):
        return None
    parts = pc.split_pattern(array, "|", max_splits=1)
    return {
        key: array,
        key + AMOUNT_SUFFIX: pc.list_element(parts, 0).cast(DECIMAL),
        key + CURRENCY_SUFFIX: pc.list_element(parts, 1),
    }


def value_array(plan: FieldPlan, name: str, values: list[Any]) -> pa.Array:
    """An array of values typed by the converters: the column's type from the plan (`__raw`, `_amount`,
    `_currency` included), or, for a key the metadata does not describe, what its values are."""
    return typed_array(plan.column_kind(name), values)


def typed_array(kind: str | None, values: list[Any]) -> pa.Array:
    """Converted values as an array of the kind's type (text and JSON: anything not text as JSON text)."""
    if kind is None:
        return untyped(values)
    if kind == "text" or kind == "json":
        values = [v if v is None or isinstance(v, str) else as_text(v) for v in values]
    return pa.array(values, ARROW_TYPE[kind])


def untyped(values: list[Any]) -> pa.Array:
    """A passed-through key (crm.item's `entityTypeId`, a contact's FACE_ID): numbers, booleans and text as
    they come, anything else as JSON text."""
    present = {type(v) for v in values if v is not None}
    if present <= {str} or present <= {int} or present <= {bool} or present <= {float, int}:
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, OverflowError):
            pass
    return pa.array([None if v is None else as_text(v) for v in values], TEXT)


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _vectorized(kind: str, values: Sequence[Any], offset_now: timedelta | None) -> pa.Array | None:
    """The typed column by Arrow's casts, or None where a value needs the converter (any doubt)."""
    array = _inferred(values)
    if array is None:
        return None
    try:
        return _cast(kind, array, offset_now)
    except pa.ArrowInvalid:  # a value of the right grammar that is not one (2024-02-30, 2**60 as a double)
        return None


def _inferred(values: Sequence[Any]) -> pa.Array | None:
    """The values as the Arrow array they make, or None for mixed types (a PHP `false` among strings)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _cast(kind: str, array: pa.Array, offset_now: timedelta | None) -> pa.Array | None:
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), ARROW_TYPE[kind])
    if pa.types.is_string(array.type):
        return _cast_text(kind, _blank_to_null(array), offset_now)
    if pa.types.is_int64(array.type) and kind in ("int", "link", "enum", "double", "decimal"):
        return _linked(kind, array.cast(ARROW_TYPE[kind]))
    if pa.types.is_boolean(array.type) and kind == "bool":
        return array
    if pa.types.is_floating(array.type) and kind == "double" and _all(pc.is_finite(array)):
        return array
    return None


@lru_cache(maxsize=1024)
def _option_array(options: frozenset[int]) -> pa.Array:
    return pa.array(sorted(options), pa.int64())


def _cast_text(kind: str, array: pa.Array, offset_now: timedelta | None) -> pa.Array | None:
    if kind in ("text", "json"):
        return array
    if kind in ("int", "link", "enum"):
        return _linked(kind, array.cast(pa.int64())) if _all_match(array, _INTEGER) else None
    if kind == "decimal":
        return array.cast(DECIMAL) if _all_match(array, _DECIMAL) else None
    if kind == "double":
        return array.cast(pa.float64()) if _all_match(array, _DOUBLE) else None
    if kind == "bool":
        return pc.or_(pc.equal(array, "Y"), pc.equal(array, "1")) if _all_match(array, _FLAG) else None
    if kind == "datetime":
        return array.cast(TIMESTAMP) if _all_match(array, _DATETIME) else None
    if kind == "date":
        return _dates(array, offset_now)
    return None


def _dates(array: pa.Array, offset_now: timedelta | None) -> pa.Array | None:
    """A date-only field: `YYYY-MM-DD` as it is; a local midnight rendered at the run's offset
    (`2024-08-30T03:00:00+03:00`) is its wall clock minus that offset, as `to_date` has it. Without the offset
    (no `server.time` yet) the converter's own rule applies, value by value."""
    if _all_match(array, _DATE):
        return array.cast(pa.date32())
    if offset_now is None or not _all_match(array, _DATETIME):
        return None
    array.cast(TIMESTAMP)  # raises for a value that is no point in time (2024-02-30T...)
    wall = pc.utf8_slice_codeunits(array, 0, 19).cast(pa.timestamp("us"))
    return pc.subtract(wall, pa.scalar(offset_now, pa.duration("us"))).cast(pa.date32())


def _linked(kind: str, array: pa.Array) -> pa.Array:
    """A link to a record or a user: 0 is no link (NULL)."""
    if kind != "link":
        return array
    return pc.if_else(pc.equal(array, 0), pa.scalar(None, pa.int64()), array)


def _is_blank(value: Any) -> bool:
    """No value in a field that is not a boolean: NULL, `""`, PHP's `false`."""
    return value is None or value is False or (type(value) is str and value == "")


def _blank_to_null(array: pa.Array) -> pa.Array:
    """`""` is no value, as `None` is."""
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, TEXT), array)


def _all_match(array: pa.Array, pattern: str) -> bool:
    return _all(pc.match_substring_regex(array, pattern))


def _all(mask: pa.Array) -> bool:
    """Every value that is not NULL is true (a column of NULLs passes)."""
    return bool(pc.all(mask, skip_nulls=True).as_py() is not False)
