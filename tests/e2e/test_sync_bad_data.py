"""Garbage from the portal: every row still loads (row counts equal the portal's), a value that does not
parse is NULL with its text kept verbatim in `<field>__raw` and counted in a warning, and text of any size
or script arrives unchanged. The bad values are written straight into the emulator's store, the way a real
portal's database holds them after imports, API writes without validation and field type changes."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from bitrix24_emulator import Portal
from sources.bitrix24 import Catalog
from tests.e2e.syncutil import assert_entity_equal, column_types, new_pipeline, portal_list, query, run

CATALOG = Catalog.for_portal()

BIG_TEXT = "Ж" * 1_500_000 + "x" * 1_000_000  # 4 MB of UTF-8
SCRIPTS = "Сделка 🚀 مرحبا 你好 ñ e\u0301 👩\u200d👩\u200d👧 \u202edesrever\u202c ✓"


def poke(portal: Portal, key: str, record_id: int, **values: Any) -> None:
    """Write raw values into the portal's database, bypassing the API's validation."""
    with portal.store.lock:
        portal.store.table(key).update(record_id, values)


def by_id(pipeline: Any, table: str, *columns: str) -> dict[int, dict[str, Any]]:
    rows = query(pipeline, f"SELECT id, {', '.join(columns)} FROM {{}}", table)
    return {r["id"]: r for r in rows}


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_garbage_values_load_as_null_with_the_raw_text_and_no_row_is_dropped(
    tmp_path: Path,
    portal: Portal,
    destination: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    poke(portal, "deal", 1, OPPORTUNITY="", CLOSEDATE="")
    poke(portal, "deal", 2, OPPORTUNITY="12,5 руб", CLOSEDATE="31.02.2024", UF_CRM_1699000002="many")
    poke(portal, "deal", 3, UF_CRM_1699000006="yesterday 5pm", UF_CRM_1699000003="NaN")
    poke(portal, "deal", 4, UF_CRM_1699000009="abc|EUR", UF_CRM_1699000007=999999, TITLE=BIG_TEXT)
    poke(portal, "deal", 5, UF_CRM_1699000009="300", TITLE=SCRIPTS)
    poke(portal, "smart_invoice", 1, OPPORTUNITY="n/a")
    url = request.getfixturevalue("postgres_url") if destination == "postgres" else None
    pipeline = new_pipeline(tmp_path, destination, url)
    with caplog.at_level(logging.WARNING, logger="bitrix24_sync"):
        run(pipeline, portal, resources="deals,leads,contacts,companies,invoices")

    for spec in (CATALOG.entity(name) for name in ("deals", "leads", "contacts", "companies", "invoices")):
        stored = query(pipeline, "SELECT count(*) AS n FROM {}", spec.resource)[0]["n"]
        assert stored == len(list(portal_list(portal, spec, [spec.id_field]))), spec.resource
    deals = by_id(
        pipeline,
        "deals",
        "opportunity",
        "opportunity__raw",
        "closedate",
        "closedate__raw",
        "uf_crm_1699000002",
        "uf_crm_1699000002__raw",
        "uf_crm_1699000006",
        "uf_crm_1699000006__raw",
        "uf_crm_1699000003",
        "uf_crm_1699000003__raw",
        "uf_crm_1699000009",
        "uf_crm_1699000009_amount",
        "uf_crm_1699000009_currency",
        "uf_crm_1699000007",
        "title",
    )
    assert (deals[1]["opportunity"], deals[1]["opportunity__raw"], deals[1]["closedate"]) == (None, None, None)
    assert (deals[2]["opportunity"], deals[2]["opportunity__raw"]) == (None, "12,5 руб")
    assert (deals[2]["closedate"], deals[2]["closedate__raw"]) == (None, "31.02.2024")
    assert (deals[2]["uf_crm_1699000002"], deals[2]["uf_crm_1699000002__raw"]) == (None, "many")
    assert (deals[3]["uf_crm_1699000006"], deals[3]["uf_crm_1699000006__raw"]) == (None, "yesterday 5pm")
    sent = portal.call("crm.deal.get", {"id": 3})["UF_CRM_1699000003"]  # PHP prints NaN as "nan"
    assert (deals[3]["uf_crm_1699000003"], deals[3]["uf_crm_1699000003__raw"]) == (None, sent)
    assert (deals[4]["uf_crm_1699000009"], deals[4]["uf_crm_1699000009_amount"]) == ("abc|EUR", None)
    assert deals[4]["uf_crm_1699000007"] == 999999 and deals[4]["title"] == BIG_TEXT
    money = (deals[5]["uf_crm_1699000009_amount"], deals[5]["uf_crm_1699000009_currency"])
    assert money == (300, None) and deals[5]["title"] == SCRIPTS
    invoice = by_id(pipeline, "invoices", "opportunity", "opportunity__raw")[1]
    assert (invoice["opportunity"], invoice["opportunity__raw"]) == (None, "n/a")

    warned = {r.args[0]: r.args[1] for r in caplog.records if "did not parse" in r.msg}
    bad = {"OPPORTUNITY", "CLOSEDATE", "UF_CRM_1699000002", "UF_CRM_1699000006", "UF_CRM_1699000003"}
    assert warned == {"deals": dict.fromkeys({*bad, "UF_CRM_1699000009"}, 1), "invoices": {"opportunity": 1}}
    options = [r.args for r in caplog.records if "enumeration ids" in r.msg]
    assert options == [("deals", {"UF_CRM_1699000007": 1})]


def test_a_user_field_whose_type_changes_keeps_its_column_and_every_row(tmp_path: Path, portal: Portal) -> None:
    """UF_CRM_1699000002 turns from integer into string (text values follow), UF_CRM_1699000001 from string
    into integer (its old text values stay): the columns keep their types, what does not fit goes to
    __raw."""
    pipeline = new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal, resources="deals")
    types = column_types(pipeline, "deals")
    with portal.store.lock:
        for name, new_type in (("UF_CRM_1699000002", "string"), ("UF_CRM_1699000001", "integer")):
            portal.store.conn.execute("UPDATE userfield SET USER_TYPE_ID = ? WHERE FIELD_NAME = ?", (new_type, name))
        portal.store._load_userfields()
    now = int(portal.clock.time())
    poke(portal, "deal", 10, UF_CRM_1699000002="twelve", UF_CRM_1699000001="AB123", DATE_MODIFY=now)
    poke(portal, "deal", 11, UF_CRM_1699000002="12", UF_CRM_1699000001="77", DATE_MODIFY=now)
    meta = portal.call("crm.deal.fields")
    assert (meta["UF_CRM_1699000002"]["type"], meta["UF_CRM_1699000001"]["type"]) == ("string", "integer")

    report = run(pipeline, portal, resources="deals", source_options={"fields_max_age_hours": 0})
    assert report.row_counts["deals"] == 2
    assert column_types(pipeline, "deals")["uf_crm_1699000002"] == types["uf_crm_1699000002"] == "bigint"
    assert column_types(pipeline, "deals")["uf_crm_1699000001"] == "varchar"
    deals = by_id(pipeline, "deals", "uf_crm_1699000002", "uf_crm_1699000002__raw", "uf_crm_1699000001")
    assert (deals[10]["uf_crm_1699000002"], deals[10]["uf_crm_1699000002__raw"]) == (None, "twelve")
    assert (deals[11]["uf_crm_1699000002"], deals[11]["uf_crm_1699000002__raw"]) == (12, None)
    assert (deals[10]["uf_crm_1699000001"], deals[11]["uf_crm_1699000001"]) == ("AB123", "77")
    spec = CATALOG.entity("deals")
    assert len(deals) == len(list(portal_list(portal, spec, [spec.id_field])))


POISON = {  # money user field UF_CRM_1699000009 of deals 20..24: what each must load as (amount, text kept)
    20: ("0.1234567891|EUR", None),  # 10 decimals: does not fit decimal(38, 9)
    21: ("123456789012345678901234567890|RUB", None),  # 30 integer digits
    22: ("-0|USD", Decimal("0")),  # a negative zero is zero
    23: ("1E+3|EUR", Decimal("1000")),  # an exponent form is written out
    24: ("1e-12|EUR", None),
}


def test_a_value_that_does_not_fit_a_decimal_column_never_blocks_the_pipeline(
    tmp_path: Path, portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    """Today's failure: normalize refused the package ("Rescaling Decimal value would cause data loss"), and every
    later run failed on that pending package, even after the value was fixed on the portal."""
    for deal_id, (text, _) in POISON.items():
        poke(portal, "deal", deal_id, UF_CRM_1699000009=text)
    poke(portal, "smart_invoice", 2, OPPORTUNITY=0.00999999999476131)  # a float-computed sum (crm.item: a number)
    with portal.store.lock:
        (payment_id,) = portal.store.conn.execute("SELECT min(ID) FROM payment").fetchone()
        portal.store.conn.execute("UPDATE payment SET SUM = ? WHERE ID = ?", (0.00999999999476131, payment_id))
    pipeline = new_pipeline(tmp_path, "duckdb")
    with caplog.at_level(logging.WARNING, logger="bitrix24_sync"):
        run(pipeline, portal, resources="deals,invoices,payments")

    deals = by_id(pipeline, "deals", "uf_crm_1699000009", "uf_crm_1699000009_amount", "uf_crm_1699000009_currency")
    for deal_id, (text, amount) in POISON.items():
        assert (deals[deal_id]["uf_crm_1699000009"], deals[deal_id]["uf_crm_1699000009_amount"]) == (text, amount)
    invoice = by_id(pipeline, "invoices", "opportunity", "opportunity__raw")[2]
    assert invoice == {"id": 2, "opportunity": None, "opportunity__raw": "0.00999999999476131"}
    paid = by_id(pipeline, "payments", "sum", "sum__raw")[payment_id]
    assert (paid["sum"], paid["sum__raw"]) == (None, "0.00999999999476131")
    warned = {r.args[0]: r.args[1] for r in caplog.records if "did not parse" in r.msg}
    assert warned["deals"] == {"UF_CRM_1699000009": 3} and warned["invoices"] == {"opportunity": 1}

    poke(portal, "deal", 20, UF_CRM_1699000009="0.12|EUR", DATE_MODIFY=int(portal.clock.time()))
    report = run(pipeline, portal, resources="deals")
    assert report.row_counts["deals"] == 1
    fixed = by_id(pipeline, "deals", "uf_crm_1699000009_amount")[20]["uf_crm_1699000009_amount"]
    assert fixed == Decimal("0.12")


def test_a_pending_package_that_can_never_load_is_set_aside_and_its_data_read_again(
    tmp_path: Path, portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    """A package normalize refuses (here one of an older version's: a decimal the column cannot hold) used to fail
    every later run; now the run sets it aside with one warning, rewinds the cursors and reads the data again."""
    pipeline = new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal, resources="deals")
    cursor = pipeline.state["sources"]["bitrix24"]["resources"]["deals"]["cursor"]
    poison = dlt.resource(
        [{"id": 1, "x": Decimal("0.1234567891")}],
        name="deals",
        columns={"x": {"data_type": "decimal", "precision": 38, "scale": 9}},
    )
    pipeline.extract(poison)
    with pytest.raises(PipelineStepFailed):
        pipeline.normalize()  # what every later run met first
    assert pipeline.has_pending_data
    with caplog.at_level(logging.WARNING, logger="bitrix24_sync"):
        report = run(pipeline, portal, resources="deals")
    assert any("set aside" in r.getMessage() for r in caplog.records)
    assert not pipeline.has_pending_data and set(report.row_counts) <= {
        "fields",
        "fields__items",
        "deals",
        "portal_info",
    }
    assert pipeline.state["sources"]["bitrix24"]["resources"]["deals"]["cursor"] >= cursor
    spec = CATALOG.entity("deals")
    assert_entity_equal(pipeline, portal, spec)
