"""The whole CRM: smart processes, quotes, stage history, activities, deal contacts and currencies, over real
HTTP into DuckDB and Postgres. Every table is compared with what the portal's API returns (uncounted admin
calls), contents and not counts; edits through the API are picked up by the next incremental run, exactly
those, and a run with nothing changed costs one request."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import dlt
import pytest
import requests

from bitrix24_emulator import Portal
from sources.bitrix24 import SourceState, catalog_of
from tests.e2e.syncutil import (
    SMALL_PORTAL,
    assert_entity_equal,
    canon,
    portal_catalog,
    query,
    run,
)

HISTORY_TYPES = (1, 2, 31)


def paged(
    portal: Portal, method: str, params: dict[str, Any], rows_at: tuple[str, ...], id_field: str
) -> Iterator[dict]:
    """Every row of a list method by ID keyset (the test's own paging, not the source's)."""
    after = 0
    while True:
        page: Any = portal.call(method, {**params, "order": {id_field: "ASC"}, "filter": {f">{id_field}": after}})
        for part in rows_at:
            page = page[part]
        yield from page
        if len(page) < 50:
            return
        after = page[-1][id_field]


def portal_history(portal: Portal) -> set[tuple]:
    types = [
        *HISTORY_TYPES,
        *(t["entityTypeId"] for t in portal.call("crm.type.list")["types"] if t["isStagesEnabled"] == "Y"),
    ]
    out = set()
    for type_id in types:
        for r in paged(portal, "crm.stagehistory.list", {"entityTypeId": type_id}, ("items",), "ID"):
            out.add(
                (
                    type_id,
                    r["ID"],
                    r["OWNER_ID"],
                    r["TYPE_ID"],
                    r.get("STAGE_ID", r.get("STATUS_ID")),
                    r.get("CATEGORY_ID"),
                    canon("ts", r["CREATED_TIME"]),
                )
            )
    return out


def stored_history(pipeline: dlt.Pipeline) -> set[tuple]:
    return {
        (
            r["entity_type_id"],
            r["id"],
            r["owner_id"],
            r["type_id"],
            r["stage_id"],
            r["category_id"],
            canon("ts", r["created_time"]),
        )
        for r in query(pipeline, "SELECT * FROM {}", "stage_history")
    }


def portal_deal_contacts(portal: Portal) -> set[tuple[int, int, bool]]:
    """From crm.deal.contact.items.get, one deal per call: another method than the source reads."""
    out = set()
    for deal in paged(portal, "crm.deal.list", {"select": ["ID"]}, (), "ID"):
        for n, c in enumerate(
            sorted(portal.call("crm.deal.contact.items.get", {"id": deal["ID"]}), key=lambda c: c["SORT"])
        ):
            out.add((int(deal["ID"]), int(c["CONTACT_ID"]), c["IS_PRIMARY"] == "Y"))
            assert (n == 0) == (c["IS_PRIMARY"] == "Y")
    return out


def stored_deal_contacts(pipeline: dlt.Pipeline) -> set[tuple[int, int, bool]]:
    rows = query(pipeline, "SELECT deal_id, contact_id, is_primary FROM {}", "v_deal_contacts")
    got = [(r["deal_id"], r["contact_id"], bool(r["is_primary"])) for r in rows]
    assert len(got) == len(set(got)), "a deal's contact twice"
    return set(got)


PRODUCT_OWNERS = {"deals": ("D", 2), "invoices": ("SI", 31), "quotes": ("Q", 7)}


def portal_product_rows(portal: Portal) -> dict[tuple[int, int], list[tuple]]:
    """Every owner's rows, one owner per call."""
    catalog = portal_catalog(portal)
    out = {}
    for resource, (code, type_id) in PRODUCT_OWNERS.items():
        spec = catalog.entity(resource)
        for owner in paged(
            portal, spec.list_method, {**spec.base_params(), "select": [spec.id_field]}, spec.items_path, spec.id_field
        ):
            owner_id = int(owner[spec.id_field])
            rows = portal.call(METHOD_ROWS, {"filter": {"=ownerType": code, "=ownerId": owner_id}})["productRows"]
            out[(type_id, owner_id)] = sorted(
                (r["id"], r["productId"], r["productName"], canon("num", r["price"]), canon("num", r["quantity"]))
                for r in rows
            )
    return out


