"""crm.item.list / get / fields: camelCase, typed values, ufCrm names, result.items, strict filters."""

from __future__ import annotations

import re

import pytest

from .crm_fixtures import Caller, api_error

pytest_plugins = ["tests.emulator.crm_fixtures"]

DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00$")


def test_deal_items_are_typed_and_camel_case(call: Caller) -> None:
    page = call("crm.item.list", {"entityTypeId": 2, "order": {"id": "ASC"}})
    assert (page.total, page.next) == (120, 50)
    item = page.result["items"][0]
    assert item["id"] == 1 and isinstance(item["categoryId"], int) and isinstance(item["opportunity"], float)
    assert DATETIME.match(item["createdTime"]) and DATETIME.match(item["updatedTime"])
    assert item["begindate"].endswith("T03:00:00+03:00")
    assert item["opened"] in ("Y", "N") and item["stageSemanticId"] in ("P", "S", "F")
    assert item["entityTypeId"] == 2 and isinstance(item["contactIds"], list)
    assert "ufCrm_64A29A1CD5CC2" in item and "ufCrm_1699000001" in item and "UF_CRM_1699000001" not in item
    assert "fm" not in item  # deals have no multifields
    bools = [i["ufCrm_1699000004"] for i in page.result["items"] if i["ufCrm_1699000004"] is not None]
    assert set(bools) <= {"Y", "N"} and bools
    enums = [i["ufCrm_1699000008"] for i in page.result["items"] if i["ufCrm_1699000008"]]
    assert all(isinstance(x, int) for v in enums for x in v)
    assert all(
        set(i["ufCrm_1699000014"]) == {"id", "url", "urlMachine"} for i in page.result["items"] if i["ufCrm_1699000014"]
    )


def test_fm_only_with_star(call: Caller) -> None:
    star = call("crm.item.list", {"entityTypeId": 3, "order": {"id": "ASC"}}).result["items"]
    with_fm = [i for i in star if i["fm"]]
    assert with_fm and set(with_fm[0]["fm"][0]) == {"id", "valueType", "value", "typeId"}
    named = call("crm.item.list", {"entityTypeId": 3, "select": ["id", "name", "fm"]}).result["items"][0]
    assert set(named) == {"id", "name"}


def test_select_is_exactly_what_comes_back(call: Caller) -> None:
    # Doc: api-reference/crm/universal/crm-item-list.md (the response items hold just the selected fields, no
    # entityTypeId); core-src Item::getJsonForItems intersects items with the select, even `id`; UPPER_CASE
    # names of known fields are accepted (OrmObject::convertFieldNameFromCamelCaseToUpperCase).
    def first(select: list[str]) -> dict[str, object]:
        return call("crm.item.list", {"entityTypeId": 2, "select": select, "order": {"ID": "ASC"}}).result["items"][0]

    assert first(["title"]) == {"title": call("crm.item.get", {"entityTypeId": 2, "id": 1}).result["item"]["title"]}
    assert set(first(["ID", "STAGE_ID", "opportunity"])) == {"id", "stageId", "opportunity"}
    assert set(first(["id", "contactIds", "entityTypeId"])) == {"id", "contactIds", "entityTypeId"}
    with_ufs = first(["id", "UF_*"])
    assert "ufCrm_1699000001" in with_ufs and "title" not in with_ufs
    newest = call("crm.item.list", {"entityTypeId": 2, "select": ["id"], "filter": {">ID": 5}, "order": {"ID": "DESC"}})
    assert newest.result["items"][0] == {"id": 120}


def test_start_minus_one_has_no_total_and_no_next(call: Caller) -> None:
    page = call("crm.item.list", {"entityTypeId": 2, "filter": {">id": 60}, "order": {"id": "ASC"}, "start": -1})
    assert len(page.result["items"]) == 50 and page.result["items"][0]["id"] == 61
    assert (page.total, page.next, page.cost.counted) == (None, None, 0)


def test_filters_and_logic_groups(call: Caller) -> None:
    flt = {"0": {"logic": "OR", "0": {"stageId": "C1:WON"}, "1": {"stageId": "C2:WON"}}, ">opportunity": 0}
    items = call(
        "crm.item.list", {"entityTypeId": 2, "filter": flt, "select": ["id", "stageId", "opportunity"]}
    ).result["items"]
    assert items and all(i["stageId"] in ("C1:WON", "C2:WON") and i["opportunity"] > 0 for i in items)
    true = call(
        "crm.item.list",
        {"entityTypeId": 2, "filter": {"ufCrm_1699000004": 1}, "select": ["id", "ufCrm_1699000004"]},
    ).result["items"]
    assert true and all(i["ufCrm_1699000004"] == "Y" for i in true)


