"""crm.deal.contact.items.get / set and crm.deal.contact.add (docs crm/deals/contacts/*.md): one deal per
call. Changing the bindings does not touch the deal's DATE_MODIFY here (the docs do not say it does)."""

from __future__ import annotations

from typing import Any

from .. import deal_contacts
from ..errors import ApiError
from ..records import as_list, as_mapping, upper_keys
from ..values import php_intval
from . import MethodContext, MethodResult, method


def _deal(ctx: MethodContext, params: dict[str, Any]) -> int:
    deal_id = php_intval(upper_keys(params).get("ID"))
    if deal_id <= 0 or not ctx.store.table("deal").exists(deal_id):
        raise ApiError("", "Not found")
    return deal_id


@method("crm.deal.contact.items.get", "crm")
def items_get(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        deal_id = _deal(ctx, params)
        return MethodResult(deal_contacts.bindings(ctx.store.conn, [deal_id]).get(deal_id, []))


@method("crm.deal.contact.items.set", "crm")
def items_set(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    items = [i for i in as_list(upper_keys(params).get("ITEMS")) if isinstance(i, dict)]
    with ctx.store.lock:
        deal_id = _deal(ctx, params)
        deal_contacts.bind(
            ctx.store.conn,
            deal_id,
            [
                (php_intval(i.get("CONTACT_ID")), php_intval(i.get("SORT", 10 * (n + 1))), i.get("IS_PRIMARY") == "Y")
                for n, i in enumerate(items)
            ],
        )
    return MethodResult(True)


@method("crm.deal.contact.add", "crm")
def contact_add(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    fields = {str(k).upper(): v for k, v in as_mapping(upper_keys(params).get("FIELDS"), "fields").items()}
    with ctx.store.lock:
        deal_id = _deal(ctx, params)
        current = deal_contacts.bindings(ctx.store.conn, [deal_id]).get(deal_id, [])
        primary = fields.get("IS_PRIMARY") == "Y"
        items = [(c["CONTACT_ID"], c["SORT"], c["IS_PRIMARY"] == "Y" and not primary) for c in current]
        items.append(
            (php_intval(fields.get("CONTACT_ID")), php_intval(fields.get("SORT", 10 * (len(items) + 1))), primary)
        )
        deal_contacts.bind(ctx.store.conn, deal_id, items)
    return MethodResult(True)
