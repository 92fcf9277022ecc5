"""Dictionaries agree with the records; the generator is deterministic and varied."""

from __future__ import annotations

from typing import Any

from bitrix24_emulator.store import Store

from .crm_fixtures import Caller, api_error, caller, make_store

pytest_plugins = ["tests.emulator.crm_fixtures"]

TABLES = [
    "deal",
    "lead",
    "contact",
    "company",
    "smart_invoice",
    "multifield",
    "userfield",
    "userfield_enum",
    "status",
    "category",
    "user",
    "sale_order",
    "payment",
]


def _statuses(call: Caller) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in call("crm.status.list").result:
        out.setdefault(row["ENTITY_ID"], set()).add(row["STATUS_ID"])
    return out


def _column(store: Store, table: str, column: str) -> set[Any]:
    return {v for (v,) in store.conn.execute(f'SELECT DISTINCT "{column}" FROM "{table}"') if v is not None}


def test_every_code_in_records_exists_in_crm_status_list(store: Store, call: Caller) -> None:
    statuses = _statuses(call)
    for category, stage in store.conn.execute('SELECT DISTINCT CATEGORY_ID, STAGE_ID FROM "deal"'):
        entity = "DEAL_STAGE" if category == 0 else f"DEAL_STAGE_{category}"
        assert stage in statuses[entity]
        assert category == 0 or stage.startswith(f"C{category}:")
    assert _column(store, "lead", "STATUS_ID") <= statuses["STATUS"]
    for table in ("deal", "lead", "contact"):
        assert _column(store, table, "SOURCE_ID") <= statuses["SOURCE"]
    assert _column(store, "deal", "TYPE_ID") <= statuses["DEAL_TYPE"]
    assert _column(store, "contact", "TYPE_ID") <= statuses["CONTACT_TYPE"]
    assert _column(store, "company", "COMPANY_TYPE") <= statuses["COMPANY_TYPE"]
    assert _column(store, "smart_invoice", "STAGE_ID") <= statuses["SMART_INVOICE_STAGE_5"]
    assert len({k for k in statuses if k.startswith("DEAL_STAGE")}) >= 4


def test_status_rows_and_entity_types(call: Caller) -> None:
    page = call("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}, "order": {"SORT": "ASC"}})
    assert page.total == len(page.result)
    won = next(r for r in page.result if r["STATUS_ID"] == "WON")
    # Doc: api-reference/crm/status/crm-status-list.md (DEAL_STAGE rows: CATEGORY_ID null, NAME_INIT "" unless
    # the entry is a system one); tutorials/crm/how-to-get-lists/how-to-get-elements-by-stage-filter.md
    # (DEAL_STAGE_10 rows: CATEGORY_ID "10")
    assert (won["SEMANTICS"], won["EXTRA"]["SEMANTICS"], won["CATEGORY_ID"]) == ("S", "success", None)
    assert {(r["SYSTEM"], r["NAME_INIT"] == r["NAME"]) for r in page.result} == {("Y", True), ("N", False)}
    assert {r["NAME_INIT"] for r in page.result if r["SYSTEM"] == "N"} == {""}
    other = call("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE_1"}}).result
    assert {r["CATEGORY_ID"] for r in other} == {"1"}
    assert set(won) == {
        "ID",
        "ENTITY_ID",
        "STATUS_ID",
        "NAME",
        "NAME_INIT",
        "SORT",
        "SYSTEM",
        "CATEGORY_ID",
        "COLOR",
        "SEMANTICS",
        "EXTRA",
    }
    sources = call("crm.status.list", {"filter": {"ENTITY_ID": "SOURCE"}}).result
    assert {"UC_GOOGLE_ADS", "UC_INSTAGRAM", "UC_MEDPORTAL"} <= {s["STATUS_ID"] for s in sources}
    types = {t["ID"]: t for t in call("crm.status.entity.types").result}
    assert types["DEAL_STAGE_1"]["PREFIX"] == "C1" and types["DEAL_STAGE_1"]["ENTITY_TYPE_ID"] == 2
    items = call("crm.status.entity.items", {"entityId": "DEAL_STAGE_2"}).result
    assert items[0] == {"NAME": "New request", "SORT": 10, "STATUS_ID": "C2:NEW"}


