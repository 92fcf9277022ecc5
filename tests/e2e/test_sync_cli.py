"""`bitrix24-sync`: a run, the demo, and user mistakes (one line on stderr, non-zero exit, no traceback, no
secret, nothing written)."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(**SMALL_PORTAL) as p:
        yield p


def cli(tmp_path: Path, *args: str) -> list[str]:
    return [
        *args,
        "--duckdb-path",
        str(tmp_path / "w.duckdb"),
        "--pipelines-dir",
        str(tmp_path / "pipelines"),
    ]


def tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as con:
        return [t for (t,) in con.sql("SELECT table_name FROM information_schema.tables").fetchall()]


def test_run_then_backfill(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(cli(tmp_path, "run", "--resources", "deals,stages")) == 0
    out = capsys.readouterr()
    # a first run: the smart-process types, then the discovery batch and the deals' continuation
    assert "with 3 HTTP requests" in out.out and "deals " in out.out and portal.token not in out.out + out.err
    assert {"deals", "stages"} <= set(tables(tmp_path / "w.duckdb")) and "leads" not in tables(tmp_path / "w.duckdb")
    assert main(cli(tmp_path, "backfill", "--since", "2020-01-01", "--resources", "deals")) == 0
    assert "deals" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["backfill", "--since", "2024-13-01"], "is not a date"),
        (["backfill", "--since", "2024-07-01", "--until", "2024-01-01"], "is not before"),
        (["run", "--resources", "deals,orders"], "unknown resource orders"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path,
    portal: Portal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    needle: str,
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    assert main(cli(tmp_path, *args)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert tables(tmp_path / "w.duckdb") == []


@pytest.mark.parametrize("case", ["malformed", "wrong token", "no crm scope"])
def test_rejected_webhooks_are_user_errors_without_the_secret(
    tmp_path: Path,
    portal: Portal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    url = {
        "malformed": portal.webhook_url.replace("/rest/1/", "/rest/x/"),
        "wrong token": portal.webhook_url.replace(portal.token, "z" * len(portal.token)),
        "no crm scope": portal.add_webhook(scopes=("user",)),
    }[case]
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", url)
    assert main(cli(tmp_path, "run")) == (EXIT_USAGE if case == "malformed" else EXIT_AUTH)
    err = capsys.readouterr().err
    secret = url.rstrip("/").rsplit("/", 1)[-1]
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and secret not in err
    assert not [t for t in tables(tmp_path / "w.duckdb") if not t.startswith("_dlt")]


def test_unreachable_postgres_is_reported_before_anything_is_extracted(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    portal.reset_stats()
    code = main(
        [
            "run",
            "--destination",
            "postgres",
            "--postgres-url",
            "postgresql://u:p@127.0.0.1:9/db",
            "--pipelines-dir",
            str(tmp_path / "pipelines"),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_DESTINATION and "postgres" in err and len(err.strip().splitlines()) == 1
    assert portal.stats()["requests"] == 0


def test_demo_syncs_an_emulator_and_shows_a_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "demo.duckdb"
    args = [
        "demo",
        "--path",
        str(path),
        "--deals",
        "60",
        "--leads",
        "20",
        "--contacts",
        "20",
        "--companies",
        "5",
        "--pipelines-dir",
        str(tmp_path / "state"),
    ]
    for _ in range(2):  # a second demo is a new emulator: it starts over instead of refusing another portal
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "deals " in out and "example query" in out and "won" in out
        with duckdb.connect(str(path), read_only=True) as con:
            assert con.sql("SELECT count(*) FROM bitrix24_crm.deals").fetchall() == [(60,)]
            # the demo's webhook has every scope the sync can use: calls and products are there too
            assert con.sql("SELECT count(*) > 0 FROM bitrix24_crm.calls").fetchall() == [(True,)]
            assert con.sql("SELECT count(*) > 0 FROM bitrix24_crm.products").fetchall() == [(True,)]
    # the state stays where dlt's own CLI finds it
    info = subprocess.run(
        [str(Path(sys.executable).with_name("dlt")), "pipeline", "--pipelines-dir", str(tmp_path / "state"),
         "bitrix24_demo", "info"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert info.returncode == 0 and "bitrix24_demo" in info.stdout and "deals" in info.stdout, info.stdout + info.stderr
