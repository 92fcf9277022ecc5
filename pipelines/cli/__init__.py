"""`bitrix24-sync`: one module per command in this package (run, backfill, reconcile, check, status, demo,
oauth), each defining `COMMAND` (its parser, examples and run function); this module finds them and
dispatches. Adding a command is adding one module.

A user's mistake (a bad URL, a rejected token, a missing scope, a bad date, an unknown resource, an
unreachable database) prints one line saying what is wrong and how to fix it, and exits non-zero without a
traceback (`--debug` shows one). Nothing here prints the webhook URL: it is the credential.

Exit codes: one per class of failure, mapped in one place (`pipelines/exit_codes.py`, shown by `--help`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from dlt.common.runtime import signals

from pipelines.cli.common import Command, cli_logging, config_default, fail
from pipelines.exit_codes import EXIT_DESTINATION, EXIT_USAGE, HELP_TEXT, classify, stop_code, stopped_message

__all__ = ["EXIT_DESTINATION", "EXIT_USAGE", "build_parser", "main"]  # the codes re-exported for callers

CONFIG_HELP = """configuration (a command-line option wins):
  [bitrix24_sync] in .dlt/config.toml or BITRIX24_SYNC__<KEY>: destination, duckdb_path, pipelines_dir,
      progress_interval
  [sources.bitrix24]: credentials (the webhook URL, in secrets.toml; SOURCES__BITRIX24__CREDENTIALS), resources,
      rate, burst, delete_mode (mark | remove), reconcile_every_hours (0: only with run --reconcile)
  [sources.bitrix24.credentials] for an OAuth app: client_endpoint, client_id, token_store, token_endpoint
      (config.toml); client_secret, refresh_token or authorization_code (secrets.toml)"""


def commands() -> list[Command]:
    """Every module of this package that defines `COMMAND`, in their `order`."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):  # __main__
            continue
        command = getattr(importlib.import_module(f"{__name__}.{module.name}"), "COMMAND", None)
        if isinstance(command, Command):
            found.append(command)
    return sorted(found, key=lambda c: (c.order, c.name))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitrix24-sync",
        description="Load a Bitrix24 CRM into DuckDB or Postgres.",
        epilog=f"{HELP_TEXT}\n\n{CONFIG_HELP}\n\n'bitrix24-sync COMMAND --help' shows a command's options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in commands():
        examples = "examples:\n" + "\n".join(f"  {e}" for e in command.examples) + "\n\n" if command.examples else ""
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            epilog=f"{examples}{HELP_TEXT}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        _common_options(sub, argparse.SUPPRESS)
        sub.set_defaults(run=command.run)
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 0 after --help, 2 after a bad option (its message is printed)
        return int(exit_.code or 0)
    for name, value in {"debug": False, "quiet": False, "progress_interval": None}.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    if args.progress_interval is None:
        args.progress_interval = float(config_default("progress_interval", 10.0))
    # SIGINT and SIGTERM (what cron, systemd and Kubernetes send) only set a flag: extraction stops at the next
    # page (its state rolls back), normalize and load between jobs (the package stays pending and the next run
    # finishes it). A second signal of the same kind stops at once.
    with cli_logging(args.debug, args.quiet), signals.intercepted_signals():
        try:
            code = int(args.run(args))
        except (Exception, KeyboardInterrupt) as error:  # every failure ends here: one line, one exit code
            code, message = classify(error)
            return fail(args, message, code)
        if signals.was_signal_received():  # it came after the last safe point: the work is complete
            return fail(args, stopped_message(signals.exception_for_signal(), finished=True), stop_code())
        return code


if __name__ == "__main__":
    sys.exit(main())
