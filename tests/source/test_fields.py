"""FieldPlan: types from metadata, coercion of the legacy API's strings, bad values kept, never a dropped
row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from sources.bitrix24 import Catalog
from sources.bitrix24.fields import CoercionReport, FieldPlan, field_rows, trim_meta

CATALOG = Catalog.for_portal()

META = {
    "ID": {"type": "integer", "isReadOnly": True, "title": "ID"},
    "TITLE": {"type": "string", "title": "Title"},
    "OPPORTUNITY": {"type": "double", "title": "Amount"},
    "OPENED": {"type": "char", "title": "Available to All"},
    "BEGINDATE": {"type": "date", "title": "Start Date"},
    "DATE_MODIFY": {"type": "datetime", "title": "Modified on"},
    "ASSIGNED_BY_ID": {"type": "user", "title": "Responsible"},
    "STAGE_ID": {"type": "crm_status", "statusType": "DEAL_STAGE", "title": "Deal Stage"},
    "PHONE": {"type": "crm_multifield", "isMultiple": True, "title": "Phone"},
    "UF_CRM_NUM": {"type": "double", "isDynamic": True, "title": "UF_CRM_NUM", "listLabel": "Сумма бонуса"},
    "UF_CRM_INT": {"type": "integer", "isDynamic": True, "title": "UF_CRM_INT", "listLabel": "Count"},
    "UF_CRM_FLAG": {"type": "boolean", "isDynamic": True, "title": "UF_CRM_FLAG"},
    "UF_CRM_MONEY": {"type": "money", "isDynamic": True, "title": "UF_CRM_MONEY", "listLabel": "Budget"},
    "UF_CRM_ENUM": {
        "type": "enumeration",
        "isDynamic": True,
        "title": "UF_CRM_ENUM",
        "items": [{"ID": "79", "VALUE": "One"}, {"ID": "80", "VALUE": "Two"}],
    },
    "UF_CRM_TAGS": {"type": "enumeration", "isDynamic": True, "isMultiple": True, "title": "UF_CRM_TAGS"},
    "UF_CRM_DAYS": {"type": "date", "isDynamic": True, "isMultiple": True, "title": "UF_CRM_DAYS"},
    "UF_CRM_FILE": {"type": "file", "isDynamic": True, "title": "UF_CRM_FILE"},
}


def coerce(row: dict, plan: FieldPlan | None = None) -> tuple[dict, CoercionReport]:
    report = CoercionReport()
    return (plan or FieldPlan(META)).coerce([row], report)[0], report


def test_legacy_strings_become_typed_values() -> None:
    row, report = coerce(
        {
            "ID": "17",
            "TITLE": "Deal #17",
            "OPPORTUNITY": "19999.99",
            "OPENED": "Y",
            "BEGINDATE": "2024-08-30T00:00:00+03:00",
            "DATE_MODIFY": "2024-06-13T18:23:54+03:00",
            "ASSIGNED_BY_ID": "3",
            "STAGE_ID": "C1:WON",
            "UF_CRM_NUM": "1111.1",
            "UF_CRM_INT": "42",
            "UF_CRM_FLAG": "0",
            "UF_CRM_ENUM": "80",
        }
    )
    assert row["ID"] == 17 and row["ASSIGNED_BY_ID"] == 3 and row["UF_CRM_INT"] == 42
    assert row["OPPORTUNITY"] == Decimal("19999.99")
    assert row["UF_CRM_NUM"] == pytest.approx(1111.1) and isinstance(row["UF_CRM_NUM"], float)
    assert row["OPENED"] is True and row["UF_CRM_FLAG"] is False
    assert row["DATE_MODIFY"] == datetime(2024, 6, 13, 15, 23, 54, tzinfo=UTC)
    assert row["DATE_MODIFY"].utcoffset() == timedelta(hours=3)
    assert row["STAGE_ID"] == "C1:WON" and row["UF_CRM_ENUM"] == 80
    assert not report.invalid and not report.unknown_keys


def test_date_only_fields_keep_the_portals_calendar_day() -> None:
    """`2024-08-30T00:00:00+03:00` is 2024-08-29 in UTC; the date is the 30th whatever the offset."""
    for text in ("2024-08-30T00:00:00+03:00", "2024-08-30T10:00:00+10:00", "2024-08-30T00:00:00-05:00"):
        assert coerce({"BEGINDATE": text})[0]["BEGINDATE"] == date(2024, 8, 30)


def portal_renders(day: str, zone: str, request_at: datetime) -> str:
    """How a portal in `zone` sends a date-only value when asked at `request_at` (core-src `ConvertDate`:
    `date('c', localMidnight + date("Z"))`, the offset being the zone's at the time of the request)."""
    tz = ZoneInfo(zone)
    offset_now = request_at.astimezone(tz).utcoffset() or timedelta(0)
    local_midnight = datetime.fromisoformat(day).replace(tzinfo=tz).timestamp()
    return datetime.fromtimestamp(local_midnight + offset_now.total_seconds(), tz).isoformat()


@pytest.mark.parametrize(
    "zone", ["Pacific/Honolulu", "America/Sao_Paulo", "UTC", "Europe/Moscow", "Pacific/Kiritimati"]
)  # -10, -03, 0, +03, +14
@pytest.mark.parametrize("day", ["2024-01-01", "2024-02-29", "2024-08-30", "2024-12-31"])
def test_date_only_values_decode_to_the_calendar_day_in_every_zone(zone: str, day: str) -> None:
    text = portal_renders(day, zone, datetime(2024, 6, 1, 12, tzinfo=UTC))
    assert coerce({"BEGINDATE": text, "UF_CRM_DAYS": [text]})[0]["BEGINDATE"] == date.fromisoformat(day), text
    assert coerce({"UF_CRM_DAYS": [text]})[0]["UF_CRM_DAYS"] == [date.fromisoformat(day)]


@pytest.mark.parametrize("zone", ["America/Adak", "Europe/Berlin", "America/New_York", "Atlantic/Azores"])
@pytest.mark.parametrize("asked", [datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 7, 15, tzinfo=UTC)])
def test_date_only_values_decode_across_a_dst_change(zone: str, asked: datetime) -> None:
    """Asked in winter about a summer date and the other way round: the clock part is off by the hour."""
    for day in ("2024-03-10", "2024-03-31", "2024-08-30", "2024-11-03", "2024-12-30"):
        text = portal_renders(day, zone, asked)
        assert coerce({"BEGINDATE": text})[0]["BEGINDATE"] == date.fromisoformat(day), (zone, asked, text)


