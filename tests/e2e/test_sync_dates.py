"""Date-only fields on portals around the globe: the calendar day the user typed is the day in the warehouse,
west of UTC and across a DST change too (the portal renders a date as local midnight plus the zone's offset at
the time of the request: `2024-08-29T15:00:00-09:00` is 2024-08-30)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bitrix24_emulator import Portal
from tests.e2e.syncutil import SMALL_PORTAL, assert_warehouse_equals_portal, new_pipeline, query, run

DAYS = {"BEGINDATE": "2024-08-30", "CLOSEDATE": "2024-03-31"}  # a summer day, the day DST starts in Europe
PORTAL = {**SMALL_PORTAL, "deals": 60, "leads": 20, "contacts": 20, "companies": 5}


def write_and_sync(tmp_path: Path, zone: str, asked_at: datetime | None) -> None:
    with Portal(**{**PORTAL, "timezone": zone}) as portal:
        if asked_at is not None:
            portal.clock.freeze(asked_at.timestamp())
        deal = portal.call("crm.deal.add", {"fields": {"TITLE": "Dates", **DAYS}})
        contact = portal.call(
            "crm.contact.add", {"fields": {"NAME": "Ada", "LAST_NAME": "L", "BIRTHDATE": "1990-01-01"}}
        )
        date_field = next(
            code
            for code, meta in portal.call("crm.deal.fields").items()
            if meta.get("type") == "date" and meta.get("isDynamic") and not meta.get("isMultiple")
        )
        portal.call("crm.deal.update", {"id": deal, "fields": {date_field: "2024-12-31"}})
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal)
        column = date_field.lower()
        got = query(
            pipeline,
            f"SELECT CAST(begindate AS VARCHAR) AS b, CAST(closedate AS VARCHAR) AS c, CAST({column} AS VARCHAR) AS u "
            f"FROM {{}} WHERE id = {deal}",
            "deals",
        )
        assert got == [{"b": DAYS["BEGINDATE"], "c": DAYS["CLOSEDATE"], "u": "2024-12-31"}], zone
        birth = query(pipeline, f"SELECT CAST(birthdate AS VARCHAR) AS d FROM {{}} WHERE id = {contact}", "contacts")
        assert birth == [{"d": "1990-01-01"}], zone
        assert_warehouse_equals_portal(pipeline, portal)  # every generated date, single and multiple, too


@pytest.mark.parametrize(
    "zone", ["Pacific/Honolulu", "America/Sao_Paulo", "UTC", "Europe/Moscow", "Pacific/Kiritimati"]
)  # -10, -03, 0, +03, +14
def test_dates_are_the_portals_calendar_days_in_every_zone(tmp_path: Path, zone: str) -> None:
    write_and_sync(tmp_path, zone, None)


@pytest.mark.parametrize("asked_at", [datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC)])
@pytest.mark.parametrize("zone", ["America/Adak", "Europe/Berlin"])
def test_dates_survive_a_dst_change_between_the_date_and_the_request(
    tmp_path: Path, zone: str, asked_at: datetime
) -> None:
    write_and_sync(tmp_path, zone, asked_at)
