"""A warehouse holds one portal, and its state is the state of that warehouse: another portal in the same setup
is refused with one line (and replaces the first only through a full refresh), and a run from another folder,
or into a new empty warehouse, loads everything into the warehouse it names."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.exit_codes import EXIT_USAGE
from pipelines.runner import make_pipeline
from tests.e2e.syncutil import SMALL_PORTAL, assert_warehouse_equals_portal, new_pipeline, query, run

SECOND_PORTAL = {**SMALL_PORTAL, "deals": 55, "seed": 99}


@pytest.fixture(scope="module")
def other_portal() -> Iterator[Portal]:
    with Portal(**SECOND_PORTAL) as p:
        yield p


def counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        sql = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'bitrix24_crm' AND table_type = 'BASE TABLE'"
        )
        tables = [t for (t,) in con.sql(sql).fetchall()]
        return {t: con.sql(f'SELECT count(*) FROM bitrix24_crm."{t}"').fetchall()[0][0] for t in tables}


def test_another_portal_in_the_same_setup_is_refused_and_moves_in_only_by_a_full_refresh(
    tmp_path: Path, portal: Portal, other_portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    where = ["--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "state")]
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(["-q", "run", *where]) == 0
    before = counts(tmp_path / "w.duckdb")
    capsys.readouterr()

    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", other_portal.webhook_url)
    assert main(["-q", "run", *where]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds the portal" in err[0] and "--full-refresh" in err[0]
    assert counts(tmp_path / "w.duckdb") == before  # nothing of the other portal arrived
    assert main(["-q", "run", "--full-refresh", "--resources", "deals", *where]) == EXIT_USAGE  # a part: still mixed

    assert main(["-q", "run", "--full-refresh", *where]) == 0
    moved = make_pipeline("duckdb", duckdb_path=tmp_path / "w.duckdb", pipelines_dir=tmp_path / "state")
    assert_warehouse_equals_portal(moved, other_portal)
    assert main(["-q", "run", *where]) == 0  # and it stays bound to the new one


def test_a_run_from_another_folder_writes_where_it_says_with_a_full_load(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both folders use the defaults: ./bitrix24.duckdb and ./.dlt/pipelines."""
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        assert main(["-q", "run"]) == 0
        assert (tmp_path / name / ".dlt" / "pipelines" / "bitrix24").is_dir()
        assert counts(tmp_path / name / "bitrix24.duckdb")["deals"] == SMALL_PORTAL["deals"]


def test_a_new_empty_warehouse_gets_a_full_load_not_a_cursor_from_elsewhere(tmp_path: Path, portal: Portal) -> None:
    pipeline = new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal)
    os.remove(tmp_path / "warehouse.duckdb")  # the user starts the warehouse over, the state folder stays
    again = new_pipeline(tmp_path, "duckdb")
    report = run(again, portal)
    assert report.row_counts["deals"] == SMALL_PORTAL["deals"]
    assert_warehouse_equals_portal(again, portal)
    assert query(again, "SELECT count(*) AS n FROM {}", "deals") == [{"n": SMALL_PORTAL["deals"]}]
