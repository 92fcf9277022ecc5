"""What a person sees while a sync runs, and the table after it.

On a terminal (stderr is a tty): one live line per resource, redrawn in place at most 10 times a second
(rows, a bar when the row count is known, rows/s, requests, ETA), then a line per step of dlt's after the
extraction (normalize: rows and files; load: jobs; their time). Elsewhere (cron, CI, a pipe): every `interval`
seconds a log line per resource that moved, one per resource when the extraction ends, and a line when each
step starts and ends, through logging (timestamped). Rendering is throttled by time, so a page costs a clock
read and a comparison; it cannot slow the sync measurably.

The ETA comes from the rate limit: the rows still to read need ceil(rows / 2500) batch requests (50 pages of 50
rows each), at `rate` requests per second; if the portal is slower than that, the observed rows/s decides.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TextIO

from pipelines.run_meter import ResourceMeter, RunMeter, StepMeter
from sources.bitrix24 import BATCH_SIZE, PAGE_SIZE

log = logging.getLogger("bitrix24_sync.progress")

ROWS_PER_REQUEST = PAGE_SIZE * BATCH_SIZE
REDRAW_SECONDS = 0.1
BAR_WIDTH = 20
NAME_WIDTH = 15  # the longest resource name most portals have (smart_processes)


def eta_seconds(meter: ResourceMeter, rate: float) -> float | None:
    if meter.expected_rows is None or meter.done:
        return None
    remaining = max(0, meter.expected_rows - meter.rows)
    by_rate = math.ceil(remaining / ROWS_PER_REQUEST) / rate
    by_speed = remaining / (meter.rows / meter.seconds) if meter.rows and meter.seconds > 0 else 0.0
    return max(by_rate, by_speed)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def describe(meter: ResourceMeter, rate: float, bar: bool = False) -> str:
    rows = f"{meter.rows:,}" + (f"/{meter.expected_rows:,}" if meter.expected_rows is not None else "")
    speed = meter.rows / meter.seconds if meter.seconds > 0 else 0.0
    parts = [f"{rows} rows", f"{speed:,.0f} rows/s", f"{meter.requests} requests"]
    if meter.done:
        parts.append("done")
    elif (eta := eta_seconds(meter, rate)) is not None:
        parts.append(f"ETA {duration(eta)}")
    text = "  ".join(parts)
    if bar and meter.expected_rows:
        filled = min(BAR_WIDTH, BAR_WIDTH * meter.rows // meter.expected_rows)
        text = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}"
    return f"{meter.name:<{NAME_WIDTH}} {text}"


def describe_step(step: StepMeter, now: float) -> str:
    """`normalize       12,345 rows  files 3/5  0:04`, `load            jobs 5/12  done in 0:03`."""

    def counted(name: str) -> str:
        total = step.totals.get(name)
        return f"{step.counts.get(name, 0)}" + (f"/{total}" if total is not None else "")

    parts = (
        [f"{step.rows:,} rows", f"files {counted('Files')}"]
        if step.name == "normalize"
        else [f"jobs {counted('Jobs')}"]
    )
    parts.append(f"done in {duration(step.seconds)}" if step.done else duration(now - step.started))
    return f"{step.name:<{NAME_WIDTH}} {'  '.join(parts)}"


class ProgressDisplay:
    """A `RunMeter` listener: live lines on a terminal, periodic log lines otherwise."""

    def __init__(
        self,
        stream: TextIO,
        *,
        terminal: bool,
        rate: float = 2.0,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream
        self.terminal = terminal
        self.rate = rate
        self.interval = interval
        self._clock = clock
        self._last = -math.inf
        self._drawn = 0  # lines of the live block on screen
        self._logged: dict[str, int] = {}  # rows per resource at its last log line

    def __call__(self, run: RunMeter, meter: ResourceMeter) -> None:
        now = self._clock()
        finished = all(m.done for m in run.resources.values())
        if self.terminal:
            if finished or now - self._last >= REDRAW_SECONDS:
                self._last = now
                self._draw(run)
        elif finished:
            for each in run.resources.values():
                log.info("%s", describe(each, self.rate))
        elif now - self._last >= self.interval:
            self._last = now
            for each in run.resources.values():
                if each.pages and self._logged.get(each.name) != each.rows:  # what moved since the last lines
                    self._logged[each.name] = each.rows
                    log.info("%s", describe(each, self.rate))

    def on_step(self, run: RunMeter, step: StepMeter) -> None:
        """A step of dlt's started, counted or ended: redrawn like a page; logged when it starts and ends."""
        now = self._clock()
        if self.terminal:
            if step.done or now - self._last >= REDRAW_SECONDS:
                self._last = now
                self._draw(run)
            return
        if not step.counts and not step.done and self._logged.get(step.name) is None:
            self._logged[step.name] = 0
            for each in run.resources.values():  # the extraction is over: where each resource ended
                log.info("%s", describe(each, self.rate))
            log.info("%s", describe_step(step, now))
        elif step.done:
            log.info("%s", describe_step(step, now))

    def _draw(self, run: RunMeter) -> None:
        now = self._clock()
        lines = [describe(m, self.rate, bar=True) for m in run.resources.values()]
        lines += [describe_step(step, now) for step in run.steps]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.stream.write(up + "".join(f"\r{line}\x1b[K\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)


def summary_table(run: RunMeter, row_counts: dict[str, int], requests: int, retries: int) -> list[str]:
    """Resources with rows loaded, requests, retries and seconds, and a total line with the run's own counts
    (requests after a resource's last page, such as an empty chain's, are only in the total)."""
    width = max([12, *(len(name) + 1 for name in run.resources)])
    header = f"{'resource':<{width}} {'rows':>10} {'requests':>9} {'retries':>8} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    total_rows = 0
    for name, meter in run.resources.items():
        rows = row_counts.get(name, meter.rows)
        total_rows += rows
        lines.append(f"{name:<{width}} {rows:>10,} {meter.requests:>9} {meter.retries:>8} {meter.seconds:>8.1f}")
    # dlt's normalize and load come after the last page, then the views and deletes (in parentheses: not
    # resources): their time, so that the seconds add up
    for step in run.steps:
        lines.append(f"{'(' + step.name + ')':<{width}} {'':>10} {'':>9} {'':>8} {step.seconds:>8.1f}")
    spent = sum(meter.seconds for meter in run.resources.values()) + sum(step.seconds for step in run.steps)
    after = max(0.0, run.elapsed - spent)
    lines.append(f"{'(views)' if run.steps else '(load)':<{width}} {'':>10} {'':>9} {'':>8} {after:>8.1f}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<{width}} {total_rows:>10,} {requests:>9} {retries:>8} {run.elapsed:>8.1f}")
    return lines


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 request`, `2 requests` (`many`: an irregular plural)."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
