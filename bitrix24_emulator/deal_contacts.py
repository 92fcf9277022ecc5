"""A deal's contacts: the bindings behind crm.deal.contact.items.* and crm.item.list's `contactIds`, sorted
by SORT; the primary one is the deal's CONTACT_ID (docs crm/deals/contacts/*.md)."""

from __future__ import annotations

import sqlite3
from typing import Any


def bind(conn: sqlite3.Connection, deal_id: int, items: list[tuple[int, int, bool]]) -> None:
    """Replace the bindings with (contact id, sort, primary); no primary given makes the first one primary.
    The deal's CONTACT_ID follows the primary contact."""
    conn.execute("DELETE FROM deal_contact WHERE DEAL_ID = ?", (deal_id,))
    items = [i for i in items if i[0] > 0]
    if items and not any(p for _c, _s, p in items):
        items[0] = (items[0][0], items[0][1], True)
    conn.executemany(
        "INSERT OR REPLACE INTO deal_contact VALUES (?,?,?,?)",
        [(deal_id, cid, sort, "Y" if primary else "N") for cid, sort, primary in items],
    )
    primary = next((cid for cid, _s, p in items if p), None)
    conn.execute('UPDATE "deal" SET CONTACT_ID = ? WHERE ID = ?', (primary, deal_id))


def bindings(conn: sqlite3.Connection, deal_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not deal_ids:
        return out
    rows = conn.execute(
        "SELECT DEAL_ID, CONTACT_ID, SORT, IS_PRIMARY FROM deal_contact "
        f"WHERE DEAL_ID IN ({','.join('?' * len(deal_ids))}) ORDER BY DEAL_ID, SORT, CONTACT_ID",
        deal_ids,
    )
    for deal_id, contact_id, sort, primary in rows:
        out.setdefault(deal_id, []).append(
            {"CONTACT_ID": contact_id, "SORT": sort, "ROLE_ID": 0, "IS_PRIMARY": primary}
        )
    return out
