"""The client-side leaky bucket that keeps a sync under the portal's request rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class LeakyBucket:
    """Client-side mirror of the portal's limiter: the level drains at `rate`/s, each request adds 1, and a
    request that would overflow `burst` waits until it fits. Thread-safe; a request reserves its slot before
    sleeping, so concurrent callers queue instead of stampeding."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("the request rate must be > 0 and the burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take one slot, sleeping only if the bucket is full; returns the seconds slept."""
        with self._lock:
            self._drain()
            wait = max(0.0, (self._level + 1 - self.burst) / self.rate)
            self._level += 1
        if wait > 0:
            self._sleep(wait)
        return wait

    def fill(self) -> None:
        """The portal said it is full (QUERY_LIMIT_EXCEEDED): pace the next requests at `rate`."""
        with self._lock:
            self._drain()
            self._level = max(self._level, float(self.burst))

    @property
    def level(self) -> float:
        with self._lock:
            self._drain()
            return self._level
