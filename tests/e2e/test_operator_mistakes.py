"""An operator's mistakes get one line that says what is wrong and how to fix it, the right exit code, and no
secret: a broken state or schema file, an unwritable state folder, https to a plain-http server, a login page,
a setting that is not a number, an unknown resource, a database URL in the wrong form, a DuckDB file of someone
else's tables, a full disk; and `check` leaves no empty warehouse behind."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.exit_codes import EXIT_AUTH, EXIT_DESTINATION, EXIT_USAGE
from pipelines.run_log import run_log_path
from pipelines.runner import make_pipeline
from tests.e2e.syncutil import assert_warehouse_equals_portal

CODE = "abcdefgh12345678"


def where(folder: Path) -> list[str]:
    return ["--duckdb-path", str(folder / "w.duckdb"), "--pipelines-dir", str(folder / "state")]


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("bitrix24-sync: error:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


@pytest.fixture
def synced(tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(["-q", "run", *where(tmp_path)]) == 0
    return tmp_path


@pytest.mark.parametrize("broken", [b"", b"{broken"])
@pytest.mark.parametrize("file", ["state.json", "schemas/bitrix24.schema.json"])
def test_a_broken_state_or_schema_file_is_named_and_moving_the_folder_aside_is_safe(
    synced: Path, portal: Portal, capsys: pytest.CaptureFixture[str], file: str, broken: bytes
) -> None:
    working = synced / "state" / "bitrix24"
    (working / file).write_bytes(broken)
    for command in (["-q", "run"], ["status"], ["reconcile"]):
        assert main([*command, *where(synced)]) == EXIT_USAGE
        line = one_line(capsys)
        assert str(working / file) in line and "mv " in line and "restored from the warehouse" in line
    shutil.move(working, f"{working}.broken")  # what the line says to do
    assert main(["-q", "run", *where(synced)]) == 0
    pipeline = make_pipeline("duckdb", duckdb_path=synced / "w.duckdb", pipelines_dir=synced / "state")
    assert pipeline.state["sources"]["bitrix24"]["resources"]["deals"]["cursor"]  # restored, not started over
    assert_warehouse_equals_portal(pipeline, portal)


def test_an_unwritable_state_folder_is_named(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    # /sys/kernel refuses new entries even to root
    assert main(["-q", "run", "--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", "/sys/kernel/b24"]) in (
        EXIT_USAGE,
        EXIT_DESTINATION,
    )
    assert "/sys/kernel/b24" in one_line(capsys)


def test_settings_and_names_that_cannot_be_used_are_usage_errors(
    synced: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__RATE", "abc")
    assert main(["-q", "run", *where(synced)]) == EXIT_USAGE
    assert "rate" in one_line(capsys)
    monkeypatch.delenv("SOURCES__BITRIX24__RATE")
    assert main(["status", "--resources", "foo", *where(synced)]) == EXIT_USAGE
    assert "unknown resource foo" in one_line(capsys)
    assert main(["status", "--resources", "deals", "--json", *where(synced)]) == 0
    assert set(json.loads(capsys.readouterr().out)["resources"]) == {"deals"}


def test_a_wrong_webhook_code_says_what_to_check_once(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", f"{portal.base_url}/rest/1/{CODE}/")
    assert main(["-q", "run", *where(tmp_path)]) == EXIT_AUTH
    line = one_line(capsys)
    assert line.count("check") == 1 and CODE not in line


@pytest.fixture
def login_page() -> Iterator[str]:
    class LoginPage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"<!DOCTYPE html><html><body><form>Login</form></body></html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoginPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_https_to_a_plain_http_server_and_a_login_page_are_configuration_errors(
    tmp_path: Path,
    portal: Portal,
    login_page: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = {
        portal.webhook_url.replace("http://", "https://"): "TLS handshake",
        f"{login_page}/rest/1/{CODE}/": "web page, not the Bitrix24 REST API",
    }
    for url, needle in cases.items():
        monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", url)
        assert main(["-q", "run", *where(tmp_path / uuid.uuid4().hex)]) == EXIT_USAGE
        line = one_line(capsys)
        assert needle in line and "gave up after 2 attempts" in line and CODE not in line


@pytest.mark.postgres
def test_a_database_url_in_the_wrong_form_never_shows_its_password(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+psycopg2://loader:TopSecret42@localhost:1/db"
    args = ["--destination", "postgres", "--postgres-url", url, "--pipelines-dir", str(synced / "pg")]
    assert main(["-q", "run", *args]) == EXIT_DESTINATION
    assert "TopSecret42" not in capsys.readouterr().err
    assert main(["status", "--json", *args]) == 0
    assert "TopSecret42" not in capsys.readouterr().out
    log = run_log_path(synced / "pg" / "bitrix24")
    assert log.exists() and "TopSecret42" not in log.read_text()


def test_a_duckdb_file_of_someone_elses_tables_is_refused_and_left_alone(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.sql("CREATE SCHEMA bitrix24_crm; CREATE TABLE bitrix24_crm.deals (id VARCHAR, title INTEGER)")
        con.sql("INSERT INTO bitrix24_crm.deals VALUES ('x', 1)")
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(["-q", "run", *where(tmp_path)]) == EXIT_DESTINATION
    assert "no dlt pipeline made (deals)" in one_line(capsys)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.sql("SELECT table_name FROM information_schema.tables").fetchall() == [("deals",)]


def test_check_leaves_no_empty_warehouse_behind(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(["check", *where(tmp_path)]) == 0
    assert "does not exist yet" in capsys.readouterr().out and not (tmp_path / "w.duckdb").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 300 KB file system for the state folder (tmpfs; needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root, or no mount permission)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_is_one_line_and_the_next_run_completes(
    tmp_path: Path,
    small_disk: Path,
    portal: Portal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    args = ["--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(small_disk / "state")]
    assert main(["-q", "run", *args]) == EXIT_DESTINATION
    assert "the disk is full" in one_line(capsys)
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    assert main(["-q", "run", *args]) == 0
    pipeline = make_pipeline("duckdb", duckdb_path=tmp_path / "w.duckdb", pipelines_dir=small_disk / "state")
    assert_warehouse_equals_portal(pipeline, portal)
    assert os.path.ismount(small_disk)
