"""A file-backed store survives a restart: rows, user fields added at run time, indexes."""

from __future__ import annotations

import threading
from pathlib import Path

from bitrix24_emulator.clock import Clock
from bitrix24_emulator.data import seed_portal
from bitrix24_emulator.store import Store

from .crm_fixtures import caller


def test_reopened_file_store_keeps_data_and_user_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "portal.sqlite")
    first = Store(path, Clock("Europe/Moscow"))
    assert first.is_empty()
    seed_portal(first, deals=60, leads=5, contacts=5, companies=2, users=3)
    call = caller(first)
    call("crm.deal.userfield.add", {"fields": {"FIELD_NAME": "LATE", "USER_TYPE_ID": "double"}})
    call("crm.deal.update", {"id": 2, "fields": {"UF_CRM_LATE": "2.5"}})
    before = call("crm.deal.list", {"order": {"ID": "ASC"}}).result
    first.close()

    again = Store(path, Clock("Europe/Moscow"))
    assert not again.is_empty()
    call = caller(again)
    assert call("crm.deal.list", {"order": {"ID": "ASC"}}).result == before
    assert before[1]["UF_CRM_LATE"] == "2.5"
    assert call("crm.deal.fields").result["UF_CRM_LATE"]["type"] == "double"
    plan = again.conn.execute('EXPLAIN QUERY PLAN SELECT ID FROM "deal" WHERE DATE_MODIFY >= 0').fetchall()
    assert "ix_deal_modify" in str(plan)
    again.close()


def test_keyset_walks_the_primary_key() -> None:
    """`>ID` + ORDER BY ID + LIMIT 50 neither sorts nor scans: the path the bulk-export recipe relies on."""
    store = Store(":memory:", Clock("Europe/Moscow"))
    seed_portal(store, deals=10, leads=1, contacts=1, companies=1, users=1)
    plan = str(
        store.conn.execute(
            'EXPLAIN QUERY PLAN SELECT ID FROM "deal" "t" WHERE "t"."ID" > 5 ORDER BY "t"."ID" ASC LIMIT 50'
        ).fetchall()
    )
    assert "INTEGER PRIMARY KEY" in plan and "TEMP B-TREE" not in plan
    store.close()


def test_one_store_serves_many_threads() -> None:
    """The WSGI server is threaded: concurrent lists, updates and new user fields must not trip SQLite."""
    store = Store(":memory:", Clock("Europe/Moscow"))
    seed_portal(store, deals=200, leads=5, contacts=5, companies=2, users=3)
    call = caller(store)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                call("crm.deal.list", {"filter": {">ID": i * 5}, "order": {"ID": "ASC"}, "start": -1})
                call("crm.deal.update", {"id": 1 + (n * 20 + i) % 200, "fields": {"TITLE": f"t{n}-{i}"}})
            call("crm.deal.userfield.add", {"fields": {"FIELD_NAME": f"T{n}", "USER_TYPE_ID": "string"}})
        except BaseException as exc:  # collected: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {f"UF_CRM_T{n}" for n in range(6)} <= set(call("crm.deal.fields").result)
    store.close()


def test_a_file_from_an_older_emulator_gets_the_new_standard_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite")
    old = Store(path, Clock("Europe/Moscow"))
    seed_portal(old, deals=3, leads=1, contacts=1, companies=2, users=1)
    old.conn.execute('ALTER TABLE "company" DROP COLUMN "ADDRESS_LEGAL"')  # as written before the field existed
    old.close()
    again = Store(path, Clock("Europe/Moscow"))
    rows = caller(again)("crm.company.list", {"select": ["ID", "ADDRESS_LEGAL"], "order": {"ID": "ASC"}}).result
    assert rows == [{"ID": "1", "ADDRESS_LEGAL": None}, {"ID": "2", "ADDRESS_LEGAL": None}]
    again.close()
