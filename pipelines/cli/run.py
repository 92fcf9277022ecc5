"""`bitrix24-sync run`: the incremental sync (the first run loads everything), of one portal or of many."""

from __future__ import annotations

import argparse

from pipelines.cli.common import (
    Command,
    delete_mode_option,
    destination_options,
    pipeline_from,
    print_report,
    run_meter,
)
from pipelines.deletes import DeleteOptions
from pipelines.portals import portals_command
from pipelines.runner import sync
from sources.bitrix24 import connect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    destination_options(parser)
    parser.add_argument("--full-refresh", action="store_true", help="drop the tables and cursors and start over")
    parser.add_argument(
        "--reconcile", action="store_true", help="after the load, find records deleted on the portal (ID scan)"
    )
    delete_mode_option(parser)
    parser.add_argument(
        "--portals",
        metavar="FILE",
        help="sync every portal listed in this TOML file, in parallel processes (see pipelines/portals.py); "
        "DuckDB: put {portal} in --duckdb-path for a file per portal",
    )


def run(args: argparse.Namespace) -> int:
    if args.portals:
        return portals_command(args)
    pipeline = pipeline_from(args)
    client = connect()  # the run's own client: the progress display's count shares its rate-limit bucket
    meter = run_meter(args, client, pipeline)
    deletes = DeleteOptions.from_config(args.reconcile, args.delete_mode)
    report = sync(
        pipeline, client=client, meter=meter, resources=args.resources, full_refresh=args.full_refresh, deletes=deletes
    )
    if not args.quiet:
        print_report(report)
    return 0


COMMAND = Command(
    "run",
    "incremental sync (the first run loads everything)",
    add_arguments,
    run,
    (
        "bitrix24-sync run",
        "bitrix24-sync run --resources deals,payments --destination postgres",
        "bitrix24-sync run --full-refresh --resources leads",
        "bitrix24-sync --quiet run    # cron: nothing on stdout, the exit code says how it went",
        "bitrix24-sync run --portals portals.toml --duckdb-path 'warehouse/{portal}.duckdb'",
    ),
    order=10,
)
