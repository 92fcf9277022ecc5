"""The long crash loop (`make soak`): hundreds of SIGKILLs at random moments of extract, normalize and load, with
random faults on the portal and the portal changing between runs; after every few kills a normal run must
leave no duplicate row, and the warehouse is compared with the portal regularly and at the end.

    python -m tests.soak [--kills 300] [--seed 1] [--folder DIR] [--postgres-url URL]

With `--postgres-url` (an empty database: the dataset is `bitrix24_crm`) the warehouse is Postgres.

Each kill is `tests.e2e.crashrunner` (the real CLI) killing itself before the n-th event of a phase, with the
phase and n drawn by a seeded RNG from the events a counted run had. Prints one line per kill and a summary;
exits non-zero on the first broken guarantee (the folder is kept for inspection).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dlt

from bitrix24_emulator import Portal
from pipelines.exit_codes import EXIT_PORTAL
from pipelines.runner import make_pipeline, sync
from sources.bitrix24.api import TransientError
from tests.e2e.crashrunner import PHASES, crashing_run
from tests.e2e.faultutil import assert_no_duplicate_rows, change_portal, fast_client
from tests.e2e.syncutil import SMALL_PORTAL, assert_warehouse_equals_portal, new_pipeline

SOAK_PORTAL = {**SMALL_PORTAL, "deals": 300, "leads": 120, "contacts": 60, "companies": 20}
FAULT_KINDS = (
    "rate_limit",
    "operation_limit",
    "server_error",
    "bad_gateway",
    "drop",
    "slow",
    "truncated",
    "batch_subcall_error",
)
# Kill points are drawn per phase, then per kind inside the load phase where most of the risk is.
POINTS = (*PHASES, "extract/http", "normalize/file.delete_folder", "load/file", "load/sql")
CLIENT_SETTINGS = {"SOURCES__BITRIX24__TIMEOUT": "2", "SOURCES__BITRIX24__MAX_RETRIES": "4"}
# The portal's zone: west of UTC with DST, east, at UTC, the far east (+14); drawn from the seed unless given.
ZONES = ("America/Adak", "America/Sao_Paulo", "UTC", "Europe/Berlin", "Europe/Moscow", "Pacific/Kiritimati")
MONEY_FIELD = "UF_CRM_1699000009"  # a money user field of deals
BAD_MONEY = ("0.1234567891|EUR", "123456789012345678901234567890|RUB", "-0|USD", "1E+3|EUR", "abc|EUR")


def odd_edits(portal: Portal, rng: random.Random) -> None:
    """What real portals hold besides ordinary edits: dates typed on the portal's calendar (any day, DST days
    included) and money values no decimal column can hold, written through the API."""
    for _ in range(rng.randint(0, 3)):
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        fields = {"BEGINDATE": day, "CLOSEDATE": rng.choice(("2024-03-31", "2024-10-27", "2024-03-10", day))}
        if rng.random() < 0.5:
            fields[MONEY_FIELD] = rng.choice(BAD_MONEY)
        portal.call("crm.deal.update", {"id": rng.randint(1, 20), "fields": fields})


def random_faults(portal: Portal, rng: random.Random) -> list[str]:
    portal.clear_faults()
    kinds = rng.sample(FAULT_KINDS, rng.randint(0, 3))
    for kind in kinds:
        portal.set_faults(kind=kind, share=round(rng.uniform(0.02, 0.15), 2), seconds=3.0)
    return kinds


def open_pipeline(folder: Path, postgres_url: str | None) -> dlt.Pipeline:
    if postgres_url:
        return make_pipeline("postgres", postgres_url=postgres_url, pipelines_dir=folder / "pipelines")
    return new_pipeline(folder, "duckdb")


def normal_run(folder: Path, portal: Portal, postgres_url: str | None) -> None:
    """A run without kills or faults (retried if a leftover slow request times out)."""
    portal.clear_faults()
    for attempt in range(3):
        try:
            sync(open_pipeline(folder, postgres_url), client=fast_client(portal, timeout=10.0))
            return
        except TransientError:
            if attempt == 2:
                raise


def soak(kills: int, seed: int, folder: Path, postgres_url: str | None = None, zone: str | None = None) -> int:
    rng = random.Random(seed)
    zone = zone or rng.choice(ZONES)
    print(f"portal time zone {zone}")
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    with Portal(**{**SOAK_PORTAL, "seed": seed, "timezone": zone}) as portal:
        counted = crashing_run(folder, portal.webhook_url, postgres_url=postgres_url, **CLIENT_SETTINGS)
        if counted.returncode != 0:
            print(counted.stderr, file=sys.stderr)
            return 1
        events = Counter((folder / "events").read_text().split())
        print(f"events of a full run: {dict(events)}")
        comparisons = 0
        for kill in range(1, kills + 1):
            change_portal(portal, rng, edits=rng.randint(1, 8))
            odd_edits(portal, rng)
            faults = random_faults(portal, rng)
            point = rng.choice(POINTS)
            crash_at = f"{point}:{rng.randint(1, max(1, int(events[point] * 0.9)))}"
            result = crashing_run(folder, portal.webhook_url, crash_at, postgres_url, **CLIENT_SETTINGS)
            outcome = {-9: "killed", 0: "completed"}.get(result.returncode, f"exit {result.returncode}")
            outcomes[outcome] += 1
            print(f"{kill:4d} {crash_at:<16} faults={','.join(faults) or '-':<40} {outcome}", flush=True)
            if result.returncode not in (-9, 0, EXIT_PORTAL):  # the portal failing under faults: a clean stop
                print(result.stderr[-3000:], file=sys.stderr)
                return 1
            if rng.random() < 0.4 or kill == kills:
                normal_run(folder, portal, postgres_url)
                pipeline = open_pipeline(folder, postgres_url)
                assert_no_duplicate_rows(pipeline)
                if rng.random() < 0.25 or kill == kills:
                    assert_warehouse_equals_portal(pipeline, portal)
                    comparisons += 1
    minutes = (time.monotonic() - started) / 60
    print(f"soak passed: {kills} kill points ({dict(outcomes)}), {comparisons} full comparisons, {minutes:.1f} min")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="working folder (default: a new temporary one, kept)")
    parser.add_argument("--postgres-url", help="load into this (empty) Postgres database instead of DuckDB")
    parser.add_argument("--timezone", choices=ZONES, help="the portal's zone (default: drawn from the seed)")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bitrix24-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"soak in {folder}")
    return soak(args.kills, args.seed, folder, args.postgres_url, args.timezone)


if __name__ == "__main__":
    sys.exit(main())
