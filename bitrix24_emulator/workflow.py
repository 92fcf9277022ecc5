"""Pipeline bookkeeping on every write, as core-src does it: a stage belongs to its record's pipeline,
semantics and the mover follow the stage, and the stage history gets its row.

Stage history (docs crm/crm-stage-history-list.md) is kept for leads (1), deals (2), smart invoices (31) and
smart processes: a row when a record is created (TYPE_ID 1), moved to an intermediate (2) or a final stage
(3), or to another pipeline (5). Leads carry STATUS_ID, the others STAGE_ID and CATEGORY_ID. A record's rows
go when the record is deleted (`EntityTable.delete`; core-src `DealStageHistoryEntry::unregister`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from .dictionaries_seed import SMART_INVOICE_CATEGORY, deal_stage_entity
from .fieldmeta import EntityKind, stage_entity

CREATED, INTERMEDIATE, FINAL, PIPELINE_CHANGED = 1, 2, 3, 5
_DEFAULT_CATEGORY = {31: SMART_INVOICE_CATEGORY}


@dataclass(frozen=True)
class StageEvent:
    type_id: int
    category_id: int | None
    stage_id: str
    semantic: str


def has_history(kind: EntityKind) -> bool:
    return kind.type_id in (1, 2, 31) or kind.key.startswith("dynamic_")


def status_entity(kind: EntityKind, category: int) -> str:
    """The crm.status ENTITY_ID that lists this kind's stages in `category`."""
    if kind.type_id == 2:
        return deal_stage_entity(category)
    if kind.type_id == 1:
        return "STATUS"
    if kind.type_id == 7:
        return "QUOTE_STATUS"
    if kind.type_id == 31:
        return f"SMART_INVOICE_STAGE_{category}"
    return stage_entity(kind.type_id, category)


def semantic(sem: str | None) -> str:
    return {"S": "S", "F": "F"}.get(sem or "", "P")


def stages(conn: sqlite3.Connection, entity_id: str) -> list[tuple[str, str | None]]:
    return conn.execute(
        "SELECT STATUS_ID, SEMANTICS FROM status WHERE ENTITY_ID = ? ORDER BY SORT, ID", (entity_id,)
    ).fetchall()


def default_category(conn: sqlite3.Connection, type_id: int) -> int:
    row = conn.execute(
        "SELECT ID FROM category WHERE ENTITY_TYPE_ID = ? ORDER BY IS_DEFAULT DESC, SORT, ID LIMIT 1", (type_id,)
    ).fetchone()
    return int(row[0]) if row else _DEFAULT_CATEGORY.get(type_id, 0)


def apply(
    kind: EntityKind,
    conn: sqlite3.Connection,
    values: dict[str, Any],
    current: dict[str, Any] | None,
    now: int,
    user_id: int,
) -> StageEvent | None:
    """Fix the stage columns of a write in `values`; the history event it makes, if any."""
    cols = {f.name for f in kind.fields}
    stage_col = "STATUS_ID" if "STATUS_ID" in cols else "STAGE_ID" if "STAGE_ID" in cols else None
    if stage_col is None:
        return None
    category: int | None = None
    if "CATEGORY_ID" in cols:
        category = values.get("CATEGORY_ID", current["CATEGORY_ID"] if current else None)
        known = (
            category is not None
            and conn.execute(
                "SELECT 1 FROM category WHERE ENTITY_TYPE_ID = ? AND ID = ?", (kind.type_id, category)
            ).fetchone()
        )
        if not known:
            category = current["CATEGORY_ID"] if current else default_category(conn, kind.type_id)
        values["CATEGORY_ID"] = category
    listed = dict(stages(conn, status_entity(kind, category or 0)))
    if not listed:
        return None
    before = current[stage_col] if current else None
    stage = values.get(stage_col) or before
    if stage not in listed:
        stage = next(iter(listed))
    values[stage_col] = stage
    sem = semantic(listed[stage])
    moved = current is None or stage != before
    if moved and "MOVED_TIME" in cols:
        values["MOVED_TIME"] = now
        values["MOVED_BY_ID"] = user_id
    if moved and current is not None and "PREVIOUS_STAGE_ID" in cols:
        values["PREVIOUS_STAGE_ID"] = before
    if "STAGE_SEMANTIC_ID" in cols:
        values["STAGE_SEMANTIC_ID"] = sem
    if "STATUS_SEMANTIC_ID" in cols:
        values["STATUS_SEMANTIC_ID"] = sem
    if "CLOSED" in cols:
        values["CLOSED"] = "N" if sem == "P" else "Y"
    if kind.type_id == 2:
        values["IS_NEW"] = "Y" if stage.split(":")[-1] == "NEW" else "N"
    if not moved or not has_history(kind):
        return None
    if current is None:
        event = CREATED
    elif current.get("CATEGORY_ID") != category:
        event = PIPELINE_CHANGED
    else:
        event = INTERMEDIATE if sem == "P" else FINAL
    return StageEvent(event, category, stage, sem)


def log(conn: sqlite3.Connection, kind: EntityKind, owner_id: int, event: StageEvent | None, at: int) -> None:
    if event is not None:
        conn.execute(
            "INSERT INTO stage_history (ENTITY_TYPE_ID, TYPE_ID, OWNER_ID, CREATED_TIME, CATEGORY_ID, "
            "STAGE_SEMANTIC_ID, STAGE_ID) VALUES (?,?,?,?,?,?,?)",
            (kind.type_id, event.type_id, owner_id, at, event.category_id, event.semantic, event.stage_id),
        )