@pytest.mark.parametrize(
    ("zone", "day"),
    [("Pacific/Kiritimati", "1990-01-01"), ("America/Adak", "2024-08-30"), ("Europe/Berlin", "2024-03-31")],
)
def test_with_the_portals_offset_of_the_run_the_decode_is_exact(zone: str, day: str) -> None:
    """Kiritimati was at -10 in 1990 and is at +14 now: only the offset of the request tells the day."""
    asked = datetime(2026, 1, 15, tzinfo=UTC)
    text = portal_renders(day, zone, asked)
    plan = FieldPlan(META, offset_now=asked.astimezone(ZoneInfo(zone)).utcoffset())
    assert coerce({"BEGINDATE": text, "UF_CRM_DAYS": [text]}, plan)[0] == {
        "BEGINDATE": date.fromisoformat(day),
        "UF_CRM_DAYS": [date.fromisoformat(day)],
    }


@pytest.mark.parametrize("empty", ["", None])
def test_empty_values_are_null_in_every_kind(empty: object) -> None:
    keys = ["TITLE", "OPPORTUNITY", "OPENED", "BEGINDATE", "DATE_MODIFY", "UF_CRM_NUM", "UF_CRM_ENUM"]
    row, report = coerce(dict.fromkeys(keys, empty))
    assert all(row[k] is None for k in keys)
    assert not report.invalid


def test_money_splits_into_amount_and_currency_and_keeps_the_text() -> None:
    row, _ = coerce({"UF_CRM_MONEY": "300.50|EUR"})
    assert row["UF_CRM_MONEY"] == "300.50|EUR"
    assert row["UF_CRM_MONEY_amount"] == Decimal("300.50") and row["UF_CRM_MONEY_currency"] == "EUR"
    empty, _ = coerce({"UF_CRM_MONEY": ""})
    assert empty["UF_CRM_MONEY"] is None and empty["UF_CRM_MONEY_amount"] is None


def test_multiple_fields_and_multifields_stay_typed_lists() -> None:
    row, _ = coerce(
        {
            "UF_CRM_TAGS": ["79", "80"],
            "UF_CRM_DAYS": ["2024-01-02T00:00:00+03:00"],
            "PHONE": [{"ID": "8303", "VALUE_TYPE": "WORK", "VALUE": "+19998887766", "TYPE_ID": "PHONE"}],
        }
    )
    assert row["UF_CRM_TAGS"] == [79, 80]
    assert row["UF_CRM_DAYS"] == [date(2024, 1, 2)]
    assert row["PHONE"] == [{"ID": 8303, "VALUE_TYPE": "WORK", "VALUE": "+19998887766", "TYPE_ID": "PHONE"}]
    for empty in (False, "", None, []):
        assert coerce({"UF_CRM_TAGS": empty})[0]["UF_CRM_TAGS"] == []


