"""The portal's dictionaries: pipelines and their stages, lead statuses, sources, types, pay systems.

A medical-tourism agency's portal: four deal pipelines (stage ids `C{n}:` prefixed outside the default one),
advertising sources, and the smart-invoice pipeline. Records are generated only with ids listed here, so every
STAGE_ID / STATUS_ID / SOURCE_ID in a record exists in crm.status.list.
"""

from __future__ import annotations

from dataclasses import dataclass

SMART_INVOICE_CATEGORY = 5


@dataclass(frozen=True)
class Stage:
    status_id: str
    name: str
    semantics: str | None  # None (in progress), "S" success, "F" failure
    color: str
    apology: bool = False


def _stages(prefix: str, items: list[tuple[str, str, str | None, str]]) -> list[Stage]:
    return [Stage(f"{prefix}{sid}", name, sem, color, apology=sid == "APOLOGY") for sid, name, sem, color in items]


# category id -> (name, sort, stages)
DEAL_CATEGORIES: dict[int, tuple[str, int, list[Stage]]] = {
    0: (
        "General",
        300,
        _stages(
            "",
            [
                ("NEW", "New", None, "#39A8EF"),
                ("PREPARATION", "Making documents", None, "#2FC6F6"),
                ("PREPAYMENT_INVOICE", "Prepayment invoice", None, "#55D0E0"),
                ("EXECUTING", "In progress", None, "#47E4C2"),
                ("FINAL_INVOICE", "Final invoice", None, "#FFA900"),
                ("WON", "Deal won", "S", "#7BD500"),
                ("LOSE", "Deal lost", "F", "#FF5752"),
                ("APOLOGY", "Analyze failure", "F", "#FF5752"),
            ],
        ),
    ),
    1: (
        "Лечение за рубежом",
        100,
        _stages(
            "C1:",
            [
                ("NEW", "Новая заявка", None, "#39A8EF"),
                ("UC_CONSULT", "Консультация врача", None, "#2FC6F6"),
                ("UC_DOCS", "Медицинские документы", None, "#55D0E0"),
                ("UC_VISA", "Виза и билеты", None, "#47E4C2"),
                ("UC_TREAT", "Лечение", None, "#FFA900"),
                ("WON", "Пациент пролечен", "S", "#7BD500"),
                ("LOSE", "Отказ", "F", "#FF5752"),
            ],
        ),
    ),
    2: (
        "Dental tourism",
        200,
        _stages(
            "C2:",
            [
                ("NEW", "New request", None, "#39A8EF"),
                ("UC_PLAN", "Treatment plan", None, "#2FC6F6"),
                ("UC_ARRIVAL", "Arrival", None, "#FFA900"),
                ("WON", "Completed", "S", "#7BD500"),
                ("LOSE", "Lost", "F", "#FF5752"),
            ],
        ),
    ),
    3: (
        "Klinik-Partner",
        400,
        _stages(
            "C3:",
            [
                ("NEW", "Neu", None, "#39A8EF"),
                ("UC_NEGOT", "Verhandlung", None, "#2FC6F6"),
                ("UC_CONTRACT", "Vertrag", None, "#FFA900"),
                ("WON", "Gewonnen", "S", "#7BD500"),
                ("LOSE", "Verloren", "F", "#FF5752"),
            ],
        ),
    ),
}

LEAD_STATUSES = _stages(
    "",
    [
        ("NEW", "Unprocessed", None, "#39A8EF"),
        ("IN_PROCESS", "In progress", None, "#2FC6F6"),
        ("PROCESSED", "Processed", None, "#55D0E0"),
        ("UC_CALLBACK", "Перезвонить", None, "#FFA900"),
        ("JUNK", "Junk lead", "F", "#FF5752"),
        ("CONVERTED", "Good lead", "S", "#7BD500"),
    ],
)

SMART_INVOICE_STAGES = _stages(
    f"DT31_{SMART_INVOICE_CATEGORY}:",
    [
        ("N", "New", None, "#22B9FF"),
        ("S", "Sent to client", None, "#FFA900"),
        ("P", "Paid", "S", "#7BD500"),
        ("D", "Not paid", "F", "#FF5752"),
    ],
)

SOURCES = [
    ("CALL", "Call"),
    ("EMAIL", "E-Mail"),
    ("WEB", "Website"),
    ("ADVERTISING", "Advertising"),
    ("PARTNER", "Existing client"),
    ("RECOMMENDATION", "By recommendation"),
    ("TRADE_SHOW", "Show/Exhibition"),
    ("WEBFORM", "CRM form"),
    ("CALLBACK", "Callback"),
    ("OTHER", "Other"),
    ("UC_GOOGLE_ADS", "Google Ads"),
    ("UC_YANDEX_DIRECT", "Яндекс Директ"),
    ("UC_INSTAGRAM", "Instagram"),
    ("UC_FACEBOOK", "Facebook Ads"),
    ("UC_TIKTOK", "TikTok"),
    ("UC_WHATSAPP", "WhatsApp"),
    ("UC_TELEGRAM", "Telegram-канал"),
    ("UC_MEDPORTAL", "Medical tourism portal"),
    ("UC_CLINIC_REF", "Klinik-Empfehlung"),
    ("UC_SAGLIK", "Sağlık turizmi fuarı"),
]

