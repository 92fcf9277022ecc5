"""`bitrix24-sync backfill`: re-read a window of the change time without moving the cursors."""

from __future__ import annotations

import argparse

from pipelines.cli.common import Command, destination_options, pipeline_from, print_report, run_meter
from pipelines.runner import sync
from sources.bitrix24 import connect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    destination_options(parser)
    parser.add_argument("--since", required=True, help="YYYY-MM-DD (portal's calendar) or an ISO datetime")
    parser.add_argument("--until", help="end of the window, exclusive (default: now)")


def run(args: argparse.Namespace) -> int:
    pipeline = pipeline_from(args)
    client = connect()
    args.full_refresh = False
    meter = run_meter(args, client, pipeline)
    report = sync(pipeline, client=client, meter=meter, resources=args.resources, backfill=(args.since, args.until))
    if not args.quiet:
        print_report(report)
    return 0


COMMAND = Command(
    "backfill",
    "re-read a DATE_MODIFY window without moving the cursors",
    add_arguments,
    run,
    ("bitrix24-sync backfill --since 2024-01-01 --until 2024-07-01 --resources deals",),
    order=20,
)