METHOD_ROWS = "crm.item.productrow.list"


def stored_product_rows(pipeline: dlt.Pipeline) -> dict[tuple[int, int], list[tuple]]:
    owners = query(pipeline, "SELECT owner_type_id, owner_id, _dlt_id FROM {}", "product_rows")
    items = query(pipeline, "SELECT * FROM {}", "product_rows__items")
    by_parent: dict[str, list[tuple]] = {}
    for i in items:
        by_parent.setdefault(i["_dlt_parent_id"], []).append(
            (i["id"], i["product_id"], i["product_name"], canon("num", i["price"]), canon("num", i["quantity"]))
        )
    keys = [(o["owner_type_id"], o["owner_id"]) for o in owners]
    assert len(keys) == len(set(keys)), "an owner twice"
    return {(o["owner_type_id"], o["owner_id"]): sorted(by_parent.get(o["_dlt_id"], [])) for o in owners}


def assert_types_equal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    types = {(t["entityTypeId"], t["title"], t["code"]) for t in portal.call("crm.type.list")["types"]}
    stored = query(pipeline, "SELECT entity_type_id, title, code, table_name FROM {}", "smart_processes")
    assert {(r["entity_type_id"], r["title"], r["code"]) for r in stored} == types
    assert all(r["table_name"] == f"sp_{r['entity_type_id']}" for r in stored)


def assert_currencies_equal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    api = {
        c["CURRENCY"]: (Decimal(c["AMOUNT"]), int(c["AMOUNT_CNT"]), c["BASE"] == "Y")
        for c in portal.call("crm.currency.list")
    }
    stored = query(pipeline, "SELECT currency, amount, amount_cnt, base FROM {}", "currencies")
    assert {r["currency"]: (canon("num", r["amount"]), r["amount_cnt"], r["base"]) for r in stored} == {
        k: (canon("num", v[0]), v[1], v[2]) for k, v in api.items()
    }
    today = portal.clock.now().date()
    rates = query(pipeline, "SELECT currency, rate_date, rate FROM {}", "currency_rates")
    todays = {r["currency"]: canon("num", r["rate"]) for r in rates if r["rate_date"] == today}
    assert todays == {
        k: canon("num", (amount / count).quantize(Decimal("0.000000001"))) for k, (amount, count, _b) in api.items()
    }


def assert_all_equal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    catalog = portal_catalog(portal)
    for spec in catalog.entities:
        if spec.resource in ("quotes", "activities") or spec.discovered:
            assert_entity_equal(pipeline, portal, spec)
    assert stored_history(pipeline) == portal_history(portal)
    assert stored_deal_contacts(pipeline) == portal_deal_contacts(portal)
    assert stored_product_rows(pipeline) == portal_product_rows(portal)
    assert_types_equal(pipeline, portal)
    assert_currencies_equal(pipeline, portal)
    assert_user_times_equal(pipeline, portal)


def assert_user_times_equal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """user.get's wall-clock TIMESTAMP_X and LAST_ACTIVITY_DATE arrive as instants, none lost."""
    zone = portal.clock.now().tzinfo
    api = {
        int(u["ID"]): tuple(
            datetime.strptime(u[k], f).replace(tzinfo=zone) if u[k] else None
            for k, f in (("TIMESTAMP_X", "%d.%m.%Y %H:%M:%S"), ("LAST_ACTIVITY_DATE", "%Y-%m-%d %H:%M:%S"))
        )
        for u in portal.call("user.get")
    }
    assert any(t[0] for t in api.values()) and any(t[1] for t in api.values())
    stored = query(pipeline, "SELECT id, timestamp_x, last_activity_date FROM {}", "users")
    assert {r["id"]: (r["timestamp_x"], r["last_activity_date"]) for r in stored} == api


