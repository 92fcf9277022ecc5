"""`bitrix24-sync`: run (incremental), backfill, reconcile, check, status, oauth exchange, demo.

A user's mistake (a bad URL, a rejected token, a missing scope, a bad date, an unknown resource, an
unreachable database) prints one line saying what is wrong and how to fix it, and exits non-zero without a
traceback (`--debug` shows one). Nothing here prints the webhook URL: it is the credential.

Exit codes: one per class of failure, mapped in one place (`pipelines/exit_codes.py`, shown by `--help`).
Commands other than loading live in `pipelines/commands.py`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from pipelines.bitrix24_pipeline import DATASET_NAME, SyncReport, make_client, make_pipeline, reconcile, sync
from pipelines.commands import (
    check_command,
    cli_logging,
    config_default,
    oauth_exchange_command,
    pipeline_from,
    run_meter,
    status_command,
)
from pipelines.exit_codes import EXIT_DESTINATION, EXIT_PORTAL, EXIT_USAGE, HELP_TEXT, classify
from pipelines.portals import portals_command
from pipelines.progress import summary_table
from pipelines.reconcile import DELETE_MODES, DeleteOptions, DeleteReport
from sources.bitrix24.settings import ALL_RESOURCES

__all__ = ["EXIT_DESTINATION", "EXIT_USAGE", "build_parser", "main"]  # the codes re-exported for callers

CONFIG_HELP = """configuration (a command-line option wins):
  [bitrix24_sync] in .dlt/config.toml or BITRIX24_SYNC__<KEY>: destination, duckdb_path, pipelines_dir,
      progress_interval
  [sources.bitrix24]: webhook_url (secrets.toml; SOURCES__BITRIX24__WEBHOOK_URL), resources, rate, burst,
      delete_mode (mark | remove), reconcile_every_hours (0: only with run --reconcile)
  [sources.bitrix24.oauth]: client_endpoint, client_id, token_store, token_endpoint (config.toml);
      client_secret, refresh_token or authorization_code (secrets.toml)"""

EXAMPLES = {
    "run": [
        "bitrix24-sync run",
        "bitrix24-sync run --resources deals,payments --destination postgres",
        "bitrix24-sync run --full-refresh --resources leads",
        "bitrix24-sync --quiet run    # cron: nothing on stdout, the exit code says how it went",
        "bitrix24-sync run --portals portals.toml --duckdb-path 'warehouse/{portal}.duckdb'",
    ],
    "backfill": ["bitrix24-sync backfill --since 2024-01-01 --until 2024-07-01 --resources deals"],
    "reconcile": [
        "bitrix24-sync reconcile    # every CRM entity and payments: about 1 request per 2,500 records",
        "bitrix24-sync reconcile --resources deals,payments --delete-mode remove",
    ],
    "check": ["bitrix24-sync check", "bitrix24-sync check --destination postgres"],
    "status": ["bitrix24-sync status", "bitrix24-sync status --json | jq .resources.deals.cursor"],
    "oauth": [
        "bitrix24-sync oauth exchange --code 5ad2f76500...",
        "bitrix24-sync oauth exchange --code 'https://example.com/?code=5ad2f76500...&state=...'",
        "bitrix24-sync oauth exchange --code -    # read the code from stdin",
    ],
    "demo": ["bitrix24-sync demo", "bitrix24-sync demo --deals 20000 --path big.duckdb"],
}

DEMO_QUERY = """SELECT p.name AS pipeline, count(*) AS deals,
       count(*) FILTER (WHERE s.semantics = 'S') AS won,
       count(*) FILTER (WHERE s.semantics = 'F') AS lost
