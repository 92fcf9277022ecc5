"""The portal's two limits: the request-rate leaky bucket and the per-method operating-time window.

Both read the portal Clock, so a test moves time instead of sleeping.

Leaky bucket (reference §8.1): one counter per portal; every counted request adds 1, the counter drains by
`rate` per second, and a request that would push it past `burst` is refused with 503 QUERY_LIMIT_EXCEEDED
(refused requests do not add to the counter). A batch is one request.

Operating time (reference §8.2, core-src LoadLimiter): seconds are accumulated per (webhook or app, method) in
one-minute buckets (bucket number = unix time // 60) that expire 10 minutes after the first call recorded in
them; `time.operating` is the sum of the live buckets and `time.operating_reset_at` the expiry of the oldest
one (or start + 600 when none). Before a call, if the sum exceeds the limit the call is refused with 429
OPERATION_TIME_LIMIT; the call that crosses the limit still runs. As in core-src, the time a request spent in
one method (all its batch sub-calls of that method together) is recorded only when it exceeds
`min_fix_seconds` (0.1 s) and `batch` itself is never charged.

Cost model: the emulator does not charge wall-clock time (that would make tests flaky and benchmarks measure
the emulator); a call's operating seconds come from what the handler reports in `Cost`:

    seconds = 0.002 + 0.00002 * rows_scanned + 0.00001 * rows_counted

So a 50-row keyset page (`filter[>ID]`, `start=-1`) costs 0.003 s and is never recorded on its own, a batch of
50 such pages costs 0.15 s, a page at offset 100,000 costs about 2 s and a COUNT over a million rows 10 s.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass

from .clock import Clock
from .methods import Cost

BUCKET_SECONDS = 60
BUCKET_COUNT = 10
WINDOW_SECONDS = BUCKET_SECONDS * BUCKET_COUNT


@dataclass(frozen=True)
class CostModel:
    base: float = 0.002
    per_row_scanned: float = 0.00002
    per_row_counted: float = 0.00001

    def seconds(self, cost: Cost) -> float:
        return self.base + self.per_row_scanned * cost.rows_scanned + self.per_row_counted * cost.counted


class LeakyBucket:
    """Requests per portal: `burst` at once, then `rate` per second."""

    def __init__(self, clock: Clock, rate: float, burst: int):
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._level = 0.0
        self._at = clock.time()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            self._drain()
            if self._level + 1 > self.burst:
                return False
            self._level += 1
            return True

    def level(self) -> float:
        with self._lock:
            self._drain()
            return self._level

    def reset(self) -> None:
        with self._lock:
            self._level = 0.0
            self._at = self.clock.time()

    def _drain(self) -> None:
        now = self.clock.time()
        self._level = max(0.0, self._level - max(0.0, now - self._at) * self.rate)
        self._at = now


class OperatingTime:
    """Operating seconds per (webhook|app, method) over a sliding window of 10 one-minute buckets."""

    def __init__(self, clock: Clock, limit: float, min_fix_seconds: float = 0.1):
        self.clock = clock
        self.limit = limit
        self.min_fix_seconds = min_fix_seconds
        # key -> bucket number -> [seconds, expires_at]
        self._buckets: dict[Hashable, dict[int, list[float]]] = {}
        self._lock = threading.Lock()

    def used(self, key: Hashable) -> float:
        with self._lock:
            return sum(seconds for seconds, _ in self._live(key))

    def reset_at(self, key: Hashable, start: float) -> int:
        with self._lock:
            live = self._live(key)
            return int(live[0][1]) if live else int(start + WINDOW_SECONDS)

    def record(self, key: Hashable, seconds: float, first_start: float) -> None:
        """Charge what one request spent in one method (ignored up to `min_fix_seconds`, as in core-src)."""
        if seconds <= self.min_fix_seconds:
            return
        number = int(self.clock.time() // BUCKET_SECONDS)
        with self._lock:
            buckets = self._buckets.setdefault(key, {})
            bucket = buckets.get(number)
            if bucket is None:
                buckets[number] = [seconds, first_start + WINDOW_SECONDS]
            else:
                bucket[0] += seconds

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def _live(self, key: Hashable) -> list[list[float]]:
        """Live buckets of `key`, oldest first; expired ones are dropped."""
        buckets = self._buckets.get(key)
        if not buckets:
            return []
        now = self.clock.time()
        current = int(now // BUCKET_SECONDS)
        for number in [n for n, (_, expires) in buckets.items() if n <= current - BUCKET_COUNT or expires <= now]:
            del buckets[number]
        return [buckets[n] for n in sorted(buckets)]


class OperatingLedger:
    """The operating seconds one HTTP request spends per method; committed once when the request ends."""

    def __init__(self, operating: OperatingTime, identity_key: Hashable):
        self.operating = operating
        self.identity_key = identity_key
        self._pending: dict[str, list[float]] = {}  # method -> [seconds, first start]

    def blocked(self, method: str) -> bool:
        return self.used(method) > self.operating.limit

    def charge(self, method: str, seconds: float, start: float) -> None:
        entry = self._pending.get(method)
        if entry is None:
            self._pending[method] = [seconds, start]
        else:
            entry[0] += seconds

    def used(self, method: str) -> float:
        """Stored seconds plus what this request has spent in `method` so far, if it will be recorded."""
        pending = self._pending.get(method, (0.0, 0.0))[0]
        counted = pending if pending > self.operating.min_fix_seconds else 0.0
        return self.operating.used((self.identity_key, method)) + counted

    def reset_at(self, method: str, start: float) -> int:
        first = self._pending.get(method, (0.0, start))[1]
        return self.operating.reset_at((self.identity_key, method), first)

    def commit(self) -> None:
        for method, (seconds, first_start) in self._pending.items():
            self.operating.record((self.identity_key, method), seconds, first_start)
        self._pending.clear()
