"""The rest of a generated portal, coherent with its records: currencies, quotes, two smart processes with
their own user fields and pipelines, each record's stage history, the treatments sold (product rows that add
up to their deal's OPPORTUNITY), deals' contacts, activities with their communications, and calls.

Runs after the records exist and reads them back, so every binding points at a real record: stage history
ends at each record's current stage at its MOVED_TIME, a call belongs to a call activity of a real deal or lead.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

from . import smart_types
from .fieldmeta import default_settings
from .seed_pools import RATE, SERVICES
from .store import Store, UserField
from .workflow import CREATED, FINAL, INTERMEDIATE, has_history, semantic, stages, status_entity

BASE_CURRENCY = "RUB"
# (code, name, format, units per quote): TRY is quoted per 10 lira, as on many portals
_CURRENCIES = (
    ("RUB", "Russian Ruble", "# ₽", 1),
    ("USD", "US Dollar", "$#", 1),
    ("EUR", "Euro", "# €", 1),
    ("TRY", "Turkish Lira", "# ₺", 10),
)
QUOTE_STATUSES = (
    ("DRAFT", "New", None),
    ("SENT", "Sent to client", None),
    ("APPROVED", "Approved", "S"),
    ("DECLAINED", "Declined", "F"),
)
# Smart processes of the agency: (entityTypeId, title, code, pipelines, user fields)
SMART_PROCESSES: tuple[tuple[int, str, str, tuple[str, ...], tuple[tuple[str, str, str], ...]], ...] = (
    (
        1030,
        "Medical visas",
        "visa",
        ("Tourist visa", "Medical visa"),
        (("COUNTRY", "string", "Destination country"), ("APPOINTMENT", "date", "Consulate appointment")),
    ),
    (
        1032,
        "Patient trips",
        "trip",
        ("Trips",),
        (("NIGHTS", "integer", "Nights in clinic"), ("TRANSFER", "boolean", "Airport transfer")),
    ),
)
PRODUCT_IBLOCK_ID = 14  # the CRM's product catalog; its offers (SKUs) are another catalog, empty here
OFFERS_IBLOCK_ID = 15
CALL_PHONES = ("+7 900 123-45-67", "+90 532 765 43 21", "+49 151 2345 6789", "+971 50 123 4567")


def seed_wider_crm(store: Store, conn: sqlite3.Connection, rng: random.Random, users: int, end: int) -> None:
    """`end`: the generated portal's last moment; nothing is created or changed after it."""
    now = end
    _currencies(conn, now)
    _quote_statuses(conn)
    products = _products(conn, now)
    _smart_processes(store, conn, rng, users, now)
    _quotes(store, conn, rng, now)
    _deal_contacts(conn, rng)
    _product_rows(conn, rng, products)
    _stage_history(store, conn, rng)
    _activities(conn, rng, users)


def _currencies(conn: sqlite3.Connection, now: int) -> None:
    base = RATE[BASE_CURRENCY]
    conn.executemany(
        "INSERT INTO currency VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (
                code,
                units,
                round(base / RATE[code] * units, 4),
                100 * (i + 1),
                "Y" if code == BASE_CURRENCY else "N",
                name,
                fmt,
                2,
                now,
            )
            for i, (code, name, fmt, units) in enumerate(_CURRENCIES)
        ],
    )


def _quote_statuses(conn: sqlite3.Connection) -> None:
    conn.executemany(
        "INSERT INTO status (ENTITY_ID, STATUS_ID, NAME, NAME_INIT, SORT, SYSTEM, CATEGORY_ID, COLOR, SEMANTICS) "
        "VALUES ('QUOTE_STATUS',?,?,?,?,'Y',NULL,NULL,?)",
        [(sid, name, name, 10 * (i + 1), sem) for i, (sid, name, sem) in enumerate(QUOTE_STATUSES)],
    )


def _products(conn: sqlite3.Connection, now: int) -> list[tuple[int, str]]:
    rows = [(i + 1, PRODUCT_IBLOCK_ID, name, 1000.0 + 500 * i, "USD", "Y", now) for i, name in enumerate(SERVICES)]
    conn.executemany("INSERT INTO product VALUES (?,?,?,?,?,?,?)", rows)
    return [(r[0], r[2]) for r in rows]


