"""Chains left unfinished by the discovery batch share continuation batches: an incremental run where deals,
leads and the payments' owner scan each have more than a page costs one request for all of them, and a window
of a thousand changed records two; owner scans in the window their entity reads cost no page of their own."""

from __future__ import annotations

import math
from pathlib import Path

from bitrix24_emulator import Portal
from sources.bitrix24.paging import MAX_FILTER_IDS
from tests.e2e.syncutil import SMALL_PORTAL, assert_payments_equal, assert_warehouse_equals_portal, new_pipeline, run
from tests.e2e.test_whole_crm import portal_product_rows, stored_product_rows

CHANGED = 60  # more than the 50 rows the discovery batch reads per chain
PAGE = 50


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


def portal_payment_orders(portal: Portal) -> list[int]:
    """The order of every payment, in payment id order (`sale.payment.list` read page by page)."""
    orders: list[int] = []
    last = 0
    while True:
        page = portal.call(
            "sale.payment.list",
            {"select": ["id", "orderId"], "order": {"id": "ASC"}, "filter": {">id": last}, "start": -1},
        )["payments"]
        if not page:
            return orders
        orders.extend(int(p["orderId"]) for p in page)
        last = int(page[-1]["id"])


def mapping_batches(orders: list[int]) -> list[list[int]]:
    """The payments' orders per keyset batch when every batch's mapping rides in the next request: the
    discovery page, then 50 pages less one seat per `MAX_FILTER_IDS` distinct orders of the batch before."""
    batches, position = [orders[:PAGE]], PAGE
    while position < len(orders):
        seats = math.ceil(len(set(batches[-1])) / MAX_FILTER_IDS)
        batches.append(orders[position : position + (50 - seats) * PAGE])
        position += len(batches[-1])
    return batches


def test_payment_owners_are_mapped_by_commands_riding_in_the_next_keyset_request(tmp_path: Path) -> None:
    """With the sale scope all payments are one keyset; the owners of a batch's payments are mapped by
    crm.orderentity.list commands of at most `MAX_FILTER_IDS` orders (a portal's parse_str keeps 1,000
    variables: the emulator drops the rest, as PHP does) that take seats of the next request, the last
    batch's by a request of its own: about ceil(P/2350) + 1 requests instead of twice ceil(P/2500)."""
    faults = [{"kind": "batch_subcall_error", "count": 1, "method": "crm.orderentity.list"}]
    with Portal(deals=6000, leads=10, contacts=20, companies=5, limits=False, faults=faults) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        report = run(pipeline, portal, resources="payments")
        assert_payments_equal(pipeline, portal)  # every payment with its owner, the failed mapping read again
        batches = mapping_batches(portal_payment_orders(portal))
        assert report.row_counts["payments"] == sum(map(len, batches)) > 2 * 2450
        assert max(len(set(b)) for b in batches) > MAX_FILTER_IDS  # a batch's mapping takes several commands
        # a first run's question which smart processes exist, discovery (with the first 50 payments), one
        # request per keyset batch after it, the last batch's mapping, and the one that failed (injected) again
        assert portal.stats()["requests_by_method"].get("crm.type.list") == 1
        assert report.requests == 1 + 1 + (len(batches) - 1) + 1 + 1
        # the mapping commands of every batch (the failed one did not run; its retry did)
        commands = sum(math.ceil(len(set(b)) / MAX_FILTER_IDS) for b in batches)
        assert portal.stats()["subcalls_by_method"]["crm.orderentity.list"] == commands