SIMPLE_DICTIONARIES: dict[str, list[tuple[str, str]]] = {
    "SOURCE": SOURCES,
    "DEAL_TYPE": [
        ("SALE", "Sales"),
        ("COMPLEX", "Complex sale"),
        ("GOODS", "Sale of goods"),
        ("SERVICES", "Sale of services"),
        ("SERVICE", "After-sales service"),
    ],
    "CONTACT_TYPE": [
        ("CLIENT", "Clients"),
        ("SUPPLIER", "Suppliers"),
        ("PARTNER", "Partners"),
        ("OTHER", "Other"),
    ],
    "COMPANY_TYPE": [
        ("CUSTOMER", "Client"),
        ("SUPPLIER", "Supplier"),
        ("COMPETITOR", "Competitor"),
        ("PARTNER", "Partner"),
        ("OTHER", "Other"),
    ],
    "INDUSTRY": [
        ("IT", "Information Technology"),
        ("TELECOM", "Telecommunication"),
        ("BANKING", "Banking"),
        ("CONSULTING", "Consulting"),
        ("FINANCE", "Finance"),
        ("GOVERNMENT", "Government"),
        ("DELIVERY", "Delivery"),
        ("UC_HEALTHCARE", "Здравоохранение"),
        ("UC_TOURISM", "Tourism"),
        ("OTHER", "Other"),
    ],
    "EMPLOYEES": [
        ("EMPLOYEES_1", "< 50"),
        ("EMPLOYEES_2", "50-250"),
        ("EMPLOYEES_3", "250-500"),
        ("EMPLOYEES_4", "> 500"),
    ],
    "HONORIFIC": [("HNR_EN_1", "Mr."), ("HNR_EN_2", "Mrs."), ("HNR_EN_3", "Ms."), ("HNR_EN_4", "Dr.")],
}

# crm.status.entity.types rows besides the per-pipeline deal stage entities.
ENTITY_TYPES = [
    {
        "ID": "STATUS",
        "NAME": "Lead statuses",
        "SEMANTIC_INFO": {
            "START_FIELD": "NEW",
            "FINAL_SUCCESS_FIELD": "CONVERTED",
            "FINAL_UNSUCCESS_FIELD": "JUNK",
            "FINAL_SORT": 0,
        },
        "ENTITY_TYPE_ID": 1,
    },
    {"ID": "SOURCE", "NAME": "Sources"},
    {"ID": "CONTACT_TYPE", "NAME": "Contact type"},
    {"ID": "COMPANY_TYPE", "NAME": "Company type"},
    {"ID": "EMPLOYEES", "NAME": "Number of employees"},
    {"ID": "INDUSTRY", "NAME": "Industry"},
    {"ID": "DEAL_TYPE", "NAME": "Deal type"},
    {"ID": "HONORIFIC", "NAME": "Salutations"},
]

PAY_SYSTEMS = [(1, "Cash"), (2, "Bank transfer"), (3, "Card payment (online)"), (4, "PayPal"), (5, "iyzico")]


def deal_stage_entity(category_id: int) -> str:
    return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"


def status_rows() -> list[tuple[str, str, str, int, str, int | None, str | None, str | None]]:
    """(ENTITY_ID, STATUS_ID, NAME, SORT, SYSTEM, CATEGORY_ID, COLOR, SEMANTICS) of every entry."""
    rows: list[tuple[str, str, str, int, str, int | None, str | None, str | None]] = []

    def stages(entity: str, items: list[Stage], category: int | None) -> None:
        for i, s in enumerate(items):
            system = (
                "Y" if s.status_id.split(":")[-1] in ("NEW", "WON", "LOSE", "CONVERTED", "JUNK", "N", "P", "D") else "N"
            )
            rows.append((entity, s.status_id, s.name, (i + 1) * 10, system, category, s.color, s.semantics))

    stages("STATUS", LEAD_STATUSES, None)
    for cid, (_name, _sort, items) in DEAL_CATEGORIES.items():
        stages(deal_stage_entity(cid), items, cid or None)  # the default pipeline's stages have no CATEGORY_ID
    stages(f"SMART_INVOICE_STAGE_{SMART_INVOICE_CATEGORY}", SMART_INVOICE_STAGES, SMART_INVOICE_CATEGORY)
    for entity, items2 in SIMPLE_DICTIONARIES.items():
        for i, (sid, name) in enumerate(items2):
            rows.append((entity, sid, name, (i + 1) * 10, "Y" if not sid.startswith("UC_") else "N", None, None, None))
    return rows
