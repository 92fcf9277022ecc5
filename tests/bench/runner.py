"""One measured unit of work, run in its own process so the parent can read its CPU and peak RSS with
`os.wait4` (the emulator's CPU is in another process and is not counted).

    python -m tests.bench.runner sync --webhook URL --destination duckdb --duckdb-path P --pipelines-dir D
        [--resources deals,leads] [--backfill SINCE UNTIL] [--full-refresh]
    python -m tests.bench.runner baseline --webhook URL --strategy offset_batches --method crm.deal.list
    python -m tests.bench.runner prototype --webhook URL --entity deal --duckdb-path P

Prints one JSON line on stdout: {"requests": ..., "rows": ..., "row_counts": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# The portal's limits are off in the benchmark; the client's own bucket must not add waits either.
UNLIMITED_RATE = 1e9
UNLIMITED_BURST = 10**9


def run_sync(args: argparse.Namespace) -> dict[str, Any]:
    from pipelines.runner import make_pipeline, sync
    from sources.bitrix24 import connect

    pipeline = make_pipeline(
        args.destination,
        duckdb_path=args.duckdb_path,
        postgres_url=args.postgres_url,
        pipelines_dir=args.pipelines_dir,
        dataset_name=args.dataset,
    )
    client = connect(args.webhook, rate=UNLIMITED_RATE, burst=UNLIMITED_BURST)
    report = sync(
        pipeline,
        client=client,
        resources=args.resources or None,
        backfill=tuple(args.backfill) if args.backfill else None,
        full_refresh=args.full_refresh,
    )
    return {
        "requests": report.requests,
        "rows": sum(report.row_counts.values()),
        "row_counts": report.row_counts,
    }


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    import requests

    from . import baselines

    strategy = getattr(baselines, args.strategy)
    with requests.Session() as session:
        rows = strategy(session, args.webhook, args.method)
    return {"rows": rows, "row_counts": {args.method: rows}}


def run_prototype(args: argparse.Namespace) -> dict[str, Any]:
    import requests

    from .prototype import read_into_duckdb

    with requests.Session() as session:
        rows = read_into_duckdb(session, args.webhook, args.entity, args.duckdb_path)
    return {"rows": rows, "row_counts": {args.entity: rows}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.runner")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sync")
    s.add_argument("--webhook", required=True)
    s.add_argument("--destination", choices=("duckdb", "postgres"), default="duckdb")
    s.add_argument("--duckdb-path")
    s.add_argument("--postgres-url")
    s.add_argument("--pipelines-dir", required=True)
    s.add_argument("--dataset", default="bitrix24_crm")
    s.add_argument("--resources", type=lambda v: [r for r in v.split(",") if r], default=None)
    s.add_argument("--backfill", nargs=2, metavar=("SINCE", "UNTIL"))
    s.add_argument("--full-refresh", action="store_true")
    b = sub.add_parser("baseline")
    b.add_argument("--webhook", required=True)
    b.add_argument("--strategy", choices=("offset_pages", "offset_batches"), required=True)
    b.add_argument("--method", required=True)
    p = sub.add_parser("prototype")
    p.add_argument("--webhook", required=True)
    p.add_argument("--entity", default="deal")
    p.add_argument("--duckdb-path", required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = {"sync": run_sync, "baseline": run_baseline, "prototype": run_prototype}[args.mode]
    result = run(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
