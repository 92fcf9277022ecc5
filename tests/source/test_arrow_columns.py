"""Column-wise typing (`arrow_columns.py` through `arrow_pages.tables`) against the row-wise converters
(`FieldPlan.coerce`): for clean pages and messy ones, east and west of UTC and without a known offset, every
column, every value, every `__raw` text and every count must be the same; and a page in the portal's own formats
must take the vectorized way."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import orjson
import pytest

from sources.bitrix24.arrow_pages import tables
from sources.bitrix24.fields import CoercionReport, FieldPlan

META = {
    "ID": {"type": "integer"},
    "TITLE": {"type": "string"},
    "OPPORTUNITY": {"type": "double"},  # a standard double: decimal
    "UF_CRM_RATE": {"type": "double", "isDynamic": True},
    "UF_CRM_COUNT": {"type": "integer", "isDynamic": True},
    "ASSIGNED_BY_ID": {"type": "user"},
    "COMPANY_ID": {"type": "crm_company"},
    "CATEGORY_ID": {"type": "crm_category"},
    "OPENED": {"type": "char"},
    "UF_CRM_FLAG": {"type": "boolean", "isDynamic": True},
    "BEGINDATE": {"type": "date"},
    "DATE_MODIFY": {"type": "datetime"},
    "UF_CRM_FILE": {"type": "file", "isDynamic": True},
    "UF_CRM_PRICE": {"type": "money", "isDynamic": True},
    "UF_CRM_KIND": {
        "type": "enumeration",
        "isDynamic": True,
        "items": [{"ID": "79", "VALUE": "One"}, {"ID": "80", "VALUE": "Two"}],
    },
    "UF_CRM_TAGS": {"type": "enumeration", "isDynamic": True, "isMultiple": True},
    "PHONE": {"type": "crm_multifield", "isMultiple": True},
}

# What real portals send (`../shared/real-responses`): the portal's own formats, the vectorized way.
CLEAN: dict[str, list[Any]] = {
    "TITLE": ["Deal #17", "Hip — Istanbul", "", None],
    "OPPORTUNITY": ["19999.99", "0.00", "1500", "", None],
    "UF_CRM_RATE": ["1111.1", "0", "", None],
    "UF_CRM_COUNT": ["42", "0", "-3", "", None],
    "ASSIGNED_BY_ID": ["3", "0", "1", ""],
    "COMPANY_ID": ["0", "12", "", None],
    "CATEGORY_ID": ["0", "1", "2"],
    "OPENED": ["Y", "N", ""],
    "UF_CRM_FLAG": ["1", "0", ""],  # a boolean user field sends 1/0
    "BEGINDATE": ["2024-08-30T03:00:00+03:00", "", "2023-01-01T03:00:00+03:00", "2024-08-29T15:00:00-09:00"],
    "DATE_MODIFY": ["2024-06-13T18:23:54+03:00", "2026-11-30T23:59:59+03:00", "", "2024-06-13T01:00:00-09:00"],
    "UF_CRM_FILE": [{"id": 5, "showUrl": "/x"}, "", None],
    "UF_CRM_PRICE": ["300|EUR", "", "12.5|USD"],
    "UF_CRM_KIND": ["79", "80", "", "81"],
    "UF_CRM_TAGS": [["79", "80"], [], False, ""],
    "PHONE": [
        [{"ID": "11", "VALUE": "+49", "VALUE_TYPE": "WORK", "TYPE_ID": "PHONE"}],
        [{"ID": "12", "VALUE": "a@b.c", "VALUE_TYPE": "HOME"}, {"ID": "13", "VALUE": "", "VALUE_TYPE": "WORK"}],
        [],
    ],
}
# crm.item sends numbers and booleans as JSON ones.
NUMBERS: dict[str, list[Any]] = {
    **CLEAN,
    "OPPORTUNITY": [1500, 0, None],
    "UF_CRM_RATE": [1.5, 2.0, None],
    "UF_CRM_COUNT": [1, 0, -4, None],
    "ASSIGNED_BY_ID": [0, 3],
    "COMPANY_ID": [0, 12, None],
    "CATEGORY_ID": [0, 1],
    "OPENED": [True, False, None],
    "UF_CRM_KIND": [79, 81, None],
}
# Everything the converters treat on their own: blanks, PHP's false, numbers as numbers, spaces, exponents,
# too many decimals, overflow, impossible dates, wall clocks without an offset, `Z`, other offsets.
MESSY: dict[str, list[Any]] = {
    "TITLE": [7, {"a": 1}, False, "x"],
    "OPPORTUNITY": [" 12.5", "1E+3", "0.1234567891", "1.0000000000", "1" * 30, "-0", 12, 1.5, "abc", False, True],
    "UF_CRM_RATE": ["nan", "inf", "1e400", " 2 ", 3, 2.5, float("inf"), "1_000", "x", False],
    "UF_CRM_COUNT": ["5.0", "5.5", "+7", " 8", 9, 9.0, "9" * 25, "x", False, True, "1_000"],
    "ASSIGNED_BY_ID": [0, 5, "007", "x", False],
    "COMPANY_ID": [0, "0", 3, "3.0"],
    "CATEGORY_ID": ["", "x", 0, 4],
    "OPENED": ["y", "true", "FALSE", "1", 0, 1, True, False, "maybe", 2],
    "UF_CRM_FLAG": [True, False, None, "Y"],
    "BEGINDATE": [
        "2024-08-29T15:00:00-09:00",
        "2024-08-30",
        "2024-02-30T03:00:00+03:00",
        "2024-08-30T12:00:00",
        "2024-08-30T03:00:00Z",
        "30.08.2024",
        "1960-01-01T03:00:00+03:00",
        False,
    ],
    "DATE_MODIFY": [
        "2024-06-13T18:23:54Z",
        "2024-06-13T18:23:54-09:00",
        "2024-06-13 18:23:54",
        "2024-06-13T18:23:54.123+03:00",
        "2024-02-30T10:00:00+03:00",
        "2024-06-13T18:23:54+25:00",
        "24.08.2023 13:19:39",
        "never",
        False,
        {},
    ],
    "UF_CRM_FILE": ["text", [1, 2], False],
    "UF_CRM_PRICE": ["abc|EUR", "|EUR", "300", 300, False],
    "UF_CRM_KIND": [79, "x", "0", False],
    "UF_CRM_TAGS": [["x"], "79", [79, ""], None],
    "PHONE": ["+49", [{"ID": "x", "VALUE": "1"}], [{"ID": "", "VALUE": 5}], [None, {}], None],
}
OFFSETS = [timedelta(hours=3), timedelta(hours=-9), timedelta(0), None]


def _pages(values: dict[str, list[Any]], rows: int, seed: int) -> list[dict[str, Any]]:
    chooser = random.Random(seed)
    return [
        {"ID": str(n + 1), **{key: chooser.choice(options) for key, options in values.items()}} for n in range(rows)
    ]


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else orjson.dumps(value, default=str).decode()


def _expected_children(plan: FieldPlan, typed: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each multiple field's table as the row-wise converters make it: a row per element, a marker per record
    without any."""
    children: dict[str, list[dict[str, Any]]] = {}
    for code, spec in plan.specs.items():
        if not spec.multiple or code not in typed[0]:
            continue
        keys = ["value"]
        if spec.kind == "multifield":
            keys = list(dict.fromkeys(k for row in typed for item in row[code] for k in item))
        elif spec.kind == "money":
            keys = ["value", "amount", "currency"]
        rows = []
        for row in typed:
            parent = str(row["ID"])
            for position, item in enumerate(row[code]):
                if isinstance(item, dict):  # an entry: its keys, the id and the amount typed, the rest text
                    values = {k: item.get(k) if k in ("ID", "amount") else _text(item.get(k)) for k in keys}
                else:
                    values = {"value": _text(item) if spec.kind in ("text", "json") else item}
                rows.append({"_dlt_parent_id": parent, "_dlt_list_idx": position, **values, "_replaced": None})
            if not row[code]:
                rows.append({"_dlt_parent_id": parent, "_dlt_list_idx": -1, **dict.fromkeys(keys), "_replaced": True})
        children[code] = rows
    return children


