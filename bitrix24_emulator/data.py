"""A deterministic, realistic portal: same seed, same records (ids, values, timestamps).

The agency sells medical tourism (treatment abroad, dental tours, partner clinics) to people from many
countries, so names come in Russian, English, German, Turkish and Arabic; money in RUB, USD, EUR and TRY;
records spread over five years that end at a fixed instant (`PORTAL_END`), ids in creation order, and some
seconds shared by many records (imports, robots), as on real portals.

Speed (1,000,000 deals, 1,000,000 leads, 600,000 contacts and 200,000 companies in about 40 s): rows are
tuples picked from precomputed pools with one or two `getrandbits` draws per row, loaded with `executemany`
in one transaction without a journal; multi-fields are computed in SQL from the loaded rows; indexes last.
"""

from __future__ import annotations

import json
import random
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from .dictionaries_seed import (
    DEAL_CATEGORIES,
    LEAD_STATUSES,
    PAY_SYSTEMS,
    SIMPLE_DICTIONARIES,
    SMART_INVOICE_CATEGORY,
    SMART_INVOICE_STAGES,
    SOURCES,
    status_rows,
)
from .fieldmeta import default_settings
from .seed_pools import (
    CITIES,
    COMPANY_WORDS,
    CURRENCIES,
    DOMAINS,
    FIRST,
    LANGS,
    LAST,
    POSITIONS,
    RATE,
    RU_PATRONYMICS,
    SERVICES,
    TRANSLIT,
    UF_PLAN,
    person_last_name,
    ru_female,
    utm_of,
)
from .seed_wider_crm import seed_wider_crm
from .store import EntityTable, Store, UserField

PORTAL_END = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp())
PORTAL_START = PORTAL_END - 5 * 365 * 86400
TEMPLATES = 512


class _Bits:
    """Cheap slices of one wide random draw: `take(n)` is a uniform int in [0, n) and consumes its share."""

    __slots__ = ("x",)

    def __init__(self, x: int):
        self.x = x

    def take(self, n: int) -> int:
        v = self.x % n
        self.x //= n
        return v


def _users(rng: random.Random, n: int) -> list[tuple[Any, ...]]:
    rows = []
    positions = [
        "Administrator",
        "Sales manager",
        "Медицинский координатор",
        "Patient coordinator",
        "Marketing",
        "Buchhaltung",
        "Satış temsilcisi",
        "Head of sales",
    ]
    for uid in range(1, n + 1):
        lang = LANGS[(uid - 1) % len(LANGS)]
        first = rng.choice(FIRST[lang])
        last = person_last_name(first, rng.choice(LAST[lang]), lang)
        email = f"{rng.choice(TRANSLIT)}.{uid}@medtravel.example"
        dept = [1] if uid == 1 else sorted({rng.randint(1, 6) for _ in range(rng.randint(1, 2))})
        reg = PORTAL_START - 86400 * rng.randint(1, 400) if uid < 10 else PORTAL_START + (uid * 86400 * 30)
        active = 0 if uid > 3 and rng.random() < 0.12 else 1
        position = positions[0] if uid == 1 else rng.choice(positions[1:])
        gender, mobile, city = rng.choice(["M", "F", ""]), rng.randint(9000000000, 9999999999), rng.choice(CITIES)[0]
        last_login = PORTAL_END - rng.randint(0, 86400 * 60)
        rows.append(
            (
                uid,
                active,
                first,
                last,
                None,
                email,
                position,
                gender,
                f"+7{mobile}",
                city,
                json.dumps(dept),
                reg,
                last_login if uid < n or n == 1 else None,  # the newest user has not logged in yet
                "Europe/Moscow" if lang == "ru" else "",
            )
        )
    return rows


# ---- user fields ------------------------------------------------------------------------------------------


def make_userfield(
    name: str,
    user_type: str,
    labels: dict[str, dict[str, str]],
    *,
    multiple: bool = False,
    sort: int = 100,
    items: list[str] | None = None,
    mandatory: bool = False,
) -> UserField:
    return UserField(
        0,
        "",
        name,
        user_type,
        multiple,
        mandatory,
        sort,
        None,
        default_settings(user_type),
        labels,
        items=[{"VALUE": v, "SORT": (i + 1) * 10, "DEF": "N"} for i, v in enumerate(items or [])],
    )


def _uf_value(uf: UserField, rng: random.Random, counts: dict[str, int], users: int) -> Any:
    """One stored value for a user field (None in ~35% of cases: UFs are often empty)."""
    if uf.name.endswith("64A29A1CD5CC2") or rng.random() < 0.35:
        return None
    t = uf.user_type
    if uf.multiple:
        vals = []
        for _ in range(rng.randint(1, 3)):
            single = UserField(0, "", uf.name, t, False, False, 0, None, {}, {}, items=uf.items)
            v = _uf_value_single(single, rng, counts, users)
            if v is not None and v not in vals:
                vals.append(v)
        return json.dumps(vals, ensure_ascii=False)
    return _uf_value_single(uf, rng, counts, users)


