"""The portal's database: SQLite with a real column per CRM field, so Bitrix filters become WHERE clauses.

Why real columns: an ID keyset page (`>ID` + `ORDER BY ID` + LIMIT 50) walks the primary key and costs 50
rows, while OFFSET and COUNT visit every skipped or matched row, as on a real portal. User fields are columns
too (`ALTER TABLE` when `userfield.add` runs), multi-fields (PHONE/EMAIL/...) live in their own table.

Thread safety: one connection shared by the threaded WSGI server, every access under `self.lock`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .fieldmeta import ENTITIES, UF_STORAGE, EntityKind, StdField, smart_process_kind, uf_camel
from .filters import FilterColumn
from .values import Formatter, TimeFormat, std_formatter, uf_formatter

if TYPE_CHECKING:
    from .clock import Clock
    from .methods import Cost

PAGE = 50
# crm.item sends 0 for an empty company or contact link (docs crm-item-get.md's example)
_ITEM_ZERO_LINKS = ("crm_company", "crm_contact")
_SQL_TYPE = {
    "int": "INTEGER",
    "real": "REAL",
    "text": "TEXT",
    "yn": "TEXT",
    "bool": "INTEGER",
    "datetime": "INTEGER",
    "date": "TEXT",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS multifield (ID INTEGER PRIMARY KEY, ENTITY_ID TEXT NOT NULL, ELEMENT_ID INTEGER
NOT NULL,
    TYPE_ID TEXT NOT NULL, VALUE_TYPE TEXT NOT NULL, VALUE TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS userfield (ID INTEGER PRIMARY KEY, ENTITY_ID TEXT NOT NULL, FIELD_NAME TEXT NOT
NULL,
    USER_TYPE_ID TEXT NOT NULL, XML_ID TEXT, SORT INTEGER NOT NULL DEFAULT 100, MULTIPLE TEXT NOT NULL
    DEFAULT 'N',
    MANDATORY TEXT NOT NULL DEFAULT 'N', SHOW_FILTER TEXT NOT NULL DEFAULT 'E', SHOW_IN_LIST TEXT NOT NULL
    DEFAULT 'Y',
    EDIT_IN_LIST TEXT NOT NULL DEFAULT 'Y', IS_SEARCHABLE TEXT NOT NULL DEFAULT 'N', SETTINGS TEXT NOT NULL,
    LABELS TEXT NOT NULL, UNIQUE (ENTITY_ID, FIELD_NAME));
CREATE TABLE IF NOT EXISTS userfield_enum (ID INTEGER PRIMARY KEY, USER_FIELD_ID INTEGER NOT NULL, VALUE TEXT
NOT NULL,
    SORT INTEGER NOT NULL, DEF TEXT NOT NULL DEFAULT 'N', XML_ID TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS status (ID INTEGER PRIMARY KEY, ENTITY_ID TEXT NOT NULL, STATUS_ID TEXT NOT NULL,
    NAME TEXT NOT NULL, NAME_INIT TEXT, SORT INTEGER NOT NULL, SYSTEM TEXT NOT NULL, CATEGORY_ID INTEGER,
    COLOR TEXT, SEMANTICS TEXT);
CREATE TABLE IF NOT EXISTS category (ENTITY_TYPE_ID INTEGER NOT NULL, ID INTEGER NOT NULL, NAME TEXT NOT NULL,
    SORT INTEGER NOT NULL, IS_DEFAULT TEXT NOT NULL, PRIMARY KEY (ENTITY_TYPE_ID, ID));
CREATE TABLE IF NOT EXISTS user (ID INTEGER PRIMARY KEY, ACTIVE INTEGER NOT NULL, NAME TEXT, LAST_NAME TEXT,
    SECOND_NAME TEXT, EMAIL TEXT, WORK_POSITION TEXT, PERSONAL_GENDER TEXT, PERSONAL_MOBILE TEXT,
    PERSONAL_CITY TEXT, UF_DEPARTMENT TEXT NOT NULL, DATE_REGISTER INTEGER, LAST_LOGIN INTEGER, TIME_ZONE
    TEXT);
CREATE TABLE IF NOT EXISTS sale_order (ID INTEGER PRIMARY KEY, OWNER_TYPE_ID INTEGER NOT NULL,
    OWNER_ID INTEGER NOT NULL, CURRENCY TEXT NOT NULL, DATE_INSERT INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS payment (ID INTEGER PRIMARY KEY, ORDER_ID INTEGER NOT NULL, ACCOUNT_NUMBER TEXT
NOT NULL,
    PAID TEXT NOT NULL, DATE_PAID INTEGER, EMP_PAID_ID INTEGER, PAY_SYSTEM_ID INTEGER NOT NULL, SUM REAL NOT
    NULL,
    CURRENCY TEXT NOT NULL, DATE_BILL INTEGER NOT NULL, IS_RETURN TEXT NOT NULL DEFAULT 'N',
    MARKED TEXT NOT NULL DEFAULT 'N', XML_ID TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pay_system (ID INTEGER PRIMARY KEY, NAME TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS crm_type (ID INTEGER PRIMARY KEY, ENTITY_TYPE_ID INTEGER NOT NULL UNIQUE,
    TITLE TEXT NOT NULL, CODE TEXT NOT NULL DEFAULT '', FLAGS TEXT NOT NULL, CREATED_BY INTEGER NOT NULL,
    CREATED_TIME INTEGER NOT NULL, UPDATED_TIME INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS stage_history (ID INTEGER PRIMARY KEY, ENTITY_TYPE_ID INTEGER NOT NULL,
    TYPE_ID INTEGER NOT NULL, OWNER_ID INTEGER NOT NULL, CREATED_TIME INTEGER NOT NULL, CATEGORY_ID INTEGER,
    STAGE_SEMANTIC_ID TEXT NOT NULL, STAGE_ID TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS currency (CURRENCY TEXT PRIMARY KEY, AMOUNT_CNT INTEGER NOT NULL, AMOUNT REAL NOT
    NULL, SORT INTEGER NOT NULL, BASE TEXT NOT NULL, FULL_NAME TEXT NOT NULL, FORMAT_STRING TEXT NOT NULL,
    DECIMALS INTEGER NOT NULL, DATE_UPDATE INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS product (ID INTEGER PRIMARY KEY, IBLOCK_ID INTEGER NOT NULL, NAME TEXT NOT NULL,
    PRICE REAL NOT NULL, CURRENCY TEXT NOT NULL, ACTIVE TEXT NOT NULL, TIMESTAMP_X INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS product_row (ID INTEGER PRIMARY KEY, OWNER_TYPE TEXT NOT NULL, OWNER_ID INTEGER
    NOT NULL, PRODUCT_ID INTEGER NOT NULL, PRODUCT_NAME TEXT NOT NULL, PRICE REAL NOT NULL, QUANTITY REAL NOT
    NULL, DISCOUNT_SUM REAL NOT NULL DEFAULT 0, TAX_RATE REAL, MEASURE_NAME TEXT NOT NULL, SORT INTEGER NOT
    NULL);
CREATE TABLE IF NOT EXISTS deal_contact (DEAL_ID INTEGER NOT NULL, CONTACT_ID INTEGER NOT NULL, SORT INTEGER
    NOT NULL, IS_PRIMARY TEXT NOT NULL, PRIMARY KEY (DEAL_ID, CONTACT_ID));
CREATE TABLE IF NOT EXISTS activity (ID INTEGER PRIMARY KEY, OWNER_TYPE_ID INTEGER NOT NULL, OWNER_ID INTEGER
    NOT NULL, TYPE_ID INTEGER NOT NULL, PROVIDER_ID TEXT NOT NULL, PROVIDER_TYPE_ID TEXT, SUBJECT TEXT NOT
    NULL, CREATED INTEGER NOT NULL, LAST_UPDATED INTEGER NOT NULL, START_TIME INTEGER, END_TIME INTEGER,
    DEADLINE INTEGER, COMPLETED TEXT NOT NULL, STATUS INTEGER NOT NULL, RESPONSIBLE_ID INTEGER NOT NULL,
    PRIORITY INTEGER NOT NULL, DESCRIPTION TEXT NOT NULL DEFAULT '', DIRECTION INTEGER NOT NULL, AUTHOR_ID
    INTEGER NOT NULL, EDITOR_ID INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS activity_communication (ID INTEGER PRIMARY KEY, ACTIVITY_ID INTEGER NOT NULL,
    TYPE TEXT NOT NULL, VALUE TEXT NOT NULL, ENTITY_TYPE_ID INTEGER NOT NULL, ENTITY_ID INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS call (ID INTEGER PRIMARY KEY, CALL_ID TEXT NOT NULL, PORTAL_USER_ID INTEGER NOT
    NULL, PHONE_NUMBER TEXT NOT NULL, CALL_TYPE INTEGER NOT NULL, CALL_DURATION INTEGER NOT NULL,
    CALL_START_DATE INTEGER NOT NULL, CALL_FAILED_CODE TEXT NOT NULL, CALL_FAILED_REASON TEXT NOT NULL,
    COST REAL NOT NULL, COST_CURRENCY TEXT NOT NULL, CRM_ENTITY_TYPE TEXT, CRM_ENTITY_ID INTEGER,
    CRM_ACTIVITY_ID INTEGER);
"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_multifield_owner ON multifield (ENTITY_ID, ELEMENT_ID);
CREATE INDEX IF NOT EXISTS ix_order_owner ON sale_order (OWNER_TYPE_ID, OWNER_ID);
CREATE INDEX IF NOT EXISTS ix_payment_order ON payment (ORDER_ID);
CREATE INDEX IF NOT EXISTS ix_history_owner ON stage_history (ENTITY_TYPE_ID, OWNER_ID);
CREATE INDEX IF NOT EXISTS ix_product_row_owner ON product_row (OWNER_TYPE, OWNER_ID);
CREATE INDEX IF NOT EXISTS ix_activity_updated ON activity (LAST_UPDATED);
CREATE INDEX IF NOT EXISTS ix_activity_owner ON activity (OWNER_TYPE_ID, OWNER_ID);
CREATE INDEX IF NOT EXISTS ix_communication_activity ON activity_communication (ACTIVITY_ID);
"""


