"""The one declarative table of CRM entities, and the constants of the API's paging arithmetic.

Every CRM resource, its field metadata, its incremental window and its payment ownership are derived from an
`EntitySpec`; adding an entity is adding one entry to `ENTITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PAGE_SIZE = 50  # rows per list page: fixed by the portal
BATCH_SIZE = 50  # commands per batch request: fixed by the portal
DEFAULT_START_ID = 0


@dataclass(frozen=True)
class EntitySpec:
    """How to read one CRM entity: through its legacy `crm.<x>.*` methods (UPPER_CASE keys, string values), or
    through the universal `crm.item.*` methods (camelCase keys, typed values, rows under `items`)."""

    resource: str  # resource and table name, e.g. "deals"
    api_prefix: str  # legacy: "crm.deal" -> "crm.deal.list", "crm.deal.fields"; item style: "crm.item"
    entity_type_id: int  # CRM entityTypeId (2 = deal); payments and pipelines are keyed by it
    id_field: str = "ID"
    cursor_field: str = "DATE_MODIFY"
    multi_fields: tuple[str, ...] = ()  # PHONE/EMAIL/WEB/IM must be selected by name (legacy only)
    key_style: Literal["legacy", "item"] = "legacy"
    owns_payments: bool = False  # crm.item.payment.list works for this entityTypeId
    has_pipelines: bool = False  # crm.category.list is meaningful for this entityTypeId

    @property
    def list_method(self) -> str:
        return f"{self.api_prefix}.list"

    @property
    def fields_method(self) -> str:
        return f"{self.api_prefix}.fields"

    @property
    def items_path(self) -> tuple[str, ...]:
        """Where a list result keeps its rows (crm.item.list: `result.items`)."""
        return ("items",) if self.key_style == "item" else ()

    def base_params(self) -> dict[str, Any]:
        """Parameters every call of this entity carries."""
        return {"entityTypeId": self.entity_type_id} if self.key_style == "item" else {}

    def select(self) -> list[str]:
        """Legacy `*` excludes user fields and multi-fields, so both are asked for explicitly; crm.item's `*`
        includes user fields."""
        if self.key_style == "item":
            return ["*"]
        return ["*", "UF_*", *self.multi_fields]

    def is_user_field(self, key: str) -> bool:
        """User fields are the fields that appear on a portal between runs (`UF_CRM_...`, `ufCrm..._...`)."""
        return key.startswith("ufCrm" if self.key_style == "item" else "UF_")

    def fields_of(self, result: Any) -> Any:
        """The field descriptions in a `fields` result (crm.item.fields wraps them in `fields`)."""
        return result.get("fields") if self.key_style == "item" and isinstance(result, dict) else result


_CONTACT_CHANNELS = ("PHONE", "EMAIL", "WEB", "IM")

ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec("deals", "crm.deal", 2, owns_payments=True, has_pipelines=True),
    EntitySpec("leads", "crm.lead", 1, multi_fields=_CONTACT_CHANNELS),
    EntitySpec("contacts", "crm.contact", 3, multi_fields=_CONTACT_CHANNELS),
    EntitySpec("companies", "crm.company", 4, multi_fields=_CONTACT_CHANNELS),
    EntitySpec(
        "invoices",
        "crm.item",
        31,
        "id",
        "updatedTime",
        key_style="item",
        owns_payments=True,
        has_pipelines=True,
    ),
)
ENTITY_BY_RESOURCE: dict[str, EntitySpec] = {e.resource: e for e in ENTITIES}

PAYMENTS = "payments"
REFERENCE_RESOURCES: tuple[str, ...] = ("stages", "pipelines", "users", "fields")
ALL_RESOURCES: tuple[str, ...] = (*ENTITY_BY_RESOURCE, PAYMENTS, *REFERENCE_RESOURCES)

# Defaults of the source's configuration (`[sources.bitrix24]` in .dlt/config.toml).
DEFAULT_OVERLAP_SECONDS = 0
DEFAULT_FIELDS_MAX_AGE_HOURS = 24.0
DEFAULT_REFERENCE_MAX_AGE_HOURS = 24.0
DEFAULT_PAYMENT_SWEEP_HOURS = 24.0
