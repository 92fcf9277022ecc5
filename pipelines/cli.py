"""`bitrix24-sync`: run (incremental), backfill, demo.

A user's mistake (a bad URL, a rejected token, a missing scope, a bad date, an unknown resource, an
unreachable database) prints one line saying what is wrong and how to fix it, and exits non-zero without a
traceback (`--debug` shows one). Nothing here prints the webhook URL: it is the credential.

Exit codes: 0 success, 2 a usage or configuration mistake, 3 the portal failed (after bounded retries; run
again), 4 the destination failed.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from pipelines.bitrix24_pipeline import DATASET_NAME, DestinationError, SyncReport, make_pipeline, sync
from sources.bitrix24.client import AuthError, Bitrix24Error, ConfigError, ScopeError
from sources.bitrix24.settings import ALL_RESOURCES
from sources.bitrix24.window import DateInputError

EXIT_USAGE, EXIT_PORTAL, EXIT_DESTINATION = 2, 3, 4

DEMO_QUERY = """SELECT p.name AS pipeline, count(*) AS deals,
       count(*) FILTER (WHERE s.semantics = 'S') AS won,
       count(*) FILTER (WHERE s.semantics = 'F') AS lost
FROM {ds}.deals d
JOIN {ds}.pipelines p ON p.id = d.category_id
JOIN {ds}.stages s ON s.status_id = d.stage_id AND s.entity_id LIKE 'DEAL_STAGE%'
GROUP BY p.name ORDER BY deals DESC"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitrix24-sync", description="Load a Bitrix24 CRM into DuckDB or Postgres.")
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def destination_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
        p.add_argument("--duckdb-path", default="bitrix24.duckdb", help="DuckDB file (default: %(default)s)")
        p.add_argument(
            "--postgres-url",
            help="postgresql://user:password@host:port/db (default: "
            "destination.postgres.credentials from .dlt/secrets.toml)",
        )
        p.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default: ~/.dlt/pipelines)")
        p.add_argument("--resources", help=f"comma-separated, from: {', '.join(ALL_RESOURCES)}")

    run = commands.add_parser(
        "run",
        help="incremental sync (the first run loads everything)",
        epilog="example: bitrix24-sync run --resources deals,payments",
    )
    destination_options(run)
    run.add_argument("--full-refresh", action="store_true", help="drop the tables and cursors and start over")

    backfill = commands.add_parser(
        "backfill",
        help="re-read a DATE_MODIFY window without moving the cursors",
        epilog="example: bitrix24-sync backfill --since 2024-01-01 --until 2024-07-01",
    )
    destination_options(backfill)
    backfill.add_argument("--since", required=True, help="YYYY-MM-DD (portal's calendar) or an ISO datetime")
    backfill.add_argument("--until", help="end of the window, exclusive (default: now)")

    demo = commands.add_parser("demo", help="sync a seeded local emulator into a DuckDB file and show it")
    demo.add_argument("--path", default="demo.duckdb", help="DuckDB file to (re)create (default: %(default)s)")
    for entity, default in (("deals", 2000), ("leads", 1000), ("contacts", 800), ("companies", 200)):
        demo.add_argument(f"--{entity}", type=_positive, default=default)
    demo.add_argument("--seed", type=int, default=7)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "demo":
            return demo(args)
        report = _sync(args)
    except (ConfigError, DateInputError) as error:
        return _fail(args, str(error), EXIT_USAGE)
    except AuthError as error:
        return _fail(
            args,
            f"{error} (check the webhook URL in .dlt/secrets.toml or SOURCES__BITRIX24__WEBHOOK_URL)",
            EXIT_USAGE,
        )
    except ScopeError as error:
        return _fail(
            args,
            f"{error} (give the webhook the crm, user and sale scopes in Bitrix24's Developer resources)",
            EXIT_USAGE,
        )
    except DestinationError as error:
        return _fail(args, str(error), EXIT_DESTINATION)
    except Bitrix24Error as error:
        return _fail(args, f"{error}; nothing was committed, run again later", EXIT_PORTAL)
    _print_report(report)
    return 0


def _sync(args: argparse.Namespace) -> SyncReport:
    pipeline = make_pipeline(
        args.destination,
        duckdb_path=args.duckdb_path,
        postgres_url=args.postgres_url,
        pipelines_dir=args.pipelines_dir,
    )
    if args.command == "backfill":
        return sync(pipeline, resources=args.resources, backfill=(args.since, args.until))
    return sync(pipeline, resources=args.resources, full_refresh=args.full_refresh)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"bitrix24-sync: error: {message}", file=sys.stderr)
    return code


def _print_report(report: SyncReport) -> None:
    rows = sum(report.row_counts.values())
    print(f"synced {rows} rows in {len(report.row_counts)} tables with {report.requests} HTTP requests")
    for table, count in sorted(report.row_counts.items()):
        print(f"  {table:<40} {count:>9}")


def demo(args: argparse.Namespace) -> int:
    """Start the emulator as a subprocess, sync it into a fresh DuckDB file, show tables and a query."""
    path = Path(args.path)
    if path.exists():
        path.unlink()  # the demo's own file: a new emulator's data must not meet old cursors
    command = [sys.executable, "-m", "bitrix24_emulator", "--port", "0", "--seed", str(args.seed)]
    for entity in ("deals", "leads", "contacts", "companies"):
        command += [f"--{entity}", str(getattr(args, entity))]
    with tempfile.TemporaryFile(mode="w+") as emulator_log:  # its banner stays out of the demo's output
        emulator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=emulator_log, text=True)
        try:
            assert emulator.stdout is not None
            webhook_url = emulator.stdout.readline().strip()
            if not webhook_url:
                emulator.wait(timeout=10)
                emulator_log.seek(0)
                last = (emulator_log.read().strip().splitlines() or ["it printed nothing"])[-1]
                return _fail(args, f"the emulator did not start: {last}", EXIT_PORTAL)
            with tempfile.TemporaryDirectory(prefix="bitrix24-demo-") as pipelines_dir:
                pipeline = make_pipeline(
                    "duckdb", duckdb_path=path, pipelines_dir=pipelines_dir, pipeline_name="bitrix24_demo"
                )
                report = sync(pipeline, webhook_url=webhook_url)
        finally:
            emulator.terminate()
            try:
                emulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait()
    print(f"loaded the emulated portal into {path} with {report.requests} HTTP requests\n")
    _print_demo_tables(path)
    return 0


def _print_demo_tables(path: Path) -> None:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            t
            for (t,) in con.sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
                params=[DATASET_NAME],
            ).fetchall()
            if not t.startswith("_dlt")
        ]
        print(f"{'table':<40} {'rows':>9}")
        for table in tables:
            count = con.sql(f'SELECT count(*) FROM {DATASET_NAME}."{table}"').fetchall()[0][0]
            print(f"{table:<40} {count:>9}")
        sql = DEMO_QUERY.format(ds=DATASET_NAME)
        print(f"\nexample query (duckdb {path}):\n{sql};\n")
        result = con.sql(sql)
        _print_rows(result.columns, result.fetchall())


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [[str(c) for c in columns], *[[str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    sys.exit(main())
