"""Smart-process types (`crm.type.*`): each a row in `crm_type` with its flags, a default pipeline and its
stages, and a table of items (`Store.add_smart_process`).

entityTypeIds of new types are even numbers from 1030 up, as on current portals (docs
crm/universal/user-defined-object-types/index.md); a pipeline's stages are `DT<entityTypeId>_<category>:NEW`
and so on, listed in crm.status under `DYNAMIC_<entityTypeId>_STAGE_<category>`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .fieldmeta import stage_entity, stage_prefix

FIRST_ENTITY_TYPE_ID = 1030
FLAGS = (
    "isCategoriesEnabled",
    "isStagesEnabled",
    "isBeginCloseDatesEnabled",
    "isClientEnabled",
    "isUseInUserfieldEnabled",
    "isLinkWithProductsEnabled",
    "isMycompanyEnabled",
    "isDocumentsEnabled",
    "isSourceEnabled",
    "isObserversEnabled",
    "isRecyclebinEnabled",
    "isAutomationEnabled",
    "isBizProcEnabled",
    "isSetOpenPermissions",
    "isPaymentsEnabled",
    "isCountersEnabled",
)
DEFAULT_STAGES = (
    ("NEW", "New", None, "#22B9FF"),
    ("PREPARATION", "Preparation", None, "#FFA900"),
    ("CLIENT", "In progress", None, "#2FC6F6"),
    ("SUCCESS", "Success", "S", "#7BD500"),
    ("FAIL", "Failed", "F", "#FF5752"),
)
_COLUMNS = "ID, ENTITY_TYPE_ID, TITLE, CODE, FLAGS, CREATED_BY, CREATED_TIME, UPDATED_TIME"


def flags_of(fields: dict[str, Any]) -> dict[str, str]:
    """Y/N per flag; stages on unless switched off, the rest off unless switched on (a new type's defaults)."""
    on = {"isStagesEnabled", "isClientEnabled", "isUseInUserfieldEnabled"}
    out = {}
    for flag in FLAGS:
        value = fields.get(flag, "Y" if flag in on else "N")
        out[flag] = "Y" if str(value).upper() in ("Y", "1", "TRUE") else "N"
    return out


def next_entity_type_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(ENTITY_TYPE_ID) FROM crm_type").fetchone()
    return max(FIRST_ENTITY_TYPE_ID, (row[0] or 0) + 2)


def insert_type(
    conn: sqlite3.Connection,
    entity_type_id: int,
    title: str,
    flags: dict[str, str],
    at: int,
    user_id: int,
    code: str = "",
    categories: tuple[tuple[int, str], ...] = ((0, "Default"),),
    stages: tuple[tuple[str, str, str | None, str], ...] = DEFAULT_STAGES,
) -> int:
    """The type row, its pipelines (category ids as given; the first is the default) and their stages."""
    cur = conn.execute(
        "INSERT INTO crm_type (ENTITY_TYPE_ID, TITLE, CODE, FLAGS, CREATED_BY, CREATED_TIME, UPDATED_TIME) "
        "VALUES (?,?,?,?,?,?,?)",
        (entity_type_id, title, code, json.dumps(flags), user_id, at, at),
    )
    next_category = conn.execute("SELECT COALESCE(MAX(ID), 0) + 1 FROM category").fetchone()[0]
    for n, (_cid, name) in enumerate(categories):
        cid = next_category + n
        conn.execute(
            "INSERT INTO category VALUES (?,?,?,?,?)",
            (entity_type_id, cid, name, 100 * (n + 1), "Y" if n == 0 else "N"),
        )
        for i, (sid, stage_name, sem, color) in enumerate(stages):
            status = stage_prefix(entity_type_id, cid) + sid
            conn.execute(
                "INSERT INTO status (ENTITY_ID, STATUS_ID, NAME, NAME_INIT, SORT, SYSTEM, CATEGORY_ID, COLOR, "
                "SEMANTICS) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    stage_entity(entity_type_id, cid),
                    status,
                    stage_name,
                    stage_name,
                    10 * (i + 1),
                    "Y" if sid in ("NEW", "SUCCESS", "FAIL") else "N",
                    cid,
                    color,
                    sem,
                ),
            )
    return int(cur.lastrowid or 0)


def type_rows(conn: sqlite3.Connection, where: str = "1=1", args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT {_COLUMNS} FROM crm_type WHERE {where} ORDER BY ID", args).fetchall()


def forget_type(conn: sqlite3.Connection, entity_type_id: int) -> None:
    conn.execute("DELETE FROM crm_type WHERE ENTITY_TYPE_ID = ?", (entity_type_id,))
    conn.execute("DELETE FROM status WHERE ENTITY_ID LIKE ?", (f"DYNAMIC_{entity_type_id}_STAGE_%",))
    conn.execute("DELETE FROM category WHERE ENTITY_TYPE_ID = ?", (entity_type_id,))
