"""Per-resource counters of one run: rows, pages, HTTP requests, retries, seconds.

dlt pulls the resources' pages round robin in one thread, so whatever the client did since the previous page
(of any resource) was done to produce the page arriving now: its requests, retries and time are booked to that
resource (the run's discovery batch to the first resource that runs). A step on each resource's pipe sees
every page once, as a list, so metering costs one call per page, not per row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dlt.extract.items_transform import ItemTransform

from sources.bitrix24 import PORTAL_INFO, Bitrix24Client


@dataclass
class ResourceMeter:
    name: str
    rows: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    expected_rows: int | None = None  # when known (a pre-count), for an ETA
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[["RunMeter", ResourceMeter], None]


class _PageStep(ItemTransform[Any, dict[str, Any]]):
    """Passes every item through; tells the meter how many rows went by."""

    def __init__(self, on_page: Callable[[int], None]):
        super().__init__(on_page)
        self._on_page = on_page

    def __call__(self, item: Any, meta: Any = None) -> Any:
        self._on_page(len(item) if isinstance(item, list) else 1)
        return item


class RunMeter:
    """Counters for the resources of one run, fed by steps `attach` puts on the source's resources. A
    `listener` (the CLI's progress display) is called after every page."""

    def __init__(self, listener: Listener | None = None, clock: Callable[[], float] = time.monotonic):
        self.listener = listener
        self.resources: dict[str, ResourceMeter] = {}
        self.client: Bitrix24Client | None = None
        self._clock = clock
        self.started = clock()
        self._mark = (self.started, 0, 0)  # time, requests, retries at the previous page

    def expect(self, expected_rows: dict[str, int]) -> None:
        for name, rows in expected_rows.items():
            self.resources.setdefault(name, ResourceMeter(name)).expected_rows = rows

    def attach(self, source: Any, client: Bitrix24Client, requests_at_start: int | None = None) -> None:
        """`requests_at_start`: the client's count before the source was built (its first run asks the portal
        which smart processes exist): booked to the first resource, like the discovery batch."""
        self.client = client
        self.started = self._clock()
        requests, retries = self._client_counts()
        self._mark = (self.started, requests if requests_at_start is None else requests_at_start, retries)
        for name, resource in source.selected_resources.items():
            if name == PORTAL_INFO:  # one row about the portal, no request: not a resource the user chose
                continue
            self.resources.setdefault(name, ResourceMeter(name))
            resource.add_step(_PageStep(lambda rows, name=name: self.page(name, rows)))

    def page(self, name: str, rows: int) -> None:
        now, requests, retries = self._clock(), *self._client_counts()
        then, requests_before, retries_before = self._mark
        meter = self.resources[name]
        meter.rows += rows
        meter.pages += 1
        meter.requests += requests - requests_before
        meter.retries += retries - retries_before
        meter.seconds += now - then
        self._mark = (now, requests, retries)
        if self.listener is not None:
            self.listener(self, meter)

    def finish(self) -> None:
        """Mark every resource done (the client's work after the last page stays in the run's totals only)."""
        for meter in self.resources.values():
            meter.done = True
        if self.listener is not None and self.resources:
            self.listener(self, next(iter(self.resources.values())))

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def _client_counts(self) -> tuple[int, int]:
        if self.client is None:
            return 0, 0
        stats = self.client.stats
        return stats.requests, sum(stats.retries.values())
