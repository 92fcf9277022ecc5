"""The sync over real HTTP against the emulator, into real DuckDB and Postgres: full, incremental, new fields,
the request budget, backfill and full refresh."""

from __future__ import annotations

import math
from pathlib import Path

import dlt
import pytest

from bitrix24_emulator import Portal
from sources.bitrix24 import Catalog
from sources.bitrix24.paging import MAX_FILTER_IDS
from tests.e2e.syncutil import (
    SMALL_PORTAL,
    assert_entity_equal,
    assert_payments_equal,
    assert_warehouse_equals_portal,
    column_types,
    cursors_of,
    new_pipeline,
    portal_list,
    query,
    run,
    state_of,
)

CATALOG = Catalog.for_portal()

DEALS = CATALOG.entity("deals")
INVOICES = CATALOG.entity("invoices")


def test_full_then_incremental_sync_keeps_every_table_equal_to_the_portal(
    pipeline: dlt.Pipeline, portal: Portal
) -> None:
    first = run(pipeline, portal)
    assert_warehouse_equals_portal(pipeline, portal)
    # the smart-process types (a first run only), the discovery batch, one continuation batch shared by every
    # chain longer than a page, the payments' owner route (3), product rows' owner groups per owner type (3),
    # and the stage history, deal-contact and activity chains that outgrow their share of the shared batch (3)
    assert first.requests <= 1 + 1 + 1 + 3 + 3 + 3

    types = column_types(pipeline, "deals")
    assert types["opportunity"].startswith(("decimal", "numeric"))
    assert types["date_modify"].startswith("timestamp") and "time zone" in types["date_modify"]
    assert types["begindate"] == "date" and types["opened"] == "boolean" and types["id"] == "bigint"
    columns = pipeline.default_schema.get_table_columns("deals")
    assert columns["opportunity"]["description"] == "Amount"

    deal_id = portal.call("crm.deal.add", {"fields": {"TITLE": "New deal", "OPPORTUNITY": "1500.50"}})
    portal.call("crm.deal.update", {"id": 3, "fields": {"TITLE": "Renamed", "OPENED": "N"}})
    portal.call("crm.lead.update", {"id": 7, "fields": {"PHONE": [{"VALUE": "+4930123456", "VALUE_TYPE": "WORK"}]}})
    portal.call("crm.contact.update", {"id": 2, "fields": {"LAST_NAME": "Ильина"}})
    paid = portal.call("crm.item.payment.list", {"entityTypeId": 2, "entityId": 3})
    portal.call("crm.item.payment.add", {"entityTypeId": 2, "entityId": 3})

    second = run(pipeline, portal)
    assert second.row_counts["deals"] == 2 and second.row_counts["leads"] == 1
    assert second.row_counts["contacts"] == 1 and "companies" not in second.row_counts
    # deal 3's payments re-read per owner, and the new one also found portal-wide by the sale keyset: merged
    # on id
    assert second.row_counts["payments"] == len(paid) + 1 + 1
    assert_warehouse_equals_portal(pipeline, portal)
    assert query(pipeline, f"SELECT title FROM {{}} WHERE id = {deal_id}", "deals") == [{"title": "New deal"}]


