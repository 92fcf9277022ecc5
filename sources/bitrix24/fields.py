"""Types from the portal's field metadata (`crm.<x>.fields`), applied once per field, never guessed per value.

The legacy API returns numbers as strings, empty dates as `""`, booleans as `"Y"`/`"N"`, money as `"300|EUR"`
and date-only fields as a local midnight with an offset. Left to dlt's inference these become text columns,
`__v_text` variant columns and dates shifted by a day. A `FieldPlan` turns the metadata of one entity into dlt
column hints and one converter per field, and coerces pages of rows with them:

* `""`, `None` (and `False` in a non-boolean field) are NULL;
* date-only fields keep the portal's calendar date (`to_date`: also west of UTC), datetimes become aware
  datetimes;
* money becomes `<code>_amount` (decimal) and `<code>_currency` next to the raw `<code>` text;
* enumerations keep their option ids (labels are in the `fields` table), also an id that is not among the
  field's options (a deleted option): kept, and counted;
* multiple fields and multi-fields (PHONE, EMAIL, WEB, IM) stay lists: `arrow_pages.py` makes each a table;
* a value that does not parse is set to NULL, its text kept in `<code>__raw`, and counted: a row is never
  dropped.

Columns keep the raw field codes (`UF_CRM_...`), never labels: labels (often Cyrillic) become column
descriptions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache, partial
from typing import Any

import orjson

RAW_SUFFIX = "__raw"
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 9  # every decimal column: amounts up to 10**29, 9 decimals
AMOUNT_SUFFIX = "_amount"
CURRENCY_SUFFIX = "_currency"

# Bitrix field type -> kind of value. Anything not listed is text. A link to a record or a user is an id
# where 0 means none (real portals send a deal without a company as "0", crm.item as 0): NULL in the
# warehouse, so `company_id IS NULL` finds them and joins do not meet a record 0. A pipeline id is a plain
# int: 0 is the default pipeline.
_KIND_BY_TYPE: dict[str, str] = {
    "integer": "int",
    "int": "int",
    "user": "link",
    "employee": "link",
    "crm_company": "link",
    "crm_contact": "link",
    "crm_lead": "link",
    "crm_quote": "link",
    "crm_deal": "link",
    "crm_category": "int",
    "crm_entity": "link",
    "iblock_element": "int",
    "iblock_section": "int",
    "double": "double",
    "char": "bool",
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
    "money": "money",
    "enumeration": "enum",
    "file": "json",
    "diskfile": "json",  # crm.activity.fields' STORAGE_ELEMENT_IDS (docs crm/data-types.md)
    "disk_file": "json",  # a user field of Drive files (USER_TYPE_ID disk_file)
    "crm_multifield": "multifield",
    "crm_activity_communication": "multifield",  # {ID, TYPE, VALUE, ENTITY_ID, ENTITY_TYPE_ID}: a child table
    "crm_enum_activitytype": "int",
    "crm_enum_activitystatus": "int",
    "crm_enum_activitypriority": "int",
    "crm_enum_activitydirection": "int",
    "crm_enum_activitynotifytype": "int",
    "crm_enum_ownertype": "int",
}
COLUMN_TYPE: dict[str, dict[str, Any]] = {
    "int": {"data_type": "bigint"},
    "link": {"data_type": "bigint"},
    "enum": {"data_type": "bigint"},
    "double": {"data_type": "double"},
    "decimal": {"data_type": "decimal", "precision": DECIMAL_PRECISION, "scale": DECIMAL_SCALE},
    "bool": {"data_type": "bool"},
    "date": {"data_type": "date"},
    "datetime": {"data_type": "timestamp", "timezone": True},
    "text": {"data_type": "text"},
    "json": {"data_type": "json"},
}
_KIND_BY_DATA_TYPE = {
    "bigint": "int", "double": "double", "decimal": "decimal", "bool": "bool", "date": "date",
    "timestamp": "datetime", "text": "text", "json": "json",
}  # fmt: skip
# What the state keeps of each field's metadata (enough for the plan and the `fields` table).
_META_KEYS = (
    "type",
    "isRequired",
    "isReadOnly",
    "isMultiple",
    "isDynamic",
    "title",
    "listLabel",
    "formLabel",
    "statusType",
    "items",
)
_TRUE = frozenset({"Y", "y", "1", "true", "True", "TRUE"})
_FALSE = frozenset({"N", "n", "0", "false", "False", "FALSE"})


# ------------------------------------------------------------------------------------------------ converters
# Each takes a non-empty value and returns the typed value, or raises ValueError/TypeError/ArithmeticError.


def to_int(value: Any) -> int:
    """An integer that fits the warehouse's bigint (a 25-digit "id" is a bad value, not a failed load)."""
    number = _integer(value)
    if not _BIGINT_MIN <= number <= _BIGINT_MAX:
        raise ValueError("does not fit bigint")
    return number


