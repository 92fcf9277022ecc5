"""Column names an analyst can type: a user field's column is its code in lower case (`naming.py`), a warehouse
made with dlt's snake_case keeps its names until `rename-columns` moves it (`pipelines/column_names.py`), and
the move loses no value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase
from dlt.common.schema import Schema

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.column_names import _rename_sql, plan_renames, rename_columns, uses_readable_names
from pipelines.destinations import dataset_columns
from pipelines.runner import rename_warehouse_columns
from sources.bitrix24 import ConfigError, ReadableNaming
from tests.e2e.syncutil import assert_warehouse_equals_portal, new_pipeline, query, run

CODE = "UF_CRM_64A29A1CD5CC2"  # the demo portal's deal field with a generated suffix
READABLE, SNAKE = "uf_crm_64a29a1cd5cc2", "uf_crm_64_a29_a1_cd5_cc2"


def _older(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs from here on name as the versions before this one did (dlt's configured naming wins)."""
    monkeypatch.setenv("SOURCES__BITRIX24__SCHEMA__NAMING", "snake_case")


def _columns(pipeline: dlt.Pipeline, table: str = "deals") -> set[str]:
    with pipeline.sql_client() as client:
        return dataset_columns(client, pipeline.dataset_name).get(table, set())


def _values(pipeline: dlt.Pipeline, column: str) -> dict[int, Any]:
    return {r["id"]: r["v"] for r in query(pipeline, f"SELECT id, {column} AS v FROM {{}}", "deals")}


def _api_values(portal: Portal) -> dict[int, Any]:
    out, after = {}, 0
    while page := portal.call(
        "crm.deal.list", {"select": ["ID", CODE], "order": {"ID": "ASC"}, "filter": {">ID": after}, "start": -1}
    ):
        out.update({int(r["ID"]): r.get(CODE) or None for r in page})
        after = page[-1]["ID"]
    return out


def test_the_naming_keeps_a_code_whole_and_names_everything_else_as_snake_case() -> None:
    ours, snake = ReadableNaming(), SnakeCase()
    assert ours.normalize_identifier(CODE) == READABLE and snake.normalize_identifier(CODE) == SNAKE
    assert ours.normalize_identifier("ufCrm5_64A29A1CD5CC2") == "uf_crm5_64a29a1cd5cc2"
    for name in ("STAGE_ID", "assignedById", "UF_CRM_1699000001", "ufCrm5_1613042143", "XMLId", "_dlt_id", "ID"):
        assert ours.normalize_identifier(name) == snake.normalize_identifier(name)
    long = "UF_CRM_" + "AB1" * 30  # Postgres' 63 bytes: shortened with a hash, as snake_case does
    assert len(ReadableNaming(63).normalize_identifier(long)) == 63


def test_a_rename_plan_covers_raw_and_variant_columns_and_the_tables_of_multiple_fields() -> None:
    schema = Schema("bitrix24", normalizers={"names": "snake_case"})
    columns = [SNAKE, SNAKE + "_raw", SNAKE + "__v_text", "uf_crm_1699000001", "id"]
    schema.update_table(
        {
            "name": "deals",
            "columns": {c: {"name": c, "data_type": "text", "variant": c.endswith("v_text")} for c in columns},
        }
    )
    schema.update_table({"name": "deals__uf_crm_9_ab", "columns": {"value": {"name": "value", "data_type": "text"}}})
    renames = plan_renames(schema, {"deals": [CODE, "UF_CRM_1699000001", "ID", "UF_CRM_9AB"]})
    assert renames.columns == {
        "deals": {SNAKE: READABLE, SNAKE + "_raw": READABLE + "_raw", SNAKE + "__v_text": READABLE + "__v_text"}
    }
    assert renames.tables == {"deals__uf_crm_9_ab": "deals__uf_crm_9ab"}