def test_incremental_run_with_nothing_changed_costs_one_request(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    portal.reset_stats()
    report = run(pipeline, portal)
    stats = portal.stats()
    assert stats["requests"] == 1 and report.requests == 1
    assert stats["requests_by_method"] == {"batch": 1}
    # no request of their own: metadata, the portal's clock, currencies and smart-process types ride in discovery
    every_run = {"fields", "fields__items", "portal_info", "currencies", "currency_rates", "smart_processes"}
    assert set(report.row_counts) <= every_run


def test_a_new_user_field_arrives_typed_on_the_next_run(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    code = portal.call(
        "crm.deal.userfield.add",
        {
            "fields": {
                "FIELD_NAME": "BONUS",
                "USER_TYPE_ID": "double",
                "EDIT_FORM_LABEL": "Бонус",
                "LIST_COLUMN_LABEL": "Бонус",
            }
        },
    )
    assert code
    uf = next(c for c in portal.call("crm.deal.fields") if c.startswith("UF_CRM_BONUS"))
    portal.call("crm.deal.update", {"id": 11, "fields": {uf: "12.5"}})

    run(pipeline, portal)
    column = pipeline.default_schema.naming.normalize_identifier(uf)
    assert column_types(pipeline, "deals")[column] in ("double", "double precision")
    assert pipeline.default_schema.get_table_columns("deals")[column]["description"] == "Бонус"
    assert query(pipeline, f"SELECT {column} AS v FROM {{}} WHERE id = 11", "deals") == [{"v": 12.5}]
    labels = query(pipeline, f"SELECT label FROM {{}} WHERE entity = 'deals' AND code = '{uf}'", "fields")
    assert labels == [{"label": "Бонус"}]
    assert_entity_equal(pipeline, portal, DEALS)


def test_backfill_rereads_a_window_without_moving_cursors(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    cursors = cursors_of(pipeline)
    portal.reset_stats()
    report = run(pipeline, portal, backfill=("2000-01-01", "2100-01-01"), resources="deals,payments")
    assert report.row_counts["deals"] == 130 and "leads" not in report.row_counts
    assert cursors_of(pipeline) == cursors
    assert_entity_equal(pipeline, portal, DEALS)
    assert_payments_equal(pipeline, portal)


def test_a_backfill_of_more_owners_than_one_filter_holds_reads_every_payment(tmp_path: Path) -> None:
    """1,200 deals re-read: their orders are asked for in two crm.orderentity.list commands of at most
    `MAX_FILTER_IDS` owners (a portal's parse_str keeps 1,000 variables and the emulator drops the rest, as
    PHP does): none of the owners past the first filter loses its payments, which the backfill's coverage
    would otherwise delete from the warehouse."""
    with Portal(deals=1200, leads=10, contacts=20, companies=5, invoices=40, limits=False) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal, resources="deals,payments")
        portal.reset_stats()
        report = run(pipeline, portal, backfill=("2000-01-01", "2100-01-01"), resources="deals,payments")
        assert report.row_counts["deals"] == 1200
        assert_payments_equal(pipeline, portal)
        # the deals' orders (40 invoices' payments are listed per invoice: cheaper than orders for so few)
        assert portal.stats()["subcalls_by_method"]["crm.orderentity.list"] == math.ceil(1200 / MAX_FILTER_IDS)


def test_full_refresh_starts_over(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    before = state_of(pipeline)["deals"]["cursor"]
    portal.clock.advance(5)
    report = run(pipeline, portal, full_refresh=True)
    assert report.row_counts["deals"] == 130 and report.row_counts["stages"] > 0
    assert state_of(pipeline)["deals"]["cursor"] > before
    assert_warehouse_equals_portal(pipeline, portal)


@pytest.mark.parametrize("scopes", [("crm", "user", "sale"), ("crm", "user")], ids=["sale", "no-sale"])
def test_payments_of_unchanged_owners_are_caught_by_the_periodic_sweep(tmp_path: Path, scopes: tuple[str, ...]) -> None:
    """Marking a payment paid does not touch its deal: incremental runs miss it, the sweep (here due on every
    run) finds it, through sale.payment.list or, without the sale scope, per owner (deals, smart invoices)."""
    with Portal(**{**SMALL_PORTAL, "scopes": scopes}) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal)
        assert_payments_equal(pipeline, portal)
        unpaid = next(
            p
            for d in range(1, 130)
            for p in portal.call("crm.item.payment.list", {"entityTypeId": 2, "entityId": d})
            if p["paid"] == "N"
        )
        portal.call("crm.item.payment.pay", {"id": unpaid["id"]})

        run(pipeline, portal)  # sweep not due: the change stays unseen
        stale = query(pipeline, f"SELECT paid FROM {{}} WHERE id = {unpaid['id']}", "payments")
        assert stale == [{"paid": False}]

        portal.reset_stats()
        sweep = run(pipeline, portal, source_options={"payment_sweep_hours": 0})
        assert_payments_equal(pipeline, portal)
        if "sale" not in scopes:
            # per owner type: 50 ids ride in the discovery batch, 1 id-scan batch reads up to 2,500 more, and
            # one batch of crm.item.payment.list per 50 owners
            owners = [130, len(list(portal_list(portal, INVOICES, ["id"])))]
            assert sweep.requests == 1 + sum((n >= 50) + math.ceil(n / 50) for n in owners)


def test_start_date_from_config_limits_the_first_run(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[sources.bitrix24] start_date` (here through its environment variable, dlt's convention)."""
    monkeypatch.setenv("SOURCES__BITRIX24__START_DATE", "2024-01-01")
    pipeline = new_pipeline(tmp_path, "duckdb")
    report = run(pipeline, portal, resources="deals")
    expected = portal_list(portal, DEALS, ["ID", "DATE_MODIFY"])
    recent = [d for d in expected if d["DATE_MODIFY"] >= "2024-01-01"]
    assert 0 < len(recent) < 130
    assert report.row_counts["deals"] == len(recent)


def test_reference_lists_longer_than_a_page(tmp_path: Path) -> None:
    """user.get pages by 50 with offsets: the first page rides in the discovery batch, the rest come in one."""
    with Portal(**{**SMALL_PORTAL, "users": 120}) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        report = run(pipeline, portal, resources="users")
        # a first run asks for the smart-process types, then discovery, then the users' remaining pages
        assert report.row_counts["users"] == 120 and report.requests == 3
        ids = [r["id"] for r in query(pipeline, "SELECT id FROM {} ORDER BY id", "users")]
        assert ids == sorted(int(u["ID"]) for u in portal_list_users(portal))


def portal_list_users(portal: Portal) -> list[dict]:
    return [u for start in range(0, 150, 50) for u in portal.call("user.get", {"sort": "ID", "start": start})]


def test_the_staging_dataset_is_emptied_after_the_load(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """`bitrix24_crm_staging` is where dlt's merge stages a load; emptied afterwards, it keeps no second copy.
    (A first load appends: the second run is the one that merges.)"""
    run(pipeline, portal)
    portal.call("crm.deal.update", {"id": 3, "fields": {"TITLE": "Renamed"}})
    run(pipeline, portal)
    with pipeline.sql_client() as client:
        staging = f"{pipeline.dataset_name}_staging"
        tables = [t for (t,) in client.execute_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", staging
        )]  # fmt: skip
        assert "deals" in tables
        for table in (t for t in tables if not t.startswith("_dlt")):  # dlt's own schema record stays
            (count,) = client.execute_sql(f'SELECT count(*) FROM "{staging}"."{table}"')[0]
            assert count == 0, table
