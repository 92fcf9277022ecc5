"""Chains left unfinished by the discovery batch share continuation batches: an incremental run where deals,
leads and the payments' owner scan each have more than a page costs one request for all of them, and a window
of a thousand changed records two; owner scans in the window their entity reads cost no page of their own."""

from __future__ import annotations

import math
from pathlib import Path

from bitrix24_emulator import Portal
from tests.e2e.syncutil import SMALL_PORTAL, assert_payments_equal, assert_warehouse_equals_portal, new_pipeline, run
from tests.e2e.test_whole_crm import portal_product_rows, stored_product_rows

CHANGED = 60  # more than the 50 rows the discovery batch reads per chain


def test_changed_deals_and_leads_continue_in_one_shared_batch(tmp_path: Path) -> None:
    with Portal(**SMALL_PORTAL) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal)
        for entity in ("deal", "lead"):
            for record_id in range(1, CHANGED + 1):
                portal.call(f"crm.{entity}.update", {"id": record_id, "fields": {"COMMENTS": "changed"}})
        portal.reset_stats()
        report = run(pipeline, portal)
        assert report.row_counts["deals"] == CHANGED and report.row_counts["leads"] == CHANGED
        # discovery + one continuation batch for deals, leads, deal contacts and the payments' and product rows'
        # deal-owner scans + the changed deals' payment lists (one crm.item.payment.list per owner, 50 per batch)
        # + their product rows: two groups of owners (50 + 10), 25 chained pages each in one shared request
        assert report.requests == 1 + 1 + math.ceil(CHANGED / 50) + 1
        assert_warehouse_equals_portal(pipeline, portal)


def test_a_window_of_a_thousand_finishes_every_chain_in_the_shared_batches(tmp_path: Path) -> None:
    """1,000 changed deals and leads (21 pages each, and as many of deal contacts; the owner scans are served
    from the deals' ids): the first shared batch reads 17 pages of each chain, the second the rest, records
    included; deals and leads send nothing of their own."""
    with Portal(deals=1100, leads=1100, contacts=60, companies=20, users=8, limits=False) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal)
        for entity in ("deal", "lead"):
            for record_id in range(1, 1001):
                portal.call(f"crm.{entity}.update", {"id": record_id, "fields": {"COMMENTS": "changed"}})
        portal.clock.advance(1)
        report = run(pipeline, portal)
        assert report.row_counts["deals"] == 1000 and report.row_counts["leads"] == 1000
        assert report.meter is not None
        booked = {name: meter.requests for name, meter in report.meter.resources.items()}
        assert booked["deals"] == 1 + 2 and booked["leads"] == 0  # discovery and the two shared batches
        assert_warehouse_equals_portal(pipeline, portal)
        assert_payments_equal(pipeline, portal)


def test_owner_scans_of_entities_read_in_the_same_window_cost_only_their_discovery_page(tmp_path: Path) -> None:
    """The product rows' owner scans list what deals, invoices and quotes read in the same window (a first
    sync; an incremental run after one that moved every cursor together): the plan serves them from the ids
    those chains read, so each scan costs its discovery page and no page more than the entities alone."""
    entities = "deals,invoices,quotes"
    scans = {"crm.deal.list": 1, "crm.item.list": 2}  # the owner scans per list method: invoices and quotes are items
    with Portal(deals=1200, leads=10, contacts=50, companies=20, users=5, limits=False) as portal:
        alone, together = new_pipeline(tmp_path / "alone", "duckdb"), new_pipeline(tmp_path / "together", "duckdb")
        for changed in (0, 500):
            for record_id in range(1, changed + 1):
                portal.call("crm.deal.update", {"id": record_id, "fields": {"COMMENTS": "changed"}})
            portal.clock.advance(1)
            portal.reset_stats()
            run(alone, portal, resources=entities)
            entity_calls = portal.stats()["subcalls_by_method"]
            portal.reset_stats()
            report = run(together, portal, resources=f"{entities},product_rows")
            calls = portal.stats()["subcalls_by_method"]
            assert report.row_counts["deals"] == (changed or 1200)
            assert {m: calls[m] for m in scans} == {m: entity_calls[m] + n for m, n in scans.items()}
            assert stored_product_rows(together) == portal_product_rows(portal)


def test_payment_owners_are_mapped_by_a_command_riding_in_the_next_keyset_request(tmp_path: Path) -> None:
    """With the sale scope all payments are one keyset; the owners of a batch's payments are mapped by one
    crm.orderentity.list command that takes a seat of the next request (49 pages of payments + 1 mapping), the
    last batch's by a request of its own: about ceil(P/2450) + 1 requests instead of twice ceil(P/2500)."""
    faults = [{"kind": "batch_subcall_error", "count": 1, "method": "crm.orderentity.list"}]
    with Portal(deals=6000, leads=10, contacts=20, companies=5, limits=False, faults=faults) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        report = run(pipeline, portal, resources="payments")
        assert_payments_equal(pipeline, portal)  # every payment with its owner, the failed mapping read again
        payments = report.row_counts["payments"]
        assert payments > 2 * 2450
        # a first run's question which smart processes exist, discovery (with the first 50 payments), 49 pages a
        # request until a short page, the last batch's mapping, and the mapping that failed (injected) read again
        keyset = (payments - 50) // 2450 + 1
        assert portal.stats()["requests_by_method"].get("crm.type.list") == 1
        assert report.requests == 1 + 1 + keyset + 1 + 1
        # one mapping rode in each keyset request (the failed one never ran), then the last one and the retry
        assert portal.stats()["subcalls_by_method"]["crm.orderentity.list"] == (keyset - 1) + 1 + 1
