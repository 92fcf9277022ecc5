"""User mistakes through the CLI: one line on stderr naming what is wrong and how to fix it, the documented
exit code, no traceback (unless --debug), no secret, and the pipeline's state and warehouse exactly as a
previous good run left them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.exit_codes import EXIT_AUTH, EXIT_DESTINATION, EXIT_USAGE
from tests.e2e.syncutil import SMALL_PORTAL

TOKEN = "abcdefghijklmnopq"


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(**SMALL_PORTAL) as p:
        yield p


@pytest.fixture(scope="module")
def synced(portal: Portal, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse and pipeline folder after one good run."""
    base = tmp_path_factory.mktemp("synced")
    os.environ["SOURCES__BITRIX24__WEBHOOK_URL"] = portal.webhook_url
    try:
        assert main(["run", "--resources", "deals,stages", *where(base)]) == 0
    finally:
        del os.environ["SOURCES__BITRIX24__WEBHOOK_URL"]
    return base


@pytest.fixture
def copy(synced: Path, tmp_path: Path) -> Path:
    shutil.copytree(synced, tmp_path / "c")
    return tmp_path / "c"


def where(base: Path) -> list[str]:
    return ["--duckdb-path", str(base / "w.duckdb"), "--pipelines-dir", str(base / "p")]


def state_files(pipelines_dir: Path) -> dict[str, str]:
    """The pipeline's state, schemas and load packages (pending or loaded), by content. Not the run log, and
    not the scratch folder a failed extract leaves under normalize/ (dlt never loads it: not a package)."""
    root = pipelines_dir / "bitrix24"
    kept = [root / "state.json", *(root / "schemas").rglob("*"), *(root / "load").rglob("*")]
    kept += (root / "normalize" / "extracted").rglob("*")
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in kept if f.is_file()}


def snapshot(base: Path) -> tuple[object, ...]:
    """The warehouse (tables, row counts, loads) and the pipeline's state files."""
    with duckdb.connect(str(base / "w.duckdb"), read_only=True) as con:
        names = con.sql("SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2").fetchall()
        tables = [(s, t, con.sql(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0]) for s, t in names]
        loads = con.sql("SELECT load_id FROM bitrix24_crm._dlt_loads ORDER BY 1").fetchall()
    return state_files(base / "p"), tables, loads


def fails(capsys: pytest.CaptureFixture[str], args: list[str], code: int, *needles: str, secret: str = TOKEN) -> str:
    assert main(args) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("bitrix24-sync: error: ")]
    assert len(lines) == 1, err  # other lines are progress and retry logs (INFO)
    assert "Traceback" not in err and secret not in err
    for needle in needles:
        assert needle in err, err
    return err


WEBHOOKS = {
    "malformed": ("https://portal.bitrix24.com/rest/abc", EXIT_USAGE, "must look like https://<portal>/rest/"),
    "unreachable host": (f"http://127.0.0.1:9/rest/1/{TOKEN}/", EXIT_USAGE, "cannot reach the portal host"),
    "http to a remote host": (f"http://crm.example.com/rest/1/{TOKEN}/", EXIT_USAGE, "use https://"),
}