def test_a_new_warehouse_names_a_user_field_after_its_code(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    assert uses_readable_names(pipeline.default_schema)
    assert READABLE in _columns(pipeline) and SNAKE not in _columns(pipeline)
    assert query(pipeline, "SELECT column_name FROM {} WHERE code = '" + CODE + "'", "fields") == [
        {"column_name": READABLE}
    ]
    assert _values(pipeline, READABLE) == _api_values(portal)


def test_an_older_warehouse_keeps_its_names_until_renamed_and_loses_no_value(
    pipeline: dlt.Pipeline, portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _older(monkeypatch)
    run(pipeline, portal)
    monkeypatch.delenv("SOURCES__BITRIX24__SCHEMA__NAMING")
    run(pipeline, portal)  # this version, on the older warehouse: its names stay, no second column appears
    assert SNAKE in _columns(pipeline) and READABLE not in _columns(pipeline)
    before = _values(pipeline, SNAKE)
    assert before == _api_values(portal)

    renames = rename_warehouse_columns(pipeline)
    assert renames.columns["deals"][SNAKE] == READABLE
    assert READABLE in _columns(pipeline) and SNAKE not in _columns(pipeline)
    assert _values(pipeline, READABLE) == before
    assert query(pipeline, "SELECT column_name FROM {} WHERE code = '" + CODE + "'", "fields") == [
        {"column_name": READABLE}
    ]
    assert uses_readable_names(pipeline.default_schema)
    assert not rename_warehouse_columns(pipeline)  # once

    deal = next(iter(before))
    portal.call("crm.deal.update", {"id": deal, "fields": {CODE: "changed after the rename"}})
    run(pipeline, portal)
    assert SNAKE not in _columns(pipeline)
    assert _values(pipeline, READABLE) == _api_values(portal)
    assert_warehouse_equals_portal(pipeline, portal)


def test_a_rename_stopped_before_its_schema_was_saved_is_finished_by_the_next_run(
    pipeline: dlt.Pipeline, portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _older(monkeypatch)
    run(pipeline, portal)
    monkeypatch.delenv("SOURCES__BITRIX24__SCHEMA__NAMING")
    renames = plan_renames(pipeline.default_schema, {"deals": [CODE]})
    with pipeline.sql_client() as client, client.begin_transaction():  # the SQL committed, then the stop
        for statement in _rename_sql(client, renames, has_fields=True):
            client.execute_sql(statement)
    assert not uses_readable_names(pipeline.default_schema)

    run(pipeline, portal)
    assert uses_readable_names(pipeline.default_schema)
    assert READABLE in _columns(pipeline) and SNAKE not in _columns(pipeline)
    assert _values(pipeline, READABLE) == _api_values(portal)
    assert_warehouse_equals_portal(pipeline, portal)


def test_a_dataset_shared_with_other_pipelines_is_not_renamed(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    _older(monkeypatch)
    first = new_pipeline(tmp_path, "duckdb")
    run(first, portal)
    other = dlt.pipeline(
        "bitrix24_other",
        pipelines_dir=str(tmp_path / "pipelines"),
        destination=first.destination,
        dataset_name=first.dataset_name,
    )
    run(other, portal, resources="stages")
    monkeypatch.delenv("SOURCES__BITRIX24__SCHEMA__NAMING")
    first.activate()
    with pytest.raises(ConfigError, match="shared with the pipelines bitrix24_other"):
        rename_columns(first)
    assert SNAKE in _columns(first)


def test_the_command_prints_what_it_renamed(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "pipelines")]
    _older(monkeypatch)
    monkeypatch.setenv("SOURCES__BITRIX24__CREDENTIALS", portal.webhook_url)
    assert main(["run", "--resources", "deals,fields", *args]) == 0
    monkeypatch.delenv("SOURCES__BITRIX24__SCHEMA__NAMING")
    capsys.readouterr()
    assert main(["status", *args]) == 0
    assert "`bitrix24-sync rename-columns` names them after their codes" in capsys.readouterr().out
    assert main(["rename-columns", *args]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"deals.{SNAKE} -> {READABLE}" in out
    assert out[-1].startswith("renamed 1 column and 0 tables")
    assert main(["status", "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out)["column_names"] == "codes"