def _smart_processes(store: Store, conn: sqlite3.Connection, rng: random.Random, users: int, now: int) -> None:
    deals = conn.execute("SELECT ID, CONTACT_ID, DATE_CREATE, CURRENCY_ID FROM deal ORDER BY ID").fetchall()
    for entity_type_id, title, code, pipelines, fields in SMART_PROCESSES:
        flags = smart_types.flags_of(
            {"isCategoriesEnabled": "Y" if len(pipelines) > 1 else "N", "isClientEnabled": "Y", "isSourceEnabled": "Y"}
        )
        type_id = smart_types.insert_type(
            conn, entity_type_id, title, flags, now - 86400 * 900, 1, code, tuple(enumerate(pipelines))
        )
        table = store.add_smart_process(type_id, entity_type_id)
        ufs = [
            table.add_userfield(
                UserField(
                    0,
                    "",
                    f"{table.kind.uf_prefix}{name}",
                    kind,
                    False,
                    False,
                    100 + 10 * i,
                    None,
                    default_settings(kind),
                    {"en": {"edit": label, "list": label, "filter": label}},
                )
            )
            for i, (name, kind, label) in enumerate(fields)
        ]
        categories = [
            r[0]
            for r in conn.execute("SELECT ID FROM category WHERE ENTITY_TYPE_ID = ? ORDER BY SORT", (entity_type_id,))
        ]
        listed = {c: stages(conn, status_entity(table.kind, c)) for c in categories}
        rows = []
        for deal_id, contact_id, created, currency in deals:
            if rng.random() > 0.25:
                continue
            category = rng.choice(categories)
            stage, _sem = rng.choice(listed[category])
            at = min(created + rng.randrange(3600, 86400 * 30), now - 3600)
            modified = min(at + rng.randrange(0, 86400 * 60), now)
            values = [
                f"{title} — deal {deal_id}",
                category,
                stage,
                contact_id,
                deal_id,
                currency,
                round(rng.randrange(100, 3000) * RATE[currency], 2),
                rng.randrange(1, users + 1),
                1,
                1,
                at,
                modified,
                modified,
                "Y",
                "N",
            ]
            for uf in ufs:
                values.append(
                    rng.choice(["Turkey", "Germany", "Israel", "UAE"])
                    if uf.user_type == "string"
                    else store.tf.day_of(at + 86400 * rng.randrange(5, 40))
                    if uf.user_type == "date"
                    else rng.randrange(1, 15)
                    if uf.user_type == "integer"
                    else rng.randrange(2)
                )
            rows.append(values)
        names = [
            "TITLE",
            "CATEGORY_ID",
            "STAGE_ID",
            "CONTACT_ID",
            "PARENT_ID_2",
            "CURRENCY_ID",
            "OPPORTUNITY",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
            "MOVED_TIME",
            "OPENED",
            "IS_MANUAL_OPPORTUNITY",
            *(uf.name for uf in ufs),
        ]
        _insert(conn, table.kind.key, names, rows)


def _insert(conn: sqlite3.Connection, table: str, names: list[str], rows: list[list[Any]]) -> None:
    if rows:
        cols = ", ".join(f'"{n}"' for n in names)
        conn.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({",".join("?" * len(names))})', rows)


def _quotes(store: Store, conn: sqlite3.Connection, rng: random.Random, end: int) -> None:
    deals = conn.execute(
        "SELECT ID, CONTACT_ID, COMPANY_ID, DATE_CREATE, CURRENCY_ID, OPPORTUNITY, ASSIGNED_BY_ID FROM deal "
        "WHERE OPPORTUNITY > 0 ORDER BY ID"
    ).fetchall()
    rows = []
    for deal_id, contact_id, company_id, created, currency, amount, assigned in deals:
        if rng.random() > 0.2:
            continue
        status, _name, sem = rng.choice(QUOTE_STATUSES)
        at = min(created + rng.randrange(3600, 86400 * 10), end - 86400 * 20)
        rows.append(
            [
                f"Quote for deal {deal_id}",
                f"Q-{deal_id:06d}",
                status,
                amount,
                "N",
                0.0,
                currency,
                deal_id,
                contact_id,
                company_id,
                store.tf.day_of(at),
                store.tf.day_of(at + 86400 * 30),
                "Y",
                "N" if sem is None else "Y",
                assigned,
                assigned,
                assigned,
                at,
                at + rng.randrange(0, 86400 * 20),
            ]
        )
    _insert(
        conn,
        "quote",
        [
            "TITLE",
            "QUOTE_NUMBER",
            "STATUS_ID",
            "OPPORTUNITY",
            "IS_MANUAL_OPPORTUNITY",
            "TAX_VALUE",
            "CURRENCY_ID",
            "DEAL_ID",
            "CONTACT_ID",
            "COMPANY_ID",
            "BEGINDATE",
            "CLOSEDATE",
            "OPENED",
            "CLOSED",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
        ],
        rows,
    )


