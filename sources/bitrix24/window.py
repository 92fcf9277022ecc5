"""Incremental windows on `DATE_MODIFY`: cursor instants, user-given dates, and "is it due" checks.

A cursor is the portal's own time `T` (from `server.time`, asked in the same batch as the first pages),
floored to the second, as an ISO string with the portal's offset: an absolute instant, so neither the portal's
nor this machine's time zone can shift it. The next run reads `DATE_MODIFY >= cursor` (inclusive, so edits in
the same second as `T` are read again, and merge on ID de-duplicates them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_instant(text: str) -> datetime:
    """An ISO datetime with an offset (what `server.time` and `DATE_MODIFY` look like)."""
    parsed = datetime.fromisoformat(str(text))
    if parsed.tzinfo is None:
        raise ValueError(f"expected a datetime with an offset, got {text!r}")
    return parsed


def cursor_after_run(server_time: datetime, overlap_seconds: int = 0) -> str:
    """The lower bound of the next run: the run's start on the portal's clock, floored to the second."""
    return (server_time.replace(microsecond=0) - timedelta(seconds=overlap_seconds)).isoformat()


class DateInputError(ValueError):
    """A date the user typed that we cannot use; the message says what is wrong and how to write it."""


def normalize_user_date(text: str, what: str = "date", *, allow_future: bool = False) -> str:
    """A filter value from a user-given date: `YYYY-MM-DD` (the portal's calendar day), or an ISO datetime.
    Without an offset it is read in the portal's time zone, which is what a user means by "since Jan 1"."""
    value = str(text).strip()
    normalized = None
    try:
        normalized = date.fromisoformat(value).isoformat() if _DATE_ONLY.match(value) else None
        normalized = normalized or datetime.fromisoformat(value).isoformat()
    except ValueError:
        pass
    if normalized is None:
        raise DateInputError(f"{what} {value!r} is not a date: write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+HH:MM]")
    if not allow_future and _comparable(normalized) > utc_now() + timedelta(days=1):  # slack for time zones
        raise DateInputError(f"{what} {value} is in the future: nothing has been modified since then")
    return normalized


def _comparable(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Backfill:
    """A window [since, until) re-read by `DATE_MODIFY` without touching the incremental cursors."""

    since: str | None = None
    until: str | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Backfill:
        since_v = normalize_user_date(since, "--since") if since else None
        until_v = normalize_user_date(until, "--until", allow_future=True) if until else None
        if since_v and until_v and _comparable(since_v) >= _comparable(until_v):
            raise DateInputError(f"--since {since} is not before --until {until}: swap them or widen the window")
        return cls(since_v, until_v)

    def filter(self, cursor_field: str) -> dict[str, Any]:
        window: dict[str, Any] = {}
        if self.since:
            window[f">={cursor_field}"] = self.since
        if self.until:
            window[f"<{cursor_field}"] = self.until
        return window


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_due(stamp: str | None, max_age_hours: float, now: datetime) -> bool:
    """True when a periodic task last done at `stamp` (ISO instant) should run again at `now`."""
    if not stamp:
        return True
    try:
        last = parse_instant(stamp)
    except ValueError:
        return True
    return now - last >= timedelta(hours=max_age_hours)
