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


# An advertising source and the UTM tags its clicks carry; any other source carries none.
PAID = {"UC_GOOGLE_ADS": {"google"}, "UC_YANDEX_DIRECT": {"yandex"}, "UC_INSTAGRAM": {"instagram"},
        "UC_FACEBOOK": {"facebook"}, "UC_TIKTOK": {"tiktok"},
        "ADVERTISING": {"google", "yandex", "facebook", "instagram"}}  # fmt: skip
SEARCH = {"WEB", "WEBFORM"}  # the website: reached directly or through search


def test_the_generated_sales_story_is_coherent() -> None:
    """Deals come from converted leads only, after them, with the lead's source, campaign, contact and company;
    UTM tags agree with the source; payments and invoices are in their deal's currency and add up to at most its
    amount; the seasons show."""
    with Portal(deals=600, leads=300, contacts=150, companies=30, users=5, limits=False) as portal:
        conn = portal.store.conn
        leads = {i: (s, c) for i, s, c in conn.execute("SELECT ID, STATUS_ID, DATE_CREATE FROM lead")}
        deals = conn.execute("SELECT ID, LEAD_ID, DATE_CREATE FROM deal WHERE LEAD_ID IS NOT NULL").fetchall()
        assert deals
        for _deal, lead, created in deals:
            assert leads[lead][0] == "CONVERTED" and leads[lead][1] < created
        converted = {i for i, (s, _c) in leads.items() if s == "CONVERTED"}
        assert converted == {lead for _d, lead, _c in deals}  # every converted lead became a deal, no other lead
        assert len(deals) > len(converted)  # some leads became two deals
        for table in ("lead", "deal", "contact"):
            for source, utm in conn.execute(f"SELECT SOURCE_ID, UTM_SOURCE FROM {table}"):
                allowed = PAID.get(source, {"google", "yandex", None} if source in SEARCH else {None})
                assert utm in allowed, (table, source, utm)
        sums = conn.execute(
            "SELECT d.ID, d.CURRENCY_ID, d.OPPORTUNITY, SUM(p.SUM), COUNT(*), SUM(p.CURRENCY <> d.CURRENCY_ID) "
            "FROM payment p JOIN sale_order o ON o.ID = p.ORDER_ID JOIN deal d ON o.OWNER_TYPE_ID = 2 "
            "AND d.ID = o.OWNER_ID GROUP BY d.ID"
        ).fetchall()
        assert sums
        for _deal, _currency, amount, paid, parts, foreign in sums:
            assert foreign == 0 and paid <= amount + 0.01 * parts

        # a converted lead's deal carries on its source, campaign, contact and company
        inherited = conn.execute(
            "SELECT count(*), sum(d.SOURCE_ID IS NOT l.SOURCE_ID OR d.UTM_SOURCE IS NOT l.UTM_SOURCE "
            "OR d.UTM_CAMPAIGN IS NOT l.UTM_CAMPAIGN OR d.CONTACT_ID IS NOT l.CONTACT_ID "
            "OR d.COMPANY_ID IS NOT l.COMPANY_ID) FROM deal d JOIN lead l ON l.ID = d.LEAD_ID"
        ).fetchone()
        assert inherited[0] == len(deals) and inherited[1] == 0
        # a deal's invoices bill it in its currency, and everything paid for a deal (directly or through its
        # invoices) adds up to at most its amount
        invoices = conn.execute(
            "SELECT count(*), sum(i.CURRENCY_ID <> d.CURRENCY_ID) FROM smart_invoice i "
            "JOIN deal d ON d.ID = i.PARENT_ID_2"
        ).fetchone()
        assert invoices[0] > 10 and invoices[1] == 0
        paid = conn.execute(
            "SELECT d.ID, max(d.OPPORTUNITY), sum(p.SUM), count(*) FROM payment p "
            "JOIN sale_order o ON o.ID = p.ORDER_ID "
            "LEFT JOIN smart_invoice i ON o.OWNER_TYPE_ID = 31 AND i.ID = o.OWNER_ID "
            "JOIN deal d ON d.ID = (CASE o.OWNER_TYPE_ID WHEN 2 THEN o.OWNER_ID ELSE i.PARENT_ID_2 END) GROUP BY d.ID"
        ).fetchall()
        assert all(total <= amount + 0.01 * parts for _d, amount, total, parts in paid)
        assert any(o == 31 for (o,) in conn.execute("SELECT OWNER_TYPE_ID FROM sale_order"))

        # seasons: spring and autumn are busier than the summer heat and the new-year holidays
        months = dict(
            conn.execute(
                "SELECT CAST(strftime('%m', DATE_CREATE, 'unixepoch') AS INTEGER), count(*) FROM "
                "(SELECT DATE_CREATE FROM lead UNION ALL SELECT DATE_CREATE FROM deal) GROUP BY 1"
            )
        )
        peak = sum(months[m] for m in (3, 4, 5, 9, 10)) / 5
        trough = sum(months[m] for m in (7, 8, 12)) / 3
        assert peak > 1.4 * trough, months
