"""Crashes and concurrent runs, with the real CLI in subprocesses against the emulator, into DuckDB.

A sync killed with SIGKILL during extract, normalize or load (at points a seeded RNG picks among the events
`crashrunner` counts) and then run normally leaves every table equal to the portal without a duplicate row;
a second run started while one is running refuses with a clear message and changes nothing. The long version
of the crash loop, with hundreds of kill points and random faults, is `python -m tests.soak`.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import dlt
import psycopg2
import pytest

from bitrix24_emulator import Portal
from pipelines.crash_repair import MARKER
from pipelines.runner import finish_pending, make_pipeline, sync
from sources.bitrix24 import Catalog
from tests.e2e.crashrunner import ALWAYS_REFRESH, REPO, cli_args, cli_env, crashing_run
from tests.e2e.faultutil import assert_no_duplicate_rows, change_portal, fast_client
from tests.e2e.syncutil import SMALL_PORTAL, assert_entity_equal, assert_warehouse_equals_portal, new_pipeline

CATALOG = Catalog.for_portal()

CRASH_PORTAL = {**SMALL_PORTAL, "leads": 30, "contacts": 30, "companies": 10}
# Where the suite's kills land (the soak draws from all phases): `load/file` is right before dlt moves a job
# file it has loaded, i.e. after the job's rows were committed, where a resumed load used to insert them twice;
# `normalize/file.delete_folder` is between normalize's two commit steps, which used to wedge every later run.
KILL_POINTS = ("extract", "load/file", "normalize/file.delete_folder", "load/sql", "load/file", "extract/http")


def normal_run(folder: Path, portal: Portal) -> dlt.Pipeline:
    pipeline = new_pipeline(folder, "duckdb")
    sync(pipeline, client=fast_client(portal))
    return pipeline


def test_sigkill_during_extract_normalize_and_load_then_a_normal_run_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ALWAYS_REFRESH.items():
        monkeypatch.setenv(name, value)
    rng = random.Random(20261125)
    with Portal(**CRASH_PORTAL) as portal:
        # a full sync that counts its events per phase; incremental runs have somewhat fewer
        counted = crashing_run(tmp_path, portal.webhook_url)
        assert counted.returncode == 0, counted.stderr
        events = Counter((tmp_path / "events").read_text().split())
        assert all(events[point] for point in KILL_POINTS), events
        killed = 0
        for i, point in enumerate(KILL_POINTS):
            change_portal(portal, rng)
            nth = rng.randint(1, max(1, int(events[point] * 0.8)))
            result = crashing_run(tmp_path, portal.webhook_url, f"{point}:{nth}")
            assert result.returncode in (0, -9), result.stderr
            killed += result.returncode == -9
            if i % 2:  # every other kill is followed by another kill before the normal run
                pipeline = normal_run(tmp_path, portal)
                assert_no_duplicate_rows(pipeline)
                assert_entity_equal(pipeline, portal, CATALOG.entity("deals"))
        assert killed >= 4
        assert_warehouse_equals_portal(pipeline, portal)


@pytest.mark.postgres
def test_sigkill_after_a_committed_load_job_on_postgres_then_normal_runs_converge(
    tmp_path: Path, postgres_url: str
) -> None:
    """Postgres declares `_dlt_id` UNIQUE: a resumed job that had committed used to fail on every later run."""
    url = fresh_database(postgres_url)
    rng = random.Random(5)
    with Portal(**CRASH_PORTAL) as portal:
        counted = crashing_run(tmp_path, portal.webhook_url, postgres_url=url)
        assert counted.returncode == 0, counted.stderr
        load_files = Counter((tmp_path / "events").read_text().split())["load/file"]
        outcomes = []
        for _ in range(3):
            change_portal(portal, rng)
            crash_at = f"load/file:{rng.randint(1, int(load_files * 0.6))}"
            killed = crashing_run(tmp_path, portal.webhook_url, crash_at, postgres_url=url)
            assert killed.returncode in (0, -9), killed.stderr
            outcomes.append(killed.returncode)
        assert outcomes.count(-9) >= 2
        # reference tables not due by age: an aborted package's emptied `replace` tables must be reloaded anyway
        settled = crashing_run(
            tmp_path, portal.webhook_url, "none:1", postgres_url=url, SOURCES__BITRIX24__REFERENCE_MAX_AGE_HOURS="24"
        )
        assert settled.returncode == 0, settled.stderr
        pipeline = make_pipeline("postgres", postgres_url=url, pipelines_dir=tmp_path / "pipelines")
        assert_no_duplicate_rows(pipeline)
        assert_warehouse_equals_portal(pipeline, portal)


def fresh_database(server_url: str) -> str:
    """A new database on the shared test server, so that the CLI's fixed dataset name meets no other test."""
    name = f"crash_{uuid.uuid4().hex[:10]}"
    connection = psycopg2.connect(server_url)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
    finally:
        connection.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def test_a_second_run_started_at_the_same_time_refuses_and_changes_nothing(tmp_path: Path) -> None:
    with Portal(**CRASH_PORTAL) as portal:
        portal.set_faults(kind="slow", count=1, seconds=5.0)  # the first run's first request: it holds the lock
        env = cli_env(portal.webhook_url)
        command = [sys.executable, "-m", "pipelines.cli", *cli_args(tmp_path)]
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while portal.stats()["faults_injected"] == 0:
                assert first.poll() is None, first.communicate()
                time.sleep(0.05)
            before = snapshot(tmp_path)
            second = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
            after = snapshot(tmp_path)
            still_waiting = portal.stats()["requests"] == 1  # the first run is still in its first request
        finally:
            first.kill()  # its run is not the point: it would complete (the lock is released at its end)
            first.wait()
    assert second.returncode != 0 and second.stdout == ""
    assert "another bitrix24-sync run of pipeline 'bitrix24' is in progress" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    # while the first run was still in its first request, the second one wrote nothing
    assert still_waiting and after == before


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_rows_a_resumed_load_inserted_twice_are_removed(tmp_path: Path) -> None:
    """The repair itself: second copies of rows (same `_dlt_id`) in a root table with nested tables and in a
    nested table go, first copies stay; the marker of a resumed load triggers it. (DuckDB: on Postgres dlt
    declares `_dlt_id` UNIQUE, so a second copy cannot be inserted.)"""
    with Portal(**CRASH_PORTAL) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        sync(pipeline, client=fast_client(portal), resources=["deals"])
        with pipeline.sql_client() as client:
            for table in ("deals", "deals__uf_crm_1699000017"):
                name = client.make_qualified_table_name(table)
                client.execute_sql(
                    f"INSERT INTO {name} SELECT * FROM {name} WHERE _dlt_id IN (SELECT _dlt_id FROM {name} LIMIT 5)"
                )
        with pytest.raises(AssertionError, match="not unique"):
            assert_no_duplicate_rows(pipeline)
        (Path(pipeline.working_dir) / MARKER).touch()
        assert finish_pending(pipeline) is False
        assert_no_duplicate_rows(pipeline)
        assert_entity_equal(pipeline, portal, CATALOG.entity("deals"))
        assert not (Path(pipeline.working_dir) / MARKER).exists()