def _deal_contacts(conn: sqlite3.Connection, rng: random.Random) -> None:
    """The deal's CONTACT_ID is its primary contact; a fifth of the deals have a companion or a relative too."""
    contacts = conn.execute("SELECT COUNT(*) FROM contact").fetchone()[0]
    rows = []
    for deal_id, contact_id in conn.execute("SELECT ID, CONTACT_ID FROM deal WHERE CONTACT_ID IS NOT NULL").fetchall():
        rows.append((deal_id, contact_id, 10, "Y"))
        if contacts > 2 and rng.random() < 0.2:
            for n in range(rng.randrange(1, 3)):
                other = rng.randrange(1, contacts + 1)
                if other != contact_id:
                    rows.append((deal_id, other, 20 + 10 * n, "N"))
    conn.executemany("INSERT OR IGNORE INTO deal_contact VALUES (?,?,?,?)", rows)


def _product_rows(conn: sqlite3.Connection, rng: random.Random, products: list[tuple[int, str]]) -> None:
    """Each deal with an amount sold 1-3 treatments whose rows add up to the amount exactly."""
    by_name = {name: pid for pid, name in products}
    rows = []
    for deal_id, title, amount in conn.execute(
        "SELECT ID, TITLE, OPPORTUNITY FROM deal WHERE OPPORTUNITY > 0 ORDER BY ID"
    ).fetchall():
        main = title.split(" — ")[0]
        chosen = [(by_name[main], main)] if main in by_name else [rng.choice(products)]
        for _ in range(rng.randrange(0, 3)):
            extra = rng.choice(products)
            if extra not in chosen:
                chosen.append(extra)
        cents = round(amount * 100)
        shares = sorted(rng.sample(range(1, cents), len(chosen) - 1)) if cents > len(chosen) else []
        parts = [b - a for a, b in zip([0, *shares], [*shares, cents], strict=True)] if shares else [cents]
        for n, ((pid, name), part) in enumerate(zip(chosen, parts, strict=False)):
            quantity = 2 if part % 2 == 0 and rng.random() < 0.2 else 1
            rows.append(("D", deal_id, pid, name, part / 100 / quantity, quantity, 0.0, None, "pcs", 10 * (n + 1)))
    conn.executemany(
        "INSERT INTO product_row (OWNER_TYPE, OWNER_ID, PRODUCT_ID, PRODUCT_NAME, PRICE, QUANTITY, DISCOUNT_SUM, "
        "TAX_RATE, MEASURE_NAME, SORT) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def _stage_history(store: Store, conn: sqlite3.Connection, rng: random.Random) -> None:
    """A path through each record's pipeline from its first stage to its current one: created at DATE_CREATE,
    the stages in between spread until MOVED_TIME, where it reached the current stage. Rows get their ids in
    time order, as the portal's log would."""
    events: list[tuple[int, int, int, int, int | None, str, str]] = []
    for table in store.tables.values():
        kind = table.kind
        if not has_history(kind):
            continue
        stage_col = "STATUS_ID" if kind.type_id == 1 else "STAGE_ID"
        category_sql = "CATEGORY_ID" if "CATEGORY_ID" in table.columns else "NULL"
        cache: dict[Any, list[tuple[str, str | None]]] = {}
        for rid, category, stage, created, moved in conn.execute(
            f'SELECT ID, {category_sql}, {stage_col}, DATE_CREATE, COALESCE(MOVED_TIME, DATE_MODIFY) FROM "{kind.key}"'
        ).fetchall():
            if category not in cache:
                cache[category] = stages(conn, status_entity(kind, category or 0))
            path = cache[category]
            names = [s for s, _sem in path]
            if stage not in names:
                continue
            sem = dict(path)[stage]
            at = max(created, moved or created)
            steps = [s for s, m in path[: names.index(stage)] if m is None]
            if sem is not None:  # a final stage is reached from some intermediate one
                steps = steps[: 1 + rng.randrange(max(1, len(steps)))]
            route = steps if steps and steps[0] == names[0] else [names[0], *steps]
            if route[-1] != stage:
                route.append(stage)
            times = [created] + sorted(rng.randrange(created, at + 1) for _ in route[1:-1]) + [at]
            for n, (step, when) in enumerate(zip(route, times[: len(route)], strict=False)):
                step_sem = semantic(dict(path)[step])
                kind_of = CREATED if n == 0 else INTERMEDIATE if step_sem == "P" else FINAL
                events.append((when, kind.type_id, kind_of, rid, category, step_sem, step))
    events.sort(key=lambda e: (e[0], e[1], e[3], e[2]))
    conn.executemany(
        "INSERT INTO stage_history (CREATED_TIME, ENTITY_TYPE_ID, TYPE_ID, OWNER_ID, CATEGORY_ID, STAGE_SEMANTIC_ID, "
        "STAGE_ID) VALUES (?,?,?,?,?,?,?)",
        events,
    )


def _activities(conn: sqlite3.Connection, rng: random.Random, users: int) -> None:
    """Calls, e-mails and to-dos on deals and leads, between their creation and last change; every call
    activity has its call record."""
    owners = [(2, *r) for r in conn.execute("SELECT ID, DATE_CREATE, DATE_MODIFY, CONTACT_ID FROM deal")]
    owners += [(1, r[0], r[1], r[2], None) for r in conn.execute("SELECT ID, DATE_CREATE, DATE_MODIFY FROM lead")]
    acts, comms, calls = [], [], []
    aid = 0
    for owner_type, owner_id, created, modified, contact_id in owners:
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            aid += 1
            kind = rng.choice(("call", "call", "email", "todo"))
            start = rng.randrange(created, max(created, modified) + 1)
            phone = rng.choice(CALL_PHONES)
            type_id, provider, ptype, subject = {
                "call": (2, "VOXIMPLANT_CALL", "CALL", f"Call {phone}"),
                "email": (4, "CRM_EMAIL", "EMAIL", "Treatment plan and prices"),
                "todo": (6, "CRM_TODO", "TODO", "Call back about the visa"),
            }[kind]
            done = rng.random() < 0.7
            responsible = rng.randrange(1, users + 1)
            direction = rng.choice((1, 2)) if kind != "todo" else 0
            acts.append(
                (
                    aid,
                    owner_type,
                    owner_id,
                    type_id,
                    provider,
                    ptype,
                    subject,
                    start,
                    start,
                    start,
                    start + 600,
                    start + 86400,
                    "Y" if done else "N",
                    2 if done else 1,
                    responsible,
                    2,
                    "",
                    direction,
                    responsible,
                    responsible,
                )
            )
            target = (3, contact_id) if contact_id else (owner_type, owner_id)
            if kind != "todo":
                value = phone if kind == "call" else f"patient{owner_id}@example.com"
                comms.append((aid, "PHONE" if kind == "call" else "EMAIL", value, target[0], target[1]))
            if kind == "call":
                duration = rng.randrange(0, 900)
                calls.append(
                    (
                        f"externalCall.{aid:08x}",
                        responsible,
                        phone,
                        direction,
                        duration,
                        start,
                        "200" if duration else "304",
                        "Success call" if duration else "Missed call",
                        round(duration / 60 * 3.5, 2),
                        BASE_CURRENCY,
                        "DEAL" if owner_type == 2 else "LEAD",
                        owner_id,
                        aid,
                    )
                )
    conn.executemany(
        "INSERT INTO activity (ID, OWNER_TYPE_ID, OWNER_ID, TYPE_ID, PROVIDER_ID, PROVIDER_TYPE_ID, SUBJECT, CREATED, "
        "LAST_UPDATED, START_TIME, END_TIME, DEADLINE, COMPLETED, STATUS, RESPONSIBLE_ID, PRIORITY, DESCRIPTION, "
        "DIRECTION, AUTHOR_ID, EDITOR_ID) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        acts,
    )
    conn.executemany(
        "INSERT INTO activity_communication (ACTIVITY_ID, TYPE, VALUE, ENTITY_TYPE_ID, ENTITY_ID) VALUES (?,?,?,?,?)",
        comms,
    )
    calls.sort(key=lambda c: c[5])
    conn.executemany(
        "INSERT INTO call (CALL_ID, PORTAL_USER_ID, PHONE_NUMBER, CALL_TYPE, CALL_DURATION, CALL_START_DATE, "
        "CALL_FAILED_CODE, CALL_FAILED_REASON, COST, COST_CURRENCY, CRM_ENTITY_TYPE, CRM_ENTITY_ID, CRM_ACTIVITY_ID) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        calls,
    )
