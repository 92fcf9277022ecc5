"""The generated portal is coherent across the wider CRM: stage history ends at every record's current stage,
product rows add up to their deal's amount, activities, calls and deal contacts point at records that exist."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from bitrix24_emulator import Portal


def keyset(portal: Portal, method: str, params: dict, rows_at: str | None, id_field: str) -> list[dict]:
    out, after = [], 0
    while True:
        flt = {**params.get("filter", {}), f">{id_field}": after}
        page = portal.call(method, {**params, "order": {id_field: "ASC"}, "filter": flt})
        page = page[rows_at] if rows_at else page
        out += page
        if len(page) < 50:
            return out
        after = page[-1][id_field]


def test_the_generated_portal_is_coherent() -> None:
    with Portal(deals=120, leads=60, contacts=50, companies=10, users=5, limits=False) as portal:
        deals = {
            int(d["ID"]): d
            for d in keyset(
                portal, "crm.deal.list", {"select": ["ID", "STAGE_ID", "OPPORTUNITY", "CONTACT_ID"]}, None, "ID"
            )
        }
        history = defaultdict(list)
        for row in keyset(portal, "crm.stagehistory.list", {"entityTypeId": 2}, "items", "ID"):
            history[row["OWNER_ID"]].append(row)
        assert set(history) == set(deals)
        for deal_id, rows in history.items():
            rows.sort(key=lambda r: (r["CREATED_TIME"], r["ID"]))
            assert rows[0]["TYPE_ID"] == 1 and rows[-1]["STAGE_ID"] == deals[deal_id]["STAGE_ID"]

        sums: dict[int, Decimal] = defaultdict(Decimal)
        ids = sorted(deals)
        for start in range(0, len(ids), 50):
            flt = {"=ownerType": "D", "=ownerId": ids[start : start + 50]}
            for r in keyset(portal, "crm.item.productrow.list", {"filter": flt}, "productRows", "id"):
                sums[r["ownerId"]] += Decimal(str(r["price"])) * Decimal(str(r["quantity"]))
        for deal_id, deal in deals.items():
            assert abs(sums.get(deal_id, Decimal(0)) - Decimal(deal["OPPORTUNITY"] or "0")) < Decimal("0.01"), deal_id

        leads = {int(lead["ID"]) for lead in keyset(portal, "crm.lead.list", {"select": ["ID"]}, None, "ID")}
        activities = keyset(
            portal, "crm.activity.list", {"select": ["ID", "OWNER_TYPE_ID", "OWNER_ID", "PROVIDER_ID"]}, None, "ID"
        )
        assert activities
        for a in activities:
            assert int(a["OWNER_ID"]) in (deals if a["OWNER_TYPE_ID"] == "2" else leads)
        call_activities = {int(a["ID"]) for a in activities if a["PROVIDER_ID"] == "VOXIMPLANT_CALL"}
        with portal.store.lock:
            calls = portal.store.conn.execute("SELECT CRM_ACTIVITY_ID FROM call").fetchall()
        assert {c for (c,) in calls} == call_activities

        for deal_id, deal in list(deals.items())[:40]:
            links = portal.call("crm.deal.contact.items.get", {"id": deal_id})
            primary = [int(c["CONTACT_ID"]) for c in links if c["IS_PRIMARY"] == "Y"]
            assert primary == ([int(deal["CONTACT_ID"])] if deal["CONTACT_ID"] else [])