class Killed(BaseException):
    """Stands for SIGKILL at one exact line: nothing after it runs in this "process"."""


@pytest.mark.postgres
def test_a_kill_between_an_abort_and_its_state_rewind_is_finished_by_the_next_run(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Postgres a half-loaded package is aborted: dlt moves it to `loaded/`, then rewinds the state. A kill
    between the two used to leave cursors past data that was never merged (the package no longer looked
    pending), so the next run read nothing of it."""
    url = fresh_database(postgres_url)
    rng = random.Random(11)
    with Portal(**CRASH_PORTAL) as portal:
        assert crashing_run(tmp_path, portal.webhook_url, postgres_url=url).returncode == 0
        load_files = Counter((tmp_path / "events").read_text().split())["load/file"]
        change_portal(portal, rng)
        half = crashing_run(tmp_path, portal.webhook_url, f"load/file:{max(1, load_files // 3)}", postgres_url=url)
        assert half.returncode == -9, half.stderr
        pipeline = make_pipeline("postgres", postgres_url=url, pipelines_dir=tmp_path / "pipelines")

        def killed_before_the_rewind(self: dlt.Pipeline, load_id: str) -> None:
            raise Killed(load_id)

        with monkeypatch.context() as patch:
            patch.setattr(dlt.Pipeline, "_cleanup_aborted_package", killed_before_the_rewind)
            with pytest.raises(Killed):
                finish_pending(pipeline)  # aborts the half-loaded package and "dies" right after dlt moved it
        assert not pipeline.has_pending_data  # what made the next run think all was well
        settled = crashing_run(tmp_path, portal.webhook_url, postgres_url=url)
        assert settled.returncode == 0, settled.stderr
        pipeline = make_pipeline("postgres", postgres_url=url, pipelines_dir=tmp_path / "pipelines")
        assert_no_duplicate_rows(pipeline)
        assert_warehouse_equals_portal(pipeline, portal)
