"""What the portal served, for tests and benchmarks (GET /_emulator/stats).

`requests` counts HTTP requests to /rest/ (refused and failed ones included; admin calls made with the
`X-Emulator-Admin: 1` header are not counted); a batch is one request and its commands count in `subcalls`.
Rows and operating seconds add up over top-level calls and batch sub-calls alike.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from .methods import Cost

REFUSAL_CODES = ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT")


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._subcalls: Counter[str] = Counter()
            self._rows_returned = 0
            self._rows_scanned = 0
            self._rows_counted = 0
            self._operating = 0.0
            self._refused: Counter[str] = Counter({code: 0 for code in REFUSAL_CODES})
            self._faults = 0

    def request(self, method: str) -> None:
        with self._lock:
            self._requests[method] += 1

    def subcall(self, method: str) -> None:
        with self._lock:
            self._subcalls[method] += 1

    def cost(self, cost: Cost, seconds: float) -> None:
        with self._lock:
            self._rows_returned += cost.rows_returned
            self._rows_scanned += cost.rows_scanned
            self._rows_counted += cost.counted
            self._operating += seconds

    def refused(self, code: str) -> None:
        with self._lock:
            self._refused[code] += 1

    def fault(self) -> None:
        with self._lock:
            self._faults += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": sum(self._requests.values()),
                "requests_by_method": dict(self._requests),
                "subcalls": sum(self._subcalls.values()),
                "subcalls_by_method": dict(self._subcalls),
                "rows_returned": self._rows_returned,
                "rows_scanned": self._rows_scanned,
                "rows_counted": self._rows_counted,
                "operating_seconds": round(self._operating, 6),
                "refused": dict(self._refused),
                "faults_injected": self._faults,
            }
