"""`arrow_pages.tables`: a page as the portal sent it, as typed Arrow tables (pure; the sync's own tests cover
the load). Column by column it must type every value exactly as the row-wise converters do
(`FieldPlan.coerce_row`), whichever way a column takes (`arrow_columns.py`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa

from sources.bitrix24.arrow_pages import REPLACED, ROOT_KEY, tables
from sources.bitrix24.fields import CoercionReport, FieldPlan

META = {
    "ID": {"type": "integer"},
    "TITLE": {"type": "string"},
    "OPPORTUNITY": {"type": "double"},
    "BEGINDATE": {"type": "date"},
    "DATE_MODIFY": {"type": "datetime"},
    "OPENED": {"type": "char"},
    "UF_CRM_PRICE": {"type": "money", "isDynamic": True},
    "UF_CRM_FILE": {"type": "file", "isDynamic": True},
    "UF_CRM_TAGS": {"type": "string", "isMultiple": True, "isDynamic": True},
    "PHONE": {"type": "crm_multifield", "isMultiple": True},
}


def _page(*rows: dict) -> tuple[FieldPlan, list[dict]]:
    return FieldPlan(META), list(rows)


def test_the_root_table_has_the_plans_types_and_stable_row_keys() -> None:
    plan, rows = _page(
        {
            "ID": "7",
            "TITLE": "Hip",
            "OPPORTUNITY": "1500.50",
            "BEGINDATE": "2024-08-30T03:00:00+03:00",
            "DATE_MODIFY": "2024-08-30T12:00:00+03:00",
            "OPENED": "Y",
            "UF_CRM_PRICE": "300|EUR",
            "UF_CRM_FILE": {"id": 5, "showUrl": "/x"},
            "UF_CRM_TAGS": ["a", "b"],
            "PHONE": [{"ID": "11", "VALUE": "+49", "VALUE_TYPE": "WORK", "TYPE_ID": "PHONE"}],
            "FACE_ID": 3,
        },
        {"ID": "8", "TITLE": "", "OPPORTUNITY": "x", "BEGINDATE": "", "UF_CRM_TAGS": [], "PHONE": []},
    )
    page = tables(plan, rows, CoercionReport(), key=("ID",), load_id="L1")
    root = page.root
    types = {f.name: f.type for f in root.schema}
    assert types["ID"] == pa.int64() and not root.schema.field("ID").nullable
    assert types["OPPORTUNITY"] == pa.decimal128(38, 9) and types["BEGINDATE"] == pa.date32()
    assert types["DATE_MODIFY"] == pa.timestamp("us", tz="UTC") and types["OPENED"] == pa.bool_()
    assert types["UF_CRM_PRICE_amount"] == pa.decimal128(38, 9) and types["UF_CRM_FILE"] == pa.string()
    first, second = root.to_pylist()
    assert first["_dlt_id"] == "7" and first["_dlt_load_id"] == "L1"
    assert first["BEGINDATE"] == date(2024, 8, 30)
    assert first["DATE_MODIFY"] == datetime(2024, 8, 30, 9, tzinfo=UTC)
    assert first["UF_CRM_PRICE_amount"] == Decimal("300") and first["UF_CRM_PRICE_currency"] == "EUR"
    assert first["UF_CRM_FILE"] == '{"id":5,"showUrl":"/x"}' and first["FACE_ID"] == 3
    # a bad value is NULL with its text beside it; an empty one is NULL
    assert second["OPPORTUNITY"] is None and second["OPPORTUNITY__raw"] == "x" and second["TITLE"] is None
    assert "UF_CRM_TAGS" not in types and "PHONE" not in types  # tables of their own


def test_a_multiple_field_is_a_table_of_values_with_a_marker_for_an_empty_list() -> None:
    plan, rows = _page(
        {"ID": "7", "UF_CRM_TAGS": ["a", "b"], "PHONE": [{"ID": "11", "VALUE": "+49", "VALUE_TYPE": "WORK"}]},
        {"ID": "8", "UF_CRM_TAGS": [], "PHONE": []},
    )
    page = tables(plan, rows, CoercionReport(), key=("ID",), load_id="L1")
    tags = page.children["UF_CRM_TAGS"].to_pylist()
    assert [(t["_dlt_parent_id"], t[ROOT_KEY], t["_dlt_list_idx"], t["value"], t[REPLACED]) for t in tags] == [
        ("7", "7", 0, "a", None),
        ("7", "7", 1, "b", None),
        ("8", "8", -1, None, True),  # deletes deal 8's old tags, never stored
    ]
    assert len({t["_dlt_id"] for t in tags}) == 3
    phones = page.children["PHONE"]
    assert phones.schema.field("ID").type == pa.int64() and not phones.schema.field(ROOT_KEY).nullable
    assert phones.to_pylist()[0]["ID"] == 11 and phones.to_pylist()[0]["VALUE_TYPE"] == "WORK"