@dataclass
class UserField:
    id: int
    entity_id: str
    name: str
    user_type: str
    multiple: bool
    mandatory: bool
    sort: int
    xml_id: str | None
    settings: dict[str, Any]
    labels: dict[str, dict[str, str]]  # lang -> {"edit", "list", "filter"}
    show_filter: str = "E"
    show_in_list: str = "Y"
    edit_in_list: str = "Y"
    is_searchable: str = "N"
    items: list[dict[str, Any]] = field(default_factory=list)  # enumeration options

    @property
    def storage(self) -> str:
        return "text" if self.multiple else UF_STORAGE.get(self.user_type, "text")

    @property
    def value_storage(self) -> str:
        """Storage of one value (multiple values are a JSON array of these)."""
        return UF_STORAGE.get(self.user_type, "text")


@dataclass
class Column:
    """One field of a stored entity as the methods see it."""

    name: str  # legacy name, also the SQLite column name
    camel: str  # crm.item name
    type: str  # Bitrix type, or the user type id for UFs
    storage: str
    multiple: bool
    std: StdField | None
    uf: UserField | None
    legacy: Formatter
    item: Formatter

    @property
    def sql(self) -> str:
        return f'"t"."{self.name}"'

    def filter_column(self) -> FilterColumn:
        storage = self.uf.value_storage if self.uf else self.storage
        return FilterColumn(self.sql, self.type, storage, self.multiple)


