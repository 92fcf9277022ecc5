"""The portal's clock: real time plus an offset that tests can move, in the portal's time zone.

Everything the emulator stamps (DATE_MODIFY, token expiry, `time.date_start`) reads this clock, so a test can jump
ahead an hour to expire a token instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo


class Clock:
    def __init__(self, timezone: str = "Europe/Moscow"):
        self.tz = ZoneInfo(timezone)
        self._offset = 0.0
        self._frozen: float | None = None
        self._lock = threading.Lock()

    def time(self) -> float:
        """Unix seconds (float) as the portal sees them."""
        with self._lock:
            base = self._frozen if self._frozen is not None else time.time()
            return base + self._offset

    def now(self) -> datetime:
        """Aware datetime in the portal's time zone, microseconds kept (truncate where the API shows seconds)."""
        return datetime.fromtimestamp(self.time(), self.tz)

    def now_seconds(self) -> datetime:
        return self.now().replace(microsecond=0)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def freeze(self, at: float | None = None) -> None:
        """Stop the clock (at `at` unix seconds, or now) so several changes share one second."""
        with self._lock:
            self._frozen = (at if at is not None else time.time() + self._offset) - self._offset

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen is not None:
                self._offset += self._frozen - time.time()
            self._frozen = None

    def isoformat(self, dt: datetime | None = None) -> str:
        """PHP `date('c')`: second precision with the portal's offset, e.g. 2024-06-13T18:23:54+03:00."""
        dt = (dt or self.now()).astimezone(self.tz).replace(microsecond=0)
        return dt.isoformat()
