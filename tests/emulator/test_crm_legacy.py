"""Legacy crm.deal/lead/contact/company.*: value formats, paging, select, order, writes and user fields."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bitrix24_emulator.clock import Clock
from bitrix24_emulator.data import seed_portal
from bitrix24_emulator.store import Store

from .crm_fixtures import Caller, api_error, caller

pytest_plugins = ["tests.emulator.crm_fixtures"]

DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT03:00:00\+03:00$")


def test_list_values_are_strings_nulls_and_portal_offset_dates(call: Caller) -> None:
    rows = call("crm.deal.list", {"order": {"ID": "ASC"}}).result
    assert len(rows) == 50
    for row in rows:
        assert re.fullmatch(r"\d+", row["ID"])
        assert re.fullmatch(r"\d+\.\d\d", row["OPPORTUNITY"])
        assert DATETIME.match(row["DATE_CREATE"]) and DATETIME.match(row["DATE_MODIFY"])
        assert row["DATE_MODIFY"] >= row["DATE_CREATE"]
        assert DATE.match(row["BEGINDATE"])
        assert row["QUOTE_ID"] is None  # empty non-date field: null
        assert row["LAST_ACTIVITY_TIME"] == "" or DATETIME.match(row["LAST_ACTIVITY_TIME"])  # empty date: ""
        assert row["CLOSED"] in ("Y", "N") and row["IS_NEW"] in ("Y", "N")
        assert row["CATEGORY_ID"] in ("0", "1", "2", "3")
        if row["CATEGORY_ID"] != "0":
            assert row["STAGE_ID"].startswith(f"C{row['CATEGORY_ID']}:")
        assert "PHONE" not in row and "CONTACT_IDS" not in row
    assert any(r["LAST_ACTIVITY_TIME"] == "" for r in rows)


def test_user_field_values_per_type(call: Caller) -> None:
    rows = call("crm.deal.list", {"select": ["UF_*"], "order": {"ID": "ASC"}}).result
    seen: dict[str, list[Any]] = {}
    for row in rows:
        assert all(k.startswith("UF_CRM_") for k in row)
        for k, v in row.items():
            if v is not None:
                seen.setdefault(k, []).append(v)
    assert "UF_CRM_64A29A1CD5CC2" not in seen  # an always-empty field
    assert all(isinstance(v, bool) for v in seen["UF_CRM_1699000004"])  # boolean
    assert all(DATE.match(v) for v in seen["UF_CRM_1699000005"])  # date
    assert all(DATETIME.match(v) for v in seen["UF_CRM_1699000006"])  # datetime
    assert all(re.fullmatch(r"\d+", v) for v in seen["UF_CRM_1699000007"])  # enumeration
    assert all(isinstance(v, list) and all(re.fullmatch(r"\d+", x) for x in v) for v in seen["UF_CRM_1699000008"])
    assert all(re.fullmatch(r"[\d.]+\|(RUB|USD|EUR|TRY)", v) for v in seen["UF_CRM_1699000009"])  # money
    assert all(re.fullmatch(r"(C|CO)_\d+", v) for v in seen["UF_CRM_1699000012"])  # crm
    assert all(set(v) == {"id", "showUrl", "downloadUrl"} for v in seen["UF_CRM_1699000014"])  # file
    assert all(re.fullmatch(r"\d+(\.\d+)?", v) for v in seen["UF_CRM_1699000003"])  # double as string
    assert all(isinstance(v, str) for v in seen["UF_CRM_1699000002"])  # integer as string


def test_date_fields_follow_the_portal_time_zone() -> None:
    clock = Clock("UTC")
    utc = Store(":memory:", clock)
    seed_portal(utc, deals=3, leads=1, contacts=1, companies=1, users=2)
    row = caller(utc)("crm.deal.list", {"order": {"ID": "ASC"}}).result[0]
    assert row["BEGINDATE"].endswith("T00:00:00+00:00")
    assert row["DATE_CREATE"].endswith("+00:00")
    utc.close()


def test_multifields_only_when_named(call: Caller) -> None:
    default = call("crm.contact.list", {"order": {"ID": "ASC"}}).result
    assert not any("PHONE" in r or "EMAIL" in r for r in default)
    star = call("crm.contact.list", {"select": ["*", "UF_*"], "order": {"ID": "ASC"}}).result
    assert not any("PHONE" in r for r in star)
    named = call("crm.contact.list", {"select": ["ID", "PHONE", "EMAIL"], "order": {"ID": "ASC"}}).result
    with_phone = [r for r in named if "PHONE" in r]
    assert with_phone
    for r in with_phone:
        assert set(r) <= {"ID", "PHONE", "EMAIL"}
        for m in r["PHONE"]:
            assert set(m) == {"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"} and m["TYPE_ID"] == "PHONE"
            assert isinstance(m["ID"], str)


def test_select_star_uf_and_explicit_names(call: Caller) -> None:
    star = call("crm.deal.list", {"select": ["*"], "order": {"ID": "ASC"}}).result[0]
    assert "TITLE" in star and not any(k.startswith("UF_") for k in star)
    explicit = call(
        "crm.deal.list",
        {"select": ["TITLE", "ID", "NO_SUCH_FIELD", "UF_CRM_1699000001"], "order": {"ID": "ASC"}},
    ).result[0]
    assert list(explicit) == ["ID", "TITLE", "UF_CRM_1699000001"]
    upper = call("crm.deal.list", {"SELECT": ["ID"], "ORDER": {"ID": "DESC"}}).result[0]
    assert list(upper) == ["ID"] and upper["ID"] == "120"


# ---- paging
# -----------------------------------------------------------------------------------------------------


def _page(call: Caller, flt: dict[str, Any], start: Any = 0) -> Any:
    return call("crm.deal.list", {"select": ["ID"], "filter": flt, "order": {"ID": "ASC"}, "start": start})


def test_paging_edges(call: Caller) -> None:
    empty = _page(call, {">ID": 10_000})
    assert (empty.result, empty.total, empty.next) == ([], 0, None)
    fifty = _page(call, {"<=ID": 50})
    assert (len(fifty.result), fifty.total, fifty.next) == (50, 50, None)
    fifty_one = _page(call, {"<=ID": 51})
    assert (len(fifty_one.result), fifty_one.total, fifty_one.next) == (50, 51, 50)
    last = _page(call, {"<=ID": 51}, start=50)
    assert ([r["ID"] for r in last.result], last.next) == (["51"], None)
    rounded = _page(call, {}, start=75)  # rounded down to 50
    assert rounded.result[0]["ID"] == "51" and rounded.next == 100
    assert _page(call, {}, start="99").result[0]["ID"] == "51"
    beyond = _page(call, {}, start=500)
    assert (beyond.result, beyond.total, beyond.next) == ([], 120, None)


def test_start_minus_one_skips_the_count(call: Caller) -> None:
    page = _page(call, {">ID": 10}, start=-1)
    assert len(page.result) == 50 and page.result[0]["ID"] == "11"
    assert (page.total, page.next, page.cost.counted) == (0, None, 0)
    assert page.cost.rows_scanned == 50


def test_cost_offset_and_count_are_expensive_keyset_is_not(call: Caller) -> None:
    keyset = _page(call, {">ID": 100}, start=-1)
    assert (keyset.cost.rows_scanned, keyset.cost.counted) == (20, 0)
    offset = _page(call, {}, start=100)
    assert (offset.cost.rows_scanned, offset.cost.rows_returned, offset.cost.counted) == (120, 20, 120)


# ---- order
# ------------------------------------------------------------------------------------------------------


def test_order_on_any_field_and_direction_case(call: Caller) -> None:
    rows = call(
        "crm.deal.list",
        {"select": ["ID", "DATE_MODIFY"], "order": {"DATE_MODIFY": "desc", "ID": "asc"}, "start": -1},
    ).result
    keys = [(r["DATE_MODIFY"], -int(r["ID"])) for r in rows]
    assert keys == sorted(keys, reverse=True)
    titles = [r["TITLE"] for r in call("crm.deal.list", {"select": ["TITLE"], "order": {"TITLE": "ASC"}}).result]
    assert titles == sorted(titles, key=str.lower) or titles == sorted(titles)


def test_order_by_stage_follows_the_pipeline(call: Caller) -> None:
    rows = call(
        "crm.deal.list",
        {
            "select": ["ID", "STAGE_ID"],
            "filter": {"CATEGORY_ID": 0},
            "order": {"STAGE_ID": "ASC", "ID": "ASC"},
        },
    ).result
    sorts = {
        s["STATUS_ID"]: int(s["SORT"]) for s in call("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}}).result
    }
    positions = [sorts[r["STAGE_ID"]] for r in rows]
    assert positions == sorted(positions) and len(set(positions)) > 1


# ---- get / add / update / delete
# -------------------------------------------------------------------------------


def test_get_returns_everything_and_not_found(call: Caller) -> None:
    deal = call("crm.deal.get", {"id": 5}).result
    assert deal["ID"] == "5" and "UF_CRM_1699000001" in deal
    assert deal["UF_CRM_64A29A1CD5CC2"] == ""  # empty user field on get
    err = api_error(call, "crm.deal.get", {"ID": 99_999})
    assert (err.code, err.description, err.status) == ("", "Not found", 400)
    assert api_error(call, "crm.deal.get", {}).description == "ID is not defined or invalid."


def test_add_update_delete_and_date_modify(fresh: Any) -> None:
    store, call = fresh
    now_iso = store.clock.isoformat()
    rid = call(
        "crm.deal.add",
        {
            "fields": {
                "TITLE": "Implants — Ms. Weiß",
                "OPPORTUNITY": "1500.5",
                "CURRENCY_ID": "EUR",
                "CATEGORY_ID": 2,
                "STAGE_ID": "C1:UC_VISA",
                "UF_CRM_1699000008": [5, 6],
                "UF_CRM_1699000004": "Y",
                "BEGINDATE": "2026-11-01",
                "DATE_MODIFY": "2001-01-01",
            }
        },
    ).result
    assert isinstance(rid, int) and rid == 121
    deal = call("crm.deal.get", {"id": rid}).result
    assert deal["DATE_CREATE"] == deal["DATE_MODIFY"] == now_iso
    assert deal["OPPORTUNITY"] == "1500.50" and deal["CATEGORY_ID"] == "2"
    assert deal["STAGE_ID"] == "C2:NEW"  # a stage of another pipeline is not accepted
    assert deal["BEGINDATE"] == "2026-11-01T03:00:00+03:00"
    assert deal["UF_CRM_1699000004"] is True and deal["UF_CRM_1699000008"] == ["5", "6"]
    upload = {"UF_CRM_1699000014": {"fileData": ["report.pdf", "JVBERi0xLjQK"]}}
    call("crm.deal.update", {"id": rid, "fields": upload})
    stored = call("crm.deal.get", {"id": rid}).result["UF_CRM_1699000014"]
    assert isinstance(stored["id"], int) and f"fileId={stored['id']}" in stored["showUrl"]
    second = call("crm.deal.add", {"fields": {"TITLE": "same second"}}).result
    assert call("crm.deal.get", {"id": second}).result["DATE_MODIFY"] == now_iso  # second precision, shared

    store.clock.advance(90)
    assert (
        call(
            "crm.deal.update",
            {"id": rid, "fields": {"UF_CRM_1699000001": "P-77", "CATEGORY_ID": 3, "STAGE_ID": "C2:WON"}},
        ).result
        is True
    )
    updated = call("crm.deal.get", {"id": rid}).result
    assert updated["DATE_MODIFY"] == store.clock.isoformat() != now_iso
    assert updated["DATE_CREATE"] == now_iso
    assert updated["CATEGORY_ID"] == "2" and updated["STAGE_ID"] == "C2:WON"  # pipeline is immutable
    assert (updated["STAGE_SEMANTIC_ID"], updated["CLOSED"]) == ("S", "Y")
    assert updated["TITLE"] == "Implants — Ms. Weiß" and updated["UF_CRM_1699000001"] == "P-77"

    assert call("crm.deal.delete", {"id": rid}).result is True
    assert api_error(call, "crm.deal.get", {"id": rid}).description == "Not found"
    assert api_error(call, "crm.deal.delete", {"id": rid}).description == "Not found"
    assert api_error(call, "crm.deal.update", {"id": rid, "fields": {}}).description == "Not found"
    assert call("crm.deal.list", {"filter": {"ID": rid}}).total == 0


def test_multifield_writes(fresh: Any) -> None:
    _store, call = fresh
    rid = call(
        "crm.contact.add",
        {"FIELDS": {"NAME": "Ayşe", "PHONE": [{"VALUE": "+905551112233", "VALUE_TYPE": "MOBILE"}]}},
    ).result
    contact = call("crm.contact.get", {"id": rid}).result
    assert contact["HAS_PHONE"] == "Y" and contact["PHONE"][0]["VALUE"] == "+905551112233"
    phone_id = contact["PHONE"][0]["ID"]
    call(
        "crm.contact.update",
        {
            "id": rid,
            "fields": {
                "PHONE": [
                    {"ID": phone_id, "VALUE": "+905550000000"},
                    {"VALUE": "+4930123", "VALUE_TYPE": "WORK"},
                ]
            },
        },
    )
    phones = call("crm.contact.get", {"id": rid}).result["PHONE"]
    assert [p["VALUE"] for p in phones] == ["+905550000000", "+4930123"]
    call(
        "crm.contact.update",
        {
            "id": rid,
            "fields": {"PHONE": [{"ID": phones[0]["ID"], "VALUE": ""}, {"ID": phones[1]["ID"], "DELETE": "Y"}]},
        },
    )
    contact = call("crm.contact.get", {"id": rid}).result
    assert "PHONE" not in contact and contact["HAS_PHONE"] == "N"


def test_fields_errors(call: Caller) -> None:
    assert api_error(call, "crm.deal.add", {"fields": "x"}).description == "Parameter 'fields' must be array."
    assert api_error(call, "crm.deal.list", {"filter": "x"}).description == "Parameter 'filter' must be array."
    assert api_error(call, "crm.deal.list", {"order": "x"}).description == "Parameter 'order' must be array."


# ---- metadata and user fields
# ----------------------------------------------------------------------------------


def test_fields_metadata(call: Caller) -> None:
    meta = call("crm.deal.fields").result
    keys = {"type", "isRequired", "isReadOnly", "isImmutable", "isMultiple", "isDynamic", "title"}
    assert keys <= set(meta["ID"]) and meta["ID"]["isReadOnly"] is True
    assert meta["STAGE_ID"]["statusType"] == "DEAL_STAGE" and meta["CATEGORY_ID"]["isImmutable"] is True
    assert meta["CONTACT_IDS"]["isMultiple"] is True and "PHONE" not in meta
    uf = meta["UF_CRM_64A29A1CD5CC2"]
    assert (uf["isDynamic"], uf["title"], uf["listLabel"]) == (True, "UF_CRM_64A29A1CD5CC2", "New Field")
    assert meta["UF_CRM_1699000007"]["items"][0] == {"ID": "1", "VALUE": "Acıbadem İstanbul"}
    types = {v["type"] for k, v in meta.items() if k.startswith("UF_")}
    assert types >= {
        "string",
        "integer",
        "double",
        "boolean",
        "date",
        "datetime",
        "enumeration",
        "money",
        "url",
        "employee",
        "crm",
        "address",
        "file",
    }
    assert call("crm.lead.fields").result["PHONE"]["type"] == "crm_multifield"


# Standard fields in the order the docs list them (field names only): api-reference/crm/deals/crm-deal-fields.md,
# api-reference/crm/leads/crm-lead-fields.md, api-reference/crm/contacts/crm-contact-fields.md,
# api-reference/crm/companies/crm-company-fields.md (its PARENT_ID_156 is the doc portal's own smart process).
_ADDR = "ADDRESS ADDRESS_2 ADDRESS_CITY ADDRESS_POSTAL_CODE ADDRESS_REGION ADDRESS_PROVINCE ADDRESS_COUNTRY "
_ADDR += "ADDRESS_COUNTRY_CODE ADDRESS_LOC_ADDR_ID"
_TAIL = "ORIGINATOR_ID ORIGIN_ID UTM_SOURCE UTM_MEDIUM UTM_CAMPAIGN UTM_CONTENT UTM_TERM "
_TAIL += "LAST_ACTIVITY_TIME LAST_ACTIVITY_BY"
DOCUMENTED_FIELDS = {
    "deal": "ID TITLE TYPE_ID CATEGORY_ID STAGE_ID STAGE_SEMANTIC_ID IS_NEW IS_RECURRING IS_RETURN_CUSTOMER "
    "IS_REPEATED_APPROACH PROBABILITY CURRENCY_ID OPPORTUNITY IS_MANUAL_OPPORTUNITY TAX_VALUE COMPANY_ID CONTACT_ID "
    "CONTACT_IDS QUOTE_ID BEGINDATE CLOSEDATE OPENED CLOSED COMMENTS ASSIGNED_BY_ID CREATED_BY_ID MODIFY_BY_ID "
    "MOVED_BY_ID DATE_CREATE DATE_MODIFY MOVED_TIME SOURCE_ID SOURCE_DESCRIPTION LEAD_ID ADDITIONAL_INFO LOCATION_ID "
    + _TAIL,
    "lead": "ID TITLE HONORIFIC NAME SECOND_NAME LAST_NAME BIRTHDATE COMPANY_TITLE SOURCE_ID SOURCE_DESCRIPTION "
    f"STATUS_ID STATUS_DESCRIPTION STATUS_SEMANTIC_ID POST {_ADDR} CURRENCY_ID OPPORTUNITY IS_MANUAL_OPPORTUNITY "
    "OPENED COMMENTS HAS_PHONE HAS_EMAIL HAS_IMOL ASSIGNED_BY_ID CREATED_BY_ID MODIFY_BY_ID MOVED_BY_ID DATE_CREATE "
    f"DATE_MODIFY MOVED_TIME COMPANY_ID CONTACT_ID CONTACT_IDS IS_RETURN_CUSTOMER DATE_CLOSED {_TAIL} "
    "PHONE EMAIL WEB IM LINK",
    "contact": "ID HONORIFIC NAME SECOND_NAME LAST_NAME PHOTO BIRTHDATE TYPE_ID SOURCE_ID SOURCE_DESCRIPTION POST "
    f"{_ADDR} COMMENTS OPENED EXPORT HAS_PHONE HAS_EMAIL HAS_IMOL ASSIGNED_BY_ID CREATED_BY_ID MODIFY_BY_ID "
    f"DATE_CREATE DATE_MODIFY COMPANY_ID COMPANY_IDS LEAD_ID ORIGINATOR_ID ORIGIN_ID ORIGIN_VERSION "
    "UTM_SOURCE UTM_MEDIUM UTM_CAMPAIGN UTM_CONTENT UTM_TERM LAST_ACTIVITY_TIME LAST_ACTIVITY_BY "
    "PHONE EMAIL WEB IM LINK",
    "company": f"ID TITLE COMPANY_TYPE LOGO {_ADDR} ADDRESS_LEGAL REG_ADDRESS REG_ADDRESS_2 REG_ADDRESS_CITY "
    "REG_ADDRESS_POSTAL_CODE REG_ADDRESS_REGION REG_ADDRESS_PROVINCE REG_ADDRESS_COUNTRY REG_ADDRESS_COUNTRY_CODE "
    "REG_ADDRESS_LOC_ADDR_ID BANKING_DETAILS INDUSTRY EMPLOYEES CURRENCY_ID REVENUE OPENED COMMENTS HAS_PHONE "
    "HAS_EMAIL HAS_IMOL IS_MY_COMPANY ASSIGNED_BY_ID CREATED_BY_ID MODIFY_BY_ID DATE_CREATE DATE_MODIFY CONTACT_ID "
    "LEAD_ID ORIGINATOR_ID ORIGIN_ID ORIGIN_VERSION UTM_SOURCE UTM_MEDIUM UTM_CAMPAIGN UTM_CONTENT UTM_TERM "
    "LAST_ACTIVITY_TIME LAST_ACTIVITY_BY LAST_COMMUNICATION_TIME PHONE EMAIL WEB IM LINK",
}


@pytest.mark.parametrize("entity", list(DOCUMENTED_FIELDS))
def test_fields_are_the_documented_ones_in_order(call: Caller, entity: str) -> None:
    meta = call(f"crm.{entity}.fields").result
    assert [name for name in meta if not name.startswith("UF_")] == DOCUMENTED_FIELDS[entity].split()


def test_fields_flags_follow_the_docs(call: Caller) -> None:
    lead, contact, company = (call(f"crm.{e}.fields").result for e in ("lead", "contact", "company"))
    assert lead["CONTACT_ID"].get("isDeprecated") is True and "settings" not in lead["CONTACT_ID"]
    assert lead["CONTACT_IDS"]["isMultiple"] is True and contact["COMPANY_IDS"]["type"] == "crm_company"
    assert contact["LEAD_ID"]["settings"] == company["LEAD_ID"]["settings"] == {"parentEntityTypeId": 1}
    assert company["TITLE"]["isRequired"] is True and company["CONTACT_ID"]["isMultiple"] is True
    assert (contact["PHOTO"]["type"], company["LOGO"]["type"]) == ("file", "file")
    assert company["LAST_COMMUNICATION_TIME"]["isReadOnly"] is True


def test_userfield_list_rows(call: Caller) -> None:
    rows = call("crm.deal.userfield.list").result
    assert [int(r["SORT"]) for r in rows] == sorted(int(r["SORT"]) for r in rows)
    enum = next(r for r in rows if r["FIELD_NAME"] == "UF_CRM_1699000008")
    assert (enum["ENTITY_ID"], enum["MULTIPLE"], enum["USER_TYPE_ID"]) == ("CRM_DEAL", "Y", "enumeration")
    assert enum["EDIT_FORM_LABEL"] == {"en": "Services", "ru": "Услуги"}
    assert {"ID", "SORT", "VALUE", "DEF", "XML_ID"} == set(enum["LIST"][0])
    ru = call("crm.deal.userfield.list", {"filter": {"LANG": "ru", "USER_TYPE_ID": "enumeration"}}).result
    assert {r["LIST_COLUMN_LABEL"] for r in ru} == {"Клиника", "Услуги"}


def test_userfield_add_at_run_time(fresh: Any) -> None:
    _store, call = fresh
    new_id = call(
        "crm.deal.userfield.add",
        {
            "fields": {
                "FIELD_NAME": "VISA_STATUS",
                "USER_TYPE_ID": "enumeration",
                "EDIT_FORM_LABEL": {"en": "Visa", "ru": "Виза"},
                "LIST": [{"VALUE": "Issued"}, {"VALUE": "Refused"}],
            }
        },
    ).result
    assert isinstance(new_id, int)
    meta = call("crm.deal.fields").result["UF_CRM_VISA_STATUS"]
    assert meta["type"] == "enumeration" and [i["VALUE"] for i in meta["items"]] == ["Issued", "Refused"]
    rows = call("crm.deal.list", {"select": ["UF_*"], "order": {"ID": "ASC"}}).result
    assert all(r["UF_CRM_VISA_STATUS"] is None for r in rows)
    item_id = meta["items"][1]["ID"]
    call("crm.deal.update", {"id": 3, "fields": {"UF_CRM_VISA_STATUS": item_id}})
    hit = call("crm.deal.list", {"select": ["ID"], "filter": {"UF_CRM_VISA_STATUS": item_id}})
    assert [r["ID"] for r in hit.result] == ["3"]
    assert (
        api_error(
            call,
            "crm.deal.userfield.add",
            {"fields": {"FIELD_NAME": "VISA_STATUS", "USER_TYPE_ID": "string"}},
        ).code
        == ""
    )
    assert "UF_CRM_VISA_STATUS" not in call("crm.lead.fields").result


@pytest.mark.parametrize("entity", ["lead", "contact", "company"])
def test_other_entities_list_and_get(call: Caller, entity: str) -> None:
    page = call(f"crm.{entity}.list", {"order": {"ID": "ASC"}, "select": ["*", "UF_*", "EMAIL"]})
    assert page.total and page.result
    row = page.result[0]
    assert DATETIME.match(row["DATE_MODIFY"]) and row["HAS_EMAIL"] in ("Y", "N")
    assert any(k.startswith("UF_CRM_") for k in row)
    assert call(f"crm.{entity}.get", {"id": row["ID"]}).result["ID"] == row["ID"]
