"""The same source into a destination other than DuckDB and Postgres, by dlt's name and dlt's configuration
alone: `--destination filesystem` with the bucket URL in the environment (local files here; s3://, gs:// or
az:// the same way), as a warehouse (bigquery, snowflake, motherduck) would be configured."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import EXIT_USAGE, main
from tests.e2e.syncutil import SMALL_PORTAL


def test_any_dlt_destination_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", lake.as_uri())
    with Portal(**SMALL_PORTAL) as portal:
        monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
        argv = ["run", "--destination", "filesystem", "--pipelines-dir", str(tmp_path / "pipelines")]
        assert main(argv) == 0, capsys.readouterr().err
    assert "synced " in capsys.readouterr().out
    files = str(lake / "bitrix24_crm" / "deals" / "*.parquet")  # the source yields Arrow tables
    with duckdb.connect() as con:
        found = con.sql(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{files}')").fetchall()
    assert found == [(SMALL_PORTAL["deals"], SMALL_PORTAL["deals"])]


def test_an_unknown_destination_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--destination", "nosuchbase", "--pipelines-dir", str(tmp_path)]) == EXIT_USAGE
    assert "unknown destination 'nosuchbase'" in capsys.readouterr().err