def _uf_value_single(uf: UserField, rng: random.Random, counts: dict[str, int], users: int) -> Any:
    t = uf.user_type
    if t == "string":
        return rng.choice(
            [
                "AB1234567",
                "7712 345678",
                "U98765432",
                "Gonarthrosis",
                "Alopecia",
                "Кариес",
                "Diabetes Typ 2",
                "Hipertansiyon",
                "ارتفاع ضغط الدم",
                'Consult: "urgent" / 2nd opinion',
            ]
        )
    if t == "integer":
        return rng.randint(0, 90)
    if t == "double":
        return round(rng.uniform(0, 35), rng.choice([0, 1, 2]))
    if t == "boolean":
        return rng.randint(0, 1)
    if t == "date":
        return datetime.fromtimestamp(rng.randint(PORTAL_START, PORTAL_END + 86400 * 200), UTC).date().isoformat()
    if t == "datetime":
        return rng.randint(PORTAL_START, PORTAL_END)
    if t == "enumeration":
        return rng.choice(uf.items)["ID"]
    if t == "money":
        cur = rng.choice(CURRENCIES)
        amount = rng.choice([300, 1500, 2500.5, 99.99, 120000, 45000])
        return f"{amount}|{cur}"
    if t == "url":
        return rng.choice(
            [
                "https://medtravel.example/hair",
                "https://medtravel.example/dental?utm_source=google",
                "https://klinik.example.de/",
                "https://saglik.example.com.tr/tr/",
            ]
        )
    if t == "employee":
        return rng.randint(1, users)
    if t == "crm":
        if rng.random() < 0.5 and counts["contact"]:
            return f"C_{rng.randint(1, counts['contact'])}"
        return f"CO_{rng.randint(1, max(1, counts['company']))}"
    if t == "address":
        return rng.choice(
            [
                "Tverskaya st. 7, Moscow, Russia|55.757;37.615|17",
                "Unter den Linden 5, Berlin|52.517;13.389",
                "Lara Cd. 12, Antalya, Türkiye|36.853;30.782|42",
                "Sheikh Zayed Rd, Dubai|25.2;55.27",
            ]
        )
    if t == "file":
        return rng.randint(1000, 99999)
    return None


# ---- records ----------------------------------------------------------------------------------------------


# A medical-tourism agency's year: enquiries peak in spring and autumn, fall in the summer heat and over the
# new-year holidays (January..December); and the agency grows, its last year twice as busy as its first.
SEASON = (0.7, 0.9, 1.25, 1.35, 1.2, 1.0, 0.7, 0.7, 1.25, 1.35, 1.1, 0.6)
GROWTH = 1.0


def _day_weights() -> tuple[list[float], list[float]]:
    """Each day's share of the records over the portal's five years, and their running sum (from 0)."""
    days = (PORTAL_END - PORTAL_START - 3600) // 86400
    weights = [
        SEASON[datetime.fromtimestamp(PORTAL_START + d * 86400, UTC).month - 1] * (1 + GROWTH * d / days)
        for d in range(days)
    ]
    return weights, [0.0, *accumulate(weights)]


_WEIGHTS, _RUNNING = _day_weights()


