"""`make bench`: the sync against the emulator (limits off) at 10k and 100k deals (1M with `--big`), into
DuckDB and Postgres, beside the paging strategies users have today. Prints one table with the targets and
writes bench-results/bench.json. A benchmark, not a test: the figures depend on the machine and its load.

    python -m tests.bench [--big] [--sizes 10k,100k] [--postgres URL | --no-postgres] [--profile]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from .cases import Bench, Row, baseline_suite, incremental_suite, throughput_case
from .emulator import Emulator, PortalSize
from .report import machine, memory_checks, row_notes, table, write_json

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
BACKFILL_WINDOW = ("2026-10-01", "2026-11-01")  # one month before the generated portal's end
# Offset paging scans every row before `start` again: quadratic in the portal. At 1M the baselines would run
# for hours on the emulator; their cost there is the same formula (see the note printed).
BASELINES = {"10k": ("offset_pages", "offset_batches"), "100k": ("offset_pages", "offset_batches"), "1M": ()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", action="store_true", help="add the 1M-deal portal (generated once, ~1 GB)")
    parser.add_argument("--sizes", default=None, help="comma-separated subset of 10k,100k,1M")
    pg = parser.add_mutually_exclusive_group()
    pg.add_argument("--postgres", metavar="URL", help="load into this server (a bench dataset is dropped/made)")
    pg.add_argument("--no-postgres", action="store_true", help="DuckDB only")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="also profile the 100k deals-only sync with py-spy (CPU by component)"
    )
    parser.add_argument("--results", type=Path, default=Path("bench-results"))
    parser.add_argument("--nice", type=int, default=10, help="niceness of the children (0: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = args.sizes.split(",") if args.sizes else ["10k", "100k"] + (["1M"] if args.big else [])
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"unknown size {unknown}: choose from {', '.join(SIZES)}", file=sys.stderr)
        return 2
    args.results.mkdir(parents=True, exist_ok=True)
    log = args.results / "bench.log"
    log.write_text("")
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {text}", file=sys.stderr, flush=True)

    bench = Bench(args.results, ["nice", "-n", str(args.nice)] if args.nice else [], log, progress)
    notes: list[str] = []
    rows: list[Row] = []
    profile_text = ""
    with ExitStack() as stack:
        postgres_url = args.postgres or (None if args.no_postgres else _throwaway_postgres(stack, notes))
        for label in sizes:
            with Emulator(PortalSize(SIZES[label]), args.results, bench.nice) as emu:
                rows += _size_cases(args, bench, emu, postgres_url, notes)
                if label == "100k" and args.profile:
                    from .profile import profile_deals

                    profile_text = profile_deals(bench, emu)
        shutil.rmtree(args.results / "work", ignore_errors=True)

    elapsed = time.monotonic() - started
    mem = memory_checks(rows)
    info = machine()
    print(
        f"\nbitrix24-sync benchmark: {info['nproc']} x {info['cpu']}, Python {info['python']}, "
        f"dlt {info['dlt']}, duckdb {info['duckdb']}, pyarrow {info['pyarrow']}; emulator limits off; "
        f"children at nice {args.nice}; {elapsed:.0f} s in all\n"
    )
    print(table(rows))
    print("\nportal s = max(0, requests - 50) / 2: what a real portal's 2 req/s after the 50-request burst imposes")
    print(
        "rows/CPU-s = rows returned by the portal / (user+sys CPU of the sync process); target only on "
        "'deals only' into DuckDB; x proto = its CPU / the bare prototype's (tests/bench/prototype.py) in "
        "the same run. rows loaded = rows into all tables, child tables of multiple fields included"
    )
    print(
        "req target: the full sync counts R = rows of the root tables, one request per resource on top; "
        "'beats both': requests <= and rows scanned < the better of the two offset strategies"
    )
    for note in row_notes(rows):
        print(f"  {note}")
    for check in mem.values():
        verdict = "" if check.ok is None else (" PASS" if check.ok else " MISS")
        print(f"memory: {check.target}{verdict}")
    for note in notes:
        print(f"note: {note}")
    if profile_text:
        print("\n" + profile_text)
    out = args.results / "bench.json"
    write_json(out, rows, {"seconds": round(elapsed), "sizes": sizes, "notes": notes, "profile": profile_text})
    print(f"\nwritten {out}")
    return 0


def _size_cases(
    args: argparse.Namespace, bench: Bench, emu: Emulator, postgres_url: str | None, notes: list[str]
) -> list[Row]:
    label = emu.size.label
    if emu.seed_seconds is not None:
        notes.append(f"{label}: portal generated once in {emu.seed_seconds:.0f} s ({emu.pristine})")
    rows = incremental_suite(bench, emu, "duckdb", backfill_window=BACKFILL_WINDOW)
    if postgres_url:
        rows += incremental_suite(bench, emu, "postgres", postgres_url=postgres_url, backfill_window=BACKFILL_WINDOW)
    deals, prototype = throughput_case(bench, emu)
    rows += [deals, prototype]
    strategies = () if args.no_baselines else BASELINES[label]
    if strategies:
        rows += baseline_suite(bench, emu, strategies, deals)
    elif not args.no_baselines:
        notes.append(
            f"{label}: offset baselines skipped: offset paging is quadratic (each page scans start+50 "
            f"rows: ~R^2/100 rows scanned; offset_pages needs R/50 requests)"
        )
    return rows


def _throwaway_postgres(stack: ExitStack, notes: list[str]) -> str | None:
    from tests.postgres_server import PostgresServer, find_server_bin

    bin_dir = find_server_bin()
    if bin_dir is None:
        notes.append("Postgres skipped: no server binaries (install Debian's postgresql or pass --postgres URL)")
        return None
    server = PostgresServer.start(bin_dir)
    stack.callback(server.stop)
    return server.url


if __name__ == "__main__":
    sys.exit(main())