def test_unknown_filter_or_order_field_is_an_error(call: Caller) -> None:
    err = api_error(call, "crm.item.list", {"entityTypeId": 2, "filter": {"STAGE_IDENT": "NEW"}})
    assert (err.code, err.description) == (
        "INVALID_ARG_VALUE",
        "Invalid filter: field 'STAGE_IDENT' is not allowed in filter",
    )
    err = api_error(call, "crm.item.list", {"entityTypeId": 2, "order": {"nope": "ASC"}})
    assert err.description == "Invalid order: field 'nope' is not allowed in order"
    err = api_error(call, "crm.item.list", {"entityTypeId": 2, "order": {"id": "UP"}})
    assert err.description.startswith("Invalid order: allowed sort directions are ASC, DESC. But got 'UP'")
    err = api_error(call, "crm.item.list", {"entityTypeId": 2, "filter": {">id": [{"id": 1}]}})
    assert err.description == "Invalid filter: field 'id' has invalid value"


@pytest.mark.parametrize("type_id", [1, 2, 3, 4, 31])
def test_every_entity_type_lists_gets_and_describes(call: Caller, type_id: int) -> None:
    items = call("crm.item.list", {"entityTypeId": type_id, "order": {"id": "DESC"}}).result["items"]
    assert items and items[0]["entityTypeId"] == type_id
    got = call("crm.item.get", {"entityTypeId": type_id, "id": items[0]["id"]}).result["item"]
    assert got["id"] == items[0]["id"] and got["updatedTime"] == items[0]["updatedTime"]
    fields = call("crm.item.fields", {"entityTypeId": type_id}).result["fields"]
    assert fields["id"]["upperName"] == "ID" and fields["updatedTime"]["upperName"] == "DATE_MODIFY"
    ufs = [k for k in fields if k.startswith("ufCrm")]
    assert ufs and all(fields[k]["isDynamic"] for k in ufs)


def test_smart_invoices_link_to_deals(call: Caller) -> None:
    items = call(
        "crm.item.list",
        {
            "entityTypeId": 31,
            "select": ["id", "parentId2", "stageId", "accountNumber", "ufCrmSmartInvoice_1699400001"],
        },
    ).result["items"]
    assert any(i["parentId2"] for i in items)
    assert all(i["stageId"].startswith("DT31_5:") for i in items)
    assert "ufCrmSmartInvoice_1699400001" in items[0]


def test_item_errors(call: Caller) -> None:
    assert api_error(call, "crm.item.list", {"entityTypeId": 777}).description == "SPA not found"
    assert api_error(call, "crm.item.list", {}).code == 100
    err = api_error(call, "crm.item.get", {"entityTypeId": 2, "id": 99_999})
    assert (err.code, err.description) == ("NOT_FOUND", "Element not found")


def test_use_original_uf_names(call: Caller) -> None:
    # Doc: api-reference/crm/universal/crm-item-list.md, crm-item-get.md, crm-item-fields.md (useOriginalUfNames)
    params = {"entityTypeId": 2, "useOriginalUfNames": "Y", "order": {"id": "ASC"}}
    item = call("crm.item.list", params).result["items"][0]
    assert "UF_CRM_1699000001" in item and "ufCrm_1699000001" not in item and "title" in item
    picked = call("crm.item.list", {**params, "select": ["id", "UF_CRM_1699000002"]}).result["items"][0]
    assert set(picked) == {"id", "UF_CRM_1699000002"}
    got = call("crm.item.get", {"entityTypeId": 2, "id": item["id"], "useOriginalUfNames": "Y"}).result["item"]
    assert got["UF_CRM_1699000002"] == item["UF_CRM_1699000002"]
    fields = call("crm.item.fields", {"entityTypeId": 2, "useOriginalUfNames": "Y"}).result["fields"]
    assert "UF_CRM_1699000001" in fields and "stageId" in fields
    default = call("crm.item.list", {"entityTypeId": 2, "useOriginalUfNames": "N"}).result["items"][0]
    assert "ufCrm_1699000001" in default
