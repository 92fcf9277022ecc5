"""Resource defaults of the pipeline: DuckDB's memory limit during a load (DuckDB's own settings for queries), one
resource extracted at a time, DuckDB's load jobs one at a time, uncompressed intermediate files; each overridable
from dlt config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dlt
import pytest
from dlt.common.configuration import resolve_configuration
from dlt.common.data_writers.buffered import BufferedDataWriter

from pipelines.destinations import bounded_load, default_dlt_settings
from pipelines.runner import make_pipeline

ROOT = Path(__file__).resolve().parents[2]


def duckdb_settings(pipeline: dlt.Pipeline) -> tuple[object, ...]:
    with pipeline.sql_client() as client:
        names = ("memory_limit", "threads", "preserve_insertion_order")
        return tuple(client.execute_sql(f"SELECT current_setting('{name}')")[0][0] for name in names)  # type: ignore[index]


def test_a_duckdb_load_is_bounded_and_queries_keep_duckdbs_own_settings(tmp_path: Path) -> None:
    pipeline = make_pipeline(duckdb_path=tmp_path / "w.duckdb", pipelines_dir=tmp_path / "p")
    own = duckdb_settings(pipeline)
    assert own[0] != "61.0 MiB" and own[2] is True
    with bounded_load(pipeline):
        assert duckdb_settings(pipeline) == ("61.0 MiB", 1, False)  # 64MB as DuckDB prints it
    assert duckdb_settings(pipeline) == own


def test_the_loads_memory_limit_and_threads_come_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITRIX24_SYNC__DUCKDB_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("BITRIX24_SYNC__DUCKDB_THREADS", "2")
    pipeline = make_pipeline(duckdb_path=tmp_path / "w.duckdb", pipelines_dir=tmp_path / "p")
    with bounded_load(pipeline):
        assert duckdb_settings(pipeline) == ("953.6 MiB", 2, False)


def writer_compresses() -> bool:
    """What dlt's file writers resolve from config (normalize's section, as the parquet writer does)."""
    config = resolve_configuration(
        BufferedDataWriter.BufferedDataWriterConfiguration(), sections=("normalize", "data_writer")
    )
    return not config.disable_compression


def test_compression_is_off_unless_the_user_config_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    default_dlt_settings("duckdb")
    assert not writer_compresses()
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION", "false")
    default_dlt_settings("duckdb")
    assert writer_compresses()


def test_resources_are_extracted_one_at_a_time_unless_the_user_config_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default_dlt_settings("duckdb")
    assert dlt.config.get("extract.next_item_mode") == "fifo" and dlt.config.get("load.workers") == 1
    monkeypatch.setenv("EXTRACT__NEXT_ITEM_MODE", "round_robin")
    monkeypatch.setenv("LOAD__WORKERS", "4")
    default_dlt_settings("duckdb")
    assert dlt.config.get("extract.next_item_mode") == "round_robin" and int(dlt.config.get("load.workers")) == 4


def test_postgres_loads_two_jobs_at_a_time(tmp_path: Path) -> None:
    """In a process of its own: dlt's config is process-wide, and another test set DuckDB's one worker."""
    code = "import dlt; from pipelines.destinations import default_dlt_settings as d; d('postgres'); "
    code += "print(dlt.config.get('load.workers'), dlt.config.get('extract.next_item_mode'))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOAD__", "EXTRACT__"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out == ["2", "fifo"]


@pytest.mark.parametrize("url", ["postgresql://sync@localhost:5432/crm", None])
def test_postgres_insert_statements_stay_small(
    tmp_path: Path, url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt holds several copies of a statement's piece of the job file: 4 MB statements, not its 32 MB (the
    same with credentials from dlt's config)."""
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://sync@localhost:5432/crm")
    pipeline = make_pipeline("postgres", postgres_url=url, pipelines_dir=tmp_path / "p")
    assert pipeline.destination.capabilities().max_query_length == 4 * 1024 * 1024
