"""Value conversion between SQLite storage and the two REST dialects, and strtotime-like date parsing.

Legacy crm.<entity>.* methods send strings (`"ID": "37"`, `"OPPORTUNITY": "19999.99"`), `null` for empty
values and `""` for empty dates; crm.item.* sends typed values and `null`. Datetimes are `date('c')` in the
portal's zone, date-only fields carry the offset-shifted clock time (`2024-08-30T03:00:00+03:00` on a +03:00
portal).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

Formatter = Callable[[Any, int], Any]  # (stored value, record id) -> JSON value


class TimeFormat:
    """Formats and parses timestamps in the portal time zone (cached: records share seconds and days).

    A date-only value is rendered as core-src's `ConvertDate` does: `date('c', localMidnight + date("Z"))`, where
    `date("Z")` is the zone's offset at the time of the request, not on that date. So on a -09:00 portal
    2024-08-30 is `2024-08-29T15:00:00-09:00`, and across a DST change the clock part is off by the hour."""

    def __init__(self, tz: tzinfo, now: Callable[[], float] = time.time):
        self.tz = tz
        self._now = now
        self.datetime = lru_cache(maxsize=1 << 16)(self._datetime)
        self._date_at = lru_cache(maxsize=1 << 14)(self._date)
        self._day_of_quarter = lru_cache(maxsize=1 << 18)(self._day_of_quarter_hour)

    def _datetime(self, ts: int) -> str:
        return datetime.fromtimestamp(ts, self.tz).isoformat()

    def wall(self, ts: int, fmt: str) -> str:
        """The portal's wall-clock time of an instant in `fmt`, with no offset (user.get's TIMESTAMP_X)."""
        return datetime.fromtimestamp(ts, self.tz).strftime(fmt)

    def date(self, day: str) -> str:
        offset = datetime.fromtimestamp(self._now(), self.tz).utcoffset() or timedelta(0)
        return self._date_at(day, int(offset.total_seconds()))

    def _date(self, day: str, offset_now: int) -> str:
        local_midnight = datetime.fromisoformat(day).replace(tzinfo=self.tz).timestamp()
        return datetime.fromtimestamp(local_midnight + offset_now, self.tz).isoformat()

    def day_of(self, ts: int) -> str:
        """The portal-local date of a unix time (cached per quarter hour: every UTC offset is a multiple)."""
        return self._day_of_quarter(ts // 900)

    def _day_of_quarter_hour(self, quarter: int) -> str:
        return datetime.fromtimestamp(quarter * 900, self.tz).date().isoformat()

    def parse(self, value: Any) -> datetime | None:
        """PHP strtotime for the usual forms; naive values are in the portal zone; None if unparsable."""
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=self.tz)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=self.tz)
        if not isinstance(value, str):
            return None
        text = value.strip()
        if text.startswith("@") and text[1:].lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text[1:]), UTC)
        m = _DMY.match(text) or _MDY.match(text)
        if m:
            d, mo = (m["a"], m["b"]) if m.re is _DMY else (m["b"], m["a"])
            text = f"{m['y']}-{int(mo):02d}-{int(d):02d}" + (f" {m['t']}" if m["t"] else "")
        text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text.replace("Z", "+00:00").replace("z", "+00:00"))
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=self.tz)

    def to_ts(self, value: Any) -> int | None:
        dt = self.parse(value)
        return None if dt is None else int(dt.timestamp())

    def to_day(self, value: Any) -> str | None:
        dt = self.parse(value)
        return None if dt is None else dt.astimezone(self.tz).date().isoformat()


_DMY = re.compile(r"^(?P<a>\d{1,2})\.(?P<b>\d{1,2})\.(?P<y>\d{4})(?:\s+(?P<t>\d{1,2}:\d\d(?::\d\d)?))?$")
_MDY = re.compile(r"^(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})(?:\s+(?P<t>\d{1,2}:\d\d(?::\d\d)?))?$")


def php_intval(value: Any) -> int:
    """PHP (int) cast: leading digits of a string, 0 when there are none (so "$result[p][49][ID]" is 0)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    m = re.match(r"\s*([+-]?\d+)", str(value))
    return int(m.group(1)) if m else 0