FROM {ds}.deals d
JOIN {ds}.pipelines p ON p.id = d.category_id
JOIN {ds}.stages s ON s.status_id = d.stage_id AND s.entity_id LIKE 'DEAL_STAGE%'
GROUP BY p.name ORDER BY deals DESC"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitrix24-sync",
        description="Load a Bitrix24 CRM into DuckDB or Postgres.",
        epilog=f"{HELP_TEXT}\n\n{CONFIG_HELP}\n\n'bitrix24-sync COMMAND --help' shows a command's options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    def destination_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--destination",
            metavar="NAME",
            default=config_default("destination", "duckdb"),
            help="duckdb or postgres (tested here), or any dlt destination configured in .dlt/ (bigquery, "
            "snowflake, motherduck, filesystem, ...); default: %(default)s ([bitrix24_sync] destination, "
            "BITRIX24_SYNC__DESTINATION)",
        )
        p.add_argument(
            "--duckdb-path",
            default=config_default("duckdb_path", "bitrix24.duckdb"),
            help="DuckDB file (default: %(default)s)",
        )
        p.add_argument(
            "--postgres-url",
            help="postgresql://user:password@host:port/db (default: "
            "destination.postgres.credentials from .dlt/secrets.toml)",
        )
        p.add_argument(
            "--pipelines-dir",
            default=config_default("pipelines_dir", None),
            help="where dlt keeps pipeline state and the run log (default: ~/.dlt/pipelines)",
        )
        p.add_argument("--resources", help=f"comma-separated, from: {', '.join(ALL_RESOURCES)}")

    def delete_mode_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--delete-mode",
            choices=DELETE_MODES,
            help="mark: set _deleted_at; remove: delete the rows (default: sources.bitrix24.delete_mode, else mark)",
        )

    run = commands.add_parser(
        "run",
        help="incremental sync (the first run loads everything)",
        epilog="example: bitrix24-sync run --resources deals,payments",
    )
    destination_options(run)
    run.add_argument("--full-refresh", action="store_true", help="drop the tables and cursors and start over")
    run.add_argument(
        "--reconcile", action="store_true", help="after the load, find records deleted on the portal (ID scan)"
    )
    delete_mode_option(run)
    run.add_argument(
        "--portals",
        metavar="FILE",
        help="sync every portal listed in this TOML file, in parallel processes (see pipelines/portals.py); "
        "DuckDB: put {portal} in --duckdb-path for a file per portal",
    )

    backfill = commands.add_parser(
        "backfill",
        help="re-read a DATE_MODIFY window without moving the cursors",
        epilog="example: bitrix24-sync backfill --since 2024-01-01 --until 2024-07-01",
    )
    destination_options(backfill)
    backfill.add_argument("--since", required=True, help="YYYY-MM-DD (portal's calendar) or an ISO datetime")
    backfill.add_argument("--until", help="end of the window, exclusive (default: now)")

    reconciled = commands.add_parser(
        "reconcile",
        help="find records deleted on the portal and mark (_deleted_at) or remove them",
        epilog="example: bitrix24-sync reconcile --resources deals,payments --delete-mode remove",
    )
    destination_options(reconciled)
    delete_mode_option(reconciled)

    demo = commands.add_parser("demo", help="sync a seeded local emulator into a DuckDB file and show it")
    demo.add_argument("--path", default="demo.duckdb", help="DuckDB file to (re)create (default: %(default)s)")
    for entity, default in (("deals", 2000), ("leads", 1000), ("contacts", 800), ("companies", 200)):
        demo.add_argument(f"--{entity}", type=_positive, default=default)
    demo.add_argument("--seed", type=int, default=7)

    check = commands.add_parser(
        "check", help="verify the connection, token, scopes and destination; show what a full sync would take"
    )
    destination_options(check)
    status = commands.add_parser(
        "status", help="per resource: cursor, last run, rows, requests, errors; rate-limit headroom"
    )
    destination_options(status)
    status.add_argument("--json", action="store_true", help="machine-readable (for monitoring)")
    oauth = commands.add_parser("oauth", help="OAuth app: turn an authorization code into stored tokens")
    oauth.add_argument("action", choices=("exchange",), help="exchange: code -> token pair in the token store")
    oauth.add_argument(
        "--code", required=True, help="the code (lives 30 s), the address the portal redirected to, or - (stdin)"
    )
    for name, sub in commands.choices.items():
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        sub.description = sub.description or _help_of(commands, name)
        if name in EXAMPLES:
            sub.epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name])
        sub.epilog = f"{sub.epilog or ''}\n\n{HELP_TEXT}".lstrip()
        _common_options(sub, argparse.SUPPRESS)
    return parser


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """Accepted before or after the command (the command's copies do not override the global ones)."""
    parser.add_argument("--debug", action="store_true", default=default, help="debug logging and tracebacks")
    parser.add_argument(
        "--quiet", "-q", action="store_true", default=default, help="no progress and no summary; warnings only"
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=default,
        metavar="SECONDS",
        help="log a progress line this often when stderr is not a terminal (default: 10; "
        "[bitrix24_sync] progress_interval)",
    )


def _help_of(commands: Any, name: str) -> str | None:
    return next((a.help for a in commands._choices_actions if a.dest == name), None)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 0 after --help, 2 after a bad option (its message is printed)
        return int(exit_.code or 0)
    defaults = {"debug": False, "quiet": False, "progress_interval": None}
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    if args.progress_interval is None:
        args.progress_interval = float(config_default("progress_interval", 10.0))
    with cli_logging(args.debug, args.quiet):
        try:
            return _dispatch(args)
        except Exception as error:  # every failure ends here: one line, one exit code (pipelines/exit_codes.py)
            code, message = classify(error)
            return _fail(args, message, code)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return demo(args)
    if args.command == "check":
        return check_command(args)
    if args.command == "status":
        return status_command(args)
    if args.command == "oauth":
        return oauth_exchange_command(args)
    if args.command == "reconcile":
        deletes = _reconcile(args)
        if not args.quiet:
            _print_deletes(deletes)
        return 0
    if args.command == "run" and args.portals:
        return portals_command(args)
    report = _sync(args)
    if not args.quiet:
        _print_report(report)
    return 0


def _sync(args: argparse.Namespace) -> SyncReport:
    pipeline = pipeline_from(args)
    client = make_client()
    meter = run_meter(args, client, pipeline)
    if args.command == "backfill":
        return sync(pipeline, client=client, meter=meter, resources=args.resources, backfill=(args.since, args.until))
    deletes = DeleteOptions.from_config(args.reconcile, args.delete_mode)
    return sync(
        pipeline,
        client=client,
        meter=meter,
        resources=args.resources,
        full_refresh=args.full_refresh,
        deletes=deletes,
    )


def _reconcile(args: argparse.Namespace) -> DeleteReport:
    return reconcile(pipeline_from(args), resources=args.resources, mode=args.delete_mode)


def _print_deletes(report: DeleteReport) -> None:
    print(f"reconciled deletes ({report.mode}) with {report.requests} HTTP requests")
    for line in report.lines():
        print(line)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"bitrix24-sync: error: {message}", file=sys.stderr)
    return code


def _print_report(report: SyncReport) -> None:
    rows = sum(report.row_counts.values())
    print(f"synced {rows} rows in {len(report.row_counts)} tables with {report.requests} HTTP requests")
    if report.meter is not None and report.meter.client is not None:
        stats = report.meter.client.stats
        for line in summary_table(report.meter, report.row_counts, report.requests, sum(stats.retries.values())):
            print(f"  {line}")
    if report.deletes and report.deletes.worth_showing:
        _print_deletes(report.deletes)


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
