"""Faults survived: every kind the emulator injects, during a full and an incremental sync, over real HTTP into
DuckDB. A run either completes with the warehouse equal to the portal, or stops with a clear error after
bounded, backing-off retries with its cursors where they were, and the next run completes. Retry counts come
from the emulator's and the client's statistics, never from wall time."""

from __future__ import annotations

import logging
import random
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import EXIT_USAGE, main
from pipelines.runner import SyncReport, sync
from sources.bitrix24 import Catalog
from sources.bitrix24.api import Bitrix24Client, ConfigError, TransientError, UnreachableError, WebhookAuth
from tests.e2e.faultutil import assert_no_duplicate_rows, change_portal, fast_client
from tests.e2e.syncutil import (
    SMALL_PORTAL,
    assert_entity_equal,
    assert_payments_equal,
    cursors_of,
    new_pipeline,
    query,
)
from tests.e2e.test_client_network import TOKEN, closed_port

CATALOG = Catalog.for_portal()

TIMEOUT = 0.3  # the client's timeout in these tests; a `slow` fault answers after 1 s


# Deals span three pages (so chains run after the discovery batch); the others are kept small, which makes the
# comparison with the portal cheap.
FAULT_PORTAL = {**SMALL_PORTAL, "leads": 30, "contacts": 30, "companies": 10}


@pytest.fixture
def portal() -> Iterator[Portal]:
    with Portal(**FAULT_PORTAL) as p:
        yield p


# Every code path of a run in fewer tables (each table costs dlt time): keyset chains (deals, leads), the
# discovery batch, field metadata, payments (owner scan, sale keyset, order mapping) and an offset-paged
# reference list (stages).
SUBSET = ("deals", "leads", "payments", "stages")


def assert_subset_equal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """The tables of `SUBSET` equal the portal's, and no table has a duplicate row."""
    for spec in CATALOG.entities[:2]:
        assert_entity_equal(pipeline, portal, spec)
    assert_payments_equal(pipeline, portal)
    stages = {(r["entity_id"], r["status_id"], r["name"]) for r in query(pipeline, "SELECT * FROM {}", "stages")}
    assert stages == {(s["ENTITY_ID"], s["STATUS_ID"], s["NAME"]) for s in portal.call("crm.status.list")}
    assert_no_duplicate_rows(pipeline)


def positions(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The cursors, or {} before the first run."""
    return cursors_of(pipeline) if pipeline.state.get("sources") else {}


def run_until_complete(pipeline: dlt.Pipeline, client: Bitrix24Client, attempts: int = 4) -> list[str]:
    """Runs under faults until one completes. Each failed run must have failed with a `TransientError` and left
    the cursors and the pending packages as they were. Returns the failures' messages."""
    failures = []
    for _ in range(attempts):
        before = positions(pipeline)
        try:
            sync(pipeline, client=client, resources=SUBSET)
        except TransientError as error:
            failures.append(str(error))
            assert positions(pipeline) == before and not pipeline.has_pending_data
            continue
        return failures
    raise AssertionError(f"no run completed under faults: {failures}")


FAULTS = {
    "rate-limit storm": {"kind": "rate_limit", "share": 0.6},
    "operation time limit": {"kind": "operation_limit", "share": 0.4},
    "500": {"kind": "server_error", "share": 0.4},
    "502 html": {"kind": "bad_gateway", "share": 0.4},
    "dropped connections": {"kind": "drop", "share": 0.4},
    "slow past the timeout": {"kind": "slow", "share": 0.25, "seconds": 1.0},
    "truncated json": {"kind": "truncated", "share": 0.4},
    "sub-command errors": {"kind": "batch_subcall_error", "share": 0.4},
}


@pytest.fixture(scope="module")
def synced_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Portal, Path]]:
    """One portal and one completed full sync of it, copied by each test that needs a synced pipeline."""
    folder = tmp_path_factory.mktemp("synced")
    with Portal(**FAULT_PORTAL) as portal:
        sync(new_pipeline(folder, "duckdb"), client=fast_client(portal), resources=SUBSET)
        yield portal, folder


def synced_pipeline(template: Path, tmp_path: Path) -> dlt.Pipeline:
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    return new_pipeline(tmp_path, "duckdb")


def test_full_and_incremental_sync_under_every_fault_at_once_end_equal_to_the_portal(
    tmp_path: Path, portal: Portal
) -> None:
    for spec in FAULTS.values():
        portal.set_faults(**{**spec, "share": 0.07})
    pipeline = new_pipeline(tmp_path, "duckdb")
    client = fast_client(portal, timeout=TIMEOUT)
    run_until_complete(pipeline, client)
    change_portal(portal, random.Random(1))
    run_until_complete(pipeline, client)
    assert portal.stats()["faults_injected"] >= 3 and sum(client.stats.retries.values()) >= 2
    portal.clear_faults()
    assert_subset_equal(pipeline, portal)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_incremental_sync_under_each_fault_ends_equal_to_the_portal(
    synced_template: tuple[Portal, Path], tmp_path: Path, fault: str
) -> None:
    portal, template = synced_template
    pipeline = synced_pipeline(template, tmp_path)
    change_portal(portal, random.Random(fault))
    portal.reset_stats()
    portal.set_faults(**FAULTS[fault])
    client = fast_client(portal, timeout=TIMEOUT)
    try:
        run_until_complete(pipeline, client)
    finally:
        portal.clear_faults()
    assert portal.stats()["faults_injected"] >= 1
    if fault != "sub-command errors":  # those are sent again by the paging, per page, not by the client
        assert sum(client.stats.retries.values()) >= 1
    assert_subset_equal(pipeline, portal)