@pytest.fixture
def crm_portal() -> Iterator[Portal]:
    with Portal(**{**SMALL_PORTAL, "deals": 90, "leads": 60}) as p:
        yield p


def test_a_full_sync_loads_the_whole_crm_and_edits_arrive_exactly(pipeline: dlt.Pipeline, crm_portal: Portal) -> None:
    portal = crm_portal
    run(pipeline, portal)
    assert_all_equal(pipeline, portal)
    assert len(portal_catalog(portal).smart_processes) == 2

    # nothing changed: the whole CRM still costs one request
    portal.reset_stats()
    run(pipeline, portal)
    assert portal.stats()["requests"] == 1

    # edits through the API
    deal = portal.call("crm.deal.list", {"select": ["ID", "STAGE_ID", "CATEGORY_ID"], "filter": {"CATEGORY_ID": 0}})[0]
    portal.call(
        "crm.deal.update", {"id": deal["ID"], "fields": {"STAGE_ID": "WON" if deal["STAGE_ID"] != "WON" else "LOSE"}}
    )
    portal.call(
        "crm.activity.add",
        {
            "fields": {
                "OWNER_TYPE_ID": 2,
                "OWNER_ID": deal["ID"],
                "TYPE_ID": 2,
                "SUBJECT": "Follow-up call",
                "COMMUNICATIONS": [{"VALUE": "+90 555 000 11 22", "TYPE": "PHONE"}],
            }
        },
    )
    portal.call(
        "crm.activity.todo.add",
        {
            "ownerTypeId": 2,
            "ownerId": deal["ID"],
            "title": "Send the visa letter",
            "deadline": "2026-12-10T10:00:00+03:00",
        },
    )
    contacts = [int(c["ID"]) for c in portal.call("crm.contact.list", {"select": ["ID"], "order": {"ID": "ASC"}})[:3]]
    portal.call(
        "crm.deal.contact.items.set",
        {"id": deal["ID"], "items": [{"CONTACT_ID": c, "SORT": 10 * (n + 1)} for n, c in enumerate(contacts)]},
    )
    sp = portal_catalog(portal).smart_processes[0]
    item = portal.call("crm.item.list", {"entityTypeId": sp.entity_type_id, "select": ["id"], "order": {"id": "ASC"}})[
        "items"
    ][0]
    portal.call(
        "crm.item.update",
        {"entityTypeId": sp.entity_type_id, "id": item["id"], "fields": {"title": "Visa for the patient's mother"}},
    )
    new_type = portal.call("crm.type.add", {"fields": {"title": "Clinic partners", "code": "clinics"}})["type"]
    portal.call("crm.item.add", {"entityTypeId": new_type["entityTypeId"], "fields": {"title": "Memorial Şişli"}})
    history_before = stored_history(pipeline)

    run(pipeline, portal)
    new_rows = stored_history(pipeline) - history_before
    assert {(r[0], r[2], r[3]) for r in new_rows} == {(2, int(deal["ID"]), 3)}, (
        new_rows
    )  # the deal's move, nothing else
    assert {
        (r["subject"], r["provider_id"])
        for r in query(
            pipeline,
            "SELECT subject, provider_id FROM {} WHERE owner_id = " + deal["ID"] + " AND owner_type_id = 2",
            "activities",
        )
    } >= {("Follow-up call", "CRM_REST"), ("Send the visa letter", "CRM_TODO")}
    assert {c for d, c, _p in stored_deal_contacts(pipeline) if d == int(deal["ID"])} == set(contacts)
    titles = query(pipeline, f"SELECT title FROM {{}} WHERE id = {item['id']}", sp.resource)
    assert titles == [{"title": "Visa for the patient's mother"}]
    assert new_type["entityTypeId"] in {
        r["entity_type_id"] for r in query(pipeline, "SELECT entity_type_id FROM {}", "smart_processes")
    }

    run(pipeline, portal)  # the new smart process has its table now, with no configuration
    assert_all_equal(pipeline, portal)
    assert query(pipeline, "SELECT title FROM {}", f"sp_{new_type['entityTypeId']}") == [{"title": "Memorial Şişli"}]