class EntityTable:
    """Rows of one CRM entity type; call under `store.lock`."""

    def __init__(self, store: Store, kind: EntityKind):
        self.store = store
        self.kind = kind
        self.columns: dict[str, Column] = {}
        self.by_camel: dict[str, Column] = {}
        self.userfields: list[UserField] = []

    # ---- schema
    # ---------------------------------------------------------------------------------------------

    def create(self) -> None:
        cols = ", ".join(
            '"ID" INTEGER PRIMARY KEY' if f.name == "ID" else f'"{f.name}" {_SQL_TYPE[f.storage]}'
            for f in self.kind.fields
        )
        self.store.conn.execute(f'CREATE TABLE IF NOT EXISTS "{self.kind.key}" ({cols})')
        # a database file written by an older emulator lacks the standard fields added since: add them empty
        present = {row[1] for row in self.store.conn.execute(f'PRAGMA table_info("{self.kind.key}")')}
        for f in self.kind.fields:
            if f.name not in present:
                self.store.conn.execute(f'ALTER TABLE "{self.kind.key}" ADD COLUMN "{f.name}" {_SQL_TYPE[f.storage]}')

    def create_indexes(self) -> None:
        self.store.conn.execute(
            f'CREATE INDEX IF NOT EXISTS "ix_{self.kind.key}_modify" ON "{self.kind.key}" ("DATE_MODIFY")'
        )

    def rebuild_columns(self) -> None:
        tf = self.store.tf
        cols: dict[str, Column] = {}
        for f in self.kind.fields:
            cols[f.name] = Column(
                f.name,
                f.camel,
                f.type,
                f.storage,
                False,
                f,
                None,
                std_formatter(f.storage, tf, True, f.zero_when_empty),
                std_formatter(f.storage, tf, False, f.zero_when_empty or f.type in _ITEM_ZERO_LINKS),
            )
        for uf in self.userfields:
            cols[uf.name] = Column(
                uf.name,
                uf_camel(uf.name),
                uf.user_type,
                uf.storage,
                uf.multiple,
                None,
                uf,
                uf_formatter(uf.user_type, uf.value_storage, uf.multiple, tf, True, self._legacy_file),
                uf_formatter(uf.user_type, uf.value_storage, uf.multiple, tf, False, self._item_file),
            )
        self.columns = cols
        self.by_camel = {c.camel: c for c in cols.values()}

    def _legacy_file(self, rid: int, fid: int) -> dict[str, Any]:
        show = f"/bitrix/components/bitrix/crm.{self.kind.key}.show/show_file.php?ownerId={rid}&fileId={fid}"
        return {"id": fid, "showUrl": show, "downloadUrl": f"{show}&auth="}

    def _item_file(self, rid: int, fid: int) -> dict[str, Any]:
        base = "/bitrix/services/main/ajax.php?action=crm.controller.item.getFile"
        base += f"&entityTypeId={self.kind.type_id}"
        url = f"{base}&id={rid}&fileId={fid}"
        return {
            "id": fid,
            "url": url,
            "urlMachine": f"/rest/crm.controller.item.getFile?entityTypeId={self.kind.type_id}&id={rid}&fileId={fid}",
        }

    # ---- reads
    # ----------------------------------------------------------------------------------------------

    def page(
        self,
        cols: list[Column],
        where: str,
        params: list[Any],
        order: list[tuple[Column, str]],
        start: int,
        cost: Cost,
    ) -> tuple[list[tuple[Any, ...]], int | None, int | None]:
        """One page of 50: (rows as tuples with ID first, total or None, next or None).

        start >= 0 is rounded down to a multiple of 50 and counts the matches; start < 0 reads the first 50
        rows without counting (total None, no next).
        """
        offset = (start // PAGE) * PAGE if start >= 0 else 0
        names = ", ".join(['"t"."ID"', *(c.sql for c in cols)])
        order_sql = (" ORDER BY " + ", ".join(f"{c.sql} {d}" for c, d in order)) if order else ""
        table = f'"{self.kind.key}" "t"'
        conn = self.store.conn
        rows = conn.execute(
            f"SELECT {names} FROM {table} WHERE {where}{order_sql} LIMIT {PAGE} OFFSET {offset}", params
        ).fetchall()
        cost.rows_scanned += offset + len(rows)
        cost.rows_returned += len(rows)
        if start < 0:
            return rows, None, None
        total = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[0]
        cost.counted += total
        nxt = offset + PAGE if offset + PAGE < total else None
        return rows, total, nxt

    def get_row(self, rid: int, cols: list[Column]) -> tuple[Any, ...] | None:
        names = ", ".join(['"t"."ID"', *(c.sql for c in cols)])
        return self.store.conn.execute(
            f'SELECT {names} FROM "{self.kind.key}" "t" WHERE "t"."ID" = ?', (rid,)
        ).fetchone()

    def exists(self, rid: int) -> bool:
        return self.store.conn.execute(f'SELECT 1 FROM "{self.kind.key}" WHERE ID = ?', (rid,)).fetchone() is not None

    def multifields(self, ids: list[int], types: list[str]) -> dict[int, dict[str, list[tuple[Any, ...]]]]:
        """{element_id: {TYPE_ID: [(ID, VALUE_TYPE, VALUE), ...]}} for the page's ids, by multifield ID."""
        out: dict[int, dict[str, list[tuple[Any, ...]]]] = {}
        if not ids or not types:
            return out
        sql = (
            f"SELECT ELEMENT_ID, TYPE_ID, ID, VALUE_TYPE, VALUE FROM multifield WHERE ENTITY_ID = ? AND "
            f"ELEMENT_ID IN ({','.join('?' * len(ids))}) "
            f"AND TYPE_ID IN ({','.join('?' * len(types))}) ORDER BY ID"
        )
        for eid, tid, mid, vtype, value in self.store.conn.execute(sql, [self.kind.type_name, *ids, *types]):
            out.setdefault(eid, {}).setdefault(tid, []).append((mid, vtype, value))
        return out

    # ---- writes
    # ---------------------------------------------------------------------------------------------

    def insert(self, values: dict[str, Any]) -> int:
        names = list(values)
        sql = (
            f'INSERT INTO "{self.kind.key}" ({", ".join(chr(34) + n + chr(34) for n in names)}) '
            f"VALUES ({','.join('?' * len(names))})"
        )
        cur = self.store.conn.execute(sql, [values[n] for n in names])
        return int(cur.lastrowid or 0)

    def update(self, rid: int, values: dict[str, Any]) -> None:
        if not values:
            return
        sets = ", ".join(f'"{n}" = ?' for n in values)
        self.store.conn.execute(f'UPDATE "{self.kind.key}" SET {sets} WHERE ID = ?', [*values.values(), rid])

    def delete(self, rid: int) -> None:
        """A record goes with what hangs on it: multi-fields, stage history, product rows, contact links."""
        conn = self.store.conn
        conn.execute(f'DELETE FROM "{self.kind.key}" WHERE ID = ?', (rid,))
        conn.execute("DELETE FROM multifield WHERE ENTITY_ID = ? AND ELEMENT_ID = ?", (self.kind.type_name, rid))
        conn.execute("DELETE FROM stage_history WHERE ENTITY_TYPE_ID = ? AND OWNER_ID = ?", (self.kind.type_id, rid))
        conn.execute("DELETE FROM product_row WHERE OWNER_TYPE = ? AND OWNER_ID = ?", (self.kind.crm_prefix, rid))
        if self.kind.type_id == 2:
            conn.execute("DELETE FROM deal_contact WHERE DEAL_ID = ?", (rid,))

    def write_multifields(self, rid: int, type_id: str, changes: list[dict[str, Any]]) -> None:
        """Legacy multifield writes: without ID adds, with ID changes, empty VALUE or DELETE=Y removes."""
        conn = self.store.conn
        for ch in changes:
            if not isinstance(ch, dict):
                continue
            mid = ch.get("ID") or ch.get("id")
            value = ch.get("VALUE", ch.get("value"))
            vtype = str(ch.get("VALUE_TYPE") or ch.get("valueType") or "WORK")
            delete = str(ch.get("DELETE", "N")).upper() == "Y" or value in (None, "")
            key = (self.kind.type_name, rid, type_id)
            if mid:
                if delete:
                    conn.execute(
                        "DELETE FROM multifield WHERE ID = ? AND ENTITY_ID = ? AND ELEMENT_ID = ? AND TYPE_ID = ?",
                        (int(mid), *key),
                    )
                else:
                    conn.execute(
                        "UPDATE multifield SET VALUE = ?, VALUE_TYPE = ? WHERE ID = ? AND ENTITY_ID = ? "
                        "AND ELEMENT_ID = ? AND TYPE_ID = ?",
                        (str(value), vtype, int(mid), *key),
                    )
            elif not delete:
                conn.execute(
                    "INSERT INTO multifield (ENTITY_ID, ELEMENT_ID, TYPE_ID, VALUE_TYPE, VALUE) VALUES (?, ?, ?, ?, ?)",
                    (*key, vtype, str(value)),
                )
        if type_id in ("PHONE", "EMAIL") and f"HAS_{type_id}" in self.columns:
            has = conn.execute(
                "SELECT 1 FROM multifield WHERE ENTITY_ID = ? AND ELEMENT_ID = ? AND TYPE_ID = ? LIMIT 1",
                (self.kind.type_name, rid, type_id),
            ).fetchone()
            self.update(rid, {f"HAS_{type_id}": "Y" if has else "N"})

    def add_userfield(self, uf: UserField) -> UserField:
        """Registers a user field and adds its column; existing rows hold NULL."""
        conn = self.store.conn
        cur = conn.execute(
            "INSERT INTO userfield (ENTITY_ID, FIELD_NAME, USER_TYPE_ID, XML_ID, SORT, MULTIPLE, MANDATORY, "
            "SHOW_FILTER, SHOW_IN_LIST, EDIT_IN_LIST, IS_SEARCHABLE, SETTINGS, LABELS) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                self.kind.uf_entity,
                uf.name,
                uf.user_type,
                uf.xml_id,
                uf.sort,
                "Y" if uf.multiple else "N",
                "Y" if uf.mandatory else "N",
                uf.show_filter,
                uf.show_in_list,
                uf.edit_in_list,
                uf.is_searchable,
                json.dumps(uf.settings, ensure_ascii=False),
                json.dumps(uf.labels, ensure_ascii=False),
            ),
        )
        uf.id = int(cur.lastrowid or 0)
        uf.entity_id = self.kind.uf_entity
        for i, item in enumerate(uf.items):
            item.setdefault("SORT", (i + 1) * 10)
            item.setdefault("DEF", "N")
            item["XML_ID"] = item.get("XML_ID") or f"{uf.name.lower()}_{i + 1}"
            cur = conn.execute(
                "INSERT INTO userfield_enum (USER_FIELD_ID, VALUE, SORT, DEF, XML_ID) VALUES (?,?,?,?,?)",
                (uf.id, item["VALUE"], int(item["SORT"]), item["DEF"], item["XML_ID"]),
            )
            item["ID"] = int(cur.lastrowid or 0)
        conn.execute(f'ALTER TABLE "{self.kind.key}" ADD COLUMN "{uf.name}" {_SQL_TYPE[uf.storage]}')
        self.userfields.append(uf)
        self.rebuild_columns()
        return uf