class _Timeline:
    """Creation times in id order over five years, as busy as the season (`SEASON`, `GROWTH`), with bursts of
    records sharing one second (imports)."""

    def __init__(self, rng: random.Random, n: int):
        self.n = max(n, 1)
        # the first index of each burst of 25 (a multiple of 25: `created` looks bursts up by i - i % 25)
        self.burst = {rng.randrange(self.n) // 25 * 25 for _ in range(max(1, self.n // 400))}
        self.mass_updates = sorted(rng.randint(PORTAL_END - 86400 * 400, PORTAL_END - 600) for _ in range(8))

    def created(self, i: int, b: _Bits) -> int:
        if (i - i % 25) in self.burst:  # 25 records created in the same second
            return self._at(i - i % 25)
        return self._at(i + b.take(1000) / 1000)

    def _at(self, position: float) -> int:
        """The instant by which `position` of the `n` records exist: ids stay in creation order."""
        target = position / self.n * _RUNNING[-1]
        day = min(bisect_right(_RUNNING, target) - 1, len(_WEIGHTS) - 1)
        return PORTAL_START + int((day + (target - _RUNNING[day]) / _WEIGHTS[day]) * 86400)

    def modified(self, created: int, b: _Bits) -> int:
        kind = b.take(20)
        if kind < 6:
            return created
        if kind == 6:  # a robot touched many records in the same second
            late = [t for t in self.mass_updates if t >= created]
            if late:
                return late[b.take(len(late))]
        left = PORTAL_END - created
        frac = b.take(1000) / 1000
        return created + int(left * frac * frac)


def _person_names(rng: random.Random) -> list[tuple[str, str, str | None, str]]:
    out = []
    for _ in range(TEMPLATES):
        lang = rng.choice(LANGS)
        patronymic = rng.randrange(3) if lang == "ru" and rng.random() < 0.5 else None
        first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
        second = None if patronymic is None else RU_PATRONYMICS[ru_female(first)][patronymic]
        out.append((first, person_last_name(first, last, lang), second, lang))
    return out


def _templates(make: Callable[[], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """TEMPLATES pre-drawn value tuples: a row picks one instead of drawing each value itself."""
    return [make() for _ in range(TEMPLATES)]


def _insert(conn: Any, table: EntityTable, names: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    cols = ", ".join(f'"{n}"' for n in names)
    conn.executemany(f'INSERT INTO "{table.kind.key}" ({cols}) VALUES ({",".join("?" * len(names))})', rows)


def seed_portal(
    store: Store,
    *,
    seed: int = 7,
    deals: int = 500,
    leads: int = 500,
    contacts: int = 300,
    companies: int = 100,
    invoices: int | None = None,
    users: int = 25,
) -> None:
    """Fills an empty store with a whole portal; deterministic in `seed` and the counts."""
    rng = random.Random(seed)
    invoices = deals // 10 if invoices is None else invoices
    counts = {
        "deal": deals,
        "lead": leads,
        "contact": contacts,
        "company": companies,
        "smart_invoice": invoices,
    }
    with store.bulk_load() as conn:
        conn.executemany("INSERT INTO user VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", _users(rng, max(users, 1)))
        conn.executemany(
            "INSERT INTO status (ENTITY_ID, STATUS_ID, NAME, NAME_INIT, SORT, SYSTEM, CATEGORY_ID, "
            "COLOR, SEMANTICS) VALUES (?,?,?,?,?,?,?,?,?)",
            [(e, s, n, n if sy == "Y" else "", so, sy, c, col, sem) for e, s, n, so, sy, c, col, sem in status_rows()],
        )
        conn.executemany(
            "INSERT INTO category VALUES (?,?,?,?,?)",
            [(2, cid, name, sort, "Y" if cid == 0 else "N") for cid, (name, sort, _s) in DEAL_CATEGORIES.items()]
            + [(31, SMART_INVOICE_CATEGORY, "Invoices", 500, "Y")],
        )
        conn.executemany("INSERT INTO pay_system VALUES (?,?)", PAY_SYSTEMS)
        ufs: dict[str, list[UserField]] = {}
        for key, plan in UF_PLAN.items():
            table = store.table(key)
            prefix = table.kind.uf_prefix
            ufs[key] = [
                table.add_userfield(
                    make_userfield(prefix + suffix, t, labels, multiple=mult, sort=100 + 10 * i, items=items)
                )
                for i, (suffix, t, labels, mult, items) in enumerate(plan)
            ]
        uf_templates = {
            key: _templates(lambda key=key: tuple(_uf_value(uf, rng, counts, users) for uf in ufs[key])) for key in ufs
        }
        names = _person_names(rng)
        gen = _Generator(rng, store, counts, users, names, uf_templates, ufs)
        gen.companies(conn)
        gen.contacts(conn)
        gen.leads(conn)
        gen.deals(conn)
        gen.invoices(conn)
        gen.payments(conn)
        seed_wider_crm(store, conn, random.Random(seed * 7919 + 1), max(users, 1), PORTAL_END)


class _Generator:
    def __init__(
        self,
        rng: random.Random,
        store: Store,
        counts: dict[str, int],
        users: int,
        names: list[tuple[str, str, str | None, str]],
        uf_templates: dict[str, list[tuple[Any, ...]]],
        ufs: dict[str, list[UserField]],
    ):
        self.rng = rng
        self.store = store
        self.counts = counts
        self.users = max(users, 1)
        self.names = names
        self.uf_templates = uf_templates
        self.uf_names = {k: [u.name for u in v] for k, v in ufs.items()}
        self.day = store.tf.day_of
        # who created / modified / owns a record: five user ids drawn together, one pick per record
        self.staff = [tuple(1 + rng.randrange(self.users) for _ in range(5)) for _ in range(TEMPLATES)]
        self.deal_amounts: dict[int, tuple[float, str]] = {}
        self.invoice_amounts: dict[int, tuple[float, str, str]] = {}
        # (id, created, (source, utm_source, utm_medium, utm_campaign, company, contact)) of CONVERTED leads
        self.converted_leads: list[tuple[int, int, tuple[Any, ...]]] = []
        # every deal's amount and currency (index in CURRENCIES), by id - 1: what its invoices bill
        self.deal_money, self.deal_currency = array("d"), array("B")

    def _common(self, key: str) -> tuple[_Timeline, list[tuple[Any, ...]]]:
        return _Timeline(self.rng, self.counts[key]), self.uf_templates[key]

    def _multifields(self, conn: Any, key: str) -> None:
        """Phones and e-mails (where HAS_PHONE / HAS_EMAIL say so) and some web / IM contacts of the rows just
        loaded, computed in SQL from the row id and a seeded salt: far faster than Python tuples.
        """
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS mf_pool (kind TEXT, k INTEGER, v TEXT, PRIMARY KEY (kind, k))")
        conn.execute("DELETE FROM temp.mf_pool")
        conn.executemany(
            "INSERT INTO temp.mf_pool VALUES (?,?,?)",
            [("n", k, v) for k, v in enumerate(TRANSLIT)] + [("d", k, v) for k, v in enumerate(DOMAINS)],
        )
        pick = "(SELECT v FROM temp.mf_pool WHERE kind = '{kind}' AND k = (ID * {mul} + :salt) % {size})"
        name, domain = (
            pick.format(kind="n", mul=31, size=len(TRANSLIT)),
            pick.format(kind="d", mul=17, size=len(DOMAINS)),
        )
        table = f'"{key}"'
        conn.execute(
            f"""
            INSERT INTO multifield (ENTITY_ID, ELEMENT_ID, TYPE_ID, VALUE_TYPE, VALUE)
            SELECT :entity, ID, TYPE_ID, VALUE_TYPE, VALUE FROM (
                SELECT ID, 0 AS k, 'PHONE' AS TYPE_ID,
                       CASE (ID * 7 + :salt) % 3 WHEN 0 THEN 'WORK' WHEN 1 THEN 'MOBILE' ELSE 'HOME' END
                           AS VALUE_TYPE,
                       printf('+%d%010d', 7 + ((ID * 13 + :salt) % 3) * 42,
                              (ID * 2654435761 + :salt) % 10000000000) AS VALUE
                FROM {table} WHERE HAS_PHONE = 'Y'
                UNION ALL
                SELECT ID, 1, 'EMAIL', CASE (ID + :salt) % 2 WHEN 0 THEN 'WORK' ELSE 'HOME' END,
                       {name} || '.' || ID || '@' || {domain}
                FROM {table} WHERE HAS_EMAIL = 'Y'
                UNION ALL
                SELECT ID, 2, 'WEB', 'WORK', 'https://site' || ID || '.example.com'
                FROM {table} WHERE (ID * 11 + :salt) % 8 = 0
                UNION ALL
                SELECT ID, 3, 'IM',
                       CASE (ID + :salt) % 3 WHEN 0 THEN 'TELEGRAM' WHEN 1 THEN 'WHATSAPP' ELSE 'VIBER' END,
                       '@user' || ID
                FROM {table} WHERE (ID * 11 + :salt) % 8 = 4
            ) ORDER BY ID, k
            """,
            {"entity": self.store.table(key).kind.type_name, "salt": self.rng.getrandbits(30)},
        )

    def companies(self, conn: Any) -> None:
        n, rng = self.counts["company"], self.rng
        tl, ufs = self._common("company")
        titles = []
        for _ in range(TEMPLATES):
            lang = rng.choice(LANGS)
            forms, words = COMPANY_WORDS[lang]
            titles.append((rng.choice(forms).format(rng.choice(words)), lang))
        misc = _templates(
            lambda: (
                rng.choice(SIMPLE_DICTIONARIES["COMPANY_TYPE"])[0],
                rng.choice(SIMPLE_DICTIONARIES["INDUSTRY"])[0],
                rng.choice(SIMPLE_DICTIONARIES["EMPLOYEES"])[0],
                *rng.choice(CITIES),
                rng.choice([None, "Улица Ленина, 1", "Hauptstraße 5", "Atatürk Cd. 10"]),
            ),
        )
        names = [
            "ID",
            "TITLE",
            "COMPANY_TYPE",
            "INDUSTRY",
            "EMPLOYEES",
            "ADDRESS_CITY",
            "ADDRESS_COUNTRY",
            "ADDRESS_COUNTRY_CODE",
            "ADDRESS",
            "CURRENCY_ID",
            "REVENUE",
            "OPENED",
            "HAS_PHONE",
            "HAS_EMAIL",
            "HAS_IMOL",
            "IS_MY_COMPANY",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
            "COMMENTS",
            *self.uf_names["company"],
        ]
        getbits = rng.getrandbits

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                created = tl.created(i, b)
                staff = self.staff[b.take(TEMPLATES)]
                phone, email = b.take(10) < 8, b.take(10) < 5
                title = titles[b.take(TEMPLATES)][0]
                yield (
                    rid,
                    title,
                    *misc[b.take(TEMPLATES)],
                    CURRENCIES[b.take(8)],
                    float(b.take(1000)) * 10000 if b.take(2) else None,
                    "Y",
                    "Y" if phone else "N",
                    "Y" if email else "N",
                    "N",
                    "Y" if rid == 1 else "N",
                    staff[0],
                    staff[1],
                    staff[2],
                    created,
                    tl.modified(created, b),
                    None if b.take(4) else "Partner clinic",
                    *ufs[b.take(TEMPLATES)],
                )

        _insert(conn, self.store.table("company"), names, rows())
        self._multifields(conn, "company")

    def _person(self, b: _Bits) -> tuple[Any, ...]:
        first, last, second, lang = self.names[b.take(TEMPLATES)]
        honor = ("HNR_EN_1", "HNR_EN_2", "HNR_EN_3", "HNR_EN_4", None, None)[b.take(6)]
        birth = None if b.take(3) == 0 else f"{1950 + b.take(55)}-{1 + b.take(12):02d}-{1 + b.take(28):02d}"
        return honor, first, second, last, birth

    def contacts(self, conn: Any) -> None:
        n, rng, companies = self.counts["contact"], self.rng, self.counts["company"]
        tl, ufs = self._common("contact")

        def contact_misc() -> tuple[Any, ...]:
            source = rng.choice(SOURCES)[0]
            return (
                rng.choice(SIMPLE_DICTIONARIES["CONTACT_TYPE"])[0],
                source,
                rng.choice(POSITIONS),
                *rng.choice(CITIES),
                utm_of(source, rng)[0],
            )

        misc = _templates(contact_misc)
        names = [
            "ID",
            "HONORIFIC",
            "NAME",
            "SECOND_NAME",
            "LAST_NAME",
            "BIRTHDATE",
            "TYPE_ID",
            "SOURCE_ID",
            "POST",
            "ADDRESS_CITY",
            "ADDRESS_COUNTRY",
            "ADDRESS_COUNTRY_CODE",
            "UTM_SOURCE",
            "OPENED",
            "EXPORT",
            "HAS_PHONE",
            "HAS_EMAIL",
            "HAS_IMOL",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
            "COMPANY_ID",
            "LEAD_ID",
            "LAST_ACTIVITY_TIME",
            "LAST_ACTIVITY_BY",
            *self.uf_names["contact"],
        ]
        getbits = rng.getrandbits

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                b2 = _Bits(getbits(320))
                created = tl.created(i, b)
                staff = self.staff[b.take(TEMPLATES)]
                modified = tl.modified(created, b)
                phone, email = b.take(10) < 9, b.take(10) < 7
                company = 1 + b2.take(max(1, companies * rid // n)) if companies and b2.take(2) else None
                yield (
                    rid,
                    *self._person(b),
                    *misc[b2.take(TEMPLATES)],
                    "Y",
                    "N",
                    "Y" if phone else "N",
                    "Y" if email else "N",
                    "N",
                    staff[0],
                    staff[1],
                    staff[2],
                    created,
                    modified,
                    company,
                    None,
                    modified if b2.take(3) == 0 else None,
                    staff[3],
                    *ufs[b2.take(TEMPLATES)],
                )

        _insert(conn, self.store.table("contact"), names, rows())
        self._multifields(conn, "contact")

    def leads(self, conn: Any) -> None:
        n, rng = self.counts["lead"], self.rng
        contacts, companies = self.counts["contact"], self.counts["company"]
        tl, ufs = self._common("lead")
        statuses = [s.status_id for s in LEAD_STATUSES]
        semantic = {s.status_id: {"S": "S", "F": "F"}.get(s.semantics or "", "P") for s in LEAD_STATUSES}

        def lead_misc() -> tuple[Any, ...]:
            source = rng.choice(SOURCES)[0]
            return (
                source,
                rng.choice([None, "Instagram DM", "Форма на сайте"]),
                rng.choice(POSITIONS),
                *rng.choice(CITIES),
                *utm_of(source, rng),
            )

        misc = _templates(lead_misc)
        names = [
            "ID",
            "TITLE",
            "HONORIFIC",
            "NAME",
            "SECOND_NAME",
            "LAST_NAME",
            "BIRTHDATE",
            "STATUS_ID",
            "STATUS_SEMANTIC_ID",
            "SOURCE_ID",
            "SOURCE_DESCRIPTION",
            "POST",
            "ADDRESS_CITY",
            "ADDRESS_COUNTRY",
            "ADDRESS_COUNTRY_CODE",
            "UTM_SOURCE",
            "UTM_MEDIUM",
            "UTM_CAMPAIGN",
            "CURRENCY_ID",
            "OPPORTUNITY",
            "IS_MANUAL_OPPORTUNITY",
            "OPENED",
            "HAS_PHONE",
            "HAS_EMAIL",
            "HAS_IMOL",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
            "COMPANY_ID",
            "CONTACT_ID",
            "IS_RETURN_CUSTOMER",
            "DATE_CLOSED",
            *self.uf_names["lead"],
        ]
        getbits = rng.getrandbits

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                b2 = _Bits(getbits(320))
                created = tl.created(i, b)
                staff = self.staff[b.take(TEMPLATES)]
                modified = tl.modified(created, b)
                person = self._person(b)
                status = statuses[b2.take(len(statuses))]
                phone, email = b2.take(10) < 9, b2.take(10) < 6
                converted = status == "CONVERTED"
                cur = CURRENCIES[b2.take(8)]
                title = f"{SERVICES[b2.take(len(SERVICES))]}: {person[1]} {person[3]}"
                facts = misc[b2.take(TEMPLATES)]
                company = 1 + b2.take(companies) if converted and companies and b2.take(2) else None
                contact = 1 + b2.take(contacts) if converted and contacts else None
                if converted:  # its deals carry on its source, campaign, contact and company
                    self.converted_leads.append((rid, created, (facts[0], *facts[-3:], company, contact)))
                yield (
                    rid,
                    title,
                    *person,
                    status,
                    semantic[status],
                    *facts,
                    cur,
                    round(b2.take(500000) * RATE[cur] / 10, 2),
                    "N",
                    "Y",
                    "Y" if phone else "N",
                    "Y" if email else "N",
                    "N",
                    staff[0],
                    staff[1],
                    staff[2],
                    created,
                    modified,
                    company,
                    contact,
                    "N",
                    modified if semantic[status] != "P" else None,
                    *ufs[b2.take(TEMPLATES)],
                )

        _insert(conn, self.store.table("lead"), names, rows())
        self._multifields(conn, "lead")

    def deals(self, conn: Any) -> None:
        n, rng = self.counts["deal"], self.rng
        contacts, companies, leads = self.counts["contact"], self.counts["company"], self.counts["lead"]
        tl, ufs = self._common("deal")
        # category weights: most deals in the treatment pipeline
        cats = [1, 1, 1, 0, 0, 2, 2, 3]
        stages = {
            c: [
                (s.status_id, {"S": "S", "F": "F"}.get(s.semantics or "", "P"), 10 * (j + 1))
                for j, s in enumerate(items)
            ]
            for c, (_n, _s, items) in DEAL_CATEGORIES.items()
        }
        deal_types = [t for t, _ in SIMPLE_DICTIONARIES["DEAL_TYPE"]]

        def deal_misc() -> tuple[Any, ...]:
            source = rng.choice(SOURCES)[0]
            return (
                source,
                rng.choice([None, None, "Instagram", "Партнёр"]),
                *utm_of(source, rng),
                rng.choice(
                    [
                        None,
                        None,
                        "Пациент просил перезвонить после 18:00",
                        "Needs interpreter (Arabic)",
                        "Bitte Rückruf",
                    ]
                ),
            )

        misc = _templates(deal_misc)
        names = [
            "ID",
            "TITLE",
            "TYPE_ID",
            "CATEGORY_ID",
            "STAGE_ID",
            "STAGE_SEMANTIC_ID",
            "IS_NEW",
            "IS_RECURRING",
            "IS_RETURN_CUSTOMER",
            "IS_REPEATED_APPROACH",
            "PROBABILITY",
            "CURRENCY_ID",
            "OPPORTUNITY",
            "IS_MANUAL_OPPORTUNITY",
            "TAX_VALUE",
            "COMPANY_ID",
            "CONTACT_ID",
            "BEGINDATE",
            "CLOSEDATE",
            "OPENED",
            "CLOSED",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
            "MOVED_BY_ID",
            "MOVED_TIME",
            "LEAD_ID",
            "LAST_ACTIVITY_TIME",
            "LAST_ACTIVITY_BY",
            "SOURCE_ID",
            "SOURCE_DESCRIPTION",
            "UTM_SOURCE",
            "UTM_MEDIUM",
            "UTM_CAMPAIGN",
            "COMMENTS",
            *self.uf_names["deal"],
        ]
        getbits = rng.getrandbits
        day = self.day
        amounts = self.deal_amounts
        money, currency = self.deal_money, self.deal_currency
        pay_share = 3  # one deal in three gets payments
        due = self._converted_lead_queue(n, leads)
        waiting: list[
            tuple[int, int, tuple[Any, ...]]
        ] = []  # converted leads due, without their deal yet (oldest first)

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                b2 = _Bits(getbits(320))
                created = tl.created(i, b)
                waiting.extend(due.get(i, ()))
                lead = waiting.pop(0) if waiting and waiting[0][1] < created else None  # made after its lead
                facts = misc[b2.take(TEMPLATES)]
                staff = self.staff[b.take(TEMPLATES)]
                modified = tl.modified(created, b)
                cat = cats[b.take(8)]
                stage, sem, prob = stages[cat][b.take(len(stages[cat]))]
                cur = CURRENCIES[b2.take(8)]
                amount = round((500 + b2.take(20000) * 5) * RATE[cur], 2) if b2.take(10) else 0.0
                if rid % pay_share == 0:
                    amounts[rid] = (amount, cur)
                money.append(amount)
                currency.append(CURRENCIES.index(cur))
                company = 1 + b2.take(max(1, companies * rid // n)) if companies and b2.take(5) < 3 else None
                contact = 1 + b2.take(max(1, contacts * rid // n)) if contacts and b2.take(5) < 4 else None
                if lead:  # a converted lead's deal: its source, UTM tags, contact and company
                    source, utm_source, utm_medium, utm_campaign, company, contact = lead[2]
                    facts = (source, facts[1], utm_source, utm_medium, utm_campaign, facts[5])
                closed = sem != "P"
                first, last, _s, _l = self.names[b2.take(TEMPLATES)]
                begin = day(created)
                yield (
                    rid,
                    f"{SERVICES[b2.take(len(SERVICES))]} — {first} {last}",
                    deal_types[b2.take(5)],
                    cat,
                    stage,
                    sem,
                    "Y" if stage.endswith("NEW") else "N",
                    "N",
                    "Y" if b2.take(6) == 0 else "N",
                    "N",
                    100 if sem == "S" else 0 if sem == "F" else prob,
                    cur,
                    amount,
                    "N",
                    0.0,
                    company,
                    contact,
                    begin,
                    day(modified + 86400 * 14) if not closed else day(modified),
                    "Y",
                    "Y" if closed else "N",
                    staff[0],
                    staff[1],
                    staff[2],
                    created,
                    modified,
                    staff[3],
                    modified,
                    lead[0] if lead else None,
                    modified if b2.take(2) else None,
                    staff[4],
                    *facts,
                    *ufs[b2.take(TEMPLATES)],
                )

        _insert(conn, self.store.table("deal"), names, rows())

    def _converted_lead_queue(self, n: int, leads: int) -> dict[int, list[tuple[int, int, tuple[Any, ...]]]]:
        """deal index -> converted leads (id, created) that become due there: at about the lead's own time (ids
        follow creation time), every fifth lead twice. A due lead goes to the first deal created after it."""
        due: dict[int, list[tuple[int, int, tuple[Any, ...]]]] = {}
        for k, converted in enumerate(self.converted_leads):
            for extra in range(2 if k % 5 == 4 else 1):
                due.setdefault(min(n - 1, converted[0] * n // max(leads, 1) + 3 * extra), []).append(converted)
        return due

    def invoices(self, conn: Any) -> None:
        n, rng = self.counts["smart_invoice"], self.rng
        deals, contacts, companies = self.counts["deal"], self.counts["contact"], self.counts["company"]
        tl, ufs = self._common("smart_invoice")
        stages = [(s.status_id, s.semantics) for s in SMART_INVOICE_STAGES]
        names = [
            "ID",
            "XML_ID",
            "TITLE",
            "ACCOUNT_NUMBER",
            "CATEGORY_ID",
            "STAGE_ID",
            "BEGINDATE",
            "CLOSEDATE",
            "OPENED",
            "COMPANY_ID",
            "CONTACT_ID",
            "MYCOMPANY_ID",
            "OPPORTUNITY",
            "IS_MANUAL_OPPORTUNITY",
            "TAX_VALUE",
            "CURRENCY_ID",
            "SOURCE_ID",
            "PARENT_ID_2",
            "ASSIGNED_BY_ID",
            "CREATED_BY_ID",
            "MODIFY_BY_ID",
            "DATE_CREATE",
            "DATE_MODIFY",
            "MOVED_BY_ID",
            "MOVED_TIME",
            *self.uf_names["smart_invoice"],
        ]
        getbits = rng.getrandbits
        day = self.day
        billed: dict[int, float] = {}  # deal id -> what its invoices have not billed yet

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                created = tl.created(i, b)
                staff = self.staff[b.take(TEMPLATES)]
                modified = tl.modified(created, b)
                stage, sem = stages[b.take(len(stages))]
                cur = CURRENCIES[b.take(8)]
                amount = round((100 + b.take(5000) * 10) * RATE[cur], 2)
                deal = self._invoiced_deal(i * deals // max(n, 1) - b.take(10)) if b.take(10) < 7 else None
                share = (1 + b.take(4)) / 4
                left = billed.get(deal[0], deal[2]) if deal else 0.0
                parent = deal[0] if deal and left > 0 else None
                if deal and parent is not None:  # a part of its deal's amount, in the deal's currency
                    cur, amount = deal[1], round(min(deal[2] * share, left), 2)
                    billed[parent] = left - amount
                self.invoice_amounts[rid] = (amount, cur, sem or "")
                yield (
                    rid,
                    None,
                    f"Счёт #{rid}" if b.take(2) else f"Invoice #{rid}",
                    f"INV-{rid:06d}",
                    SMART_INVOICE_CATEGORY,
                    stage,
                    day(created),
                    day(created + 86400 * 10),
                    "Y",
                    1 + b.take(companies) if companies and b.take(2) else None,
                    1 + b.take(contacts) if contacts and b.take(3) else None,
                    1,
                    amount,
                    "N",
                    0.0,
                    cur,
                    SOURCES[b.take(len(SOURCES))][0],
                    parent,
                    staff[0],
                    staff[1],
                    staff[2],
                    created,
                    modified,
                    staff[3],
                    modified,
                    *ufs[b.take(TEMPLATES)],
                )

        _insert(conn, self.store.table("smart_invoice"), names, rows())

    def _invoiced_deal(self, index: int) -> tuple[int, str, float] | None:
        """The deal (id, currency, amount) an invoice bills, near deal `index` in time: not one of the deals paid
        directly (every third), whose payments already cover their amount."""
        deal = max(1, index + 1)
        deal -= deal % 3 == 0
        if deal < 1 or deal > len(self.deal_money) or self.deal_money[deal - 1] <= 0:
            return None
        return deal, CURRENCIES[self.deal_currency[deal - 1]], self.deal_money[deal - 1]

    def payments(self, conn: Any) -> None:
        """Orders bound to deals (every third) and smart invoices, with 1-3 payments each; some paid."""
        rng = self.rng
        getbits = rng.getrandbits
        orders: list[tuple[Any, ...]] = []
        pays: list[tuple[Any, ...]] = []
        deal_created = dict(conn.execute('SELECT ID, DATE_CREATE FROM "deal" WHERE ID % 3 = 0'))
        inv_created = dict(conn.execute('SELECT ID, DATE_CREATE FROM "smart_invoice"'))
        owners = [(2, rid, amt, cur, "") for rid, (amt, cur) in self.deal_amounts.items()] + [
            (31, rid, amt, cur, sem) for rid, (amt, cur, sem) in self.invoice_amounts.items()
        ]
        pay_id = 0
        for oid, (type_id, owner, amount, cur, sem) in enumerate(owners, start=1):
            b = _Bits(getbits(320))
            created = (deal_created if type_id == 2 else inv_created)[owner]
            orders.append((oid, type_id, owner, cur, created))
            parts = 1 + b.take(3)
            for k in range(1, parts + 1):
                pay_id += 1
                bill = created + k * 3600 * (1 + b.take(48))
                paid = sem == "S" or (sem != "F" and b.take(5) < 3)
                date_paid = min(bill + 86400 * b.take(20), PORTAL_END - 60) if paid else None
                system = PAY_SYSTEMS[b.take(len(PAY_SYSTEMS))][0]
                pays.append(
                    (
                        pay_id,
                        oid,
                        f"{oid}/{k}",
                        "Y" if paid else "N",
                        date_paid,
                        1 + b.take(self.users) if paid else None,
                        system,
                        round(amount / parts, 2),
                        cur,
                        bill,
                        "N",
                        "N",
                        f"bx_{seed_hex(oid, k)}",
                    )
                )
            if len(pays) > 50000:
                self._flush_payments(conn, orders, pays)
        self._flush_payments(conn, orders, pays)

    @staticmethod
    def _flush_payments(conn: Any, orders: list[tuple[Any, ...]], pays: list[tuple[Any, ...]]) -> None:
        conn.executemany("INSERT INTO sale_order VALUES (?,?,?,?,?)", orders)
        conn.executemany("INSERT INTO payment VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", pays)
        orders.clear()
        pays.clear()


def seed_hex(a: int, b: int) -> str:
    return f"{(a * 2654435761 + b * 40503) & 0xFFFFFFFFFFFF:012x}"