def test_a_deleted_smart_process_keeps_its_table_and_the_run_goes_on(tmp_path: Any, crm_portal: Portal) -> None:
    from tests.e2e.syncutil import new_pipeline

    portal, pipeline = crm_portal, new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal)
    doomed = portal.call("crm.type.list")["types"][1]
    items = list(
        paged(portal, "crm.item.list", {"entityTypeId": doomed["entityTypeId"], "select": ["id"]}, ("items",), "id")
    )
    for it in items:
        portal.call("crm.item.delete", {"entityTypeId": doomed["entityTypeId"], "id": it["id"]})
    portal.call("crm.type.delete", {"id": doomed["id"]})
    run(pipeline, portal)  # the catalog still had it: its reads fail as "not found" and are skipped
    run(pipeline, portal)  # now it is gone from the catalog
    table = f"sp_{doomed['entityTypeId']}"
    assert len(query(pipeline, "SELECT id FROM {}", table)) == len(items)  # what was loaded stays
    assert doomed["entityTypeId"] not in {
        r["entity_type_id"] for r in query(pipeline, "SELECT entity_type_id FROM {}", "smart_processes")
    }
    assert table not in catalog_of(SourceState.of_pipeline(pipeline.state)).resources


def test_stage_history_keeps_what_the_portal_stops_returning(tmp_path: Any, crm_portal: Portal) -> None:
    """A record moved to another pipeline: the portal hides its earlier pipeline's rows (b24restdocs#8), the
    warehouse keeps them, and the move itself arrives as a pipeline change."""
    from tests.e2e.syncutil import new_pipeline

    portal, pipeline = crm_portal, new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal)
    sp = next(s for s in portal_catalog(portal).smart_processes if s.has_stage_history)
    categories = [c["id"] for c in portal.call("crm.category.list", {"entityTypeId": sp.entity_type_id})["categories"]]
    assert len(categories) > 1
    item = portal.call(
        "crm.item.list", {"entityTypeId": sp.entity_type_id, "filter": {"categoryId": categories[0]}, "select": ["id"]}
    )["items"][0]
    before = {r for r in stored_history(pipeline) if r[0] == sp.entity_type_id and r[2] == item["id"]}
    assert before
    portal.call(
        "crm.item.update",
        {"entityTypeId": sp.entity_type_id, "id": item["id"], "fields": {"categoryId": categories[1]}},
    )
    visible = {r for r in portal_history(portal) if r[0] == sp.entity_type_id and r[2] == item["id"]}
    assert not (visible & before)  # the portal no longer returns them
    run(pipeline, portal)
    after = {r for r in stored_history(pipeline) if r[0] == sp.entity_type_id and r[2] == item["id"]}
    assert before < after
    assert [r[3] for r in after - before] == [5]  # pipeline change


def test_product_rows_edited_without_their_deal_arrive_with_the_sweep(tmp_path: Any, crm_portal: Portal) -> None:
    """Replacing a deal's rows does not touch the deal: the incremental run cannot see it, the sweep does; a
    changed deal has its rows re-read at once; rows removed disappear."""
    from tests.e2e.syncutil import new_pipeline

    portal, pipeline = crm_portal, new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal)
    quiet, touched = [
        int(d["ID"]) for d in portal.call("crm.deal.list", {"select": ["ID"], "order": {"ID": "ASC"}})[:2]
    ]
    portal.call(
        "crm.item.productrow.set",
        {
            "ownerType": "D",
            "ownerId": quiet,
            "productRows": [{"productId": 3, "productName": "Check-up", "price": 900, "quantity": 1}],
        },
    )
    portal.call("crm.item.productrow.set", {"ownerType": "D", "ownerId": touched, "productRows": []})
    portal.call("crm.deal.update", {"id": touched, "fields": {"COMMENTS": "rows removed"}})
    run(pipeline, portal)
    stored = stored_product_rows(pipeline)
    assert stored[(2, touched)] == []  # re-read with its changed deal: every row gone
    assert stored[(2, quiet)] != portal_product_rows(portal)[(2, quiet)]  # not yet: nothing told the run
    run(pipeline, portal, source_options={"owner_sweep_hours": 0})
    assert stored_product_rows(pipeline) == portal_product_rows(portal)