@pytest.mark.parametrize("case", list(WEBHOOKS))
def test_bad_webhook_urls(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    url, code, needle = WEBHOOKS[case]
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", url)
    before = snapshot(copy)
    fails(capsys, ["run", *where(copy)], code, needle)
    assert snapshot(copy) == before


@pytest.mark.parametrize("case", ["wrong token", "no crm scope", "plan without REST"])
def test_refused_by_the_portal(
    copy: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    url = {
        "wrong token": portal.webhook_url.replace(portal.token, "z" * len(portal.token)),
        "no crm scope": portal.add_webhook(scopes=("user",)),
        "plan without REST": portal.webhook_url,
    }[case]
    needle = {
        "wrong token": "refused the credentials",
        "no crm scope": "lacks the scope",
        "plan without REST": "REST needs a commercial plan",
    }[case]
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", url)
    before = snapshot(copy)
    if case == "plan without REST":
        portal.set_faults(kind="plan_restricted", share=1)
    try:
        fails(capsys, ["run", *where(copy)], EXIT_AUTH, needle, secret=url.rstrip("/").rsplit("/", 1)[-1])
    finally:
        portal.clear_faults()
    assert snapshot(copy) == before


START = "SOURCES__BITRIX24__START_DATE"
DATES = {
    "start_date unparseable": ({START: "last tuesday"}, ["run"], "start_date 'last tuesday' is not a date"),
    "start_date in the future": ({START: "2999-01-01"}, ["run"], "is in the future"),
    "--since unparseable": ({}, ["backfill", "--since", "01/02/2024"], "--since '01/02/2024' is not a date"),
    "--until unparseable": ({}, ["backfill", "--since", "2024-01-01", "--until", "soon"], "--until 'soon' is"),
    "--since after --until": ({}, ["backfill", "--since", "2024-07-01", "--until", "2024-01-01"], "is not before"),
    "--since in the future": ({}, ["backfill", "--since", "2999-01-01"], "is in the future"),
    "unknown resource": ({}, ["run", "--resources", "deals,orders"], "unknown resource orders: choose from"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DATES))
def test_bad_dates_and_resources(
    copy: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    env, args, needle = DATES[case]
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = snapshot(copy)
    portal.reset_stats()
    fails(capsys, [*args, *where(copy)], EXIT_USAGE, needle, secret=portal.token)
    assert snapshot(copy) == before
    assert portal.stats()["requests"] == 0  # refused before asking the portal anything


def test_a_locked_duckdb_file(
    copy: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process holds the DuckDB file open for writing."""
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    before = snapshot(copy)
    code = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(copy / "w.duckdb")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        portal.reset_stats()
        fails(capsys, ["run", *where(copy)], EXIT_DESTINATION, "has the DuckDB file open for writing: close it")
        assert portal.stats()["requests"] == 0
    finally:
        holder.communicate("", timeout=10)
    assert snapshot(copy) == before


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("a-directory", "the DuckDB path is a directory"),
        ("/sys/kernel/w.duckdb", "is not writable"),  # a read-only location, even for root
        ("missing-folder/w.duckdb", "the folder of the DuckDB file does not exist"),
    ],
)
def test_an_unusable_duckdb_path(
    copy: Path,
    portal: Portal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
    needle: str,
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    (copy / "a-directory").mkdir()
    target = path if path.startswith("/") else str(copy / path)
    before = snapshot(copy)
    fails(capsys, ["run", "--duckdb-path", target, "--pipelines-dir", str(copy / "p")], EXIT_DESTINATION, needle)
    assert snapshot(copy) == before and not Path(target).is_file()


def test_a_read_only_duckdb_file(
    copy: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through file permissions; /sys/kernel above covers an unwritable location")
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    before = snapshot(copy)
    (copy / "w.duckdb").chmod(0o444)
    try:
        fails(capsys, ["run", *where(copy)], EXIT_DESTINATION, "not writable")
    finally:
        (copy / "w.duckdb").chmod(0o644)
    assert snapshot(copy) == before


@pytest.mark.parametrize("case", ["wrong password", "unreachable port"])
def test_an_unusable_postgres(
    copy: Path,
    portal: Portal,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    scheme, rest = postgres_url.split("://", 1)
    credentials, host = rest.split("@", 1)
    if case == "wrong password":
        url, needle = f"{scheme}://{credentials.split(':')[0]}:not-the-password@{host}", "refused the user or password"
    else:
        url, needle = f"{scheme}://{credentials}@127.0.0.1:9/{host.split('/', 1)[1]}", "Postgres is not reachable"
    pipelines = copy / "pg-pipelines"
    args = ["run", "--destination", "postgres", "--postgres-url", url, "--pipelines-dir", str(pipelines)]
    portal.reset_stats()
    fails(capsys, args, EXIT_DESTINATION, needle, secret="not-the-password")
    assert portal.stats()["requests"] == 0
    assert [f for f in state_files(pipelines) if f != "state.json"] == []  # no package, no schema


def test_debug_shows_the_traceback(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", "https://portal.bitrix24.com/rest/abc")
    assert main(["--debug", "run", *where(copy)]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err
