"""The `bitrix24` dlt source: CRM entities (incremental on their change time, merged on ID), payments, and the
reference tables (stages, pipelines, users, fields) that decode them.

Configured the dlt way: the credential (a webhook URL or an OAuth app: `api/credentials.py`) in
`.dlt/secrets.toml` as `sources.bitrix24.credentials`, the other arguments in `[sources.bitrix24]` of
`.dlt/config.toml`. So the plain

    pipeline.run(bitrix24())

works with either credential. Each call builds the run's `Catalog` (the entities this portal has), one reader per
selected resource, and a `RunPlan` from what the readers declare. This module is the source's public face:
the runner imports nothing else of the package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dlt
from dlt.common.schema import Schema
from dlt.extract import DltResource

from .allocator import trimmed
from .api import (
    AuthError,
    Bitrix24Client,
    Bitrix24Credentials,
    Bitrix24Error,
    ClientStats,
    ConfigError,
    LeakyBucket,
    OAuthAuth,
    PlanError,
    ScopeError,
    TransientError,
    configured_oauth_app,
    connect,
    redact,
)
from .arrow_pages import ROOT_KEY
from .calls import CALL_PLAN, CallReader
from .catalog import (
    CALLS,
    CURRENCIES,
    CURRENCY_RATES,
    DEAL_CONTACTS,
    FIELDS,
    PAYMENTS,
    PORTAL_INFO,
    PRODUCT_ROWS,
    PRODUCTS,
    REFERENCE_LISTS,
    SMART_PROCESSES,
    STAGE_HISTORY,
    Catalog,
    EntitySpec,
)
from .currencies import CURRENCY_PLAN, RATE_COLUMNS, RATE_KEY, CurrencyReader
from .deal_contacts import COLUMNS as DEAL_CONTACT_COLUMNS
from .deal_contacts import DealContactReader
from .entities import EntityReader, count_params, count_windows
from .fields import AMOUNT_SUFFIX, CURRENCY_SUFFIX, FIELDS_TABLE_COLUMNS, RAW_SUFFIX
from .metadata import FieldMetadata
from .naming import NamingConvention as ReadableNaming
from .paging import BATCH_SIZE, PAGE_SIZE
from .payments import PAYMENT_PLAN, PaymentCoverage, PaymentReader
from .plan import SYNC_DEFAULTS, PlanPart, PortalMismatchError, RunPlan, SyncOptions
from .portal_ids import PortalScan
from .product_rows import COLUMNS as PRODUCT_ROW_COLUMNS
from .product_rows import PRIMARY_KEY as PRODUCT_ROW_KEY
from .product_rows import ProductRowReader
from .products import PRODUCT_PLAN, ProductReader, catalog_ids, product_id_query
from .reference import ReferenceReader, fields_rows, reference_due, reference_lists
from .smart_processes import TYPES_PLAN, SmartProcessTypes, fetch_types, smart_process_specs, types_of
from .stage_history import HISTORY_PLAN, StageHistoryReader
from .stage_history import PRIMARY_KEY as HISTORY_KEY
from .state import SourceState
from .window import Backfill, DateInputError, normalize_user_date, utc_now

__all__ = [
    "AMOUNT_SUFFIX",
    "BATCH_SIZE",
    "CALLS",
    "CURRENCIES",
    "CURRENCY_RATES",
    "CURRENCY_SUFFIX",
    "DEAL_CONTACTS",
    "DELETED_AT",
    "PAGE_SIZE",
    "PAYMENTS",
    "PORTAL_INFO",
    "PRODUCT_ROWS",
    "PRODUCTS",
    "PlanError",
    "RAW_SUFFIX",
    "ReadableNaming",
    "REFERENCE_LISTS",
    "ROOT_KEY",
    "SMART_PROCESSES",
    "STAGE_HISTORY",
    "AuthError",
    "Backfill",
    "Bitrix24Client",
    "Bitrix24Error",
    "Catalog",
    "ClientStats",
    "ConfigError",
    "DateInputError",
    "EntitySpec",
    "LeakyBucket",
    "OAuthAuth",
    "PaymentCoverage",
    "PortalMismatchError",
    "PortalScan",
    "ScopeError",
    "SourceRun",
    "SourceState",
    "TransientError",
    "bitrix24",
    "catalog_ids",
    "catalog_of",
    "configured_oauth_app",
    "connect",
    "count_params",
    "count_windows",
    "redact",
    "product_id_query",
    "smart_process_specs",
    "types_of",
]

_MERGE = {"disposition": "merge", "strategy": "delete-insert"}
DELETED_AT = "_deleted_at"
# Set by a reconcile (pipelines/deletes.py) when the record is gone from the portal; a row merged again
# (restored on the portal) comes without it, which is what unmarks it.
DELETED_AT_COLUMN: dict[str, dict[str, Any]] = {
    DELETED_AT: {"data_type": "timestamp", "timezone": True, "nullable": True, "description": "deleted on the portal"}
}


@dataclass
class SourceRun:
    """What a caller learns about the run a source instance reads: its catalog, its client (request
    statistics), and which owners' payments it re-read whole (the runner marks the payments not returned).
    `new_tables`, set by the caller: entity tables its destination does not have yet, which a first load
    appends to instead of merging (nothing to merge with; the record ids of a keyset read are unique)."""

    new_tables: frozenset[str] = frozenset()
    catalog: Catalog | None = None
    markers: Counter[str] = field(default_factory=Counter)  # marker rows per table (loaded, never stored)
    client: Bitrix24Client | None = None
    requests_at_start: int = 0  # the client's request count before this source's first request
    coverage: PaymentCoverage = field(default_factory=PaymentCoverage)


def catalog_of(state: SourceState | None = None) -> Catalog:
    """The catalog a pipeline's runs use, built without a request: the static entities and the smart processes
    the portal reported last (`crm.type.list`, cached in `state` by every run's discovery batch)."""
    return Catalog.for_portal(smart_process_specs(state.smart_process_types() if state is not None else None))


# Named with the field codes kept whole (`naming.py`); a warehouse made with dlt's snake_case keeps it.
_SCHEMA = Schema("bitrix24", normalizers={"names": ReadableNaming.__module__})


@dlt.source(schema=_SCHEMA, root_key=True, max_table_nesting=1)
def bitrix24(
    credentials: Bitrix24Credentials | None = dlt.secrets.value,
    resources: Sequence[str] | None = None,
    start_date: str | None = None,
    overlap_seconds: int = SYNC_DEFAULTS.overlap_seconds,
    fields_max_age_hours: float = SYNC_DEFAULTS.fields_max_age_hours,
    reference_max_age_hours: float = SYNC_DEFAULTS.reference_max_age_hours,
    payment_sweep_hours: float = SYNC_DEFAULTS.payment_sweep_hours,
    owner_sweep_hours: float = SYNC_DEFAULTS.owner_sweep_hours,
    portal_timezone: str | None = None,
    backfill_since: str | None = None,
    backfill_until: str | None = None,
    refresh_reference: bool = False,
    rebind_portal: bool = False,
    client: Any = None,
    run: Any = None,
) -> list[DltResource]:
    """Bitrix24 CRM. `resources` selects by name (default: all); `backfill_since/until` re-read a window of the
    change time without moving cursors; `refresh_reference` forces the reference tables (full refresh);
    `client` shares a client that is already talking to this portal (one rate-limit bucket per portal), else
    `connect` makes one from `credentials` and the client settings of `[sources.bitrix24]` (rate, burst,
    timeout, max_retries, max_retry_seconds, allow_http); `run` (a `SourceRun`) is filled with what the caller
    may want to know about this run. A pipeline's state belongs to one portal: another portal is refused unless
    `rebind_portal` (a full refresh of every resource, which drops the other portal's tables first)."""
    state = SourceState.current()
    if client is None:
        client = connect(credentials=credentials)
    run = run if run is not None else SourceRun()
    run.client, run.requests_at_start = client, client.requests_made
    if state.smart_process_types() is None:  # a pipeline's first run: ask once which smart processes exist
        types = fetch_types(client)
        if types is not None:
            state.store_smart_process_types(types, utc_now().isoformat())
    catalog = catalog_of(state)
    time_zone = _time_zone(portal_timezone)
    selected = catalog.select(resources)
    backfill = Backfill.parse(backfill_since, backfill_until) if (backfill_since or backfill_until) else None
    options = SyncOptions(
        start_date=normalize_user_date(start_date, "start_date") if start_date else None,
        overlap_seconds=int(overlap_seconds),
        fields_max_age_hours=float(fields_max_age_hours),
        reference_max_age_hours=float(reference_max_age_hours),
        payment_sweep_hours=float(payment_sweep_hours),
        owner_sweep_hours=float(owner_sweep_hours),
        backfill=backfill,
    )
    run.catalog = catalog
    # Stages, pipelines and users are replaced whole: include them only when due, since a `replace` resource
    # that yields nothing empties its table.
    selected = tuple(
        name
        for name in selected
        if name not in REFERENCE_LISTS
        or refresh_reference
        or reference_due(name, state, options.reference_max_age_hours)
    )
    # Column types come from field metadata; dlt must not guess timestamps from text.
    dlt.current.source_schema().remove_type_detection("iso_timestamp")

    entities = [spec for spec in catalog.entities if spec.resource in selected]
    metadata = FieldMetadata(client, options, catalog.entities if FIELDS in selected else entities)
    types = SmartProcessTypes(client, catalog.smart_processes)
    parts: list[PlanPart] = [metadata, types]
    wanted: list[tuple[Any, str, Any, dict[str, Any], Any]] = []  # pages, name, disposition, columns, key
    for spec in entities:
        reader = EntityReader(
            spec, options, metadata, DELETED_AT_COLUMN, appends=spec.resource in run.new_tables, markers=run.markers
        )
        parts.append(reader)
        wanted.append((reader.pages, spec.resource, _MERGE, {}, spec.id_field))
    if PAYMENTS in selected:
        payments = PaymentReader(client, options, catalog.payment_owners, run.coverage)
        parts.append(payments)
        wanted.append((payments.pages, PAYMENTS, _MERGE, {**PAYMENT_PLAN.columns(), **DELETED_AT_COLUMN}, "id"))
    if STAGE_HISTORY in selected:
        history = StageHistoryReader(catalog.history_owners)
        parts.append(history)
        wanted.append((history.pages, STAGE_HISTORY, _MERGE, HISTORY_PLAN.columns(), list(HISTORY_KEY)))
    if PRODUCT_ROWS in selected:
        products = ProductRowReader(client, options, catalog.product_owners)
        parts.append(products)
        wanted.append((products.pages, PRODUCT_ROWS, _MERGE, PRODUCT_ROW_COLUMNS, list(PRODUCT_ROW_KEY)))
    if DEAL_CONTACTS in selected:
        contacts = DealContactReader(catalog.entity("deals"), options, options.owner_sweep_hours)
        parts.append(contacts)
        wanted.append((contacts.pages, DEAL_CONTACTS, _MERGE, DEAL_CONTACT_COLUMNS, "deal_id"))
    if CALLS in selected:
        calls = CallReader(asked_for=bool(resources) and CALLS in catalog.select(resources))
        parts.append(calls)
        wanted.append((calls.pages, CALLS, _MERGE, CALL_PLAN.columns(), "ID"))
    if PRODUCTS in selected:
        catalog_products = ProductReader(asked_for=bool(resources) and PRODUCTS in catalog.select(resources))
        parts.append(catalog_products)
        columns = {**PRODUCT_PLAN.columns(), **DELETED_AT_COLUMN}
        wanted.append((catalog_products.pages, PRODUCTS, _MERGE, columns, "id"))
    if SMART_PROCESSES in selected:
        wanted.append((types.pages, SMART_PROCESSES, "replace", TYPES_PLAN.columns(), None))
    if CURRENCIES in selected or CURRENCY_RATES in selected:
        currencies = CurrencyReader(client)
        parts.append(currencies)
        if CURRENCIES in selected:
            wanted.append((currencies.currencies, CURRENCIES, "replace", CURRENCY_PLAN.columns(), None))
        if CURRENCY_RATES in selected:
            wanted.append((currencies.rates, CURRENCY_RATES, _MERGE, RATE_COLUMNS, list(RATE_KEY)))
    for name, spec in reference_lists(catalog).items():
        if name in selected:
            listed = ReferenceReader(client, spec)
            parts.append(listed)
            wanted.append((listed.pages, name, "replace", listed.plan.columns(), None))
    if FIELDS in selected:
        wanted.append((lambda plan: fields_rows(plan, metadata), FIELDS, "replace", FIELDS_TABLE_COLUMNS, None))
    wanted.append((lambda plan: plan.portal_info(time_zone), PORTAL_INFO, "replace", PORTAL_INFO_COLUMNS, None))
    plan = RunPlan(client, options, parts, rebind_portal=rebind_portal)
    return [_resource(plan, *item) for item in wanted]


PORTAL_INFO_COLUMNS: dict[str, dict[str, Any]] = {
    "address": {"data_type": "text", "description": "the portal's address (host[:port])"},
    "utc_offset": {"data_type": "text", "description": "the portal's UTC offset at the last run, e.g. +03:00"},
    "utc_offset_seconds": {"data_type": "bigint"},
    "time_zone": {"data_type": "text", "nullable": True, "description": "the configured portal_timezone"},
    "observed_at": {"data_type": "timestamp", "timezone": True, "description": "the portal's clock at the last run"},
}


def _time_zone(name: str | None) -> str | None:
    """`portal_timezone`: an IANA zone name (the API tells offsets only); None keeps the last run's offset."""
    if not name:
        return None
    try:
        ZoneInfo(str(name))
    except (ValueError, ZoneInfoNotFoundError):
        raise ConfigError(
            f"portal_timezone {name!r} is not a time zone name: use one like Europe/Moscow or America/New_York"
        ) from None
    return str(name)


def _resource(
    plan: RunPlan, pages: Any, name: str, disposition: Any, columns: dict[str, Any], primary_key: Any
) -> DltResource:
    def read() -> Any:
        yield from trimmed(pages(plan))

    hints: dict[str, Any] = {"primary_key": primary_key} if primary_key else {}
    return dlt.resource(read, name=name, write_disposition=disposition, columns=columns, **hints)