_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


def _integer(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)  # "5.0" from a double-formatted integer
            if number.is_integer():
                return int(number)
            raise
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"not an integer: {type(value).__name__}")


def to_link(value: Any) -> int | None:
    """An id, with 0 (no link) as None."""
    return to_int(value) or None


def to_decimal(value: Any) -> Decimal:
    """An exact amount that fits the warehouse's decimal(38, 9) column, else ValueError (NULL plus `__raw`):
    the portal stores money with 2 decimals, so 10 decimals (`0.1234567891`, or a float artefact such as
    `0.00999999999476131`) or 30 integer digits are not amounts it means, and one such value must not stop a
    load. An exponent form is written out (`1E+3` is 1000); `-0` is 0."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise TypeError(f"not a number: {type(value).__name__}")
    number = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    if not number.is_finite():
        raise ValueError("not a finite number")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -DECIMAL_SCALE or (number and number.adjusted() >= DECIMAL_PRECISION - DECIMAL_SCALE):
        raise ValueError(f"does not fit decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE})")
    if exponent > 0:
        number = number.quantize(Decimal(1))
    return number.copy_abs() if number.is_zero() else number


def to_double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise TypeError(f"not a number: {type(value).__name__}")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return number


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise ValueError("not a boolean")


_NOON = time(12)


def to_date(value: Any, offset_now: timedelta | None = None) -> date:
    """The calendar date of a date-only value. The portal sends local midnight shifted by its zone's UTC offset
    at the time of the request (core-src `date('c', localMidnight + date("Z"))`): `2024-08-30T03:00:00+03:00`
    on a +03:00 portal, `2024-08-29T15:00:00-09:00` for 2024-08-30 on a -09:00 one. With that offset known
    (`offset_now`, from the same batch's `server.time`) the local clock minus the offset is the local midnight,
    exactly, also across a DST change or a zone's change of offset. Without it: at or west of UTC a clock past
    noon belongs to the next day (off by an hour across DST, still right)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return _date_of_text(value, offset_now)
    return _date_of_datetime(value, offset_now)


@lru_cache(maxsize=65_536)
def _date_of_text(value: str, offset_now: timedelta | None) -> date:
    """Cached: a portal's date fields repeat a few thousand distinct values over all of its records."""
    text = value.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return _date_of_datetime(datetime.fromisoformat(text), offset_now)


def _date_of_datetime(value: Any, offset_now: timedelta | None) -> date:
    if not isinstance(value, datetime):
        raise TypeError(f"not a date: {type(value).__name__}")
    if value.tzinfo is None:
        return value.date()
    if offset_now is not None:
        return (value.replace(tzinfo=None) - offset_now).date()
    if (value.utcoffset() or timedelta(0)) <= timedelta(0) and value.time() >= _NOON:
        return value.date() + timedelta(days=1)
    return value.date()


_LOCAL_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")


def to_datetime(value: Any, offset_now: timedelta | None = None) -> datetime:
    """An ISO datetime with its offset; user.get also sends the portal's wall clock without one
    (`TIMESTAMP_X` "24.08.2023 13:19:39", `LAST_ACTIVITY_DATE` "2024-08-29 10:30:11": recorded real responses),
    read at the portal's offset of this run (`offset_now`; without it such a value stays raw)."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = next((p for p in (_strptime(value, f) for f in _LOCAL_FORMATS) if p is not None), None)
            if parsed is None:
                raise
    if parsed.tzinfo is None:
        if offset_now is None:
            raise ValueError("a datetime without an offset is ambiguous")
        parsed = parsed.replace(tzinfo=timezone(offset_now))
    return parsed


def _strptime(value: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(value, fmt)
    except ValueError:
        return None


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def to_json(value: Any) -> Any:
    return value


def to_money(value: Any) -> tuple[str, Decimal | None, str | None]:
    """`"300|EUR"` -> ("300|EUR", Decimal("300"), "EUR"); an amount without a currency is allowed."""
    if not isinstance(value, str):
        raise TypeError(f"not a money value: {type(value).__name__}")
    amount, _, currency = value.partition("|")
    return value, (to_decimal(amount) if amount.strip() else None), (currency.strip() or None)


def to_multifield(value: Any) -> dict[str, Any]:
    """One PHONE/EMAIL/WEB/IM entry: {ID, VALUE_TYPE, VALUE, TYPE_ID} with the id as an integer."""
    if not isinstance(value, dict):
        raise TypeError("not a multi-field entry")
    return {k: v if k != "ID" else None if v in (None, "") else to_int(v) for k, v in value.items()}


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": to_int,
    "link": to_link,
    "enum": to_int,
    "decimal": to_decimal,
    "double": to_double,
    "bool": to_bool,
    "date": to_date,
    "datetime": to_datetime,
    "text": to_text,
    "json": to_json,
    "money": to_money,
    "multifield": to_multifield,
}


_BAD_VALUE = (ValueError, TypeError, ArithmeticError, InvalidOperation)


def _is_empty(value: Any, kind: str) -> bool:
    return value is None or value == "" or (value is False and kind != "bool")


# ------------------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class FieldSpec:
    code: str
    kind: str
    multiple: bool
    label: str | None


def field_kind(code: str, meta: Mapping[str, Any]) -> str:
    """The kind of value of one field. Standard double fields (OPPORTUNITY, TAX_VALUE, REVENUE) are amounts of
    money: decimal keeps them exact; user double fields stay double."""
    kind = _KIND_BY_TYPE.get(str(meta.get("type", "")), "text")
    if kind == "double" and not meta.get("isDynamic"):
        return "decimal"
    return kind


def field_label(meta: Mapping[str, Any]) -> str | None:
    """A user field's `title` is its code; its human name is the list label (sometimes one per language)."""
    for key in ("listLabel", "formLabel", "title"):
        label = meta.get(key)
        if isinstance(label, dict):
            label = label.get("en") or next((v for v in label.values() if v), None)
        if label:
            return str(label)
    return None


def trim_meta(fields_result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The part of a `crm.<x>.fields` result kept in pipeline state."""
    trimmed: dict[str, dict[str, Any]] = {}
    for code, meta in fields_result.items():
        if isinstance(meta, Mapping):
            trimmed[str(code)] = {k: meta[k] for k in _META_KEYS if k in meta}
    return trimmed


@dataclass
class CoercionReport:
    """What coercing pages found: unparseable values per field, and keys the metadata does not describe."""

    invalid: Counter[str] = field(default_factory=Counter)
    unknown_keys: set[str] = field(default_factory=set)
    unknown_options: Counter[str] = field(default_factory=Counter)  # enumeration ids not among the items


class FieldPlan:
    """Column hints and converters for one entity, built from its (trimmed) field metadata."""

    def __init__(
        self,
        meta: Mapping[str, Mapping[str, Any]],
        existing: Mapping[str, str] | None = None,
        offset_now: timedelta | None = None,
    ):
        """`existing`: field code -> data type of the column the destination already has. A column keeps its
        type when the portal changes the field's type (a field deleted and re-created under the same code):
        values that do not fit it go to `<code>__raw`, instead of a hint the destination cannot apply.
        `offset_now`: the portal's UTC offset at the time of the run's requests (how it renders dates)."""
        existing = existing or {}
        self.offset_now = offset_now
        self._converters = {
            **_CONVERTERS,
            "date": partial(to_date, offset_now=offset_now),
            "datetime": partial(to_datetime, offset_now=offset_now),
        }
        self.specs: dict[str, FieldSpec] = {}
        for code, m in meta.items():
            multiple = bool(m.get("isMultiple")) or m.get("type") == "crm_multifield"
            kind = "multifield" if m.get("type") == "crm_multifield" else field_kind(code, m)
            kept = _KIND_BY_DATA_TYPE.get(existing.get(code, ""))
            if kept and not multiple and kind != "money" and COLUMN_TYPE[kind]["data_type"] != existing[code]:
                kind = kept
            self.specs[code] = FieldSpec(code, kind, multiple, field_label(m))
        self._options = {
            code: frozenset(ids)
            for code, spec in self.specs.items()
            if spec.kind == "enum" and not spec.multiple and (ids := _option_ids(meta[code]))
        }
        # the hot path: single-valued fields other than money, converted by one function each
        self._scalar = {
            code: self._converters[spec.kind]
            for code, spec in self.specs.items()
            if not spec.multiple and spec.kind != "money"
        }

    def columns(self) -> dict[str, dict[str, Any]]:
        """dlt column hints for the root table (multiple fields go to child tables and need none here)."""
        columns: dict[str, dict[str, Any]] = {}
        for spec in self.specs.values():
            if spec.multiple:
                continue
            described = {"description": spec.label} if spec.label else {}
            if spec.kind == "money":
                columns[spec.code] = {**COLUMN_TYPE["text"], **described}
                columns[spec.code + AMOUNT_SUFFIX] = {**COLUMN_TYPE["decimal"], **described}
                columns[spec.code + CURRENCY_SUFFIX] = {**COLUMN_TYPE["text"], **described}
            else:
                columns[spec.code] = {**COLUMN_TYPE[spec.kind], **described}
        return columns

    def knows(self, key: str) -> bool:
        return key in self.specs

    def options(self, key: str) -> frozenset[int] | None:
        """The option ids of a single-valued enumeration (None: not one, or its metadata lists none)."""
        return self._options.get(key)

    def column_kind(self, name: str) -> str | None:
        """The kind of a root column the plan makes: a field's, `<code>__raw` (text), a money field's column
        (its raw text), `_amount` and `_currency`; None for a key the metadata does not describe."""
        spec = self.specs.get(name)
        if spec is not None:
            return "text" if spec.kind == "money" else spec.kind
        if name.endswith(RAW_SUFFIX):
            return "text"
        for suffix, kind in ((AMOUNT_SUFFIX, "decimal"), (CURRENCY_SUFFIX, "text")):
            money = self.specs.get(name[: -len(suffix)]) if name.endswith(suffix) else None
            if money is not None and money.kind == "money":
                return kind
        return None

    def coerce_column(self, key: str, values: Iterable[Any], report: CoercionReport) -> dict[str, list[Any]]:
        """One key's values of a page typed value by value, exactly as `coerce_row` types them: `{key: typed}`
        plus the columns it adds (`<code>__raw` where a value did not parse, a money field's amount and currency);
        a key the metadata does not describe and whose values are all empty has no column."""
        if key in self._scalar:
            typed = [self.coerce_row({key: value}, report) for value in values]
        else:  # money, multiple or unknown: straight to their path
            typed = []
            for value in values:
                out: dict[str, Any] = {}
                self._coerce_other(key, value, out, report)
                typed.append(out)
        names = dict.fromkeys(name for row in typed for name in row)
        return {name: [row.get(name) for row in typed] for name in names}

    def coerce(self, rows: Iterable[Mapping[str, Any]], report: CoercionReport) -> list[dict[str, Any]]:
        return [self.coerce_row(row, report) for row in rows]

    def coerce_row(self, row: Mapping[str, Any], report: CoercionReport) -> dict[str, Any]:
        out: dict[str, Any] = {}
        scalar, options = self._scalar, self._options
        for key, value in row.items():
            convert = scalar.get(key)
            if convert is None:  # money, multiple or unknown: the less common paths
                self._coerce_other(key, value, out, report)
            elif value is None or value == "" or (value is False and convert is not to_bool):
                out[key] = None
            else:
                try:
                    out[key] = convert(value)
                except _BAD_VALUE:
                    out[key] = None
                    if value != {} and value != []:  # PHP's empty array is no value (user.get's TIMESTAMP_X)
                        report.invalid[key] += 1
                        out[key + RAW_SUFFIX] = to_text(value)
                else:
                    if key in options and out[key] not in options[key]:
                        report.unknown_options[key] += 1
        return out

    def _coerce_other(self, key: str, value: Any, out: dict[str, Any], report: CoercionReport) -> None:
        spec = self.specs.get(key)
        if spec is None:  # passed through as sent; an empty one is left out (a column of nulls has no type)
            report.unknown_keys.add(key)
            if value is not None and value != "":
                out[key] = value
            return
        try:
            if spec.multiple:
                out[key] = self._coerce_list(spec, value)
            elif _is_empty(value, spec.kind):
                out[key] = out[key + AMOUNT_SUFFIX] = out[key + CURRENCY_SUFFIX] = None
            else:
                out[key], out[key + AMOUNT_SUFFIX], out[key + CURRENCY_SUFFIX] = to_money(value)
        except _BAD_VALUE:
            report.invalid[key] += 1
            if spec.multiple:
                out[key] = []
                out[key + RAW_SUFFIX] = to_text(value)
            else:  # money: its column is the raw text already
                out[key] = to_text(value)
                out[key + AMOUNT_SUFFIX] = out[key + CURRENCY_SUFFIX] = None

    def _coerce_list(self, spec: FieldSpec, value: Any) -> list[Any]:
        """A multiple field: a list (an empty one is `false`, `""` or null), each element typed."""
        if _is_empty(value, "list"):
            return []
        items = value if isinstance(value, list) else [value]
        convert = self._converters[spec.kind]
        typed: list[Any] = []
        for item in items:
            if _is_empty(item, spec.kind):
                continue
            if spec.kind == "money":
                raw, amount, currency = to_money(item)
                typed.append({"value": raw, "amount": amount, "currency": currency})
            elif (converted := convert(item)) is not None:  # a link 0 in a list is no link
                typed.append(converted)
        return typed


# ------------------------------------------------------------------------------------------------ `fields`
# table


def field_rows(entity: str, meta: Mapping[str, Mapping[str, Any]], naming: Any = None) -> list[dict[str, Any]]:
    """One row per field of an entity for the `fields` table, with where it lands in the warehouse (`naming`:
    the schema's naming convention): its column, or for a multiple field its child table; enumeration options
    become a child table."""
    rows = []
    for code, m in meta.items():
        items = m.get("items") if isinstance(m.get("items"), list) else []
        multiple = bool(m.get("isMultiple")) or m.get("type") == "crm_multifield"
        column = naming.normalize_identifier(code) if naming is not None else None
        rows.append(
            {
                "entity": entity,
                "code": code,
                "column_name": None if multiple else column,
                "child_table": naming.shorten_fragments(entity, column) if multiple and column else None,
                "type": m.get("type"),
                "title": m.get("title"),
                "label": field_label(m),
                "is_multiple": bool(m.get("isMultiple")),
                "is_required": bool(m.get("isRequired")),
                "is_read_only": bool(m.get("isReadOnly")),
                "is_custom": bool(m.get("isDynamic")),
                "status_type": m.get("statusType"),
                "items": [
                    {"id": _int_or_none(i.get("ID")), "value": i.get("VALUE")} for i in items if isinstance(i, Mapping)
                ],
            }
        )
    return rows


def _option_ids(meta: Mapping[str, Any]) -> set[int]:
    items = meta.get("items")
    ids = (_int_or_none(i.get("ID")) for i in items if isinstance(i, Mapping)) if isinstance(items, list) else ()
    return {i for i in ids if i is not None}


def _int_or_none(value: Any) -> int | None:
    try:
        return to_int(value)
    except (ValueError, TypeError):
        return None


FIELDS_TABLE_COLUMNS: dict[str, dict[str, Any]] = {
    "entity": {
        "data_type": "text",
        "nullable": False,
        "description": "resource (table) the field belongs to",
    },
    "code": {
        "data_type": "text",
        "nullable": False,
        "description": "raw field code, the column name's source",
    },
    "column_name": {
        "data_type": "text",
        "description": "the column in the entity's table (money: also _amount, _currency)",
    },
    "child_table": {"data_type": "text", "description": "the child table of a multiple field"},
    "type": {"data_type": "text"},
    "title": {"data_type": "text"},
    "label": {"data_type": "text", "description": "human name (list label for user fields)"},
    "is_multiple": {"data_type": "bool"},
    "is_required": {"data_type": "bool"},
    "is_read_only": {"data_type": "bool"},
    "is_custom": {"data_type": "bool"},
    "status_type": {"data_type": "text", "description": "crm.status ENTITY_ID of a crm_status field"},
}