# ------------------------------------------------------------------ persistent faults: bounded, then clear


PERSISTENT = {
    "rate_limit": "QUERY_LIMIT_EXCEEDED",
    "operation_limit": "OPERATION_TIME_LIMIT",
    "server_error": "INTERNAL_SERVER_ERROR",
    "bad_gateway": "http_502",
    "drop": "connection",
    "slow": "timeout",
    "truncated": "bad_response",
}


def retry_delays(log_text: str) -> list[float]:
    return [float(d) for d in re.findall(r"retry \d+/\d+ in ([0-9.]+)s", log_text)]


@pytest.mark.parametrize("kind", list(PERSISTENT))
def test_a_fault_that_persists_stops_the_run_after_bounded_backing_off_retries(
    synced_template: tuple[Portal, Path], tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    portal, template = synced_template
    pipeline = synced_pipeline(template, tmp_path)
    change_portal(portal, random.Random(kind))
    before = positions(pipeline)
    portal.reset_stats()
    portal.set_faults(kind=kind, share=1.0, seconds=1.0)
    client = fast_client(portal, timeout=TIMEOUT, max_retries=3, backoff_base=0.02, backoff_cap=1.0)
    caplog.set_level(logging.INFO, logger="bitrix24_sync.client")
    try:
        with pytest.raises(TransientError, match="gave up after 4 attempts"):
            sync(pipeline, client=client, resources=SUBSET)
    finally:
        portal.clear_faults()
    # bounded in count: the discovery batch, sent 1 + 3 times, then nothing else
    assert portal.stats()["requests"] == 4 and client.stats.requests == 4
    assert dict(client.stats.retries) == {PERSISTENT[kind]: 3}
    # backing off: each wait at least half of base * 2**n (the jitter), so they grow
    delays = retry_delays(caplog.text)
    assert len(delays) == 3
    assert all(delay >= 0.02 * 2**n * 0.5 - 0.005 for n, delay in enumerate(delays))
    assert positions(pipeline) == before and not pipeline.has_pending_data


def test_retries_are_bounded_in_time_too(synced_template: tuple[Portal, Path], tmp_path: Path) -> None:
    """The next wait would overrun `max_retry_seconds`: the client gives up instead of sleeping it."""
    portal, template = synced_template
    pipeline = synced_pipeline(template, tmp_path)
    portal.reset_stats()
    portal.set_faults(kind="server_error", share=1.0)
    client = fast_client(portal, max_retries=50, backoff_base=0.05, backoff_cap=10.0, max_retry_seconds=0.2)
    try:
        with pytest.raises(TransientError, match="would exceed the retry budget of 0.2s"):
            sync(pipeline, client=client, resources=SUBSET)
    finally:
        portal.clear_faults()
    assert 2 <= portal.stats()["requests"] <= 4  # waits of ~0.05, 0.1, 0.2 s: the budget ends it early


# ------------------------------------------------------------------ an error inside one batch sub-command

SUBCALL_METHODS = ["server.time", "crm.deal.fields", "sale.payment.list", "crm.status.list"]  # chains: test_sync_traps


@pytest.mark.parametrize("method", SUBCALL_METHODS)
def test_a_failed_sub_command_is_sent_again_not_skipped(tmp_path: Path, portal: Portal, method: str) -> None:
    """One sub-command of a full sync fails (in the discovery batch, or later in a chain): the run still
    loads everything; had the failed command been skipped, its rows would be missing."""
    portal.set_faults(kind="batch_subcall_error", count=1, method=method)
    pipeline = new_pipeline(tmp_path, "duckdb")
    sync(pipeline, client=fast_client(portal), resources=SUBSET)
    assert portal.stats()["faults_injected"] == 1
    assert_subset_equal(pipeline, portal)


def test_a_sub_command_that_keeps_failing_is_reported(synced_template: tuple[Portal, Path], tmp_path: Path) -> None:
    portal, template = synced_template
    pipeline = synced_pipeline(template, tmp_path)
    change_portal(portal, random.Random(3))
    before = positions(pipeline)
    portal.set_faults(kind="batch_subcall_error", share=1.0, method="crm.lead.list")
    try:
        with pytest.raises(TransientError, match="crm.lead.list: the portal answered error INTERNAL_SERVER_ERROR"):
            sync(pipeline, client=fast_client(portal), resources=SUBSET)
    finally:
        portal.clear_faults()
    assert positions(pipeline) == before and not pipeline.has_pending_data
    sync(pipeline, client=fast_client(portal), resources=SUBSET)
    assert_subset_equal(pipeline, portal)


# ------------------------------------------------------------------ the portal changes while a run pages


def test_records_changed_while_paging_converge_on_the_next_run(tmp_path: Path) -> None:
    """A thread edits, adds and deletes deals and leads through the API the whole time a full sync pages
    slowly (every request takes 0.1 s). The next run brings every record that still exists up to date; deleted
    ones are the reconciliation's business, so they are taken out of the warehouse before comparing."""
    with Portal(**{**FAULT_PORTAL, "deals": 300, "leads": 150}) as portal:
        portal.set_faults(kind="slow", share=1.0, seconds=0.1)
        pipeline = new_pipeline(tmp_path, "duckdb")
        stop = threading.Event()
        rng = random.Random(11)
        deleted: list[int] = []

        def mutate() -> None:
            while not stop.is_set():
                change_portal(portal, rng, edits=1)
                portal.call("crm.lead.update", {"id": rng.randint(100, 150), "fields": {"TITLE": "ahead"}})
                portal.call("crm.deal.update", {"id": rng.randint(250, 300), "fields": {"TITLE": "ahead"}})
                victim = rng.randint(50, 249)
                if victim not in deleted:
                    portal.call("crm.deal.delete", {"id": victim})
                    deleted.append(victim)
                stop.wait(0.05)

        mutator = threading.Thread(target=mutate)
        mutator.start()
        try:
            first: SyncReport = sync(pipeline, client=fast_client(portal), resources=SUBSET)
        finally:
            stop.set()
            mutator.join()
        portal.clear_faults()
        assert len(deleted) >= 3 and first.row_counts["deals"] >= 200

        sync(pipeline, client=fast_client(portal), resources=SUBSET)
        assert_no_duplicate_rows(pipeline)
        forget_deleted(pipeline, deleted)
        for spec in CATALOG.entities[:2]:
            assert_entity_equal(pipeline, portal, spec)


def forget_deleted(pipeline: dlt.Pipeline, deal_ids: list[int]) -> None:
    """Remove deleted deals (and their child rows) from the warehouse, as reconciliation would."""
    children = [t for t in pipeline.default_schema.tables if t.startswith("deals__")]
    ids = ", ".join(map(str, deal_ids))
    with pipeline.sql_client() as client:
        deals = client.make_qualified_table_name("deals")
        for child in children:
            client.execute_sql(
                f"DELETE FROM {client.make_qualified_table_name(child)} "
                f"WHERE _dlt_root_id IN (SELECT _dlt_id FROM {deals} WHERE id IN ({ids}))"
            )
        client.execute_sql(f"DELETE FROM {deals} WHERE id IN ({ids})")


# ------------------------------------------------------------------ an unreachable host fails fast


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"http://127.0.0.1:{closed_port()}/rest/1/{TOKEN}/", "connection refused"),
        (f"https://portal.invalid/rest/1/{TOKEN}/", "the host name does not resolve"),
    ],
    ids=["closed port", "unresolvable host"],  # stable ids: the port differs per collection (pytest-xdist)
)
def test_an_unreachable_host_is_a_configuration_error_after_one_quick_retry(url: str, reason: str) -> None:
    """A typo in the host or port: with the production retry settings (8 retries, 300 s) the client stops after
    one retry of at most half a second, instead of minutes of backoff."""
    client = Bitrix24Client(WebhookAuth(url))
    with pytest.raises(UnreachableError) as info:
        client.call("server.time")
    assert isinstance(info.value, ConfigError) and TOKEN not in str(info.value)
    assert reason in str(info.value) and "check the host name and port in the URL" in str(info.value)
    assert client.stats.requests == 2 and dict(client.stats.retries) == {"connection": 1}
    assert client.stats.backoff_sleep_seconds <= client.backoff_base


def test_the_cli_reports_an_unreachable_host_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", f"http://127.0.0.1:{closed_port()}/rest/1/{TOKEN}/")
    code = main(["run", "--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "connection refused" in err and "check the host name and port" in err and TOKEN not in err


def test_a_host_that_goes_away_after_answering_gets_the_full_retries() -> None:
    """After the first answer, a refused connection is an outage, not a typo: retried with backoff as usual."""
    portal = Portal(**FAULT_PORTAL)
    portal.start()
    try:
        client = fast_client(portal, max_retries=3)
        client.call("server.time")
    finally:
        portal.stop()
    with pytest.raises(TransientError) as info:
        client.call("server.time")
    assert not isinstance(info.value, UnreachableError) and "gave up after 4 attempts" in str(info.value)
    assert client.stats.requests == 1 + 4 and dict(client.stats.retries) == {"connection": 3}
