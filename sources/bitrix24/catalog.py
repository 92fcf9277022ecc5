"""The run's catalog: which CRM entities this portal has and which resources they make, built when a run starts.

A portal's data model is only known at run time (smart processes have per-portal entityTypeIds), so nothing
downstream reads a module-level list of entities: the source builds a `Catalog` per run and hands it to every
reader, and the runner, views, check, status and reconcile take the same catalog. The static rows below are
the entities every portal has; adding one is adding one row to `STATIC_ENTITIES`. Discovered entities (smart
processes from `crm.type.list`, cached in state: `smart_process_specs`) join them through
`Catalog.for_portal(discovered)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .api.errors import ConfigError


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
    has_stage_history: bool = False  # crm.stagehistory.list keeps its stage moves
    product_owner_type: str | None = None  # crm.item.productrow.list `ownerType` (D, L, Q, SI, T<hex>)
    user_fields: bool = True  # legacy lists: select `UF_*` too
    discovered: bool = False  # reported by the portal (a smart process): may vanish between runs

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
        return ["*", *(["UF_*"] if self.user_fields else []), *self.multi_fields]

    def is_user_field(self, key: str) -> bool:
        """User fields are the fields that appear on a portal between runs (`UF_CRM_...`, `ufCrm..._...`)."""
        return key.startswith("ufCrm" if self.key_style == "item" else "UF_")

    def fields_of(self, result: Any) -> Any:
        """The field descriptions in a `fields` result (crm.item.fields wraps them in `fields`)."""
        return result.get("fields") if self.key_style == "item" and isinstance(result, dict) else result


_CONTACT_CHANNELS = ("PHONE", "EMAIL", "WEB", "IM")

# The entities every portal has, in the order the run reads them. One row per entity.
STATIC_ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec(
        "deals", "crm.deal", 2, owns_payments=True, has_pipelines=True, has_stage_history=True, product_owner_type="D"
    ),
    EntitySpec("leads", "crm.lead", 1, multi_fields=_CONTACT_CHANNELS, has_stage_history=True),
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
        has_stage_history=True,
        product_owner_type="SI",
    ),
    EntitySpec("quotes", "crm.item", 7, "id", "updatedTime", key_style="item", product_owner_type="Q"),
    # activities (to-dos included: PROVIDER_ID CRM_TODO) are bound to their owner by OWNER_TYPE_ID/OWNER_ID;
    # COMMUNICATIONS come only when selected and load as the child table activities__communications
    EntitySpec(
        "activities",
        "crm.activity",
        6,
        cursor_field="LAST_UPDATED",
        multi_fields=("COMMUNICATIONS",),
        user_fields=False,
    ),
)


def smart_process_spec(entity_type_id: int, flags: dict[str, Any]) -> EntitySpec:
    """A smart process as a catalog row: table `sp_<entityTypeId>` (stable when the type is renamed)."""
    return EntitySpec(
        f"sp_{entity_type_id}",
        "crm.item",
        entity_type_id,
        "id",
        "updatedTime",
        key_style="item",
        has_pipelines=True,
        has_stage_history=flags.get("isStagesEnabled") == "Y",
        product_owner_type=f"T{entity_type_id:x}" if flags.get("isLinkWithProductsEnabled") == "Y" else None,
        owns_payments=flags.get("isPaymentsEnabled") == "Y",
        discovered=True,
    )


PAYMENTS = "payments"
STAGE_HISTORY = "stage_history"  # append-only log of stage moves, read forward by ID
CALLS = "calls"  # telephony call records, read forward by ID (scope telephony)
PRODUCTS = "products"  # catalog products, changed ones forward by ID per catalog (scope catalog)
PRODUCT_ROWS = "product_rows"  # one row per owner, its rows in product_rows__items (replaced whole)
DEAL_CONTACTS = "deal_contacts"  # one row per deal, its contacts in deal_contacts__contacts (replaced whole)
SMART_PROCESSES = "smart_processes"  # the portal's smart-process types (crm.type.list), every run
CURRENCIES = "currencies"  # crm.currency.list, every run
CURRENCY_RATES = "currency_rates"  # one snapshot of the rates per currency and run day, kept
REFERENCE_LISTS: tuple[str, ...] = ("stages", "pipelines", "users")  # small lists, replaced whole when due
FIELDS = "fields"
PORTAL_INFO = "portal_info"  # one row about the portal itself (its address, UTC offset, time zone): every run


@dataclass(frozen=True)
class Catalog:
    """The entities of one run and the resources they make, in canonical order: entities, payments, the
    reference lists, `fields`."""

    entities: tuple[EntitySpec, ...]

    @classmethod
    def for_portal(cls, discovered: Iterable[EntitySpec] = ()) -> Catalog:
        """The static entities plus what the portal reported (a discovered entity never shadows a static one)."""
        seen = {e.resource for e in STATIC_ENTITIES}
        found = []
        for spec in discovered:  # a static entity is never shadowed, and a discovered one is listed once
            if spec.resource not in seen:
                seen.add(spec.resource)
                found.append(spec)
        return cls((*STATIC_ENTITIES, *found))

    @property
    def entity_resources(self) -> tuple[str, ...]:
        return tuple(e.resource for e in self.entities)

    @property
    def resources(self) -> tuple[str, ...]:
        """Every resource a run can select."""
        return (
            *self.entity_resources,
            PAYMENTS,
            STAGE_HISTORY,
            PRODUCT_ROWS,
            DEAL_CONTACTS,
            CALLS,
            PRODUCTS,
            SMART_PROCESSES,
            CURRENCIES,
            CURRENCY_RATES,
            *REFERENCE_LISTS,
            FIELDS,
        )

    @property
    def payment_owners(self) -> tuple[EntitySpec, ...]:
        return tuple(e for e in self.entities if e.owns_payments)

    @property
    def history_owners(self) -> tuple[EntitySpec, ...]:
        return tuple(e for e in self.entities if e.has_stage_history)

    @property
    def product_owners(self) -> tuple[EntitySpec, ...]:
        return tuple(e for e in self.entities if e.product_owner_type)

    @property
    def smart_processes(self) -> tuple[EntitySpec, ...]:
        return tuple(e for e in self.entities if e.discovered)

    @property
    def with_pipelines(self) -> tuple[EntitySpec, ...]:
        return tuple(e for e in self.entities if e.has_pipelines)

    @property
    def reconcilable(self) -> tuple[str, ...]:
        """Resources whose deletes a reconcile finds by ID: every entity, payments and products."""
        return (*self.entity_resources, PAYMENTS, PRODUCTS)

    def has_entity(self, resource: str) -> bool:
        return any(e.resource == resource for e in self.entities)

    def entity(self, resource: str) -> EntitySpec:
        for spec in self.entities:
            if spec.resource == resource:
                return spec
        raise KeyError(resource)

    def owner_of_type(self, entity_type_id: int) -> EntitySpec | None:
        return next((e for e in self.payment_owners if e.entity_type_id == entity_type_id), None)

    def select(self, names: Sequence[str] | str | None) -> tuple[str, ...]:
        """Validate resource names (a list or "deals,leads"); None or empty means all, in canonical order."""
        if isinstance(names, str):
            names = [n for n in (p.strip() for p in names.split(",")) if n]
        if not names:
            return self.resources
        unknown = sorted(set(names) - set(self.resources))
        if unknown:
            raise ConfigError(f"unknown resource {', '.join(unknown)}: choose from {', '.join(self.resources)}")
        return tuple(r for r in self.resources if r in names)
