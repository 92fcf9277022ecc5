"""Secrets never leave the credential: after syncs with faults at DEBUG level (the CLI with `--debug` and dlt's
log level DEBUG, and in-process runs with every logger at DEBUG), including runs that fail, the webhook code,
the OAuth client secret and every access and refresh token are searched for in all output, in every file of
the pipeline's working folder and the DuckDB file (raw bytes, gzip and Parquet contents, dlt's trace), and in
every text column of the warehouse (with dlt's compressed state decoded). None may be found."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from dlt.pipeline.state_sync import decompress_state

from bitrix24_emulator import Portal
from tests.e2e.syncutil import SMALL_PORTAL

REPO = Path(__file__).resolve().parents[2]
SECRET_PORTAL = {**SMALL_PORTAL, "leads": 30, "contacts": 30, "companies": 10}
NOISE = [  # every request fault at once, about a third of all requests
    {"kind": "rate_limit", "share": 0.1},
    {"kind": "server_error", "share": 0.05},
    {"kind": "bad_gateway", "share": 0.05},
    {"kind": "drop", "share": 0.05},
    {"kind": "truncated", "share": 0.05},
    {"kind": "batch_subcall_error", "share": 0.1},
]


def with_noise(portal: Portal) -> None:
    for spec in NOISE:
        portal.set_faults(**spec)


def run_cli(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "--debug",
        "run",
        "--duckdb-path",
        str(folder / "warehouse.duckdb"),
        "--pipelines-dir",
        str(folder / "pipelines"),
    ]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=180)


def cli_env(**settings: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SOURCES__BITRIX24__")},
        "PYTHONPATH": str(REPO),
        "RUNTIME__LOG_LEVEL": "DEBUG",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        **settings,
    }


# ------------------------------------------------------------------ where to look


def file_texts(folder: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file's bytes, and the decoded contents of gzip and Parquet files."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        yield path, data
        if data[:2] == b"\x1f\x8b":
            yield path, gzip.decompress(data)
        if data[:4] == b"PAR1":
            yield path, repr(pq.read_table(path).to_pylist()).encode()


def warehouse_hits(path: Path, secrets: list[str]) -> list[str]:
    """Text columns of the DuckDB file that hold a secret (searched by SQL), and dlt's compressed state rows
    (decoded here)."""
    hits = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.sql(
            "SELECT table_schema, table_name, list(column_name) FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON') GROUP BY ALL"
        ).fetchall()
        for schema, table, names in columns:
            found = " OR ".join(f'contains("{c}", ?)' for c in names for _ in secrets)
            values = [secret for _ in names for secret in secrets]
            if con.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {found}', values).fetchall()[0][0]:
                hits.append(f"{schema}.{table}")
            if table == "_dlt_pipeline_state":
                for (state,) in con.sql(f'SELECT state FROM "{schema}"."{table}"').fetchall():
                    if any(secret in json.dumps(decompress_state(state)) for secret in secrets):
                        hits.append(f"{schema}.{table} (decoded state)")
    return hits


def assert_nowhere(secrets: Iterable[str], outputs: Iterable[str], folder: Path) -> None:
    secrets = [s for s in secrets if s]
    assert secrets
    for n, text in enumerate(outputs):
        for secret in secrets:
            assert secret not in text, f"a secret in output #{n}: ...{text[max(0, text.find(secret) - 200) :][:300]}"
    files = 0
    for path, data in file_texts(folder):
        files += 1
        for secret in secrets:
            assert secret.encode() not in data, f"a secret in {path}"
    assert files >= 10  # the working folder and the warehouse were really searched
    assert warehouse_hits(folder / "warehouse.duckdb", secrets) == []


# ------------------------------------------------------------------ the tests


def test_the_webhook_code_is_nowhere_after_debug_runs_with_faults_and_a_failure(tmp_path: Path) -> None:
    with Portal(**SECRET_PORTAL) as portal:
        env = cli_env(SOURCES__BITRIX24__WEBHOOK_URL=portal.webhook_url)
        with_noise(portal)
        done = run_cli(tmp_path, env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "POST batch" in done.stderr and "urllib3" in done.stderr  # it did log at DEBUG
        portal.clear_faults()
        # a run that fails inside dlt's extract step: retries exhausted on dropped connections, whose
        # exceptions (from requests) quote the URL; dlt keeps the failure in its trace
        portal.call("crm.deal.update", {"id": 1, "fields": {"TITLE": "changed"}})
        portal.set_faults(kind="drop", share=1.0, method="batch")
        failed = run_cli(tmp_path, {**env, "SOURCES__BITRIX24__MAX_RETRIES": "1"})
        portal.clear_faults()
        assert failed.returncode != 0 and "Traceback" in failed.stderr and "broke" in failed.stderr
        token = portal.token
    assert (tmp_path / "pipelines" / "bitrix24" / "trace.pickle").exists()
    assert_nowhere([token], [done.stdout, done.stderr, failed.stdout, failed.stderr], tmp_path)


def test_oauth_secrets_are_nowhere_after_debug_runs_that_renew_tokens_and_fail(tmp_path: Path) -> None:
    store = tmp_path / "store" / "tokens.json"  # the one place tokens belong
    folder = tmp_path / "sync"
    with Portal(**{**SECRET_PORTAL, "token_lifetime": 2}) as portal:
        oauth = dict(portal.oauth)
        env = cli_env(
            SOURCES__BITRIX24__ALLOW_HTTP="true",
            SOURCES__BITRIX24__OAUTH__CLIENT_ENDPOINT=oauth["client_endpoint"],
            SOURCES__BITRIX24__OAUTH__TOKEN_ENDPOINT=oauth["token_endpoint"],
            SOURCES__BITRIX24__OAUTH__CLIENT_ID=oauth["client_id"],
            SOURCES__BITRIX24__OAUTH__CLIENT_SECRET=oauth["client_secret"],
            SOURCES__BITRIX24__OAUTH__REFRESH_TOKEN=oauth["refresh_token"],
            SOURCES__BITRIX24__OAUTH__TOKEN_STORE=str(store),
        )
        with_noise(portal)
        portal.set_faults(kind="expired_token", share=0.2)  # renewals mid-run
        done = run_cli(folder, env)
        assert done.returncode == 0, done.stderr[-3000:]
        issued = json.loads(store.read_text())
        portal.clear_faults()
        portal.set_faults(kind="server_error", share=1.0)
        failed = run_cli(folder, {**env, "SOURCES__BITRIX24__MAX_RETRIES": "1"})
        portal.clear_faults()
        assert failed.returncode != 0
    secrets = [oauth["client_secret"], oauth["access_token"], oauth["refresh_token"]]
    secrets += [v for k, v in issued.items() if "token" in k and isinstance(v, str) and len(v) >= 16]
    assert len(secrets) >= 5, issued
    assert any(
        secret.encode() in data for _, data in file_texts(store.parent) for secret in secrets
    )  # the search works
    assert_nowhere(secrets, [done.stdout, done.stderr, failed.stdout, failed.stderr], folder)
