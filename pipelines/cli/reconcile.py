"""`bitrix24-sync reconcile`: find records deleted on the portal and mark (`_deleted_at`) or remove them."""

from __future__ import annotations

import argparse

from pipelines.cli.common import Command, delete_mode_option, destination_options, pipeline_from, print_deletes
from pipelines.runner import reconcile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    destination_options(parser)
    delete_mode_option(parser)


def run(args: argparse.Namespace) -> int:
    report = reconcile(pipeline_from(args), resources=args.resources, mode=args.delete_mode)
    if not args.quiet:
        print_deletes(report)
    return 0


COMMAND = Command(
    "reconcile",
    "find records deleted on the portal and mark (_deleted_at) or remove them",
    add_arguments,
    run,
    (
        "bitrix24-sync reconcile    # every CRM entity and payments: about 1 request per 2,500 records",
        "bitrix24-sync reconcile --resources deals,payments --delete-mode remove",
    ),
    order=30,
)