def test_bad_values_are_nulled_kept_raw_and_counted_never_dropped() -> None:
    rows = FieldPlan(META).coerce(
        [
            {
                "ID": "1",
                "OPPORTUNITY": "12,5",
                "BEGINDATE": "not a date",
                "UF_CRM_MONEY": "lots|EUR",
                "UF_CRM_TAGS": ["x"],
                "DATE_MODIFY": "2024-06-13T18:23:54",
            },
            {"ID": "2", "OPPORTUNITY": "1"},
        ],
        report := CoercionReport(),
    )
    assert [r["ID"] for r in rows] == [1, 2]
    bad = rows[0]
    assert bad["OPPORTUNITY"] is None and bad["OPPORTUNITY__raw"] == "12,5"
    assert bad["BEGINDATE"] is None and bad["BEGINDATE__raw"] == "not a date"
    assert bad["DATE_MODIFY"] is None and bad["DATE_MODIFY__raw"] == "2024-06-13T18:23:54"  # no offset: ambiguous
    assert bad["UF_CRM_MONEY"] == "lots|EUR" and bad["UF_CRM_MONEY_amount"] is None
    assert bad["UF_CRM_TAGS"] == [] and bad["UF_CRM_TAGS__raw"] == '["x"]'
    assert report.invalid == {
        "OPPORTUNITY": 1,
        "BEGINDATE": 1,
        "UF_CRM_MONEY": 1,
        "UF_CRM_TAGS": 1,
        "DATE_MODIFY": 1,
    }


def test_unknown_keys_pass_through_and_are_reported() -> None:
    """An empty one is left out: real contact rows carry FACE_ID null, which no `fields` describes, and a
    column that only ever held nulls would have no type."""
    row, report = coerce({"ID": "1", "UF_CRM_NEW": "", "FACE_ID": None, "UF_CRM_OTHER": "5"})
    assert row == {"ID": 1, "UF_CRM_OTHER": "5"}
    assert report.unknown_keys == {"UF_CRM_NEW", "FACE_ID", "UF_CRM_OTHER"}


def test_an_empty_link_is_null_and_a_default_pipeline_stays_zero() -> None:
    """Real portals send a deal without a company as COMPANY_ID "0", crm.item as 0, and an empty contact list
    as []; CATEGORY_ID "0" is the default pipeline, PROBABILITY "0" a number."""
    meta = {
        "COMPANY_ID": {"type": "crm_company"},
        "MOVED_BY_ID": {"type": "user"},
        "parentId2": {"type": "crm_entity"},
        "CATEGORY_ID": {"type": "crm_category"},
        "PROBABILITY": {"type": "integer"},
        "contactIds": {"type": "crm_contact", "isMultiple": True},
    }
    plan = FieldPlan(meta)
    row, report = coerce(
        {"COMPANY_ID": "0", "MOVED_BY_ID": 0, "parentId2": "12", "CATEGORY_ID": "0", "PROBABILITY": "0",
         "contactIds": [0, "7"]},
        plan,
    )  # fmt: skip
    assert row == {
        "COMPANY_ID": None, "MOVED_BY_ID": None, "parentId2": 12, "CATEGORY_ID": 0, "PROBABILITY": 0,
        "contactIds": [7],
    }  # fmt: skip
    assert not report.invalid
    assert plan.columns()["COMPANY_ID"]["data_type"] == "bigint"


def test_an_empty_php_array_is_no_value() -> None:
    """user.get's documented example sends TIMESTAMP_X and LAST_ACTIVITY_DATE as {} for a user without them."""
    meta = {"TIMESTAMP_X": {"type": "datetime"}, "PERSONAL_BIRTHDAY": {"type": "date"}}
    row, report = coerce({"TIMESTAMP_X": {}, "PERSONAL_BIRTHDAY": []}, FieldPlan(meta))
    assert row == {"TIMESTAMP_X": None, "PERSONAL_BIRTHDAY": None} and not report.invalid


def test_drive_files_are_json() -> None:
    """A Drive file user field is `disk_file`; an activity's STORAGE_ELEMENT_IDS is `diskfile`."""
    plan = FieldPlan({"UF_CRM_DOCS": {"type": "disk_file"}, "STORAGE_ELEMENT_IDS": {"type": "diskfile"}})
    assert {c["data_type"] for c in plan.columns().values()} == {"json"}
    row, _ = coerce({"UF_CRM_DOCS": [505], "STORAGE_ELEMENT_IDS": [12, 13]}, plan)
    assert row == {"UF_CRM_DOCS": [505], "STORAGE_ELEMENT_IDS": [12, 13]}


