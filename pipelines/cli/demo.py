"""`bitrix24-sync demo`: start the emulator with seeded data, sync it into a fresh DuckDB file, show it."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from pipelines.cli.common import Command, fail, print_rows
from pipelines.exit_codes import EXIT_PORTAL
from pipelines.runner import DATASET_NAME, make_pipeline, sync

DEMO = "bitrix24_demo"
DEMO_QUERY = """SELECT p.name AS pipeline, count(*) AS deals,
       count(*) FILTER (WHERE s.semantics = 'S') AS won,
       count(*) FILTER (WHERE s.semantics = 'F') AS lost
FROM {ds}.deals d
JOIN {ds}.pipelines p ON p.id = d.category_id
JOIN {ds}.stages s ON s.status_id = d.stage_id AND s.entity_id LIKE 'DEAL_STAGE%'
GROUP BY p.name ORDER BY deals DESC"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", default="demo.duckdb", help="DuckDB file to (re)create (default: %(default)s)")
    for entity, default in (("deals", 2000), ("leads", 1000), ("contacts", 800), ("companies", 200)):
        parser.add_argument(f"--{entity}", type=_positive, default=default)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--pipelines-dir", help="where the demo pipeline's state goes (default: ./.dlt/pipelines, as for run)"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def run(args: argparse.Namespace) -> int:
    """Start the emulator as a subprocess, sync it into a fresh DuckDB file, show tables and a query."""
    path = Path(args.path)
    if path.exists():
        path.unlink()  # the demo's own file: a new emulator's data must not meet old cursors
    # every scope the sync can use, so the demo shows every table (calls need telephony, products catalog)
    scopes = "crm,user,sale,telephony,catalog"
    command = [sys.executable, "-m", "bitrix24_emulator", "--port", "0", "--seed", str(args.seed), "--scopes", scopes]
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
                return fail(args, f"the emulator did not start: {last}", EXIT_PORTAL)
            # state in the project's ./.dlt/pipelines, where `dlt pipeline ... info/trace` finds it afterwards;
            # a new emulator is a new portal: the previous demo's state goes first
            pipeline = make_pipeline("duckdb", duckdb_path=path, pipelines_dir=args.pipelines_dir, pipeline_name=DEMO)
            pipeline.drop()
            report = sync(pipeline, credentials=webhook_url)
        finally:
            emulator.terminate()
            try:
                emulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait()
    print(f"loaded the emulated portal into {path} with {report.requests} HTTP requests\n")
    _print_demo_tables(path)
    print(f"\ninspect the pipeline with dlt: dlt pipeline --pipelines-dir {pipeline.pipelines_dir} {DEMO} info")
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
        print_rows(result.columns, result.fetchall())


COMMAND = Command(
    "demo",
    "sync a seeded local emulator into a DuckDB file and show it",
    add_arguments,
    run,
    ("bitrix24-sync demo", "bitrix24-sync demo --deals 20000 --path big.duckdb"),
    order=60,
)
