"""What every command of the CLI shares: logging with timestamps, option defaults from dlt configuration, the
destination options, the progress display, the one-line failure.

Option defaults follow dlt's conventions: `[bitrix24_sync]` in .dlt/config.toml, or the environment variable
`BITRIX24_SYNC__<KEY>` (e.g. `BITRIX24_SYNC__DESTINATION=postgres`); a command-line option wins.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dlt

from pipelines.deletes import DELETE_MODES, DeleteReport
from pipelines.progress import ProgressDisplay, plural, summary_table
from pipelines.run_meter import RunMeter
from pipelines.runner import SyncReport, make_pipeline, pipeline_catalog
from sources.bitrix24 import PORTAL_INFO, Bitrix24Client, Catalog, SourceState, count_windows

CONFIG_SECTION = "bitrix24_sync"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHECK_RETRIES = {"max_retries": 2, "max_retry_seconds": 20.0}  # check answers quickly, even when unreachable


@dataclass(frozen=True)
class Command:
    """One CLI command: its module defines `COMMAND = Command(...)` and nothing else needs to change."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    examples: tuple[str, ...] = ()
    order: int = 100  # position in `--help`


def config_default(key: str, fallback: Any) -> Any:
    """`[bitrix24_sync] <key>` from .dlt/config.toml or BITRIX24_SYNC__<KEY>, else `fallback`."""
    value = dlt.config.get(f"{CONFIG_SECTION}.{key}")
    return fallback if value in (None, "") else value


@contextlib.contextmanager
def cli_logging(debug: bool, quiet: bool) -> Iterator[None]:
    """Timestamped lines on stderr for the sync's loggers (INFO: progress and retries; --quiet: warnings
    only), for the duration of one command; other libraries log through the root logger (warnings)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format=LOG_FORMAT)
    logger = logging.getLogger("bitrix24_sync")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    quiet_dlt = _DltWithoutTracebacks()
    if not debug:
        logging.getLogger("dlt").addFilter(quiet_dlt)
    try:
        yield
    finally:
        logging.getLogger("dlt").removeFilter(quiet_dlt)
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _DltWithoutTracebacks(logging.Filter):
    """Without --debug, dlt's own log lines carry no traceback (the failure they belong to is reported in one
    line by the CLI), and its housekeeping failures after an error (a trace it could not save on a full disk)
    are not shown at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Failed to create trace dump"):
            return False
        record.exc_info, record.exc_text = None, None
        return True


def destination_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--destination",
        metavar="NAME",
        default=config_default("destination", "duckdb"),
        help="duckdb or postgres (tested here), or any dlt destination configured in .dlt/ (bigquery, "
        "snowflake, motherduck, filesystem, ...); default: %(default)s ([bitrix24_sync] destination, "
        "BITRIX24_SYNC__DESTINATION)",
    )
    parser.add_argument(
        "--duckdb-path",
        default=config_default("duckdb_path", "bitrix24.duckdb"),
        help="DuckDB file (default: %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        help="postgresql://user:password@host:port/db (default: "
        "destination.postgres.credentials from .dlt/secrets.toml)",
    )
    parser.add_argument(
        "--pipelines-dir",
        default=config_default("pipelines_dir", None),
        help="where dlt keeps pipeline state and the run log (default: ./.dlt/pipelines; `status` shows it)",
    )
    parser.add_argument(
        "--resources", help=f"comma-separated, from: {', '.join(Catalog.for_portal().resources)} (and smart processes)"
    )


def delete_mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delete-mode",
        choices=DELETE_MODES,
        help="mark: set _deleted_at; remove: delete the rows (default: sources.bitrix24.delete_mode, else mark)",
    )


def pipeline_from(args: argparse.Namespace) -> dlt.Pipeline:
    return make_pipeline(
        args.destination,
        duckdb_path=args.duckdb_path,
        postgres_url=args.postgres_url,
        pipelines_dir=args.pipelines_dir,
    )


def run_meter(args: argparse.Namespace, client: Bitrix24Client, pipeline: dlt.Pipeline) -> RunMeter:
    """The meter the runner fills; with a display unless --quiet. On a terminal the expected row counts
    come from one counting request (so the bars can show an ETA); elsewhere nobody watches an ETA."""
    if args.quiet:
        return RunMeter()
    terminal = sys.stderr.isatty()
    display = ProgressDisplay(sys.stderr, terminal=terminal, rate=client.bucket.rate, interval=args.progress_interval)
    meter = RunMeter(display, on_step=display.on_step)
    if terminal and getattr(args, "since", None) is None:  # a backfill's window is not counted
        catalog = pipeline_catalog(pipeline)
        names = catalog.select(args.resources)
        specs = [catalog.entity(n) for n in names if catalog.has_entity(n)]
        state = None if args.full_refresh else SourceState.of_pipeline(pipeline.state)
        meter.expect(count_windows(client, specs, state))
    return meter


def fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"bitrix24-sync: error: {message}", file=sys.stderr)
    return code


def print_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [[str(c) for c in columns], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_deletes(report: DeleteReport) -> None:
    print(f"reconciled deletes ({report.mode}) with {plural(report.requests, 'HTTP request')}")
    for line in report.lines():
        print(line)


def print_report(report: SyncReport) -> None:
    records = sum(n for table, n in report.row_counts.items() if "__" not in table and table != PORTAL_INFO)
    children = sum(n for table, n in report.row_counts.items() if "__" in table)
    print(
        f"synced {plural(records, 'record')} (and {plural(children, 'row')} of child tables) in "
        f"{plural(len(report.row_counts), 'table')} with {plural(report.requests, 'HTTP request')}"
    )
    if report.meter is not None and report.meter.client is not None:
        stats = report.meter.client.stats
        for line in summary_table(report.meter, report.row_counts, report.requests, sum(stats.retries.values())):
            print(f"  {line}")
    if report.deletes and report.deletes.worth_showing:
        print_deletes(report.deletes)
