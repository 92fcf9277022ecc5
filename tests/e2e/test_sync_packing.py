"""Chains left unfinished by the discovery batch share one continuation batch: an incremental run where deals,
leads and the payments' owner scan each have more than a page costs one request for all of them."""

from __future__ import annotations

import math
from pathlib import Path

from bitrix24_emulator import Portal
from tests.e2e.syncutil import SMALL_PORTAL, assert_warehouse_equals_portal, new_pipeline, run

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
        # + their product rows (one command per 50 deals, one batch; one more when a group has a second page)
        groups = [list(range(start, min(start + 50, CHANGED + 1))) for start in range(1, CHANGED + 1, 50)]
        rows = [
            len(portal.call("crm.item.productrow.list", {"filter": {"=ownerType": "D", "=ownerId": g}})["productRows"])
            for g in groups
        ]
        product_rows = 1 + (1 if max(rows) == 50 else 0)
        assert report.requests == 1 + 1 + math.ceil(CHANGED / 50) + product_rows
        assert_warehouse_equals_portal(pipeline, portal)
