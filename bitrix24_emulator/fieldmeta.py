"""The standard fields of each CRM entity the emulator stores, as `crm.<entity>.fields` describes them.

One table drives storage (a SQLite column per field), the legacy names (`DATE_MODIFY`), the crm.item names
(`updatedTime`), value formatting and the `fields` metadata, so the three views of a record cannot drift
apart.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any

# How a Bitrix type is stored in SQLite: int, real, text, yn ("Y"/"N" text), datetime (unix int), date
# ("YYYY-MM-DD").
_STORAGE = {
    "integer": "int",
    "user": "int",
    "crm_company": "int",
    "crm_contact": "int",
    "crm_lead": "int",
    "crm_quote": "int",
    "crm_category": "int",
    "crm_deal": "int",
    "crm_entity": "int",
    "double": "real",
    "char": "yn",
    "datetime": "datetime",
    "date": "date",
    "string": "text",
    "crm_status": "text",
    "crm_currency": "text",
    "location": "text",
    "file": "int",  # PHOTO, LOGO: the emulator keeps them empty
}

MULTIFIELD_TYPES = ("PHONE", "EMAIL", "WEB", "IM", "LINK")
MULTIFIELD_TITLES = {"PHONE": "Phone", "EMAIL": "E-mail", "WEB": "Website", "IM": "Messenger", "LINK": "Link"}


@dataclass(frozen=True)
class StdField:
    name: str
    type: str
    title: str
    camel: str = ""
    read_only: bool = False
    immutable: bool = False
    required: bool = False
    status_type: str | None = None
    settings: dict[str, Any] | None = None
    deprecated: bool = False
    listed: bool = True  # False: rows carry the key but `fields` does not describe it (FACE_ID)
    zero_when_empty: bool = False  # an empty link comes as "0" / 0, not null (COMPANY_ID of a deal)
    item_type: str = ""  # the type crm.item.fields gives, where it differs (SOURCE_DESCRIPTION is `text`)
    item_required: bool | None = None  # where crm.item.fields differs (`opened` is required there)

    @property
    def storage(self) -> str:
        return _STORAGE[self.type]

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "isRequired": self.required,
            "isReadOnly": self.read_only,
            "isImmutable": self.immutable,
            "isMultiple": False,
            "isDynamic": False,
        }
        if self.status_type:
            out["statusType"] = self.status_type
        if self.deprecated:
            out["isDeprecated"] = True
        out["title"] = self.title
        if self.settings:
            out["settings"] = self.settings
        return out

    def item_meta(self) -> dict[str, Any]:
        """As crm.item.fields describes the field: its types are `boolean` where the legacy `fields` say
        `char`, `text` for long strings (docs crm/universal/crm-item-fields.md, recorded responses)."""
        out = self.meta()
        out["type"] = self.item_type or ("boolean" if self.type == "char" else self.type)
        if self.item_required is not None:
            out["isRequired"] = self.item_required
        return out


_CAMEL_OVERRIDES = {
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
    "MOVED_BY_ID": "movedBy",
    "LAST_ACTIVITY_BY": "lastActivityBy",
    "COMPANY_TYPE": "typeId",
    "PARENT_ID_2": "parentId2",
    "MYCOMPANY_ID": "mycompanyId",
}


def multiple_meta(type_: str, title: str) -> dict[str, Any]:
    """The `fields` entry of a multiple standard field (multifields, contact bindings, observers)."""
    return {
        "type": type_,
        "isRequired": False,
        "isReadOnly": False,
        "isImmutable": False,
        "isMultiple": True,
        "isDynamic": False,
        "title": title,
    }


def camel(name: str) -> str:
    """`ASSIGNED_BY_ID` -> `assignedById` (crm.item naming), with the few names crm.item renames."""
    if name in _CAMEL_OVERRIDES:
        return _CAMEL_OVERRIDES[name]
    head, *rest = name.lower().split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def uf_camel(name: str) -> str:
    """`UF_CRM_1699000001` -> `ufCrm_1699000001`; `UF_CRM_SMART_INVOICE_17` -> `ufCrmSmartInvoice_17`."""
    rest = name[len("UF_CRM_") :].split("_")
    prefix = "".join(p[:1].upper() + p[1:].lower() for p in rest[:-1])
    return f"ufCrm{prefix}_{rest[-1]}"


# How crm.item.fields describes some standard fields differently from the legacy `fields` (docs
# crm/universal/crm-item-fields.md): long strings are `text`, `opened` is required.
_ITEM_VIEW: dict[str, dict[str, Any]] = {
    "SOURCE_DESCRIPTION": {"item_type": "text"},
    "COMMENTS": {"item_type": "text"},
    "OPENED": {"item_required": True},
}


def _f(name: str, type_: str, title: str, **kw: Any) -> StdField:
    kw = {**_ITEM_VIEW.get(name, {}), **kw}
    return StdField(name, type_, title, camel=kw.pop("camel", None) or camel(name), **kw)


_RO = {"read_only": True}
_OWNERS = [
    _f("ASSIGNED_BY_ID", "user", "Responsible"),
    _f("CREATED_BY_ID", "user", "Created By", **_RO),
    _f("MODIFY_BY_ID", "user", "Modified By", **_RO),
]
_DATES = [
    _f("DATE_CREATE", "datetime", "Created on", **_RO),
    _f("DATE_MODIFY", "datetime", "Modified on", **_RO),
]
_COMMON_TAIL = [*_OWNERS, *_DATES]
# deals and leads: the mover sits between the owners and the dates (docs crm-deal-fields.md, crm-lead-fields.md)
_MOVED_TAIL = [
    *_OWNERS,
    _f("MOVED_BY_ID", "user", "MOVED_BY_ID", zero_when_empty=True, **_RO),
    *_DATES,
    _f("MOVED_TIME", "datetime", "MOVED_TIME", **_RO),
]
_UTM = [_f(f"UTM_{p}", "string", f"UTM {p.lower()}") for p in ("SOURCE", "MEDIUM", "CAMPAIGN", "CONTENT", "TERM")]
_ACTIVITY = [
    _f("LAST_ACTIVITY_TIME", "datetime", "Last activity", **_RO),
    _f("LAST_ACTIVITY_BY", "user", "Last activity by", **_RO),
    # in the legacy rows of real portals, not in their `fields` (ru tutorial crm.deal.get; company has it listed)
    _f("LAST_COMMUNICATION_TIME", "string", "Last Communication Date", listed=False, **_RO),
]
_ORIGIN = [
    _f("ORIGINATOR_ID", "string", "External source"),
    _f("ORIGIN_ID", "string", "Item ID in data source"),
]
_ADDRESS = [
    _f("ADDRESS", "string", "Street address"),
    _f("ADDRESS_2", "string", "Address (line 2)"),
    _f("ADDRESS_CITY", "string", "City"),
    _f("ADDRESS_POSTAL_CODE", "string", "Zip"),
    _f("ADDRESS_REGION", "string", "Region"),
    _f("ADDRESS_PROVINCE", "string", "State / Province"),
    _f("ADDRESS_COUNTRY", "string", "Country"),
    _f("ADDRESS_COUNTRY_CODE", "string", "Country Code"),
    _f("ADDRESS_LOC_ADDR_ID", "integer", "Location Address ID"),
]
_REG_ADDRESS = [
    _f("ADDRESS_LEGAL", "string", "Legal Address"),
    *(_f(f"REG_{f.name}", f.type, f"Legal address: {f.title}") for f in _ADDRESS),
]
_PERSON = [
    _f("HONORIFIC", "crm_status", "Salutation", status_type="HONORIFIC"),
    _f("NAME", "string", "First name"),
    _f("SECOND_NAME", "string", "Second name"),
    _f("LAST_NAME", "string", "Last name"),
    _f("BIRTHDATE", "date", "Date of birth"),
]
_HAS = [
    _f(f"HAS_{k}", "char", f"Has {t}", **_RO)
    for k, t in (("PHONE", "phone"), ("EMAIL", "email"), ("IMOL", "Open Channel"))
]
_ID = _f("ID", "integer", "ID", **_RO)

DEAL_FIELDS = [
    _ID,
    _f("TITLE", "string", "Title"),
    _f("TYPE_ID", "crm_status", "Type", status_type="DEAL_TYPE"),
    _f("CATEGORY_ID", "crm_category", "Sales Funnel", immutable=True),
    _f("STAGE_ID", "crm_status", "Deal Stage", status_type="DEAL_STAGE"),
    _f("STAGE_SEMANTIC_ID", "string", "Stage Group", **_RO),
    _f("IS_NEW", "char", "New Deal", **_RO),
    _f("IS_RECURRING", "char", "Recurring Deal"),
    _f("IS_RETURN_CUSTOMER", "char", "Repeat Deal"),
    _f("IS_REPEATED_APPROACH", "char", "Repeated Approach"),
    _f("PROBABILITY", "integer", "Probability"),
    _f("CURRENCY_ID", "crm_currency", "Currency"),
    _f("OPPORTUNITY", "double", "Amount"),
    _f("IS_MANUAL_OPPORTUNITY", "char", "IS_MANUAL_OPPORTUNITY"),
    _f("TAX_VALUE", "double", "Tax Rate"),
    _f("COMPANY_ID", "crm_company", "Company", settings={"parentEntityTypeId": 4}, zero_when_empty=True),
    _f("CONTACT_ID", "crm_contact", "Contact", deprecated=True),
    _f("QUOTE_ID", "crm_quote", "Estimate", read_only=True, settings={"parentEntityTypeId": 7}),
    _f("BEGINDATE", "date", "Start Date"),
    _f("CLOSEDATE", "date", "Close Date"),
    _f("OPENED", "char", "Available to All"),
    _f("CLOSED", "char", "Closed"),
    _f("COMMENTS", "string", "Comment"),
    *_MOVED_TAIL,
    _f("SOURCE_ID", "crm_status", "Source", status_type="SOURCE"),
    _f("SOURCE_DESCRIPTION", "string", "Additional Info about Source"),
    _f("LEAD_ID", "crm_lead", "Lead", read_only=True, settings={"parentEntityTypeId": 1}),
    _f("ADDITIONAL_INFO", "string", "Additional information"),
    _f("LOCATION_ID", "location", "Location"),
    *_ORIGIN,
    *_UTM,
    *_ACTIVITY,
]

LEAD_FIELDS = [
    _ID,
    _f("TITLE", "string", "Lead Name"),
    *_PERSON,
    _f("COMPANY_TITLE", "string", "Company name"),
    _f("SOURCE_ID", "crm_status", "Source", status_type="SOURCE"),
    _f("SOURCE_DESCRIPTION", "string", "Source information"),
    _f("STATUS_ID", "crm_status", "Status", status_type="STATUS"),
    _f("STATUS_DESCRIPTION", "string", "Status information"),
    _f("STATUS_SEMANTIC_ID", "string", "Status details", **_RO),
    _f("POST", "string", "Position"),
    *_ADDRESS,
    _f("CURRENCY_ID", "crm_currency", "Currency"),
    _f("OPPORTUNITY", "double", "Total"),
    _f("IS_MANUAL_OPPORTUNITY", "char", "IS_MANUAL_OPPORTUNITY"),
    _f("OPENED", "char", "Available to everyone"),
    _f("COMMENTS", "string", "Comment"),
    *_HAS,
    *_MOVED_TAIL,
    _f("COMPANY_ID", "crm_company", "Company", settings={"parentEntityTypeId": 4}, zero_when_empty=True),
    _f("CONTACT_ID", "crm_contact", "Contact", deprecated=True),
    _f("IS_RETURN_CUSTOMER", "char", "Repeat lead", **_RO),
    _f("DATE_CLOSED", "datetime", "Completed on", **_RO),
    *_ORIGIN,
    *_UTM,
    *_ACTIVITY,
]

CONTACT_FIELDS = [
    _ID,
    _PERSON[0],
    # crm.contact.fields marks a contact's name fields required (docs crm-contact-fields.md)
    *(replace(f, required=True) for f in _PERSON[1:4]),
    _f("PHOTO", "file", "Photo"),
    *_PERSON[4:],
    _f("TYPE_ID", "crm_status", "Contact type", status_type="CONTACT_TYPE"),
    _f("SOURCE_ID", "crm_status", "Source", status_type="SOURCE"),
    _f("SOURCE_DESCRIPTION", "string", "Source information"),
    _f("POST", "string", "Position"),
    *_ADDRESS,
    _f("COMMENTS", "string", "Comment"),
    _f("OPENED", "char", "Available to everyone"),
    _f("EXPORT", "char", "Included in export"),
    *_HAS,
    *_COMMON_TAIL,
    _f("COMPANY_ID", "crm_company", "Company", deprecated=True),
    _f("LEAD_ID", "crm_lead", "Lead", read_only=True, settings={"parentEntityTypeId": 1}),
    *_ORIGIN,
    _f("ORIGIN_VERSION", "string", "Original version"),
    *_UTM,
    *_ACTIVITY,
    _f("FACE_ID", "integer", "Face ID", listed=False, **_RO),  # in real contact rows, null
]

COMPANY_FIELDS = [
    _ID,
    _f("TITLE", "string", "Company Name", required=True),
    _f("COMPANY_TYPE", "crm_status", "Company type", status_type="COMPANY_TYPE"),
    _f("LOGO", "file", "Logo"),
    *_ADDRESS,
    *_REG_ADDRESS,
    _f("BANKING_DETAILS", "string", "Payment details"),
    _f("INDUSTRY", "crm_status", "Industry", status_type="INDUSTRY"),
    _f("EMPLOYEES", "crm_status", "Employees", status_type="EMPLOYEES"),
    _f("CURRENCY_ID", "crm_currency", "Currency"),
    _f("REVENUE", "double", "Annual revenue"),
    _f("OPENED", "char", "Available to everyone"),
    _f("COMMENTS", "string", "Comment"),
    *_HAS,
    _f("IS_MY_COMPANY", "char", "My Company"),
    *_COMMON_TAIL,
    _f("LEAD_ID", "crm_lead", "Lead", read_only=True, settings={"parentEntityTypeId": 1}),
    *_ORIGIN,
    _f("ORIGIN_VERSION", "string", "Original version"),
    *_UTM,
    # the company page documents these two as writable, unlike the other entities' pages
    _f("LAST_ACTIVITY_TIME", "datetime", "Last activity"),
    _f("LAST_ACTIVITY_BY", "user", "Last activity by"),
    _f("LAST_COMMUNICATION_TIME", "string", "Last Communication Date", **_RO),
]


def _dynamic_fields(
    *, head: list[StdField], stage_status: str | None, dates: tuple[str, str], own: StdField
) -> list[StdField]:
    """The standard fields of a `crm.item`-only type (smart invoices, smart processes; docs
    crm/universal/crm-item-fields.md): the same list, with the few fields and titles each type has of its own."""
    return [
        _ID,
        _f("XML_ID", "string", "External ID"),
        _f("TITLE", "string", "Name"),
        *head,
        _f("CATEGORY_ID", "crm_category", "Pipeline", immutable=True),
        _f("STAGE_ID", "crm_status", "Stage", status_type=stage_status),
        _f("PREVIOUS_STAGE_ID", "crm_status", "Previous stage", read_only=True),
        _f("BEGINDATE", "date", dates[0]),
        _f("CLOSEDATE", "date", dates[1]),
        _f("OPENED", "char", "Available to everyone"),
        _f("COMPANY_ID", "crm_company", "Company"),
        _f("CONTACT_ID", "crm_contact", "Contact"),
        _f("MYCOMPANY_ID", "crm_company", "Your company details"),
        _f("OPPORTUNITY", "double", "Amount"),
        _f("IS_MANUAL_OPPORTUNITY", "char", "Manual amount"),
        _f("TAX_VALUE", "double", "Tax"),
        _f("CURRENCY_ID", "crm_currency", "Currency"),
        _f("SOURCE_ID", "crm_status", "Source", status_type="SOURCE"),
        _f("SOURCE_DESCRIPTION", "string", "Source information"),
        _f("PARENT_ID_2", "crm_entity", "Deal"),
        own,
        *_COMMON_TAIL,
        _f("MOVED_BY_ID", "user", "Moved by", **_RO),
        _f("MOVED_TIME", "datetime", "Moved on", **_RO),
        *_ACTIVITY,
    ]


SMART_INVOICE_FIELDS = _dynamic_fields(
    head=[_f("ACCOUNT_NUMBER", "string", "Invoice #")],
    stage_status="SMART_INVOICE_STAGE_5",
    dates=("Invoice date", "Due date"),
    own=_f("COMMENTS", "string", "Comment"),
)

# Quotes (entityTypeId 7): read through crm.item.* (crm.quote.* is deprecated); docs crm/quote/ and
# crm/universal/crm-item-fields.md
QUOTE_FIELDS = [
    _ID,
    _f("TITLE", "string", "Name"),
    _f("QUOTE_NUMBER", "string", "Quote #", **_RO),
    _f("STATUS_ID", "crm_status", "Stage", status_type="QUOTE_STATUS"),
    _f("OPPORTUNITY", "double", "Amount"),
    _f("IS_MANUAL_OPPORTUNITY", "char", "Manual amount"),
    _f("TAX_VALUE", "double", "Tax"),
    _f("CURRENCY_ID", "crm_currency", "Currency"),
    _f("DEAL_ID", "crm_deal", "Deal"),
    _f("LEAD_ID", "crm_lead", "Lead"),
    _f("COMPANY_ID", "crm_company", "Company"),
    _f("CONTACT_ID", "crm_contact", "Contact"),
    _f("MYCOMPANY_ID", "crm_company", "Your company details"),
    _f("BEGINDATE", "date", "Created on (date)"),
    _f("CLOSEDATE", "date", "Expiration date"),
    _f("OPENED", "char", "Available to everyone"),
    _f("CLOSED", "char", "Closed"),
    _f("COMMENTS", "string", "Comment"),
    *_COMMON_TAIL,
]

# A smart process's standard fields; which ones a type shows depends on its flags, the emulator gives every type
# all of them.
SMART_PROCESS_FIELDS = _dynamic_fields(
    head=[],
    stage_status=None,
    dates=("Start date", "End date"),
    own=_f("WEBFORM_ID", "integer", "Created by CRM form", zero_when_empty=True),
)


@dataclass(frozen=True)
class EntityKind:
    """One CRM entity type: its REST names, SQLite table and standard fields."""

    key: str  # "deal"; the SQLite table and the legacy method prefix crm.<key>.*
    type_id: int  # entityTypeId
    type_name: str  # DEAL
    uf_entity: str  # CRM_DEAL (userfield ENTITY_ID)
    crm_prefix: str  # D (the prefix of `crm` user-field values, "D_12")
    fields: list[StdField]
    multifields: tuple[str, ...] = ()
    legacy: bool = True  # served by crm.<key>.* (smart invoices are crm.item only)
    uf_prefix: str = "UF_CRM_"
    by_name: dict[str, StdField] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def observed(self) -> bool:
        """Whether crm.item gives its records `observers` (every kind but contacts and companies)."""
        return self.key not in ("contact", "company")


ENTITIES: dict[str, EntityKind] = {
    e.key: e
    for e in (
        EntityKind("lead", 1, "LEAD", "CRM_LEAD", "L", LEAD_FIELDS, MULTIFIELD_TYPES),
        EntityKind("deal", 2, "DEAL", "CRM_DEAL", "D", DEAL_FIELDS),
        EntityKind("contact", 3, "CONTACT", "CRM_CONTACT", "C", CONTACT_FIELDS, MULTIFIELD_TYPES),
        EntityKind("company", 4, "COMPANY", "CRM_COMPANY", "CO", COMPANY_FIELDS, MULTIFIELD_TYPES),
        EntityKind(
            "smart_invoice",
            31,
            "SMART_INVOICE",
            "CRM_SMART_INVOICE",
            "SI",
            SMART_INVOICE_FIELDS,
            legacy=False,
            uf_prefix="UF_CRM_SMART_INVOICE_",
        ),
        EntityKind("quote", 7, "QUOTE", "CRM_QUOTE", "Q", QUOTE_FIELDS, legacy=False),
    )
}


def smart_process_kind(type_id: int, entity_type_id: int) -> EntityKind:
    """The kind of a smart process: `crm.type` id 5 with entityTypeId 1038 stores its user fields under
    `CRM_5` as `UF_CRM_5_...` (camelCase `ufCrm5_...`) and prefixes its `crm` field values with `T40e_`."""
    return EntityKind(
        f"dynamic_{entity_type_id}",
        entity_type_id,
        f"DYNAMIC_{entity_type_id}",
        f"CRM_{type_id}",
        f"T{entity_type_id:x}",
        SMART_PROCESS_FIELDS,
        legacy=False,
        uf_prefix=f"UF_CRM_{type_id}_",
    )


def stage_entity(entity_type_id: int, category_id: int) -> str:
    """The crm.status ENTITY_ID of a pipeline's stages: `DYNAMIC_1038_STAGE_12` for a smart process."""
    return f"DYNAMIC_{entity_type_id}_STAGE_{category_id}"


def stage_prefix(entity_type_id: int, category_id: int) -> str:
    """Stage ids of a smart-process pipeline: `DT1038_12:NEW`."""
    return f"DT{entity_type_id}_{category_id}:"


UF_NAME_RE = re.compile(r"^UF_CRM_[A-Z0-9_]+$")

# User-field types the emulator stores, and how (single values; multiple values are stored as JSON text).
UF_STORAGE = {
    "string": "text",
    "url": "text",
    "money": "text",
    "crm": "text",
    "address": "text",
    "crm_status": "text",
    "integer": "int",
    "employee": "int",
    "enumeration": "int",
    "file": "int",
    "iblock_element": "int",
    "iblock_section": "int",
    "double": "real",
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
}

# Settings of new user fields per type (crm.<entity>.fields `settings`, userfield.list `SETTINGS`).
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
    """A fresh copy of the settings Bitrix24 gives a new user field of this type."""
    return copy.deepcopy(_SETTINGS.get(user_type, {}))
