"""Shapes recorded from real portals that the emulator reproduces (docs examples and public clients' recorded
responses): empty links as "0" / 0, keys rows carry that `fields` does not describe, crm.item.fields' own
type names and multiple bindings, user.get's empty PHP arrays."""

from __future__ import annotations

from bitrix24_emulator.store import Store

from .crm_fixtures import Caller, api_error

pytest_plugins = ["tests.emulator.crm_fixtures"]


def test_an_empty_link_comes_as_zero(call: Caller) -> None:
    """ru tutorial crm.deal.get: COMPANY_ID "0"; docs crm-item-get.md: companyId 0, contactId 0, webformId 0."""
    deals = call("crm.deal.list", {"select": ["ID", "COMPANY_ID", "LEAD_ID"], "start": -1}).result
    assert {d["COMPANY_ID"] for d in deals if d["COMPANY_ID"] == "0"} == {"0"}
    assert all(d["COMPANY_ID"] is not None for d in deals)
    assert any(d["LEAD_ID"] is None for d in deals)  # not every link: LEAD_ID stays null
    items = call("crm.item.list", {"entityTypeId": 2, "select": ["id", "companyId"], "start": -1}).result["items"]
    assert 0 in {i["companyId"] for i in items} and None not in {i["companyId"] for i in items}
    trips = call("crm.item.list", {"entityTypeId": 1032, "start": -1}).result["items"]
    assert {t["webformId"] for t in trips} == {0}


def test_rows_carry_keys_the_fields_do_not_describe(call: Caller) -> None:
    contact = call("crm.contact.list", {"start": -1}).result[0]
    assert "FACE_ID" in contact and contact["FACE_ID"] is None
    assert "LAST_COMMUNICATION_TIME" in contact
    described = call("crm.contact.fields").result
    assert "FACE_ID" not in described and "LAST_COMMUNICATION_TIME" not in described
    assert "LAST_COMMUNICATION_TIME" in call("crm.company.fields").result
    assert all(described[f]["isRequired"] for f in ("NAME", "SECOND_NAME", "LAST_NAME"))
    item = call("crm.item.list", {"entityTypeId": 3, "start": -1}).result["items"][0]
    assert "faceId" not in item and "lastCommunicationTime" not in item


def test_item_fields_speak_the_item_types(call: Caller) -> None:
    """docs crm-item-fields.md: `boolean` where the legacy fields say `char`, `text` for long strings, links to a
    parent as `crm_entity`, `opened` required, `webformId` writable, the multiple bindings listed."""
    for type_id in (1030, 31, 7, 2):
        fields = call("crm.item.fields", {"entityTypeId": type_id}).result["fields"]
        assert fields["opened"]["type"] == "boolean" and fields["opened"]["isRequired"]
        assert fields["isManualOpportunity"]["type"] == "boolean"
        assert all(f["type"] != "char" for f in fields.values())
        for name, type_ in (("contactIds", "crm_contact"), ("contacts", "crm_contact"), ("observers", "user")):
            assert fields[name]["type"] == type_ and fields[name]["isMultiple"], (type_id, name)
    visa = call("crm.item.fields", {"entityTypeId": 1030}).result["fields"]
    assert visa["parentId2"]["type"] == "crm_entity" and visa["sourceDescription"]["type"] == "text"
    assert not visa["webformId"]["isReadOnly"] and visa["mycompanyId"]["type"] == "crm_company"
    assert call("crm.deal.fields").result["OPENED"]["type"] == "char"  # the legacy names stay
    companies = call("crm.item.fields", {"entityTypeId": 4}).result["fields"]
    assert "observers" not in companies and "contactIds" not in companies


def test_item_rows_carry_their_bindings(call: Caller) -> None:
    visas = call("crm.item.list", {"entityTypeId": 1030, "start": -1}).result["items"]
    for visa in visas:
        assert visa["observers"] == []
        assert visa["contactIds"] == ([visa["contactId"]] if visa["contactId"] else [])
    assert any(v["contactIds"] for v in visas)


def test_user_get_sends_an_empty_array_for_a_time_it_does_not_have(call: Caller) -> None:
    """docs user-get.md's example: `"LAST_ACTIVITY_DATE": {}`; here the newest user, who never logged in."""
    users = call("user.get", {}).result
    never = [u for u in users if u["LAST_LOGIN"] == ""]
    assert never and all(u["LAST_ACTIVITY_DATE"] == {} for u in never)
    assert all(isinstance(u["LAST_ACTIVITY_DATE"], str) for u in users if u["LAST_LOGIN"])


def test_catalog_products_need_their_catalog_and_a_select_with_their_keys(fresh: tuple[Store, Caller]) -> None:
    """docs catalog-product-list.md: `filter.iblockId` and `select` with `id` and `iblockId` are required;
    catalog.catalog.list names the product catalog and its offers' catalog (productIblockId)."""
    _store, call = fresh
    catalogs = call("catalog.catalog.list").result["catalogs"]
    products, offers = sorted(catalogs, key=lambda c: c["iblockId"])
    assert offers["productIblockId"] == products["iblockId"] and products["productIblockId"] is None
    assert "iblockId" in api_error(call, "catalog.product.list", {"select": ["id", "iblockId"]}).description
    assert api_error(call, "catalog.product.list", {"filter": {"iblockId": products["iblockId"]}})
    select = ["id", "iblockId", "name", "timestampX"]
    page = call("catalog.product.list", {"filter": {"iblockId": products["iblockId"]}, "select": select})
    assert page.total and set(page.result["products"][0]) == set(select)
    before = {p["id"]: p for p in page.result["products"]}[2]
    updated = call("catalog.product.update", {"id": 2, "fields": {"name": "Dental implants (all-on-4)"}}).result
    assert updated["product"]["name"] == "Dental implants (all-on-4)"
    assert updated["product"]["timestampX"] != before["timestampX"]  # the change time is the clock's now
