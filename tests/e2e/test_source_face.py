"""The source the dlt way, without the runner: `pipeline.run(bitrix24())` with the credential resolved by dlt
from `sources.bitrix24.credentials`, a webhook URL or an OAuth app's fields, into a plain dlt pipeline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dlt
import duckdb
import pytest

from bitrix24_emulator import Portal
from sources.bitrix24 import Catalog, SourceRun, bitrix24
from sources.bitrix24.api.token_store import TokenStore
from tests.e2e.crashrunner import REPO
from tests.e2e.syncutil import assert_warehouse_equals_portal, portal_list

CATALOG = Catalog.for_portal()

PORTAL = {"deals": 130, "leads": 20, "contacts": 15, "companies": 5, "users": 4, "limits": False}


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(**PORTAL) as p:
        yield p


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SOURCES__BITRIX24__WEBHOOK_URL", "SOURCES__BITRIX24__CREDENTIALS"):
        monkeypatch.delenv(key, raising=False)


def plain_pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="bitrix24_plain",
        destination=dlt.destinations.duckdb(str(tmp_path / "plain.duckdb")),
        dataset_name="crm",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def test_a_webhook_url_as_the_credential(
    portal: Portal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_credentials: None
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__CREDENTIALS", portal.webhook_url)
    pipeline = plain_pipeline(tmp_path)
    run = SourceRun()
    pipeline.run(bitrix24(run=run), loader_file_format="parquet")
    assert_warehouse_equals_portal(pipeline, portal)
    assert run.client is not None and run.client.auth.host == "127.0.0.1"
    assert portal.webhook_url.rstrip("/").rsplit("/", 1)[-1] not in str(pipeline.state)


def test_an_oauth_app_as_the_credential(
    portal: Portal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_credentials: None
) -> None:
    store = tmp_path / "tokens.json"
    for key in ("client_id", "client_secret", "client_endpoint", "token_endpoint"):
        monkeypatch.setenv(f"SOURCES__BITRIX24__CREDENTIALS__{key.upper()}", portal.oauth[key])
    monkeypatch.setenv("SOURCES__BITRIX24__CREDENTIALS__TOKEN_STORE", str(store))
    first = portal.auth.issue(portal.oauth["client_id"], 1)
    monkeypatch.setenv("SOURCES__BITRIX24__CREDENTIALS__REFRESH_TOKEN", first.refresh_token)
    pipeline = plain_pipeline(tmp_path)
    run = SourceRun()
    pipeline.run(bitrix24(run=run), loader_file_format="parquet")
    assert_warehouse_equals_portal(pipeline, portal)
    stored = TokenStore(store).load()
    assert stored is not None and run.client is not None
    assert run.client.auth.params()["auth"] == stored.access_token
    assert stored.access_token not in str(pipeline.state)


def test_the_example_script_loads_the_portal_and_reads_it_back_through_dlts_dataset(
    tmp_path: Path, portal: Portal
) -> None:
    """`pipelines/bitrix24_pipeline.py`, run as a user would, in a folder of its own."""
    env = {
        **os.environ,
        "SOURCES__BITRIX24__CREDENTIALS": portal.webhook_url,
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("SOURCES__BITRIX24__WEBHOOK_URL", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "bitrix24_pipeline.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    stages = {}
    for deal in portal_list(portal, CATALOG.entity("deals"), ["ID", "STAGE_ID"]):
        stages[deal["STAGE_ID"]] = stages.get(deal["STAGE_ID"], 0) + 1
    with duckdb.connect(str(tmp_path / "bitrix24.duckdb"), read_only=True) as con:
        by_stage = dict(con.sql("SELECT stage_id, count(*) FROM bitrix24_crm.deals GROUP BY 1").fetchall())
    assert by_stage == stages  # counted from the portal's API, independently of the warehouse
    for stage, count in by_stage.items():  # the script's own table, read through pipeline.dataset()
        assert re.search(rf"^{re.escape(stage)}\s+{count}$", done.stdout, re.M), (stage, count, done.stdout[-2000:])
