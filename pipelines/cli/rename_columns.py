"""`bitrix24-sync rename-columns`: an older warehouse's user-field columns get their field codes as names."""

from __future__ import annotations

import argparse

from pipelines.cli.common import Command, destination_options, pipeline_from
from pipelines.progress import plural
from pipelines.runner import rename_warehouse_columns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    destination_options(parser)


def run(args: argparse.Namespace) -> int:
    renames = rename_warehouse_columns(pipeline_from(args))
    if not args.quiet:
        columns = {(table, old): new for table, pairs in renames.columns.items() for old, new in pairs.items()}
        for (table, old), new in sorted(columns.items()):
            print(f"{table}.{old} -> {new}")
        for old, new in sorted(renames.tables.items()):
            print(f"table {old} -> {new}")
        print(
            f"renamed {plural(len(columns), 'column')} and {plural(len(renames.tables), 'table')}; "
            "the warehouse now names every column after its field code"
        )
    return 0


COMMAND = Command(
    "rename-columns",
    "name an older warehouse's user-field columns after their codes (uf_crm_64_a29_… -> uf_crm_64a29…)",
    add_arguments,
    run,
    ("bitrix24-sync rename-columns    # no request to the portal; views are made again",),
    order=55,
)
