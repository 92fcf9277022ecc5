"""The CLI's pure parts: progress rendering (terminal and log fallback, throttled), ETA and full-sync arithmetic,
the exit-code mapping, and which credential the configuration selects."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.cli.authorize import authorization_code
from pipelines.cli.check import EntityCount, Inventory, seconds_at
from pipelines.exit_codes import (
    EXIT_AUTH,
    EXIT_BUSY,
    EXIT_DESTINATION,
    EXIT_PORTAL,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    classify,
)
from pipelines.progress import ProgressDisplay, eta_seconds, summary_table
from pipelines.run_meter import ResourceMeter, RunMeter, StepCollector
from pipelines.runner import AlreadyRunningError, DestinationError
from sources.bitrix24.api import AuthError, ConfigError, ScopeError, TransientError, WebhookAuth
from sources.bitrix24.api.credentials import resolve_credentials
from sources.bitrix24.api.oauth import OAuthAuth
from sources.bitrix24.window import DateInputError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def meter_with(display: ProgressDisplay, clock: FakeClock, *names: str) -> RunMeter:
    run = RunMeter(display, clock=clock, on_step=display.on_step)
    run.resources = {n: ResourceMeter(n) for n in names}
    return run


def test_terminal_lines_are_redrawn_in_place_at_most_ten_times_a_second() -> None:
    clock, out = FakeClock(), io.StringIO()
    display = ProgressDisplay(out, terminal=True, rate=2.0, clock=clock)
    run = meter_with(display, clock, "deals", "leads")
    run.expect({"deals": 12_500})
    for _ in range(50):  # fifty pages within 25 ms: one drawing
        clock.now += 0.0005
        run.page("deals", 50)
    assert out.getvalue().count("\n") == 2 and "\x1b[" not in out.getvalue().split("\n")[0][:4]
    clock.now += 0.2
    run.page("leads", 50)
    text = out.getvalue()
    assert text.count("\x1b[2F") == 1  # moved up over the two lines and redrew them
    last = text.rsplit("\x1b[2F", 1)[1]
    # 12,500 - 2,500 rows left: ceil(10,000/2,500) = 4 requests at 2/s
    assert "\rdeals           [####................] 2,500/12,500 rows" in last and "ETA 0:02" in last
    assert "\rleads           50 rows" in last and "ETA" not in last.split("\n")[1]


def test_log_lines_every_interval_only_for_what_moved_and_a_final_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    display = ProgressDisplay(io.StringIO(), terminal=False, rate=2.0, interval=10.0, clock=clock)
    run = meter_with(display, clock, "deals", "leads")
    with caplog.at_level(logging.INFO, logger="bitrix24_sync.progress"):
        run.page("deals", 50)  # the first page logs at once
        for _ in range(5):
            clock.now += 1
            run.page("deals", 50)  # within the interval: silent
        clock.now += 10
        run.page("leads", 50)
        run.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("deals           50 rows")
    assert lines[1].startswith("deals           300 rows") and lines[2].startswith("leads           50 rows")
    assert lines[3:] == [
        "deals           300 rows  60 rows/s  0 requests  done",
        "leads           50 rows  5 rows/s  0 requests  done",
    ]


def test_eta_takes_the_slower_of_the_rate_limit_and_the_observed_speed() -> None:
    meter = ResourceMeter("deals", rows=5000, seconds=10.0, expected_rows=10_000)
    assert eta_seconds(meter, rate=2.0) == 10.0  # 500 rows/s observed: 5,000 rows take 10 s > 2 requests / 2
    meter.seconds = 0.5
    assert eta_seconds(meter, rate=2.0) == 1.0  # ceil(5000/2500) = 2 requests at 2/s
    assert eta_seconds(ResourceMeter("leads", rows=10), rate=2.0) is None


def test_summary_table_has_a_total_line_with_the_runs_own_counts() -> None:
    clock = FakeClock()
    run = RunMeter(clock=clock)
    run.resources = {"deals": ResourceMeter("deals", rows=130, requests=2, seconds=0.25)}
    clock.now += 1.5
    lines = summary_table(run, {"deals": 130}, requests=3, retries=1)
    assert lines[0].split() == ["resource", "rows", "requests", "retries", "seconds"]
    assert lines[2].split() == ["deals", "130", "2", "0", "0.2"]
    assert lines[-1].split() == ["total", "130", "3", "1", "1.5"]


def test_full_sync_arithmetic() -> None:
    found = Inventory(
        [EntityCount("deals", 1_000_000, 20), EntityCount("leads", 2500, 3), EntityCount("invoices", None, None)],
        payments=5001,
        history={2: 7500, 1: 2501},
        product_owners=("deals",),
        products={14: 2501, 15: 0},
    )
    assert [e.requests for e in found.entities] == [401, 2, 0]
    assert found.payment_requests() == (6, "2 x ceil(5001/2500)")
    wider = {table: requests for table, _rows, requests, _a in found.wider()}
    # stage history per entity type; product rows: id scan + rows of 1M deals; deal contacts; no calls; products
    # per catalog
    assert wider == {"stage_history": 3 + 2, "product_rows": 2 * 400, "deal_contacts": 400, "calls": 0, "products": 2}
    assert found.total_requests() == 1 + 401 + 2 + 6 + 5 + 800 + 400 + 2
    assert seconds_at(410, rate=2.0, burst=50) == 180.0 and seconds_at(20, rate=2.0, burst=50) == 0
    no_sale = Inventory([EntityCount("deals", 5000, 0)], owners=("deals", "invoices"))
    assert no_sale.payment_requests()[0] == 2 + 100  # id scan, then a payment list per owner (50 per batch)


STUB_PIPELINE = SimpleNamespace(has_pending_data=False, pipeline_name="bitrix24")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad url"), EXIT_USAGE),
        (DateInputError("bad date"), EXIT_USAGE),
        (AuthError("rejected"), EXIT_AUTH),
        (ScopeError("no crm"), EXIT_AUTH),
        (TransientError("503 after retries"), EXIT_PORTAL),
        (DestinationError("no db"), EXIT_DESTINATION),
        (PipelineStepFailed(STUB_PIPELINE, "load", "l1", OSError("disk full")), EXIT_DESTINATION),  # type: ignore[arg-type]
        (AlreadyRunningError("busy"), EXIT_BUSY),
        (RuntimeError("http://host/rest/1/secretcode/"), EXIT_UNEXPECTED),
    ],
)
def test_every_failure_class_has_its_exit_code(error: BaseException, code: int) -> None:
    got, message = classify(error)
    assert got == code and "secretcode" not in message and "\n" not in message


def test_the_authorization_code_comes_alone_or_inside_the_redirect_address() -> None:
    assert authorization_code(" abc123 ") == "abc123"
    assert authorization_code("https://app.example/?state=1&code=abc123&domain=x") == "abc123"
    with pytest.raises(ConfigError):
        authorization_code("https://app.example/?state=1")


OAUTH = {
    "CLIENT_ID": "local.abc.123",
    "CLIENT_SECRET": "s3cr3t",
    "CLIENT_ENDPOINT": "https://portal.example/rest/",
    "REFRESH_TOKEN": "r1",
}


def make_auth(webhook_url: str | None = None) -> WebhookAuth | OAuthAuth:
    return resolve_credentials(webhook_url).auth(allow_http=False)


def test_the_configuration_selects_the_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "https://portal.example/rest/1/abcdefgh12345678/"
    monkeypatch.delenv("SOURCES__BITRIX24__WEBHOOK_URL", raising=False)
    with pytest.raises(ConfigError, match="no credentials"):
        make_auth()
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", url)
    assert isinstance(make_auth(), WebhookAuth)
    for key, value in OAUTH.items():
        monkeypatch.setenv(f"SOURCES__BITRIX24__OAUTH__{key}", value)
    with pytest.raises(ConfigError, match="remove one of them"):
        make_auth()
    assert isinstance(make_auth(url), WebhookAuth)  # an explicit URL is a choice, not a conflict
    monkeypatch.delenv("SOURCES__BITRIX24__WEBHOOK_URL")
    monkeypatch.setenv("HOME", str(tmp_path))
    auth = make_auth()
    assert isinstance(auth, OAuthAuth) and auth.client_id == "local.abc.123"
    assert auth.store.path == tmp_path / ".dlt" / "bitrix24-sync" / "tokens-local.abc.123.json"
    monkeypatch.delenv("SOURCES__BITRIX24__OAUTH__CLIENT_SECRET")
    with pytest.raises(ConfigError, match="lacks client_secret"):
        make_auth()


def test_normalize_and_load_show_their_progress_once_the_extraction_is_over() -> None:
    """dlt's collector reports normalize (rows per table, files) and load (jobs): the resources are done from
    then on (no ETA frozen at 0:00), and a line per step shows what it did and for how long."""
    clock, out = FakeClock(), io.StringIO()
    display = ProgressDisplay(out, terminal=True, rate=2.0, clock=clock)
    run = meter_with(display, clock, "deals")
    run.expect({"deals": 130})
    run.page("deals", 130)
    collector = StepCollector(run)
    with collector("Extract bitrix24"):
        collector.update("Resources", 0, 3)  # the extraction's own counters: the pages told already
    assert run.steps == []
    with collector("Normalize bitrix24 in 1796"):
        collector.update("Files", 0, 2)
        clock.now += 1.0
        collector.update("deals", 130)
        clock.now += 0.2  # redrawn at most ten times a second
        collector.update("Files", 1)
        last = re.split(r"\x1b\[\d+F", out.getvalue())[-1]
        assert "deals           [####################] 130/130 rows" in last and "done" in last.split("\n")[0]
        assert "\rnormalize       130 rows  files 1/2  0:01" in last  # 1.2 s
        collector.update("Files", 1)
        clock.now += 1.0
    with collector("Load bitrix24 in 1796"):
        collector.update("Jobs", 0, inc_total=3)
        collector.update("Jobs")
        collector.update("Jobs", 1, message="WARNING: Some of the jobs failed!", label="Failed")
        clock.now += 3.0
    last = re.split(r"\x1b\[\d+F", out.getvalue())[-1]
    assert (
        "\rnormalize       130 rows  files 2/2  done in 0:02" in last
        and "\rload            jobs 1/3  done in 0:03" in last
    )
    lines = summary_table(run, {"deals": 130}, requests=2, retries=0)
    assert [line.split()[0] for line in lines[3:6]] == ["(normalize)", "(load)", "(views)"]
    assert [float(line.split()[-1]) for line in lines[3:5]] == [2.2, 3.0]