class Store:
    """The portal's data. `tables[key]` per entity (lead, deal, contact, company, smart_invoice, quote, and a
    `dynamic_<entityTypeId>` per smart process in `crm_type`)."""

    def __init__(self, path: str, clock: Clock):
        self.clock = clock
        self.tf = TimeFormat(clock.tz, clock.time)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA cache_size = -262144")
        self.tables = {key: EntityTable(self, kind) for key, kind in ENTITIES.items()}
        with self.lock:
            self.conn.executescript(_SCHEMA)
            for type_id, entity_type_id in self.conn.execute("SELECT ID, ENTITY_TYPE_ID FROM crm_type"):
                kind = smart_process_kind(type_id, entity_type_id)
                self.tables[kind.key] = EntityTable(self, kind)
            for table in self.tables.values():
                table.create()
            self._load_userfields()

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def table(self, key: str) -> EntityTable:
        return self.tables[key]

    def by_type_id(self, entity_type_id: int) -> EntityTable | None:
        """The table of an entityTypeId (a smart process's only while its type exists)."""
        return next((t for t in self.tables.values() if t.kind.type_id == entity_type_id), None)

    def add_smart_process(self, type_id: int, entity_type_id: int) -> EntityTable:
        """A smart process's table, made when its type is added (call under the lock)."""
        table = EntityTable(self, smart_process_kind(type_id, entity_type_id))
        self.tables[table.kind.key] = table
        table.create()
        table.create_indexes()
        table.rebuild_columns()
        return table

    def drop_smart_process(self, entity_type_id: int) -> None:
        table = self.by_type_id(entity_type_id)
        if table is not None:
            del self.tables[table.kind.key]
            self.conn.execute(f'DROP TABLE IF EXISTS "{table.kind.key}"')

    def is_empty(self) -> bool:
        with self.lock:
            return (
                self.conn.execute('SELECT 1 FROM "deal" LIMIT 1').fetchone() is None
                and self.conn.execute("SELECT 1 FROM status LIMIT 1").fetchone() is None
            )

    @contextmanager
    def bulk_load(self) -> Iterator[sqlite3.Connection]:
        """Fast loading: no journal, no fsync, one transaction; indexes are built afterwards."""
        with self.lock:
            conn = self.conn
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
            self.create_indexes()
            conn.execute("ANALYZE")
            # API writes afterwards get statement rollback again (a failed statement leaves no half-row)
            conn.execute("PRAGMA journal_mode = MEMORY")

    def create_indexes(self) -> None:
        with self.lock:
            self.conn.executescript(_INDEXES)
            for table in self.tables.values():
                table.create_indexes()

    def _load_userfields(self) -> None:
        conn = self.conn
        items: dict[int, list[dict[str, Any]]] = {}
        for fid, iid, value, sort, default, xml in conn.execute(
            "SELECT USER_FIELD_ID, ID, VALUE, SORT, DEF, XML_ID FROM userfield_enum ORDER BY SORT, ID"
        ):
            items.setdefault(fid, []).append({"ID": iid, "VALUE": value, "SORT": sort, "DEF": default, "XML_ID": xml})
        by_entity = {t.kind.uf_entity: t for t in self.tables.values()}
        for t in self.tables.values():
            t.userfields = []
        for row in conn.execute(
            "SELECT ID, ENTITY_ID, FIELD_NAME, USER_TYPE_ID, XML_ID, SORT, MULTIPLE, MANDATORY, SHOW_FILTER, "
            "SHOW_IN_LIST, EDIT_IN_LIST, IS_SEARCHABLE, SETTINGS, LABELS FROM userfield ORDER BY SORT, ID"
        ):
            uf = UserField(
                row[0],
                row[1],
                row[2],
                row[3],
                row[6] == "Y",
                row[7] == "Y",
                row[5],
                row[4],
                json.loads(row[12]),
                json.loads(row[13]),
                row[8],
                row[9],
                row[10],
                row[11],
                items.get(row[0], []),
            )
            if row[1] in by_entity:
                by_entity[row[1]].userfields.append(uf)
        for t in self.tables.values():
            t.rebuild_columns()