def php_floatval(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    m = re.match(r"\s*([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)", str(value))
    return float(m.group(1)) if m else 0.0


def short_float(v: float) -> str:
    """1111.1 -> "1111.1", 5.0 -> "5" (PHP's float to string)."""
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().upper() in ("Y", "1", "TRUE")
    return bool(value)


# ---- formatters per storage kind -------------------------------------------------------------------------


def _str_or_none(v: Any, _id: int) -> Any:
    return None if v is None else str(v)


def _same(v: Any, _id: int) -> Any:
    return v


def _money2(v: Any, _id: int) -> Any:
    return None if v is None else f"{v:.2f}"


def _float_or_none(v: Any, _id: int) -> Any:
    return None if v is None else float(v)


def verbatim_on_error(formatter: Formatter) -> Formatter:
    """A stored value the formatter cannot render (text a test wrote into a number or date column, as real
    portals hold after imports and type changes) is returned as stored, the way PHP would echo it."""

    def lenient(v: Any, rid: int) -> Any:
        try:
            return formatter(v, rid)
        except (TypeError, ValueError, OverflowError):
            return v

    return lenient


def std_formatter(storage: str, tf: TimeFormat, legacy: bool, zero_when_empty: bool = False) -> Formatter:
    """Formatter for a standard field. `zero_when_empty`: an empty link comes as "0" (legacy) or 0 (crm.item),
    as real portals send a deal's missing company."""
    if zero_when_empty:
        zero: Any = "0" if legacy else 0
        return lambda v, _id: zero if v is None else (str(v) if legacy else v)
    if storage == "datetime":
        empty = "" if legacy else None
        dt = tf.datetime
        return verbatim_on_error(lambda v, _id: empty if v is None else dt(v))
    if storage == "date":
        empty = "" if legacy else None
        d = tf.date
        return verbatim_on_error(lambda v, _id: empty if v is None else d(v))
    if storage == "int":
        return _str_or_none if legacy else _same
    if storage == "real":
        return verbatim_on_error(_money2 if legacy else _float_or_none)
    return _same


def uf_formatter(
    user_type: str,
    storage: str,
    multiple: bool,
    tf: TimeFormat,
    legacy: bool,
    file_url: Callable[[int, int], dict[str, Any]],
) -> Formatter:
    """Formatter for a user field; multiple values are stored as a JSON array and returned as one."""
    one: Formatter
    if user_type == "file":

        def one(v: Any, rid: int) -> Any:
            return file_url(rid, v)
    elif user_type == "boolean":

        def one(v: Any, _id: int) -> Any:
            return bool(v) if legacy else ("Y" if v else "N")
    elif storage == "real":

        def one(v: Any, _id: int) -> Any:
            return short_float(v) if legacy else float(v)
    elif storage in ("datetime", "date"):
        conv = tf.datetime if storage == "datetime" else tf.date

        def one(v: Any, _id: int) -> Any:
            return conv(v)
    elif storage == "int":

        def one(v: Any, _id: int) -> Any:
            return str(v) if legacy else v
    else:

        def one(v: Any, _id: int) -> Any:
            return v

    if multiple:

        def many(v: Any, rid: int) -> Any:
            return None if v is None else [one(x, rid) for x in json.loads(v)]

        return verbatim_on_error(many)

    def single(v: Any, rid: int) -> Any:
        return None if v is None else one(v, rid)

    return verbatim_on_error(single) if storage in ("real", "datetime", "date") else single


# ---- parsing values written by clients
# ------------------------------------------------------------------------


def store_value(storage: str, value: Any, tf: TimeFormat) -> Any:
    """A client value (add/update) in the storage form; empty strings and None clear the field."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list | dict):
        value = next(iter(value.values()) if isinstance(value, dict) else value, None)
        if value is None:
            return None
    if storage == "int":
        return php_intval(value)
    if storage == "real":
        return php_floatval(value)
    if storage == "datetime":
        return tf.to_ts(value)
    if storage == "date":
        return tf.to_day(value)
    if storage == "yn":
        return "Y" if truthy(value) else "N"
    if storage == "bool":
        return 1 if truthy(value) else 0
    return str(value)


def store_uf_value(storage: str, multiple: bool, value: Any, tf: TimeFormat) -> Any:
    if not multiple:
        return store_value(storage, value, tf)
    items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
    stored = [store_value(storage, x, tf) for x in items]
    stored = [x for x in stored if x is not None]
    return json.dumps(stored) if stored else None
