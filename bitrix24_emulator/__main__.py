"""CLI: serve a seeded portal until SIGTERM/SIGINT; the first stdout line is the inbound webhook URL."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .faults import KINDS, FaultRule
from .portal import Portal


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bitrix24_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--deals", type=int, default=5000)
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--companies", type=int, default=1000)
    parser.add_argument("--invoices", type=int, default=None, help="smart invoices (default: the generator's)")
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--rate", type=float, default=2.0, help="leaky bucket drain, requests per second")
    parser.add_argument("--burst", type=int, default=50, help="leaky bucket capacity")
    parser.add_argument("--no-limits", action="store_true", help="no rate or operating-time limit")
    parser.add_argument("--operating-limit", type=float, default=480.0, help="seconds per method per 10 min")
    parser.add_argument("--timezone", default="Europe/Moscow")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="OAuth access token lifetime, s")
    parser.add_argument("--token", default=None, help="webhook secret (default: random)")
    parser.add_argument("--scopes", default="crm,user,sale", help="comma-separated webhook/app scopes")
    parser.add_argument("--db", default=None, help="SQLite file (default: in memory); reused if already seeded")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:SHARE[:METHOD]",
        help=f"inject faults; kinds: {', '.join(KINDS)}",
    )
    parser.add_argument("--fault-seed", type=int, default=7)
    parser.add_argument(
        "--print-oauth",
        action="store_true",
        help="print the OAuth app (client id/secret, tokens) as JSON on the second stdout line",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        faults = [FaultRule.parse(spec) for spec in args.fault]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    portal = Portal(
        seed=args.seed,
        deals=args.deals,
        leads=args.leads,
        contacts=args.contacts,
        companies=args.companies,
        invoices=args.invoices,
        users=args.users,
        timezone=args.timezone,
        rate=args.rate,
        burst=args.burst,
        limits=not args.no_limits,
        operating_limit=args.operating_limit,
        token_lifetime=args.token_lifetime,
        scopes=[s.strip() for s in args.scopes.split(",") if s.strip()],
        faults=faults,
        db_path=args.db,
        host=args.host,
        port=args.port,
        token=args.token,
        fault_seed=args.fault_seed,
    )
    with portal:
        print(portal.webhook_url, flush=True)
        if args.print_oauth:
            print(json.dumps(portal.oauth), flush=True)
        print(
            f"serving {portal.base_url} (stats: {portal.base_url}/_emulator/stats); stop with Ctrl+C",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