def test_calls_need_the_telephony_scope_and_arrive_by_id(
    tmp_path: Any, crm_portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    from pipelines.runner import sync
    from tests.e2e.syncutil import new_pipeline

    portal = crm_portal
    pipeline = new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal, resources="calls")  # the default webhook has no telephony scope
    assert "calls are not read" in caplog.text and "telephony" in caplog.text
    telephony = portal.add_webhook(scopes=("crm", "user", "telephony"))
    other = new_pipeline(tmp_path / "t", "duckdb")
    sync(other, credentials=telephony, resources="calls")
    calls, after = [], 0
    while True:
        params = {"FILTER": {">ID": after}, "SORT": "ID", "ORDER": "ASC"}
        page = requests.post(telephony + "voximplant.statistic.get", json=params, timeout=30).json()["result"]
        calls += page
        if len(page) < 50:
            break
        after = page[-1]["ID"]
    assert calls
    stored = query(other, "SELECT id, crm_entity_type, crm_entity_id, call_duration FROM {}", "calls")
    assert sorted((r["id"], r["crm_entity_type"], r["crm_entity_id"], r["call_duration"]) for r in stored) == sorted(
        (int(c["ID"]), c["CRM_ENTITY_TYPE"], int(c["CRM_ENTITY_ID"]), int(c["CALL_DURATION"])) for c in calls
    )
    portal.reset_stats()
    sync(other, credentials=telephony, resources="calls")
    assert portal.stats()["requests"] == 1


def test_a_deleted_deal_takes_its_product_rows_and_contacts_along(tmp_path: Any, crm_portal: Portal) -> None:
    """The portal deletes a deal's product rows, contact links and stage history with it. A reconcile that
    marks the deal leaves them out of the views; one that removes it removes its product rows and contacts
    too (child rows included); the history it had stays in the log."""
    from pipelines.runner import reconcile
    from tests.e2e.syncutil import new_pipeline

    portal, pipeline = crm_portal, new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal)
    contacts = stored_deal_contacts(pipeline)
    with_rows = {o for (t, o), rows in portal_product_rows(portal).items() if t == 2 and rows}
    deal = min(d for d in with_rows if sum(1 for c in contacts if c[0] == d) >= 2)
    portal.call("crm.deal.delete", {"id": deal})

    def in_views() -> tuple[bool, ...]:
        rows_of = f"SELECT 1 FROM {{}} WHERE owner_type_id = 2 AND owner_id = {deal}"
        of_deal = f"SELECT 1 FROM {{}} WHERE deal_id = {deal}"
        return (
            bool(query(pipeline, rows_of, "v_product_rows")),
            bool(query(pipeline, of_deal, "v_deal_contacts")),
            bool(query(pipeline, of_deal, "v_deal_activities")),
            bool(
                query(pipeline, f"SELECT 1 FROM {{}} WHERE entity_type_id = 2 AND owner_id = {deal}", "v_stage_history")
            ),
        )

    assert in_views() == (True, True, True, True)
    reconcile(pipeline, credentials=portal.webhook_url, resources="deals")
    assert in_views() == (False, False, False, False)
    assert stored_deal_contacts(pipeline) == portal_deal_contacts(portal)
    assert query(pipeline, f"SELECT 1 FROM {{}} WHERE owner_type_id = 2 AND owner_id = {deal}", "product_rows")
    reconcile(pipeline, credentials=portal.webhook_url, resources="deals", mode="remove")
    assert stored_product_rows(pipeline) == portal_product_rows(portal)
    assert not query(pipeline, f"SELECT 1 FROM {{}} WHERE deal_id = {deal}", "deal_contacts")
    for child, root in (("product_rows__items", "product_rows"), ("deal_contacts__contacts", "deal_contacts")):
        orphans = "SELECT 1 FROM {} c WHERE c._dlt_root_id NOT IN (SELECT _dlt_id FROM {})"
        assert not query(pipeline, orphans, child, root), child