def test_categories(call: Caller) -> None:
    page = call("crm.category.list", {"entityTypeId": 2})
    cats = page.result["categories"]
    assert page.total == len(cats) == 4
    default = next(c for c in cats if c["id"] == 0)
    # Doc: api-reference/crm/universal/category/crm-category-list.md: the default pipeline has no origin keys,
    # others have them empty; errors NOT_FOUND "Smart process not found" and ENTITY_TYPE_NOT_SUPPORTED
    assert default == {"id": 0, "name": default["name"], "sort": default["sort"], "entityTypeId": 2, "isDefault": "Y"}
    assert all((c["originId"], c["originatorId"]) == ("", "") for c in cats if c["id"] != 0)
    unknown = api_error(call, "crm.category.list", {"entityTypeId": 1234})
    assert (unknown.code, unknown.description) == ("NOT_FOUND", "Smart process not found")
    assert api_error(call, "crm.category.list", {"entityTypeId": 1}).code == "ENTITY_TYPE_NOT_SUPPORTED"
    assert call("crm.category.list", {"entityTypeId": 31}).result["categories"][0]["id"] == 5
    assert api_error(call, "crm.category.list", {}).code == 100


def test_user_get_paging_and_fields() -> None:
    s = make_store(users=60, deals=2, leads=1, contacts=1, companies=1, invoices=1)
    call = caller(s)
    first = call("user.get", {})
    assert (len(first.result), first.total, first.next) == (50, 60, 50)
    second = call("user.get", {"start": 50})
    assert (len(second.result), second.next) == (10, None)
    user = first.result[0]
    assert user["ID"] == "1" and user["ACTIVE"] is True and isinstance(user["UF_DEPARTMENT"], list)
    assert {"NAME", "LAST_NAME", "EMAIL", "WORK_POSITION"} <= set(user)
    inactive = call("user.get", {"FILTER": {"ACTIVE": False}}).result
    assert inactive and all(u["ACTIVE"] is False for u in inactive)
    assert [u["ID"] for u in call("user.get", {"ID": 7}).result] == ["7"]
    # Doc: api-reference/user/user-get.md: `select` with names and masks, unknown names skipped
    picked = call("user.get", {"ID": 7, "select": ["ID", "NAME", "UF_*", "NO_SUCH_FIELD"]}).result
    assert set(picked[0]) == {"ID", "NAME", "UF_DEPARTMENT", "UF_EMPLOYMENT_DATE"}
    assert call("user.get", {"ID": 7, "select": ["*"]}).result == call("user.get", {"ID": 7}).result
    s.close()


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    return {t: store.conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in TABLES}


def test_same_seed_same_portal_other_seed_other_portal() -> None:
    a, b, c = make_store(seed=11), make_store(seed=11), make_store(seed=12)
    assert _dump(a) == _dump(b)
    assert _dump(a)["deal"] != _dump(c)["deal"]
    for s in (a, b, c):
        s.close()


def test_generated_data_is_varied(store: Store) -> None:
    conn = store.conn
    assert _column(store, "deal", "CURRENCY_ID") == {"RUB", "USD", "EUR", "TRY"}
    years = {y for (y,) in conn.execute("SELECT DISTINCT strftime('%Y', DATE_CREATE, 'unixepoch') FROM deal")}
    assert len(years) >= 4
    assert conn.execute("SELECT COUNT(*) FROM deal WHERE DATE_MODIFY < DATE_CREATE").fetchone()[0] == 0
    shared = conn.execute("SELECT MAX(c) FROM (SELECT COUNT(*) c FROM deal GROUP BY DATE_MODIFY)").fetchone()[0]
    assert shared >= 3  # several records share one second
    names = " ".join(n for (n,) in conn.execute("SELECT NAME || ' ' || LAST_NAME FROM contact"))
    assert any("А" <= ch <= "я" for ch in names) and any(ch in "ğşıçöüäß" for ch in names.lower())
    linked = conn.execute("SELECT COUNT(*) FROM deal WHERE COMPANY_ID IS NOT NULL AND CONTACT_ID IS NOT NULL")
    assert linked.fetchone()[0] > 0
    assert (
        conn.execute("SELECT COUNT(DISTINCT OWNER_ID) FROM sale_order WHERE OWNER_TYPE_ID = 2").fetchone()[0]
        < conn.execute("SELECT COUNT(*) FROM deal").fetchone()[0]
    )


def test_russian_names_agree_in_gender(store: Store) -> None:
    """Петрова is a woman's surname, Петрович a man's patronymic: no "Алексей Петрова" in the generated CRM."""
    rows = store.conn.execute(
        'SELECT NAME, SECOND_NAME, LAST_NAME FROM "contact" UNION ALL SELECT NAME, SECOND_NAME, LAST_NAME FROM "lead"'
    ).fetchall()
    russian = [r for r in rows if r[0] and "А" <= r[0][0] <= "я"]
    assert russian
    for first, second, last in russian:
        female = first.endswith(("а", "я"))
        if last.endswith(("ов", "ев", "ин", "ова", "ева", "ина")):
            assert last.endswith("а") == female, (first, last)
        if second:
            assert second.endswith("на") == female, (first, second)
