"""The known traps of incremental CRM sync, each reproduced against the emulator (DuckDB; the logic under test
is the source's, not the destination's): records modified while a run pages, many records sharing one second,
a portal in another time zone than this machine, and a run that fails half-way."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest

from bitrix24_emulator import Portal
from pipelines.runner import AlreadyRunningError, sync
from sources.bitrix24 import Catalog, bitrix24
from sources.bitrix24.api import BatchResponse, Bitrix24Client, TransientError, WebhookAuth
from tests.e2e.syncutil import (
    SMALL_PORTAL,
    assert_entity_equal,
    assert_warehouse_equals_portal,
    cursors_of,
    new_pipeline,
    query,
    run,
)

CATALOG = Catalog.for_portal()

DEALS = CATALOG.entity("deals")


class HookedClient(Bitrix24Client):
    """The real client, calling `hook(n)` after its n-th batch: lets a test change the portal between
    batches."""

    def __init__(self, portal: Portal, hook: Callable[[int], None], **kwargs: Any):
        super().__init__(WebhookAuth(portal.webhook_url), **kwargs)
        self.hook = hook
        self.batches = 0

    def batch(self, commands: Any, halt: bool = False) -> BatchResponse:
        response = super().batch(commands, halt)
        self.batches += 1
        self.hook(self.batches)
        return response


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return new_pipeline(tmp_path, "duckdb")


def titles(pipeline: dlt.Pipeline, *ids: int) -> dict[int, str]:
    rows = query(pipeline, f"SELECT id, title FROM {{}} WHERE id IN ({', '.join(map(str, ids))})", "deals")
    return {r["id"]: r["title"] for r in rows}


def test_records_modified_while_a_run_pages_are_read_by_this_run_or_the_next(
    pipeline: dlt.Pipeline, portal: Portal
) -> None:
    """After the discovery batch (deals 1-50 read), deal 10 (behind the keyset) and deal 100 (ahead of it)
    change and a deal is added. A "largest DATE_MODIFY seen" cursor would lose deal 10 for good."""

    def modify(batch_number: int) -> None:
        if batch_number == 1:
            portal.call("crm.deal.update", {"id": 10, "fields": {"TITLE": "changed behind"}})
            portal.call("crm.deal.update", {"id": 100, "fields": {"TITLE": "changed ahead"}})
            portal.call("crm.deal.add", {"fields": {"TITLE": "added while paging"}})

    first = sync(pipeline, client=HookedClient(portal, modify))
    assert first.row_counts["deals"] == 131
    assert titles(pipeline, 10, 100, 131) == {
        10: titles(pipeline, 10)[10],
        100: "changed ahead",
        131: "added while paging",
    }
    assert titles(pipeline, 10)[10] != "changed behind"

    second = run(pipeline, portal)
    assert second.row_counts["deals"] == 3  # 10, 100 and 131 changed after the first run's start
    assert titles(pipeline, 10)[10] == "changed behind"
    assert_warehouse_equals_portal(pipeline, portal)


def test_many_records_in_one_second_across_a_page_boundary(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """The clock stands still: the first run's start and 60 later edits share one second. The inclusive lower
    bound reads all 60 (two pages) on the next run; reading them again later only merges."""
    portal.clock.freeze()
    try:
        run(pipeline, portal)
        for deal_id in range(1, 61):
            portal.call("crm.deal.update", {"id": deal_id, "fields": {"TITLE": f"same second {deal_id}"}})
        second = run(pipeline, portal)
        assert second.row_counts["deals"] == 60
        third = run(pipeline, portal)  # still the same second: the same 60 again, merged on ID
        assert third.row_counts["deals"] == 60
    finally:
        portal.clock.unfreeze()
    assert set(titles(pipeline, *range(1, 61)).values()) == {f"same second {i}" for i in range(1, 61)}
    assert_entity_equal(pipeline, portal, DEALS)


@pytest.fixture
def machine_in_los_angeles() -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


def test_portal_time_zone_differs_from_the_machines(tmp_path: Path, machine_in_los_angeles: None) -> None:
    """Vladivostok (+10) portal, Los Angeles machine: cursors are the portal's instants, dates its
    calendar."""
    with Portal(**{**SMALL_PORTAL, "timezone": "Asia/Vladivostok"}) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal)
        assert cursors_of(pipeline)["deals"]["cursor"].endswith("+10:00")
        for deal_id in (4, 44, 104):
            portal.call("crm.deal.update", {"id": deal_id, "fields": {"BEGINDATE": "2024-03-01"}})
        second = run(pipeline, portal)
        assert second.row_counts["deals"] == 3
        begin = query(
            pipeline,
            "SELECT DISTINCT CAST(begindate AS VARCHAR) AS d FROM {} WHERE id IN (4, 44, 104)",
            "deals",
        )
        assert begin == [{"d": "2024-03-01"}]
        assert_warehouse_equals_portal(pipeline, portal)


def test_a_run_that_fails_half_way_does_not_advance_and_the_next_completes(
    pipeline: dlt.Pipeline, portal: Portal
) -> None:
    run(pipeline, portal)
    before = cursors_of(pipeline)
    for deal_id in (5, 80):
        portal.call("crm.deal.update", {"id": deal_id, "fields": {"TITLE": f"after run 1 ({deal_id})"}})
    portal.call("crm.lead.update", {"id": 3, "fields": {"TITLE": "lead after run 1"}})

    def break_portal(batch_number: int) -> None:
        if batch_number == 1:  # the discovery batch went through; everything after it fails
            portal.set_faults(kind="server_error", share=1.0)

    failing = HookedClient(portal, break_portal, max_retries=1, backoff_base=0.01, backoff_cap=0.02)
    with pytest.raises(TransientError):
        sync(pipeline, client=failing)
    assert cursors_of(pipeline) == before
    assert not pipeline.has_pending_data

    portal.clear_faults()
    report = run(pipeline, portal)
    assert report.row_counts["deals"] == 2 and report.row_counts["leads"] == 1
    assert_warehouse_equals_portal(pipeline, portal)


def test_a_failed_sub_call_inside_a_chain_is_retried_not_skipped(pipeline: dlt.Pipeline, portal: Portal) -> None:
    portal.set_faults(kind="batch_subcall_error", count=2, method="crm.deal.list")
    fast = Bitrix24Client(WebhookAuth(portal.webhook_url), backoff_base=0.01, backoff_cap=0.02)
    report = sync(pipeline, client=fast)
    assert report.row_counts["deals"] == 130
    assert portal.stats()["faults_injected"] == 2
    assert_entity_equal(pipeline, portal, DEALS)


def test_packages_a_crashed_run_left_behind_are_loaded_before_the_next_extract(
    pipeline: dlt.Pipeline, portal: Portal
) -> None:
    """A run that died after extract (its state already advanced locally): the next run loads that package
    first, then reads from the cursor the package carries."""
    client = Bitrix24Client(WebhookAuth(portal.webhook_url))
    pipeline.extract(bitrix24(client=client, resources=["deals"]), loader_file_format="parquet")
    assert pipeline.has_pending_data
    portal.call("crm.deal.update", {"id": 42, "fields": {"TITLE": "after the crash"}})

    report = run(pipeline, portal, resources="deals")
    assert report.finished_pending and report.row_counts["deals"] == 1
    assert titles(pipeline, 42) == {42: "after the crash"}
    assert_entity_equal(pipeline, portal, DEALS)


def test_a_second_run_of_the_same_pipeline_refuses_while_one_is_running(pipeline: dlt.Pipeline, portal: Portal) -> None:
    def second_run(batch_number: int) -> None:
        if batch_number == 1:
            with pytest.raises(AlreadyRunningError, match="in progress"):
                run(pipeline, portal)

    sync(pipeline, client=HookedClient(portal, second_run))
    assert_entity_equal(pipeline, portal, DEALS)
    assert run(pipeline, portal).requests == 1  # the lock is released after a run