def _expected(
    plan: FieldPlan, rows: list[dict[str, Any]]
) -> tuple[dict[str, list[Any]], CoercionReport, dict[str, list[dict[str, Any]]]]:
    report = CoercionReport()
    typed = plan.coerce(rows, report)
    names = dict.fromkeys(
        name for row in typed for name in row if not plan.specs.get(name, None) or not plan.specs[name].multiple
    )
    columns = {}
    for name in names:
        kind = plan.column_kind(name)
        values = [row.get(name) for row in typed]
        columns[name] = [_text(v) for v in values] if kind in ("text", "json") else values
    return columns, report, _expected_children(plan, typed)


@pytest.mark.parametrize(("offset", "which"), list(itertools.product(OFFSETS, ["clean", "numbers", "messy", "mixed"])))
def test_every_column_is_typed_as_the_converters_type_it(offset: timedelta | None, which: str) -> None:
    mixed = {k: CLEAN[k] + NUMBERS[k] + MESSY[k] for k in CLEAN}
    values = {"clean": CLEAN, "numbers": NUMBERS, "messy": MESSY, "mixed": mixed}[which]
    plan = FieldPlan(META, offset_now=offset)
    for seed in range(20):
        rows = _pages(values, 60, seed)
        expected, expected_report, expected_children = _expected(plan, rows)
        report = CoercionReport()
        page = tables(plan, rows, report, key=("ID",), load_id="L")
        got = page.root.to_pydict()
        assert set(got) - {"_dlt_id", "_dlt_load_id"} == set(expected)
        for name, column in expected.items():
            assert got[name] == column, (name, seed)
        assert report.invalid == expected_report.invalid and report.unknown_options == expected_report.unknown_options
        assert set(page.children) == set(expected_children)
        for code, child in expected_children.items():
            got_rows = [{k: r[k] for k in child[0]} for r in page.children[code].to_pylist()]
            assert got_rows == child, (code, seed)


def test_the_portals_own_formats_take_the_vectorized_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """No column goes value by value on a page in the portal's formats; a bad value sends just its column that
    way."""
    plan = FieldPlan(META, offset_now=timedelta(hours=3))
    per_value: list[str] = []
    coerce_column = plan.coerce_column
    monkeypatch.setattr(plan, "coerce_column", lambda key, *a: per_value.append(key) or coerce_column(key, *a))
    for values in (CLEAN, NUMBERS):
        tables(plan, _pages(values, 200, 1), CoercionReport(), key=("ID",), load_id="L")
        assert per_value == []
    rows = _pages(CLEAN, 200, 1)
    rows[7]["OPPORTUNITY"] = "12,50"
    report = CoercionReport()
    page = tables(plan, rows, report, key=("ID",), load_id="L")
    assert "OPPORTUNITY" in per_value and "DATE_MODIFY" not in per_value
    assert report.invalid["OPPORTUNITY"] == 1 and page.root["OPPORTUNITY__raw"].to_pylist()[7] == "12,50"
