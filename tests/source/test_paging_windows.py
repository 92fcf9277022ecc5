"""Incremental windows: cursors from the portal's clock, user dates, backfill windows, due checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sources.bitrix24.window import (
    Backfill,
    DateInputError,
    cursor_after_run,
    is_due,
    normalize_user_date,
    parse_instant,
)


def test_the_cursor_is_the_portals_start_floored_with_its_offset() -> None:
    start = parse_instant("2024-06-13T18:23:54.870+10:00")
    assert cursor_after_run(start) == "2024-06-13T18:23:54+10:00"
    assert cursor_after_run(start, overlap_seconds=60) == "2024-06-13T18:22:54+10:00"


def test_server_time_must_carry_an_offset() -> None:
    with pytest.raises(ValueError):
        parse_instant("2024-06-13T18:23:54")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2024-01-01", "2024-01-01"),
        (" 2024-01-01T10:00:00 ", "2024-01-01T10:00:00"),
        ("2024-01-01T10:00:00+03:00", "2024-01-01T10:00:00+03:00"),
    ],
)
def test_user_dates_become_filter_values(text: str, value: str) -> None:
    assert normalize_user_date(text) == value


@pytest.mark.parametrize("text", ["2024-13-01", "yesterday", "01/02/2024", ""])
def test_bad_user_dates_say_how_to_write_them(text: str) -> None:
    with pytest.raises(DateInputError, match="YYYY-MM-DD"):
        normalize_user_date(text, "--since")


def test_a_date_in_the_future_is_refused() -> None:
    soon = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    with pytest.raises(DateInputError, match="in the future"):
        normalize_user_date(soon, "start_date")


def test_backfill_windows() -> None:
    window = Backfill.parse("2024-01-01", "2024-07-01")
    assert window.filter("DATE_MODIFY") == {">=DATE_MODIFY": "2024-01-01", "<DATE_MODIFY": "2024-07-01"}
    assert Backfill.parse("2024-01-01", None).filter("updatedTime") == {">=updatedTime": "2024-01-01"}
    with pytest.raises(DateInputError, match="not before"):
        Backfill.parse("2024-07-01", "2024-01-01")
    with pytest.raises(DateInputError, match="not before"):
        Backfill.parse("2024-01-01T05:00:00+03:00", "2024-01-01T02:00:00Z")  # the same instant


def test_periodic_tasks_are_due_after_their_interval_or_when_never_done() -> None:
    now = datetime(2024, 6, 2, 12, tzinfo=UTC)
    assert is_due(None, 24, now) and is_due("garbage", 24, now)
    assert not is_due((now - timedelta(hours=23)).isoformat(), 24, now)
    assert is_due((now - timedelta(hours=24)).isoformat(), 24, now)
    assert is_due(now.isoformat(), 0, now)
