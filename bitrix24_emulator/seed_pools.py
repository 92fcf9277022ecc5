"""The vocabulary of the generated portal: names in five languages, cities, services, currencies, and the user
fields each entity carries (every UF type of the reference, labels in several languages).
"""

from __future__ import annotations

from typing import Any

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
_RU_SURNAME_ENDINGS = ("ов", "ев", "ёв", "ин")


def ru_female(first: str) -> bool:
    return first.endswith(("а", "я"))


def person_last_name(first: str, last: str, lang: str) -> str:
    """Russian surnames agree with the person's gender: Петров / Петрова."""
    if lang != "ru":
        return last
    base = last[:-1] if last.endswith(tuple(e + "а" for e in _RU_SURNAME_ENDINGS)) else last
    return base + "а" if ru_female(first) and base.endswith(_RU_SURNAME_ENDINGS) else base


RU_PATRONYMICS = {True: ["Ивановна", "Петровна", "Сергеевна"], False: ["Иванович", "Петрович", "Сергеевич"]}

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
# What an advertising source leaves in a record's UTM tags: (utm_source, utm_medium); a source not listed (a call,
# a recommendation, a fair) leaves none. ADVERTISING is any of the paid networks; the website and its forms are
# reached through search (organic) or directly.
UTM_BY_SOURCE: dict[str, list[tuple[str | None, str | None]]] = {
    "UC_GOOGLE_ADS": [("google", "cpc")],
    "UC_YANDEX_DIRECT": [("yandex", "cpc")],
    "UC_INSTAGRAM": [("instagram", "social"), ("instagram", "cpc")],
    "UC_FACEBOOK": [("facebook", "cpc")],
    "UC_TIKTOK": [("tiktok", "social")],
    "ADVERTISING": [("google", "cpc"), ("yandex", "cpc"), ("facebook", "cpc"), ("instagram", "cpc")],
    "WEB": [(None, None), ("google", "organic"), ("yandex", "organic")],
    "WEBFORM": [(None, None), ("google", "organic"), ("yandex", "organic")],
}
CAMPAIGNS = ["hair_2024", "dental_tr", "ivf", "checkup_de"]


def utm_of(source: str, rng: Any) -> tuple[str | None, str | None, str | None]:
    """(utm_source, utm_medium, utm_campaign) that agree with the record's source: a paid click has a campaign."""
    utm, medium = rng.choice(UTM_BY_SOURCE.get(source, [(None, None)]))
    return utm, medium, rng.choice(CAMPAIGNS) if medium == "cpc" else None


def _labels(en: str, ru: str, de: str | None = None) -> dict[str, dict[str, str]]:
    out = {"en": {"edit": en, "list": en, "filter": en}, "ru": {"edit": ru, "list": ru, "filter": ru}}
    if de:
        out["de"] = {"edit": de, "list": de, "filter": de}
    return out


# per entity: (name suffix, user type, labels, multiple, enumeration items)
UF_PLAN: dict[str, list[tuple[str, str, dict[str, dict[str, str]], bool, list[str] | None]]] = {
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
