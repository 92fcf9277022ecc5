"""A deterministic, realistic portal: same seed, same records (ids, values, timestamps).

The agency sells medical tourism (treatment abroad, dental tours, partner clinics) to people from many
countries,
so names come in Russian, English, German, Turkish and Arabic; money in RUB, USD, EUR and TRY; records spread
over
five years that end at a fixed instant (`PORTAL_END`), ids in creation order, and some seconds shared by many
records (imports, robots), as on real portals.

Speed (1,000,000 deals in well under a minute): rows are built as tuples from precomputed pools with one
`getrandbits` per row and loaded with `executemany` inside one transaction with no journal; indexes come
after.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
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
from .store import EntityTable, Store, UserField

PORTAL_END = int(datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp())
PORTAL_START = PORTAL_END - 5 * 365 * 86400
TEMPLATES = 512

FIRST = {
    "ru": [
        "Анна",
        "Мария",
        "Елена",
        "Ольга",
        "Наталья",
        "Иван",
        "Алексей",
        "Дмитрий",
        "Сергей",
        "Михаил",
        "Татьяна",
        "Ирина",
        "Андрей",
        "Павел",
        "Юлия",
    ],
    "en": ["John", "Emily", "Michael", "Sarah", "David", "Laura", "James", "Olivia", "Robert", "Emma"],
    "de": ["Hans", "Jürgen", "Günther", "Sabine", "Ute", "Klaus", "Jörg", "Anja", "Björn", "Käthe"],
    "tr": ["Ayşe", "Mehmet", "Emine", "Mustafa", "Fatma", "Ahmet", "Zeynep", "Çağla", "Şükrü", "Gökhan"],
    "ar": ["محمد", "فاطمة", "أحمد", "ليلى", "Omar", "Yusuf", "Aisha", "Khalid", "Mariam", "Hassan"],
}
LAST = {
    "ru": [
        "Иванов",
        "Петрова",
        "Смирнов",
        "Кузнецова",
        "Попов",
        "Соколова",
        "Лебедев",
        "Новикова",
        "Морозов",
        "Волкова",
        "Ильина",
        "Фёдоров",
    ],
    "en": [
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Miller",
        "Davis",
        "Wilson",
        "Taylor",
        "O'Brien",
    ],
    "de": ["Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Schäfer", "Groß", "Köhler", "Becker"],
    "tr": ["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Yıldız", "Öztürk", "Aydın", "Doğan"],
    "ar": ["العلي", "حسن", "Al-Farsi", "Haddad", "Nasser", "Khoury", "Mansour", "Saleh", "الهاشمي"],
}
TRANSLIT = [
    "anna",
    "maria",
    "ivan",
    "john",
    "emily",
    "hans",
    "ayse",
    "mehmet",
    "omar",
    "yusuf",
    "olga",
    "klaus",
    "sarah",
    "fatma",
    "khalid",
    "elena",
    "david",
    "zeynep",
    "joerg",
    "laila",
]
DOMAINS = [
    "gmail.com",
    "mail.ru",
    "yandex.ru",
    "outlook.com",
    "web.de",
    "hotmail.com.tr",
    "example.com",
    "gmx.de",
    "yahoo.com",
]
CITIES = [
    ("Москва", "Россия", "RU"),
    ("Saint Petersburg", "Russia", "RU"),
    ("Berlin", "Deutschland", "DE"),
    ("München", "Deutschland", "DE"),
    ("İstanbul", "Türkiye", "TR"),
    ("Antalya", "Türkiye", "TR"),
    ("Dubai", "UAE", "AE"),
    ("الرياض", "السعودية", "SA"),
    ("London", "United Kingdom", "GB"),
    ("Almaty", "Kazakhstan", "KZ"),
    (None, None, None),
]
SERVICES = [
    "Hair transplant",
    "Dental implants",
    "IVF program",
    "Knee replacement",
    "Rhinoplasty",
    "Check-up",
    "Cardiac surgery",
    "Oncology consultation",
    "Bariatric surgery",
    "LASIK",
    "Пересадка волос",
    "Имплантация зубов",
    "ЭКО",
    "Обследование",
    "Zahnimplantate",
    "Saç ekimi",
    "Diş tedavisi",
    "زراعة الشعر",
]
COMPANY_WORDS = {
    "ru": (
        ["ООО «{}»", "АО «{}»", "ИП {}"],
        ["МедТрэвел", "Здоровье Плюс", "Клиника Север", "ТурМед", "Витамед"],
    ),
    "en": (
        ["{} Ltd.", "{} LLC", "{} Inc."],
        ["Acme Health", "Global Care", "MedBridge", "Blue Ocean Travel"],
    ),
    "de": (["{} GmbH", "{} AG"], ["Berliner Klinik", "Gesundheitsreisen", "Zahnwerk", "Medicus Süd"]),
    "tr": (["{} A.Ş.", "{} Ltd. Şti."], ["Anadolu Sağlık", "Boğaziçi Tıp", "Ege Diş", "Şifa Turizm"]),
    "ar": (["{} LLC", "شركة {}"], ["Dubai Health", "الشفاء", "Gulf Medical", "النور الطبية"]),
}
LANGS = list(FIRST)
CURRENCIES = ["RUB", "RUB", "RUB", "USD", "USD", "EUR", "EUR", "TRY"]
RATE = {"RUB": 90.0, "USD": 1.0, "EUR": 0.92, "TRY": 32.0}
POSITIONS = ["Manager", "Director", "Главный врач", "Koordinator", "Satış müdürü", "Patient", "Пациент", None]
UTM = [None, None, None, "google", "yandex", "instagram", "facebook", "tiktok"]


class _Bits:
    """Cheap slices of one 64-bit draw: `pick(seq)` consumes as many bits as the sequence needs."""

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
        first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
        email = f"{rng.choice(TRANSLIT)}.{uid}@medtravel.example"
        dept = [1] if uid == 1 else sorted({rng.randint(1, 6) for _ in range(rng.randint(1, 2))})
        reg = PORTAL_START - 86400 * rng.randint(1, 400) if uid < 10 else PORTAL_START + (uid * 86400 * 30)
        rows.append(
            (
                uid,
                0 if uid > 3 and rng.random() < 0.12 else 1,
                first,
                last,
                None,
                email,
                positions[0] if uid == 1 else rng.choice(positions[1:]),
                rng.choice(["M", "F", ""]),
                f"+7{rng.randint(9000000000, 9999999999)}",
                rng.choice(CITIES)[0],
                json.dumps(dept),
                reg,
                PORTAL_END - rng.randint(0, 86400 * 60),
                "Europe/Moscow" if lang == "ru" else "",
            )
        )
    return rows


# ---- user fields
# -----------------------------------------------------------------------------------------------


def _labels(en: str, ru: str, de: str | None = None) -> dict[str, dict[str, str]]:
    out = {"en": {"edit": en, "list": en, "filter": en}, "ru": {"edit": ru, "list": ru, "filter": ru}}
    if de:
        out["de"] = {"edit": de, "list": de, "filter": de}
    return out


_SETTINGS = {
    "string": {"SIZE": 20, "ROWS": 1, "REGEXP": "", "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": ""},
    "integer": {"SIZE": 20, "MIN_VALUE": 0, "MAX_VALUE": 0, "DEFAULT_VALUE": None},
    "double": {"PRECISION": 2, "SIZE": 20, "MIN_VALUE": 0, "MAX_VALUE": 0, "DEFAULT_VALUE": None},
    "boolean": {"DEFAULT_VALUE": 0, "DISPLAY": "CHECKBOX", "LABEL": ["", ""], "LABEL_CHECKBOX": ""},
    "date": {"DEFAULT_VALUE": {"TYPE": "NONE", "VALUE": ""}},
    "datetime": {"DEFAULT_VALUE": {"TYPE": "NONE", "VALUE": ""}, "USE_SECOND": "Y", "USE_TIMEZONE": "N"},
    "enumeration": {"DISPLAY": "LIST", "LIST_HEIGHT": 1, "CAPTION_NO_VALUE": "", "SHOW_NO_VALUE": "Y"},
    "money": {"DEFAULT_VALUE": ""},
    "url": {"POPUP": "Y", "SIZE": 20, "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": "", "ROWS": 1},
    "employee": {},
    "crm": {"LEAD": "N", "CONTACT": "Y", "COMPANY": "Y", "DEAL": "N"},
    "address": {"SHOW_MAP": "Y"},
    "file": {
        "SIZE": 20,
        "LIST_WIDTH": 0,
        "LIST_HEIGHT": 0,
        "MAX_SHOW_SIZE": 0,
        "MAX_ALLOWED_SIZE": 0,
        "EXTENSIONS": [],
        "TARGET_BLANK": "Y",
    },
}


def default_settings(user_type: str) -> dict[str, Any]:
    return json.loads(json.dumps(_SETTINGS.get(user_type, {})))


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


# (suffix, type, labels, multiple, enumeration items)
_UF_PLAN: dict[str, list[tuple[str, str, dict[str, dict[str, str]], bool, list[str] | None]]] = {
    "deal": [
        ("1699000001", "string", _labels("Passport number", "Номер паспорта"), False, None),
        ("1699000002", "integer", _labels("Companions", "Сопровождающие"), False, None),
        ("1699000003", "double", _labels("Discount, %", "Скидка, %"), False, None),
        ("1699000004", "boolean", _labels("Visa required", "Нужна виза", "Visum erforderlich"), False, None),
        ("1699000005", "date", _labels("Arrival date", "Дата прилёта"), False, None),
        ("1699000006", "datetime", _labels("Consultation at", "Время консультации"), False, None),
        (
            "1699000007",
            "enumeration",
            _labels("Clinic", "Клиника"),
            False,
            ["Acıbadem İstanbul", "Charité Berlin", "Clínica Barcelona", "Медси Москва"],
        ),
        (
            "1699000008",
            "enumeration",
            _labels("Services", "Услуги"),
            True,
            ["Transfer", "Hotel", "Interpreter", "Переводчик", "VIP lounge"],
        ),
        ("1699000009", "money", _labels("Prepayment", "Предоплата"), False, None),
        ("1699000010", "url", _labels("Landing page", "Посадочная страница"), False, None),
        ("1699000011", "employee", _labels("Coordinator", "Координатор"), False, None),
        ("1699000012", "crm", _labels("Referrer", "Кто порекомендовал"), False, None),
        ("1699000013", "address", _labels("Hotel address", "Адрес отеля"), False, None),
        ("1699000014", "file", _labels("Medical report", "Медицинское заключение"), False, None),
        ("64A29A1CD5CC2", "string", _labels("New Field", "Новое поле"), False, None),
        ("1699000016", "string", _labels("Diagnoses", "Диагнозы", "Diagnosen"), True, None),
        ("1699000017", "date", _labels("Follow-up dates", "Даты контроля"), True, None),
    ],
    "lead": [
        ("1699100001", "string", _labels("Complaint", "Жалоба"), False, None),
        (
            "1699100002",
            "enumeration",
            _labels("Preferred country", "Желаемая страна"),
            False,
            ["Türkiye", "Deutschland", "Israel", "Korea", "Россия"],
        ),
        ("1699100003", "boolean", _labels("Has medical records", "Есть выписки"), False, None),
        ("1699100004", "date", _labels("Desired date", "Желаемая дата"), False, None),
        ("1699100005", "money", _labels("Budget", "Бюджет"), False, None),
        ("1699100006", "integer", _labels("Age", "Возраст"), False, None),
        ("1699100007", "crm", _labels("Partner", "Партнёр"), True, None),
        ("1699100008", "url", _labels("Ad click URL", "URL клика"), False, None),
    ],
    "contact": [
        ("1699200001", "string", _labels("Passport", "Паспорт"), False, None),
        ("1699200002", "date", _labels("Passport expiry", "Срок паспорта"), False, None),
        (
            "1699200003",
            "enumeration",
            _labels("Language", "Язык общения"),
            True,
            ["Русский", "English", "Deutsch", "Türkçe", "العربية"],
        ),
        ("1699200004", "boolean", _labels("VIP", "VIP"), False, None),
        ("1699200005", "employee", _labels("Personal manager", "Персональный менеджер"), False, None),
        ("1699200006", "double", _labels("Lifetime value", "Сумма покупок"), False, None),
    ],
    "company": [
        ("1699300001", "string", _labels("Tax ID", "ИНН"), False, None),
        ("1699300002", "integer", _labels("Beds", "Коек"), False, None),
        (
            "1699300003",
            "enumeration",
            _labels("Partner level", "Уровень партнёра"),
            False,
            ["Gold", "Silver", "Bronze"],
        ),
        ("1699300004", "address", _labels("Legal address", "Юридический адрес"), False, None),
        ("1699300005", "datetime", _labels("Contract signed", "Договор подписан"), False, None),
        ("1699300006", "url", _labels("Website", "Сайт"), True, None),
    ],
    "smart_invoice": [
        ("1699400001", "string", _labels("Payment purpose", "Назначение платежа"), False, None),
        ("1699400002", "date", _labels("Paid on", "Дата оплаты"), False, None),
        ("1699400003", "boolean", _labels("Prepayment", "Предоплата"), False, None),
    ],
}


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
        return (
            datetime.fromtimestamp(rng.randint(PORTAL_START, PORTAL_END + 86400 * 200), UTC)
            .date()
            .isoformat()
        )
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


# ---- records
# ---------------------------------------------------------------------------------------------------


class _Timeline:
    """Creation times in id order over five years, with bursts of records sharing one second (imports)."""

    def __init__(self, rng: random.Random, n: int):
        self.n = max(n, 1)
        self.span = PORTAL_END - PORTAL_START - 3600
        self.burst = {rng.randrange(self.n) for _ in range(max(1, self.n // 400))}
        self.mass_updates = sorted(rng.randint(PORTAL_END - 86400 * 400, PORTAL_END - 600) for _ in range(8))

    def created(self, i: int, b: _Bits) -> int:
        step = self.span / self.n
        if (i - i % 25) in self.burst:  # 25 records created in the same second
            return PORTAL_START + int((i - i % 25) * step)
        return PORTAL_START + int(i * step + b.take(max(1, int(step))))

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
        second = (
            rng.choice(["Ивановна", "Петрович", "Сергеевна"]) if lang == "ru" and rng.random() < 0.5 else None
        )
        out.append((rng.choice(FIRST[lang]), rng.choice(LAST[lang]), second, lang))
    return out


def _templates(rng: random.Random, make: Callable[[], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
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
            [
                (e, s, n, n if sy == "Y" else None, so, sy, c, col, sem)
                for e, s, n, so, sy, c, col, sem in status_rows()
            ],
        )
        conn.executemany(
            "INSERT INTO category VALUES (?,?,?,?,?)",
            [
                (2, cid, name, sort, "Y" if cid == 0 else "N")
                for cid, (name, sort, _s) in DEAL_CATEGORIES.items()
            ]
            + [(31, SMART_INVOICE_CATEGORY, "Invoices", 500, "Y")],
        )
        conn.executemany("INSERT INTO pay_system VALUES (?,?)", PAY_SYSTEMS)
        ufs: dict[str, list[UserField]] = {}
        for key, plan in _UF_PLAN.items():
            table = store.table(key)
            prefix = table.kind.uf_prefix
            ufs[key] = [
                table.add_userfield(
                    make_userfield(prefix + suffix, t, labels, multiple=mult, sort=100 + 10 * i, items=items)
                )
                for i, (suffix, t, labels, mult, items) in enumerate(plan)
            ]
        uf_templates = {
            key: _templates(rng, lambda key=key: tuple(_uf_value(uf, rng, counts, users) for uf in ufs[key]))
            for key in ufs
        }
        names = _person_names(rng)
        gen = _Generator(rng, store, counts, users, names, uf_templates, ufs)
        gen.companies(conn)
        gen.contacts(conn)
        gen.leads(conn)
        gen.deals(conn)
        gen.invoices(conn)
        gen.payments(conn)


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

    def _common(self, key: str) -> tuple[_Timeline, list[tuple[Any, ...]]]:
        return _Timeline(self.rng, self.counts[key]), self.uf_templates[key]

    def _multi(self, conn: Any, entity: str, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(
            "INSERT INTO multifield (ENTITY_ID, ELEMENT_ID, TYPE_ID, VALUE_TYPE, VALUE) VALUES (?,?,?,?,?)",
            [(entity, *r) for r in rows],
        )

    @staticmethod
    def _contact_rows(rid: int, b: _Bits, phone: bool, email: bool, extra: bool) -> list[tuple[Any, ...]]:
        out = []
        if phone:
            out.append(
                (
                    rid,
                    "PHONE",
                    ("WORK", "MOBILE", "HOME")[b.take(3)],
                    f"+{7 + b.take(3) * 42}{b.take(10**10):010d}",
                )
            )
        if email:
            out.append(
                (
                    rid,
                    "EMAIL",
                    ("WORK", "HOME")[b.take(2)],
                    f"{TRANSLIT[b.take(len(TRANSLIT))]}.{rid}@{DOMAINS[b.take(len(DOMAINS))]}",
                )
            )
        if extra:
            if b.take(2):
                out.append((rid, "WEB", "WORK", f"https://site{rid}.example.com"))
            else:
                out.append((rid, "IM", ("TELEGRAM", "WHATSAPP", "VIBER")[b.take(3)], f"@user{rid}"))
        return out

    def companies(self, conn: Any) -> None:
        n, rng, users = self.counts["company"], self.rng, self.users
        tl, ufs = self._common("company")
        titles = []
        for _ in range(TEMPLATES):
            lang = rng.choice(LANGS)
            forms, words = COMPANY_WORDS[lang]
            titles.append((rng.choice(forms).format(rng.choice(words)), lang))
        misc = _templates(
            rng,
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
        multi: list[tuple[Any, ...]] = []
        getbits = rng.getrandbits

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                created = tl.created(i, b)
                staff = self.staff[b.take(TEMPLATES)]
                phone, email = b.take(10) < 8, b.take(10) < 5
                multi.extend(self._contact_rows(rid, b, phone, email, b.take(3) == 0))
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
                if len(multi) > 50000:
                    self._multi(conn, "COMPANY", multi)
                    multi.clear()

        _insert(conn, self.store.table("company"), names, rows())
        self._multi(conn, "COMPANY", multi)

    def _person(self, b: _Bits) -> tuple[Any, ...]:
        first, last, second, lang = self.names[b.take(TEMPLATES)]
        honor = ("HNR_EN_1", "HNR_EN_2", "HNR_EN_3", "HNR_EN_4", None, None)[b.take(6)]
        birth = None if b.take(3) == 0 else f"{1950 + b.take(55)}-{1 + b.take(12):02d}-{1 + b.take(28):02d}"
        return honor, first, second, last, birth

    def contacts(self, conn: Any) -> None:
        n, rng, users, companies = self.counts["contact"], self.rng, self.users, self.counts["company"]
        tl, ufs = self._common("contact")
        misc = _templates(
            rng,
            lambda: (
                rng.choice(SIMPLE_DICTIONARIES["CONTACT_TYPE"])[0],
                rng.choice(SOURCES)[0],
                rng.choice(POSITIONS),
                *rng.choice(CITIES),
                rng.choice(UTM),
            ),
        )
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
        multi: list[tuple[Any, ...]] = []
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
                multi.extend(self._contact_rows(rid, b2, phone, email, b2.take(4) == 0))
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
                if len(multi) > 50000:
                    self._multi(conn, "CONTACT", multi)
                    multi.clear()

        _insert(conn, self.store.table("contact"), names, rows())
        self._multi(conn, "CONTACT", multi)

    def leads(self, conn: Any) -> None:
        n, rng, users = self.counts["lead"], self.rng, self.users
        contacts, companies = self.counts["contact"], self.counts["company"]
        tl, ufs = self._common("lead")
        statuses = [s.status_id for s in LEAD_STATUSES]
        semantic = {s.status_id: {"S": "S", "F": "F"}.get(s.semantics or "", "P") for s in LEAD_STATUSES}
        misc = _templates(
            rng,
            lambda: (
                rng.choice(SOURCES)[0],
                rng.choice([None, "Instagram DM", "Форма на сайте"]),
                rng.choice(POSITIONS),
                *rng.choice(CITIES),
                rng.choice(UTM),
                rng.choice([None, "cpc", "social"]),
                rng.choice([None, "hair_2024", "dent"]),
            ),
        )
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
        multi: list[tuple[Any, ...]] = []
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
                multi.extend(self._contact_rows(rid, b2, phone, email, b2.take(8) == 0))
                converted = status == "CONVERTED"
                cur = CURRENCIES[b2.take(8)]
                yield (
                    rid,
                    f"{SERVICES[b2.take(len(SERVICES))]}: {person[1]} {person[3]}",
                    *person,
                    status,
                    semantic[status],
                    *misc[b2.take(TEMPLATES)],
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
                    1 + b2.take(companies) if converted and companies and b2.take(2) else None,
                    1 + b2.take(contacts) if converted and contacts else None,
                    "N",
                    modified if semantic[status] != "P" else None,
                    *ufs[b2.take(TEMPLATES)],
                )
                if len(multi) > 50000:
                    self._multi(conn, "LEAD", multi)
                    multi.clear()

        _insert(conn, self.store.table("lead"), names, rows())
        self._multi(conn, "LEAD", multi)

    def deals(self, conn: Any) -> None:
        n, rng, users = self.counts["deal"], self.rng, self.users
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
        misc = _templates(
            rng,
            lambda: (
                rng.choice(SOURCES)[0],
                rng.choice([None, None, "Instagram", "Партнёр"]),
                rng.choice(UTM),
                rng.choice([None, "cpc", "social"]),
                rng.choice([None, "hair_2024", "dental_tr", "ivf"]),
                rng.choice(
                    [
                        None,
                        None,
                        "Пациент просил перезвонить после 18:00",
                        "Needs interpreter (Arabic)",
                        "Bitte Rückruf",
                    ]
                ),
            ),
        )
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
        pay_share = 3  # one deal in three gets payments

        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                rid = i + 1
                b = _Bits(getbits(320))
                b2 = _Bits(getbits(320))
                created = tl.created(i, b)
                staff = self.staff[b.take(TEMPLATES)]
                modified = tl.modified(created, b)
                cat = cats[b.take(8)]
                stage, sem, prob = stages[cat][b.take(len(stages[cat]))]
                cur = CURRENCIES[b2.take(8)]
                amount = round((500 + b2.take(20000) * 5) * RATE[cur], 2) if b2.take(10) else 0.0
                if rid % pay_share == 0:
                    amounts[rid] = (amount, cur)
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
                    1 + b2.take(max(1, companies * rid // n)) if companies and b2.take(5) < 3 else None,
                    1 + b2.take(max(1, contacts * rid // n)) if contacts and b2.take(5) < 4 else None,
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
                    1 + b2.take(max(1, leads * rid // n)) if leads and b2.take(10) < 3 else None,
                    modified if b2.take(2) else None,
                    staff[4],
                    *misc[b2.take(TEMPLATES)],
                    *ufs[b2.take(TEMPLATES)],
                )

        _insert(conn, self.store.table("deal"), names, rows())

    def invoices(self, conn: Any) -> None:
        n, rng, users = self.counts["smart_invoice"], self.rng, self.users
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
                    1 + b.take(deals) if deals and b.take(10) < 7 else None,
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
