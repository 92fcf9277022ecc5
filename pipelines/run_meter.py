"""Per-resource counters of one run: rows, pages, HTTP requests, retries, seconds; then dlt's normalize and
load steps as its progress collector reports them (rows normalized, files, load jobs).

dlt pulls the resources' pages round robin in one thread, so whatever the client did since the previous page
(of any resource) was done to produce the page arriving now: its requests, retries and time are booked to that
resource (the run's discovery batch to the first resource that runs). A step on each resource's pipe sees
every page once, as a list, so metering costs one call per page, not per row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
from dlt.common.runtime.collector_base import Collector
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


@dataclass
class StepMeter:
    """One of dlt's steps after the extraction: `normalize` (rows per table, files) or `load` (jobs)."""

    name: str
    started: float
    counts: dict[str, int] = field(default_factory=dict)  # counter -> done (a table's rows, "Files", "Jobs")
    totals: dict[str, int] = field(default_factory=dict)  # counter -> total, when dlt knows it
    seconds: float = 0.0
    done: bool = False

    @property
    def rows(self) -> int:
        return sum(n for name, n in self.counts.items() if name not in ("Files", "Jobs"))


Listener = Callable[["RunMeter", ResourceMeter], None]  # after every page, with the page's resource
StepListener = Callable[["RunMeter", StepMeter], None]  # when a step starts, counts or ends


class _PageStep(ItemTransform[Any, dict[str, Any]]):
    """Passes every item through; tells the meter how many of the resource's rows went by (an Arrow table of
    a multiple field's values, dispatched to its own table, is not more records)."""

    def __init__(self, resource: str, on_page: Callable[[int], None]):
        super().__init__(on_page)
        self._resource = resource
        self._on_page = on_page

    def __call__(self, item: Any, meta: Any = None) -> Any:
        table = getattr(meta, "table_name", None) or (getattr(meta, "hints", None) or {}).get("table_name")
        if table in (None, self._resource):
            self._on_page(item.num_rows if isinstance(item, pa.Table) else len(item) if isinstance(item, list) else 1)
        return item


class RunMeter:
    """Counters for the resources of one run, fed by steps `attach` puts on the source's resources. A
    `listener` (the CLI's progress display) is called after every page."""

    def __init__(
        self,
        listener: Listener | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_step: StepListener | None = None,
    ):
        self.listener = listener
        self.on_step = on_step
        self.resources: dict[str, ResourceMeter] = {}
        self.steps: list[StepMeter] = []  # normalize and load, as dlt runs them
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
            resource.add_step(_PageStep(name, lambda rows, name=name: self.page(name, rows)))

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
        self._extracted()
        if self.listener is not None and self.resources:
            self.listener(self, next(iter(self.resources.values())))

    def _extracted(self) -> None:
        for meter in self.resources.values():
            meter.done = True

    @property
    def step(self) -> StepMeter | None:
        """The step running now."""
        return self.steps[-1] if self.steps and not self.steps[-1].done else None

    def step_started(self, name: str) -> None:
        """Normalize or load began: the extraction is over, every resource is done."""
        self._extracted()
        self.steps.append(StepMeter(name, self._clock()))
        self._tell()

    def step_counted(self, counter: str, inc: int, total: int | None, inc_total: int | None) -> None:
        step = self.step
        if step is None:
            return
        step.counts[counter] = step.counts.get(counter, 0) + inc
        if total is not None:
            step.totals[counter] = total
        elif inc_total:
            step.totals[counter] = step.totals.get(counter, 0) + inc_total
        self._tell()

    def step_stopped(self) -> None:
        step = self.step
        if step is not None:
            step.seconds, step.done = self._clock() - step.started, True
            self._tell()

    def _tell(self) -> None:
        if self.on_step is not None:
            self.on_step(self, self.steps[-1])

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def _client_counts(self) -> tuple[int, int]:
        if self.client is None:
            return 0, 0
        stats = self.client.stats
        return stats.requests, sum(stats.retries.values())


class StepCollector(Collector):
    """dlt's progress collector (`pipeline.collector`), fed into a RunMeter: normalize and load report to the
    same display as the pages did. The extraction's own counters are left to the resources' meters."""

    def __init__(self, run: RunMeter):
        self.run = run
        self._step: str | None = None

    def update(
        self,
        name: str,
        inc: int = 1,
        total: int | None = None,
        inc_total: int | None = None,
        message: str | None = None,
        label: str | None = None,
    ) -> None:
        if self._step is not None and not label:  # a label is dlt's "Failed" sub-counter of jobs
            self.run.step_counted(name, inc, total, inc_total)

    def _start(self, step: str) -> None:
        """dlt names the step "Normalize <schema> in <load id>", "Load ...", "Extract <source>"."""
        name = step.split(" ", 1)[0].lower()
        self._step = name if name in ("normalize", "load") else None
        if self._step is not None:
            self.run.step_started(self._step)

    def _stop(self) -> None:
        if self._step is not None:
            self.run.step_stopped()
        self._step = None
