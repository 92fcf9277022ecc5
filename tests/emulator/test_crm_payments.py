"""crm.item.payment.* per deal / smart invoice, sale.payment.list and crm.orderentity.list."""

from __future__ import annotations

import re
from typing import Any

from .crm_fixtures import Caller, api_error

pytest_plugins = ["tests.emulator.crm_fixtures"]

PAYMENT_KEYS = [
    "id",
    "accountNumber",
    "paid",
    "datePaid",
    "empPaidId",
    "paySystemId",
    "sum",
    "currency",
    "paySystemName",
]


def _owners(call: Caller, type_id: int) -> list[dict[str, Any]]:
    return call("crm.orderentity.list", {"filter": {"ownerTypeId": type_id}, "start": -1}).result["orderEntity"]


def test_deal_payments_shape(call: Caller) -> None:
    owner = _owners(call, 2)[0]
    payments = call("crm.item.payment.list", {"entityTypeId": 2, "entityId": owner["ownerId"]})
    assert payments.total is None and payments.next is None  # unpaginated plain array
    assert payments.result
    for p in payments.result:
        assert list(p) == PAYMENT_KEYS
        assert isinstance(p["id"], int) and isinstance(p["sum"], float) and isinstance(p["paySystemId"], int)
        assert re.fullmatch(rf"{owner['orderId']}/\d+", p["accountNumber"])
        assert p["paid"] in ("Y", "N")
        if p["paid"] == "Y":
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00", p["datePaid"])
        else:
            assert p["datePaid"] is None and p["empPaidId"] is None
    assert call("crm.item.payment.get", {"id": payments.result[0]["id"]}).result == payments.result[0]
    first = payments.result[0]
    for flt in (
        {"@id": [first["id"]]},
        {"ID": first["id"]},
        {"PAY_SYSTEM_ID": first["paySystemId"], "=id": first["id"]},
    ):
        got = call("crm.item.payment.list", {"entityTypeId": 2, "entityId": owner["ownerId"], "filter": flt})
        assert [p["id"] for p in got.result] == [first["id"]]
    desc = call("crm.item.payment.list", {"entityTypeId": 2, "entityId": owner["ownerId"], "order": {"id": "DESC"}})
    assert [p["id"] for p in desc.result] == sorted((p["id"] for p in payments.result), reverse=True)


def test_variety_paid_unpaid_currencies_and_invoices(call: Caller) -> None:
    rows = call("sale.payment.list", {"select": ["id", "paid", "currency"], "start": 0})
    assert rows.total and rows.total > 50 and rows.next == 50
    page = rows.result["payments"]
    assert {p["paid"] for p in page} == {"Y", "N"} and len({p["currency"] for p in page}) >= 2
    assert all("orderId" in p for p in page)
    invoice = _owners(call, 31)[0]
    assert call("crm.item.payment.list", {"entityTypeId": 31, "entityId": invoice["ownerId"]}).result


def test_payment_lifecycle_does_not_touch_the_deal(fresh: Any) -> None:
    store, call = fresh
    deal_before = call("crm.deal.get", {"id": 7}).result["DATE_MODIFY"]
    store.clock.advance(3600)
    pid = call("crm.item.payment.add", {"entityTypeId": 2, "entityId": 7, "fields": {"paySystemId": 2}}).result
    assert isinstance(pid, int)
    created = call("crm.item.payment.get", {"id": pid}).result
    assert (created["paid"], created["paySystemId"], created["paySystemName"]) == ("N", 2, "Bank transfer")
    assert call("crm.item.payment.pay", {"id": pid}).result is True
    paid = call("crm.item.payment.get", {"id": pid}).result
    assert (paid["paid"], paid["datePaid"], paid["empPaidId"]) == ("Y", store.clock.isoformat(), 1)
    assert call("crm.item.payment.update", {"id": pid, "fields": {"paid": "N", "sum": 5, "paySystemId": 3}}).result
    updated = call("crm.item.payment.get", {"id": pid}).result
    assert (updated["paid"], updated["paySystemId"], updated["sum"]) == ("N", 3, created["sum"])
    assert call("crm.item.payment.unpay", {"id": pid}).result is True
    assert call("crm.item.payment.delete", {"id": pid}).result is True
    assert api_error(call, "crm.item.payment.get", {"id": pid}).code == 0
    assert call("crm.deal.get", {"id": 7}).result["DATE_MODIFY"] == deal_before


def test_payment_errors(call: Caller) -> None:
    err = api_error(call, "crm.item.payment.list", {"entityTypeId": 2})
    assert (err.code, err.description) == (100, "Could not find value for parameter {entityId}")
    err = api_error(call, "crm.item.payment.list", {"entityTypeId": 2, "entityId": 99_999})
    assert (err.code, err.description, err.status) == (0, "Insufficient permissions", 400)
    assert call("crm.item.payment.list", {"entityTypeId": 3, "entityId": 1}).result == []
    assert api_error(call, "crm.item.payment.get", {"id": 10**9}).description == "Insufficient permissions"
    assert api_error(call, "crm.item.payment.add", {"entityTypeId": 1, "entityId": 1}).code == 0


def test_sale_payment_keyset_and_order_entities(call: Caller) -> None:
    first = call("sale.payment.list", {"order": {"id": "ASC"}, "filter": {">id": 0}, "start": -1})
    ids = [p["id"] for p in first.result["payments"]]
    assert ids == sorted(ids) and len(ids) == 50 and (first.total, first.next) == (0, None)
    nxt = call("sale.payment.list", {"order": {"id": "ASC"}, "filter": {">id": ids[-1]}, "start": -1})
    assert nxt.result["payments"][0]["id"] == ids[-1] + 1
    p = first.result["payments"][0]
    assert {
        "orderId",
        "id",
        "accountNumber",
        "paid",
        "datePaid",
        "sum",
        "currency",
        "paySystemId",
        "paySystemName",
        "dateBill",
        "isReturn",
        "marked",
        "xmlId",
    } <= set(p)
    owners = call("crm.orderentity.list", {"filter": {"orderId": p["orderId"]}}).result["orderEntity"]
    assert len(owners) == 1 and set(owners[0]) == {"orderId", "ownerId", "ownerTypeId"}
    every = call("crm.orderentity.list", {"start": -1})
    assert len(every.result["orderEntity"]) == every.total > 50 and every.next is None
    paged = call("crm.orderentity.list", {})
    assert [o["ownerId"] for o in paged.result["orderEntity"]] == sorted(
        o["ownerId"] for o in paged.result["orderEntity"]
    )
    assert paged.next == 50