def hook_call(hook: str, method: str, params: dict[str, Any] | None = None) -> Any:
    """A call through a webhook of its own (the emulator's admin calls carry the default scopes only)."""
    return requests.post(hook + method, json=params or {}, timeout=30).json()["result"]


def portal_products(hook: str) -> dict[int, tuple]:
    """Every product of every catalog through a webhook with the catalog scope, by ID keyset."""
    out = {}
    for catalog in hook_call(hook, "catalog.catalog.list")["catalogs"]:
        after = 0
        while True:
            page = hook_call(
                hook,
                "catalog.product.list",
                {
                    "select": ["id", "iblockId", "name", "active", "purchasingPrice", "timestampX"],
                    "filter": {"iblockId": catalog["iblockId"], ">id": after},
                    "order": {"id": "asc"},
                },
            )["products"]
            for p in page:
                out[p["id"]] = (p["iblockId"], p["name"], p["active"] == "Y", canon("num", p["purchasingPrice"]),
                                canon("ts", p["timestampX"]))  # fmt: skip
            if len(page) < 50:
                break
            after = page[-1]["id"]
    return out


def stored_products(pipeline: dlt.Pipeline) -> dict[int, tuple]:
    rows = query(pipeline, "SELECT id, iblock_id, name, active, purchasing_price, timestamp_x FROM {}", "products")
    return {
        r["id"]: (r["iblock_id"], r["name"], r["active"], canon("num", r["purchasing_price"]),
                  canon("ts", r["timestamp_x"]))
        for r in rows
    }  # fmt: skip


def test_catalog_products_need_the_catalog_scope_and_changed_ones_arrive(
    tmp_path: Any,
    crm_portal: Portal,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every catalog's products (catalog.catalog.list, then catalog.product.list per catalog); a product changed
    on the portal arrives with the next run, which still costs one request; without the scope, one line."""
    from pipelines.cli import main
    from pipelines.runner import reconcile, sync
    from tests.e2e.syncutil import new_pipeline

    portal = crm_portal
    pipeline = new_pipeline(tmp_path, "duckdb")
    with caplog.at_level("WARNING"):
        sync_report = run(pipeline, portal, resources="products")  # the default webhook has no catalog scope
    assert "products are not read" in caplog.text and "catalog scope" in caplog.text
    assert not sync_report.row_counts.get("products")

    hook = portal.add_webhook(scopes=("crm", "user", "sale", "catalog"))
    sync(pipeline, credentials=hook)
    assert stored_products(pipeline) == portal_products(hook) and len(portal_products(hook)) > 5
    edit = {"name": "IVF program (2 cycles)", "purchasingPrice": 2600}
    hook_call(hook, "catalog.product.update", {"id": 3, "fields": edit})
    portal.reset_stats()
    sync(pipeline, credentials=hook)
    assert portal.stats()["requests"] == 1  # the changed product rode in the discovery batch
    assert stored_products(pipeline) == portal_products(hook)
    assert stored_products(pipeline)[3][1] == "IVF program (2 cycles)"
    hook_call(hook, "catalog.product.delete", {"id": 4})
    reconcile(pipeline, credentials=hook, resources="products")
    gone = query(pipeline, "SELECT id FROM {} WHERE _deleted_at IS NOT NULL", "products")
    assert [r["id"] for r in gone] == [4] and 4 not in portal_products(hook)

    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", hook)
    where = ["--duckdb-path", str(tmp_path / "warehouse.duckdb"), "--pipelines-dir", str(tmp_path / "pipelines")]
    capsys.readouterr()
    assert main(["check", *where]) == 0
    products = len(portal_products(hook))
    assert re.search(rf"^products +{products} +1  ceil\(rows/2500\) per catalog \(2\)$", capsys.readouterr().out, re.M)
