"""Every legacy filter operator, checked against the same condition evaluated in Python over all deals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bitrix24_emulator.filters import FilterColumn, FilterCompiler, FilterError
from bitrix24_emulator.values import TimeFormat

from .crm_fixtures import Caller, api_error

pytest_plugins = ["tests.emulator.crm_fixtures"]

FIELDS = [
    "ID",
    "TITLE",
    "STAGE_ID",
    "OPPORTUNITY",
    "DATE_MODIFY",
    "COMPANY_ID",
    "LEAD_ID",
    "BEGINDATE",
    "UF_CRM_1699000008",
    "UF_CRM_1699000002",
]


def _all(
    call: Caller, flt: dict[str, Any], entity: str = "deal", select: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every matching row through the ID keyset (start=-1)."""
    rows: list[dict[str, Any]] = []
    last = 0
    while True:
        page = call(
            f"crm.{entity}.list",
            {"select": select or FIELDS, "filter": {**flt, ">ID": last}, "order": {"ID": "ASC"}, "start": -1},
        ).result
        rows.extend(page)
        if len(page) < 50:
            return rows
        last = int(page[-1]["ID"])


@pytest.fixture(scope="module")
def deals(call: Caller) -> list[dict[str, Any]]:
    return _all(call, {})


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["ID"] for r in rows]


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ("plain equals", {"STAGE_ID": "C1:WON"}, lambda r: r["STAGE_ID"] == "C1:WON"),
    ("= equals", {"=STAGE_ID": "C1:WON"}, lambda r: r["STAGE_ID"] == "C1:WON"),
    ("! not equal", {"!STAGE_ID": "C1:WON"}, lambda r: r["STAGE_ID"] != "C1:WON"),
    ("!= not equal incl. null", {"!=COMPANY_ID": 3}, lambda r: r["COMPANY_ID"] != "3"),
    ("> real", {">OPPORTUNITY": 50_000}, lambda r: float(r["OPPORTUNITY"]) > 50_000),
    (">= int", {">=ID": 100}, lambda r: int(r["ID"]) >= 100),
    ("< int as string", {"<ID": "7"}, lambda r: int(r["ID"]) < 7),
    ("<= real", {"<=OPPORTUNITY": "0"}, lambda r: float(r["OPPORTUNITY"]) <= 0),
    ("@ in", {"@ID": [3, "5", 8, 1000]}, lambda r: r["ID"] in ("3", "5", "8")),
    (
        "!@ not in",
        {"!@STAGE_ID": ["C1:WON", "C1:LOSE"]},
        lambda r: r["STAGE_ID"] not in ("C1:WON", "C1:LOSE"),
    ),
    ("= with array is IN", {"ID": [4, 6]}, lambda r: r["ID"] in ("4", "6")),
    ("% substring", {"%TITLE": "ant"}, lambda r: "ant" in r["TITLE"].lower()),
    ("=% own wildcards", {"=%TITLE": "Hair%"}, lambda r: r["TITLE"].lower().startswith("hair")),
    ("%= own wildcards", {"%=TITLE": "%plant%"}, lambda r: "plant" in r["TITLE"].lower()),
    ("!% not substring", {"!%TITLE": "a"}, lambda r: "a" not in r["TITLE"].lower()),
    (
        "!=% not like, own wildcards",
        {"!=%TITLE": "Hair%"},
        lambda r: not r["TITLE"].lower().startswith("hair"),
    ),
    ("!%= not like, own wildcards", {"!%=TITLE": "%plant%"}, lambda r: "plant" not in r["TITLE"].lower()),
    ("% on crm_status is =", {"%STAGE_ID": "WON"}, lambda r: r["STAGE_ID"] == "WON"),
    ("empty value = is null", {"LEAD_ID": ""}, lambda r: r["LEAD_ID"] is None),
    ("! empty = not null", {"!LEAD_ID": ""}, lambda r: r["LEAD_ID"] is not None),
    ("multiple UF contains", {"UF_CRM_1699000008": 6}, lambda r: "6" in (r["UF_CRM_1699000008"] or [])),
    (
        "multiple UF not contains",
        {"!UF_CRM_1699000008": 6},
        lambda r: "6" not in (r["UF_CRM_1699000008"] or []),
    ),
    ("multiple UF empty", {"UF_CRM_1699000008": ""}, lambda r: r["UF_CRM_1699000008"] is None),
    ("multiple UF not empty", {"!UF_CRM_1699000008": ""}, lambda r: r["UF_CRM_1699000008"] is not None),
    (
        "UF integer compare",
        {">UF_CRM_1699000002": 40},
        lambda r: r["UF_CRM_1699000002"] is not None and int(r["UF_CRM_1699000002"]) > 40,
    ),
    ("date field", {">=BEGINDATE": "2024-01-01"}, lambda r: r["BEGINDATE"][:10] >= "2024-01-01"),
    ("unknown key ignored", {"NO_SUCH_FIELD": 1}, lambda r: True),
    # beside the keyset's own `>ID`: a loose and a tight second lower bound (the stage history reader's form)
    ("loose lower bound beside the keyset", {">=ID": 1}, lambda r: True),
    ("tight lower bound beside the keyset", {">=ID": "120"}, lambda r: int(r["ID"]) >= 120),
    ("lower-case key names no field", {"stage_id": "C1:WON"}, lambda r: True),
]