def test_column_hints_come_from_metadata_with_labels_as_descriptions() -> None:
    columns = FieldPlan(META).columns()
    assert columns["ID"]["data_type"] == "bigint"
    assert columns["OPPORTUNITY"]["data_type"] == "decimal"
    assert columns["UF_CRM_NUM"] == {"data_type": "double", "description": "Сумма бонуса"}
    assert columns["DATE_MODIFY"] == {
        "data_type": "timestamp",
        "timezone": True,
        "description": "Modified on",
    }
    assert columns["BEGINDATE"]["data_type"] == "date" and columns["OPENED"]["data_type"] == "bool"
    assert columns["UF_CRM_ENUM"]["data_type"] == "bigint" and columns["UF_CRM_FILE"]["data_type"] == "json"
    assert columns["UF_CRM_MONEY_amount"]["data_type"] == "decimal"
    assert columns["UF_CRM_MONEY_currency"]["data_type"] == "text"
    assert "PHONE" not in columns and "UF_CRM_TAGS" not in columns  # child tables


def test_fields_table_rows() -> None:
    trimmed = trim_meta({**META, "UF_CRM_ENUM": {**META["UF_CRM_ENUM"], "settings": {"DISPLAY": "LIST"}}})
    assert "settings" not in trimmed["UF_CRM_ENUM"]
    rows = {r["code"]: r for r in field_rows("deals", trimmed)}
    assert rows["UF_CRM_NUM"]["label"] == "Сумма бонуса" and rows["UF_CRM_NUM"]["is_custom"] is True
    assert rows["UF_CRM_ENUM"]["items"] == [{"id": 79, "value": "One"}, {"id": 80, "value": "Two"}]
    assert rows["STAGE_ID"]["status_type"] == "DEAL_STAGE" and rows["ID"]["is_read_only"] is True


def test_a_column_keeps_its_type_when_the_portal_changes_the_fields_type() -> None:
    """UF_CRM_NUM was loaded as double, UF_CRM_INT as bigint; the portal now says string / integer."""
    meta = {**META, "UF_CRM_NUM": {**META["UF_CRM_NUM"], "type": "string"}}
    plan = FieldPlan(meta, existing={"UF_CRM_NUM": "double", "UF_CRM_INT": "bigint", "TITLE": "bigint"})
    assert plan.columns()["UF_CRM_NUM"]["data_type"] == "double"
    row, report = coerce({"UF_CRM_NUM": "12.5", "TITLE": "not a number", "UF_CRM_INT": "7"}, plan)
    assert row["UF_CRM_NUM"] == 12.5 and row["UF_CRM_INT"] == 7
    assert row["TITLE"] is None and row["TITLE__raw"] == "not a number" and report.invalid == {"TITLE": 1}


def test_only_unknown_user_fields_call_for_fresh_metadata() -> None:
    """crm.item rows carry `entityTypeId`, which crm.item.fields does not describe: not a new field."""
    deals, invoices = CATALOG.entity("deals"), CATALOG.entity("invoices")
    assert deals.is_user_field("UF_CRM_1699000001") and not deals.is_user_field("ENTITY_TYPE_ID")
    assert invoices.is_user_field("ufCrmSmartInvoice_1699400001") and not invoices.is_user_field("entityTypeId")


def test_user_get_wall_clock_times_are_read_at_the_portals_offset() -> None:
    """user.get sends TIMESTAMP_X as "24.08.2023 13:19:39" and LAST_ACTIVITY_DATE as "2024-08-29 10:30:11" (no
    offset, recorded from real portals): read at the run's portal offset; without one they stay raw."""
    from datetime import datetime, timedelta, timezone

    from sources.bitrix24.fields import CoercionReport, FieldPlan

    meta = {"TIMESTAMP_X": {"type": "datetime"}, "LAST_ACTIVITY_DATE": {"type": "datetime"}}
    row = {"TIMESTAMP_X": "24.08.2023 13:19:39", "LAST_ACTIVITY_DATE": "2024-08-29 10:30:11"}
    msk = timezone(timedelta(hours=3))
    report = CoercionReport()
    typed = FieldPlan(meta, offset_now=timedelta(hours=3)).coerce_row(row, report)
    assert typed == {
        "TIMESTAMP_X": datetime(2023, 8, 24, 13, 19, 39, tzinfo=msk),
        "LAST_ACTIVITY_DATE": datetime(2024, 8, 29, 10, 30, 11, tzinfo=msk),
    }
    assert not report.invalid
    unknown = FieldPlan(meta).coerce_row(row, report := CoercionReport())
    assert unknown["TIMESTAMP_X"] is None and unknown["TIMESTAMP_X__raw"] == "24.08.2023 13:19:39"
    assert report.invalid["TIMESTAMP_X"] == 1


def test_an_integer_beyond_bigint_is_a_bad_value_not_a_failed_load() -> None:
    row, report = coerce({"ID": "1", "UF_CRM_INT": "9" * 25, "ASSIGNED_BY_ID": str(2**63)})
    assert row["UF_CRM_INT"] is None and row["UF_CRM_INT__raw"] == "9" * 25
    assert row["ASSIGNED_BY_ID"] is None and report.invalid == {"UF_CRM_INT": 1, "ASSIGNED_BY_ID": 1}
