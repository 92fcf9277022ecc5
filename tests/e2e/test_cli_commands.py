"""`bitrix24-sync` commands against a real emulator: the run's summary table, progress lines when stderr is not
a terminal, --quiet, `check`, `status` (text and --json), --help everywhere, and every exit code."""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.exit_codes import (
    EXIT_AUTH,
    EXIT_BUSY,
    EXIT_DESTINATION,
    EXIT_PORTAL,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
)
from pipelines.run_log import run_log_path
from pipelines.runner import lock_path
from tests.e2e.syncutil import SMALL_PORTAL
from tests.e2e.test_client_network import closed_port

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bitrix24_sync\.progress: (\w+) +(.*)$")
CaptureFixture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(**SMALL_PORTAL) as p:
        yield p


@pytest.fixture
def webhook(portal: Portal, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    return portal.webhook_url


def where(tmp_path: Path) -> list[str]:
    return ["--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "pipelines")]


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bitrix24-sync: error: ") and "Traceback" not in err, err
    return lines[0]


def test_run_prints_a_summary_table_and_logs_progress_when_not_on_a_terminal(
    tmp_path: Path, portal: Portal, webhook: str, capsys: CaptureFixture
) -> None:
    portal.reset_stats()
    assert main(["run", "--resources", "deals,stages", "--progress-interval", "0", *where(tmp_path)]) == 0
    out, err = capsys.readouterr()
    requests = portal.stats()["requests"]
    lines = out.splitlines()
    assert lines[0].endswith(f"with {requests} HTTP requests")
    assert lines[1].split() == ["resource", "rows", "requests", "retries", "seconds"]
    body = {line.split()[0]: line.split()[1:] for line in lines[3:] if not line.strip().startswith("-")}
    assert body["deals"][:1] == [str(SMALL_PORTAL["deals"])] and body["stages"][1] == "0"
    assert body["total"][1:3] == [str(requests), "0"]  # the discovery batch is booked to deals
    assert int(body["deals"][1]) == requests
    seconds = [float(v[-1]) for k, v in body.items() if k != "total"]  # resources, then normalize, load, views
    assert abs(sum(seconds) - float(body["total"][-1])) <= 0.05 * len(seconds) + 0.05
    assert [k for k in body if k.startswith("(")] == ["(normalize)", "(load)", "(views)"]
    records = sum(int(v[0].replace(",", "")) for k, v in body.items() if k != "total" and not k.startswith("("))
    assert lines[0].startswith(f"synced {records:,} records (and ")  # the headline counts what the table counts

    progress = [m.groups() for m in map(LOG_LINE.match, err.splitlines()) if m]
    assert {name for name, _ in progress} == {"deals", "stages", "normalize", "load"}
    # a line per group of rows as they arrive (up to one batch request's 2,500), records only
    assert any(name == "deals" and text.startswith(f"{SMALL_PORTAL['deals']} rows") for name, text in progress)
    assert [text for name, text in progress if name == "deals"][-1].endswith("done")
    steps = [f"{name} {text}" for name, text in progress if name in ("normalize", "load")]
    assert steps[0] == "normalize 0 rows  files 0  0:00" and steps[2] == "load jobs 0  0:00", steps  # as they start
    assert re.fullmatch(r"normalize [\d,]+ rows  files (\d+)/\1  done in 0:\d\d", steps[1]), steps
    assert re.fullmatch(r"load jobs (\d+)/\1  done in 0:\d\d", steps[3]), steps
    assert webhook.rstrip("/").rsplit("/", 1)[-1] not in out + err


def test_quiet_prints_nothing_and_status_shows_the_run(
    tmp_path: Path, portal: Portal, webhook: str, capsys: CaptureFixture
) -> None:
    assert main(["--quiet", "run", "--resources", "deals,leads", *where(tmp_path)]) == 0
    assert capsys.readouterr() == ("", "")

    assert main(["status", "--json", *where(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "schema", "pipeline", "destination", "dataset", "portal", "state", "run_log", "runs_recorded", "last_run",
        "resources", "rate_limit", "column_names",
    }  # fmt: skip
    assert report["column_names"] == "codes"  # a new warehouse: a user field's column is its code
    assert report["runs_recorded"] == 1 and report["last_run"]["ok"] is True
    assert report["portal"] == webhook.split("/")[2] and Path(report["state"]).is_dir()
    deals = report["resources"]["deals"]
    assert set(deals) == {"cursor", "last_run_at", "last_run_ok", "rows", "requests", "retries", "seconds", "error"}
    assert deals["rows"] == SMALL_PORTAL["deals"] and deals["cursor"] and deals["error"] is None
    assert deals["requests"] + report["resources"]["leads"]["requests"] == report["last_run"]["requests"]
    assert report["resources"]["payments"]["last_run_at"] is None  # not selected
    limit = report["rate_limit"]
    assert limit["refused"] == 0 and 0 <= limit["free_at_end"] <= limit["free_now"] <= limit["burst"]

    assert main(["status", *where(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "last run: incremental" in text and "ok" in text
    assert re.search(rf"^deals +\S+ \S+ +{SMALL_PORTAL['deals']} .* {re.escape(deals['cursor'])}$", text, re.M)
    assert re.search(r"^payments +never +- +- +-$", text, re.M) and "rate limit:" in text
    assert f"of {50} requests free" in text  # the portal's burst, not the client's bucket with its headroom


def test_a_failed_run_is_in_status_without_the_secret(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture
) -> None:
    wrong = portal.webhook_url.replace(portal.token, "z" * len(portal.token))
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", wrong)
    assert main(["run", "--resources", "deals", *where(tmp_path)]) == EXIT_AUTH
    capsys.readouterr()
    assert main(["status", "--json", *where(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["last_run"]["ok"] is False and report["last_run"]["error_type"] == "AuthError"
    assert report["resources"]["deals"]["error"] == report["last_run"]["error"]
    assert "z" * len(portal.token) not in run_log_path(tmp_path / "pipelines" / "bitrix24").read_text()


def test_check_reports_the_portal_and_the_cost_of_a_full_sync(
    tmp_path: Path, portal: Portal, webhook: str, capsys: CaptureFixture
) -> None:
    portal.reset_stats()
    assert main(["check", *where(tmp_path)]) == 0
    out = capsys.readouterr().out
    # scope, the inventory batch, and one more for the smart processes this new pipeline has not met
    assert portal.stats()["requests"] == 3 and "check used 3 HTTP requests" in out
    notes = "; no telephony: calls are not read; no catalog: products are not read"
    assert re.search(rf"^scopes +crm, sale, user{re.escape(notes)}$", out, re.M)
    assert re.search(r"^products +- +0  not read: no catalog scope$", out, re.M)
    types = portal.call("crm.type.list")["types"]
    for t in types:
        rows = count_keyset(portal, "crm.item.list", {"entityTypeId": t["entityTypeId"], "select": ["id"]}, "id")
        assert re.search(rf"^sp_{t['entityTypeId']} +{rows} ", out, re.M), out
    history = sum(
        count_keyset(portal, "crm.stagehistory.list", {"entityTypeId": e, "select": ["ID"]}, "ID")
        for e in (1, 2, 31, *(t["entityTypeId"] for t in types if t["isStagesEnabled"] == "Y"))
    )
    assert re.search(rf"^stage_history +{history:,} ", out, re.M), out
    assert re.search(r"^destination +duckdb .*w\.duckdb: does not exist yet, the first run creates it$", out, re.M)
    deals_fields = portal.call("crm.deal.fields")
    user_fields = sum(1 for k in deals_fields if k.startswith("UF_"))
    assert re.search(rf"^deals +{SMALL_PORTAL['deals']} +{user_fields} +2  ceil\(130/2500\) \+ 1$", out, re.M)
    payments = count_payments(portal)
    assert re.search(rf"^payments +{payments} +2  2 x ceil\({payments}/2500\)$", out, re.M)
    estimate = int(re.search(r"a full sync takes about (\d+) requests: 0 s at 2 requests/s", out).group(1))

    portal.reset_stats()
    assert main(["--quiet", "run", *where(tmp_path)]) == 0
    assert portal.stats()["requests"] <= estimate  # the estimate is an upper bound


def count_keyset(portal: Portal, method: str, params: dict, id_field: str) -> int:
    """Rows of a crm.item-style list (rows under `items`), counted by paging through them."""
    count, after = 0, 0
    while True:
        page = portal.call(method, {**params, "order": {id_field: "ASC"}, "filter": {f">{id_field}": after}})["items"]
        count += len(page)
        if len(page) < 50:
            return count
        after = page[-1][id_field]


def count_payments(portal: Portal) -> int:
    count, start = 0, 0
    while page := portal.call("sale.payment.list", {"select": ["id"], "start": start})["payments"]:
        count, start = count + len(page), start + 50
    return count


def test_check_fails_on_a_missing_scope_with_exit_3(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.add_webhook(scopes=("crm",)))
    assert main(["check", *where(tmp_path)]) == EXIT_AUTH
    out, err = capsys.readouterr()
    assert "connection   ok" in out and "lacks the user scope" in one_line_error(err)


@pytest.mark.parametrize(
    "command", ["run", "backfill", "reconcile", "check", "status", "rename-columns", "oauth", "demo"]
)
def test_every_command_has_help_with_examples_and_exit_codes(command: str, capsys: CaptureFixture) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: bitrix24-sync {command}" in out and "example" in out and "6  another run" in out


def test_options_default_from_the_environment(
    tmp_path: Path, portal: Portal, webhook: str, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture
) -> None:
    monkeypatch.setenv("BITRIX24_SYNC__DUCKDB_PATH", str(tmp_path / "from-env.duckdb"))
    monkeypatch.setenv("BITRIX24_SYNC__PIPELINES_DIR", str(tmp_path / "pipelines"))
    assert main(["-q", "run", "--resources", "stages"]) == 0
    assert (tmp_path / "from-env.duckdb").exists() and run_log_path(tmp_path / "pipelines" / "bitrix24").exists()


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("bad option", EXIT_USAGE, "unrecognized arguments: --colour"),
        ("unknown resource", EXIT_USAGE, "unknown resource orders"),
        ("bad date", EXIT_USAGE, "is not a date"),
        ("malformed url", EXIT_USAGE, "must look like"),
        ("wrong token", EXIT_AUTH, "check the webhook URL"),
        ("no crm scope", EXIT_AUTH, "scope"),
        ("portal unreachable", EXIT_PORTAL, "run again later"),
        ("duckdb unusable", EXIT_DESTINATION, "cannot use the duckdb destination"),
        ("run in progress", EXIT_BUSY, "is in progress"),
    ],
)
def test_exit_codes(
    tmp_path: Path,
    portal: Portal,
    monkeypatch: pytest.MonkeyPatch,
    capsys: CaptureFixture,
    case: str,
    code: int,
    needle: str,
) -> None:
    url, args = portal.webhook_url, ["run", "--resources", "deals", *where(tmp_path)]
    if case == "bad option":
        args.append("--colour")
    elif case == "unknown resource":
        args[2] = "deals,orders"
    elif case == "bad date":
        args = ["backfill", "--since", "2024-13-01", *where(tmp_path)]
    elif case == "malformed url":
        url = url.replace("/rest/1/", "/rest/x/")
    elif case == "wrong token":
        url = url.replace(portal.token, "z" * len(portal.token))
    elif case == "no crm scope":
        url = portal.add_webhook(scopes=("user",))
    elif case == "portal unreachable":
        url = f"http://127.0.0.1:{closed_port()}/rest/1/{portal.token}/"
        monkeypatch.setenv("SOURCES__BITRIX24__MAX_RETRIES", "0")
    elif case == "duckdb unusable":
        (tmp_path / "w.duckdb").mkdir()  # a folder where the file should be
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", url)
    if case == "run in progress":
        # a first run: dlt wipes a working folder without state, so the lock must live beside it
        (tmp_path / "pipelines").mkdir()
        with open(lock_path(tmp_path / "pipelines", "bitrix24"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert main(args) == code
    else:
        assert main(args) == code
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1] if case == "bad option" else one_line_error(err)
    assert needle in line and portal.token not in err


def test_an_unexpected_error_is_exit_1_with_a_debug_hint(
    tmp_path: Path, webhook: str, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"something quoting {webhook}")

    monkeypatch.setattr("pipelines.cli.status.status_report", broken)
    assert main(["status", *where(tmp_path)]) == EXIT_UNEXPECTED
    line = one_line_error(capsys.readouterr().err)
    assert "unexpected RuntimeError" in line and "--debug" in line and webhook not in line
    assert main(["--debug", "status", *where(tmp_path)]) == EXIT_UNEXPECTED
    assert "Traceback" in capsys.readouterr().err
