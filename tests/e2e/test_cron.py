"""The cron example (`deploy/cron/bitrix24-sync-cron.sh`) as cron runs it: a bare environment, configuration
only from the project folder's .dlt/ files, output appended to a log, the sync's exit code passed on."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bitrix24_emulator import Portal
from pipelines.exit_codes import EXIT_AUTH
from tests.e2e.syncutil import SMALL_PORTAL

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "cron" / "bitrix24-sync-cron.sh"


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(**SMALL_PORTAL) as p:
        yield p


def project(tmp_path: Path, webhook_url: str) -> Path:
    """A project folder the way the README sets one up: .dlt/config.toml and .dlt/secrets.toml."""
    home = tmp_path / "project"
    (home / ".dlt").mkdir(parents=True)
    (home / ".dlt" / "config.toml").write_text(
        '[bitrix24_sync]\nduckdb_path = "warehouse.duckdb"\npipelines_dir = "state"\n\n'
        "[runtime]\ndlthub_telemetry = false\n"
    )
    (home / ".dlt" / "secrets.toml").write_text(f'[sources.bitrix24]\nwebhook_url = "{webhook_url}"\n')
    return home


def cron(home: Path) -> subprocess.CompletedProcess[str]:
    env = {  # what cron gives a job: little more than a PATH and a HOME
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "BITRIX24_SYNC_HOME": str(home),
        "BITRIX24_SYNC_BIN": str(Path(sys.executable).parent / "bitrix24-sync"),
    }
    return subprocess.run(["/bin/sh", str(SCRIPT)], env=env, cwd="/", capture_output=True, text=True, timeout=120)


def test_cron_job_syncs_from_the_project_config_and_logs(tmp_path: Path, portal: Portal) -> None:
    home = project(tmp_path, portal.webhook_url)
    done = cron(home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr == ""  # everything goes to the log, nothing to cron's mail
    log = (home / "logs" / "bitrix24-sync.log").read_text()
    assert "synced " in log and log.rstrip().endswith("exit 0")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM bitrix24_crm.v_deals").fetchall() == [(SMALL_PORTAL["deals"],)]
    assert (home / "state" / "bitrix24").is_dir()  # dlt's state where the config put it


def test_cron_job_passes_the_exit_code_on_and_keeps_the_secret_out_of_the_log(tmp_path: Path, portal: Portal) -> None:
    home = project(tmp_path, portal.webhook_url.replace(portal.token, "y" * len(portal.token)))
    done = cron(home)
    assert done.returncode == EXIT_AUTH
    log = (home / "logs" / "bitrix24-sync.log").read_text()
    assert "error:" in log and log.rstrip().endswith(f"exit {EXIT_AUTH}")
    assert "y" * len(portal.token) not in log
