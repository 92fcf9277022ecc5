"""Chains left unfinished by the discovery batch share one continuation batch: an incremental run where deals,
leads and the payments' owner scan each have more than a page costs one request for all of them."""

from __future__ import annotations

import math
from pathlib import Path

from bitrix24_emulator import Portal
from tests.e2e.syncutil import SMALL_PORTAL, assert_payments_equal, assert_warehouse_equals_portal, new_pipeline, run

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