@pytest.mark.parametrize(("flt", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_operator(
    call: Caller, deals: list[dict[str, Any]], flt: dict[str, Any], expected: Callable[[dict[str, Any]], bool]
) -> None:
    want = [r for r in deals if expected(r)]
    assert want or flt == {"!%TITLE": "a"}, "the case should select something"
    assert _ids(_all(call, flt)) == _ids(want)


@pytest.mark.parametrize(
    "value",
    [
        "2025-03-01",
        "2025-03-01T00:00:00",
        "2025-03-01 00:00:00",
        "01.03.2025",
        "2025-02-28T21:00:00Z",
        "2025-02-28T22:00:00+01:00",
    ],
)
def test_datetime_filter_forms_mean_the_same_instant(call: Caller, deals: list[dict[str, Any]], value: str) -> None:
    cut = datetime(2025, 3, 1, tzinfo=ZoneInfo("Europe/Moscow")).timestamp()
    want = [r for r in deals if _ts(r["DATE_MODIFY"]) >= cut]
    assert want and _ids(_all(call, {">=DATE_MODIFY": value})) == _ids(want)


def test_offset_values_are_absolute_instants(call: Caller, deals: list[dict[str, Any]]) -> None:
    utc_midnight = datetime.fromisoformat("2025-03-01T00:00:00+00:00").timestamp()
    got = _ids(_all(call, {"<DATE_MODIFY": "2025-03-01T00:00:00+00:00"}))
    assert got == _ids([r for r in deals if _ts(r["DATE_MODIFY"]) < utc_midnight])


def test_multifield_filter_is_exact(call: Caller) -> None:
    contacts = _all(call, {}, "contact", ["ID", "PHONE"])
    phone = next(r["PHONE"][0]["VALUE"] for r in contacts if "PHONE" in r)
    hits = _all(call, {"PHONE": phone}, "contact", ["ID", "PHONE"])
    assert hits and all(any(p["VALUE"] == phone for p in r["PHONE"]) for r in hits)
    assert _all(call, {"PHONE": phone[:-2]}, "contact", ["ID"]) == []


def test_array_where_a_scalar_is_expected_is_refused(call: Caller) -> None:
    """What a batch reference to a short page substitutes: the whole page array. Refused, not guessed."""
    page = call("crm.deal.list", {"select": ["ID"], "filter": {">ID": 110}, "order": {"ID": "ASC"}}).result
    err = api_error(call, "crm.deal.list", {"filter": {">ID": page}, "start": -1})
    assert (err.code, err.description, err.status) == ("", "Failed to get list. General error.", 400)
    assert api_error(call, "crm.deal.list", {"filter": {">=DATE_MODIFY": "not a date"}}).code == ""


def test_unresolved_reference_string_reads_as_zero_like_php(call: Caller) -> None:
    rows = call(
        "crm.deal.list",
        {"select": ["ID"], "filter": {">ID": "$result[p3][49][ID]"}, "order": {"ID": "ASC"}, "start": -1},
    ).result
    assert rows[0]["ID"] == "1"


def test_only_the_tightest_integer_lower_bound_is_compiled() -> None:
    """SQLite walks the primary key from one lower bound only: keeping `>=ID: 1` beside a keyset's `>ID`
    made every page scan from the start of the table (stage history at 1M deals never finished)."""
    columns = {"ID": FilterColumn('"ID"', "integer", "int"), "TITLE": FilterColumn('"TITLE"', "string", "text")}
    compiler = FilterCompiler(columns.get, TimeFormat(ZoneInfo("UTC")), strict=True, allow_logic=True)
    assert compiler.compile({">=ID": 1, ">ID": "700000", "TITLE": "a"}) == ('("ID" > ? AND "TITLE" = ?)', [700000, "a"])
    assert compiler.compile({">ID": 700000, ">=ID": 800001}) == ('("ID" >= ?)', [800001])
    assert compiler.compile({">ID": 5, "<ID": 9}) == ('("ID" > ? AND "ID" < ?)', [5, 9])
    assert compiler.compile({"logic": "OR", ">ID": 5, ">=ID": 1}) == ('("ID" > ? OR "ID" >= ?)', [5, 1])
    with pytest.raises(FilterError):  # a short page's substituted array stays refused
        compiler.compile({">=ID": 1, ">ID": [{"ID": "3"}]})


def test_strtotime_forms() -> None:
    tf = TimeFormat(ZoneInfo("Europe/Moscow"))
    assert (
        tf.to_ts("2024-08-30")
        == tf.to_ts("30.08.2024")
        == tf.to_ts("08/30/2024")
        == tf.to_ts("2024-08-29T21:00:00+00:00")
        == tf.to_ts("2024-08-30T00:00:00+0300")
    )
    assert tf.to_day("2024-08-29T22:30:00Z") == "2024-08-30"
    assert tf.to_ts("@1700000000") == 1_700_000_000
    assert tf.to_ts("yesterday-ish") is None
    assert tf.date("2024-08-30") == "2024-08-30T03:00:00+03:00"
