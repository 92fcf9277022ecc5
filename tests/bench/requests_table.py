"""The request counts of `docs/how-it-works.md` ("What that costs"), measured: a portal of 10,000 deals and leads,
5,000 contacts, 1,000 companies and 1,000 smart invoices, the CRM entities and payments, with and without the
`sale` scope; a full sync, a run with nothing changed, then 100 and 3,000 deals changed.

    python -m tests.bench.requests_table
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bitrix24_emulator import Portal
from pipelines.runner import make_pipeline, sync

RESOURCES = "deals,leads,contacts,companies,invoices,payments"
SCOPES = {"with sale": ("crm", "user", "sale"), "without sale": ("crm", "user")}
CHANGED = (100, 3000)


def requests_of(scopes: tuple[str, ...], work: Path) -> list[int]:
    """Requests of each run: full, nothing changed, then each of `CHANGED` deals modified."""
    size = {"deals": 10_000, "leads": 10_000, "contacts": 5_000, "companies": 1_000, "invoices": 1_000, "users": 8}
    with Portal(**size, limits=False, scopes=scopes) as portal:
        webhook = portal.add_webhook(scopes=scopes)
        pipeline = make_pipeline("duckdb", duckdb_path=work / "w.duckdb", pipelines_dir=work / "pipelines")
        counts = [sync(pipeline, credentials=webhook, resources=RESOURCES).requests for _ in range(2)]
        for changed in CHANGED:
            portal.clock.advance(5)
            for i in range(1, changed + 1):
                portal.call("crm.deal.update", {"id": i * (10_000 // changed), "fields": {"TITLE": f"changed {i}"}})
            portal.clock.advance(1)  # the run starts a second after the changes: its cursor leaves them behind
            counts.append(sync(pipeline, credentials=webhook, resources=RESOURCES).requests)
    return counts


def main() -> None:
    print("| run | " + " | ".join(SCOPES) + " |\n|---|" + "---|" * len(SCOPES))
    columns = {}
    for name, scopes in SCOPES.items():
        with tempfile.TemporaryDirectory() as work:
            columns[name] = requests_of(scopes, Path(work))
    runs = ["full sync", "nothing changed", *(f"{n:,} deals changed" for n in CHANGED)]
    for i, run in enumerate(runs):
        print(f"| {run} | " + " | ".join(str(columns[name][i]) for name in SCOPES) + " |")


if __name__ == "__main__":
    main()
