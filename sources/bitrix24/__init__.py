"""The `bitrix24` dlt source: CRM entities (incremental on DATE_MODIFY, merged on ID), payments, and the
reference tables (stages, pipelines, users, fields) that decode them.

Configured the dlt way: `sources.bitrix24.webhook_url` in `.dlt/secrets.toml` (or
`SOURCES__BITRIX24__WEBHOOK_URL`), the other arguments in `[sources.bitrix24]` of `.dlt/config.toml`. One
`SyncSession` per source instance plans the run's requests; every resource is derived from `settings.ENTITIES`
or the reference specs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dlt
from dlt.extract import DltResource

from .client import Bitrix24Client, ConfigError, WebhookAuth
from .fields import FIELDS_TABLE_COLUMNS
from .payments import PAYMENT_PLAN, PaymentCoverage, PaymentReader
from .reference import REFERENCE_LISTS, ReferenceReader, fields_rows, reference_due
from .session import SyncOptions, SyncSession
from .settings import (
    ALL_RESOURCES,
    DEFAULT_FIELDS_MAX_AGE_HOURS,
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_PAYMENT_SWEEP_HOURS,
    DEFAULT_REFERENCE_MAX_AGE_HOURS,
    ENTITIES,
    PAYMENTS,
    EntitySpec,
)
from .window import Backfill, normalize_user_date

__all__ = ["ALL_RESOURCES", "ENTITIES", "bitrix24", "select_resources"]

_MERGE = {"disposition": "merge", "strategy": "delete-insert"}
DELETED_AT = "_deleted_at"
# Set by a reconcile (pipelines/reconcile.py) when the record is gone from the portal; a row merged again
# (restored on the portal) comes without it, which is what unmarks it.
DELETED_AT_COLUMN: dict[str, dict[str, Any]] = {
    DELETED_AT: {"data_type": "timestamp", "timezone": True, "nullable": True, "description": "deleted on the portal"}
}


def select_resources(names: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validate resource names (a list or "deals,leads"); None or empty means all, in canonical order."""
    if isinstance(names, str):
        names = [n for n in (p.strip() for p in names.split(",")) if n]
    if not names:
        return ALL_RESOURCES
    unknown = sorted(set(names) - set(ALL_RESOURCES))
    if unknown:
        raise ConfigError(f"unknown resource {', '.join(unknown)}: choose from {', '.join(ALL_RESOURCES)}")
    return tuple(r for r in ALL_RESOURCES if r in names)


@dlt.source(name="bitrix24", root_key=True, max_table_nesting=1)
def bitrix24(
    webhook_url: dlt.TSecretStrValue | None = None,
    resources: Sequence[str] | None = None,
    start_date: str | None = None,
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
    fields_max_age_hours: float = DEFAULT_FIELDS_MAX_AGE_HOURS,
    reference_max_age_hours: float = DEFAULT_REFERENCE_MAX_AGE_HOURS,
    payment_sweep_hours: float = DEFAULT_PAYMENT_SWEEP_HOURS,
    rate: float = 2.0,
    burst: int = 50,
    timeout: float = 60.0,
    allow_http: bool = False,
    backfill_since: str | None = None,
    backfill_until: str | None = None,
    refresh_reference: bool = False,
    client: Any = None,
    payment_coverage: PaymentCoverage | None = None,
) -> list[DltResource]:
    """Bitrix24 CRM. `resources` selects by name (default: all); `backfill_since/until` re-read a DATE_MODIFY
    window without moving cursors; `refresh_reference` forces the reference tables (full refresh);
    `client` injects a ready `Bitrix24Client` (the runner does, to report its request count);
    `payment_coverage` collects which owners' payments were re-read whole (the runner marks the rest)."""
    selected = select_resources(resources)
    backfill = Backfill.parse(backfill_since, backfill_until) if (backfill_since or backfill_until) else None
    options = SyncOptions(
        start_date=normalize_user_date(start_date, "start_date") if start_date else None,
        overlap_seconds=int(overlap_seconds),
        fields_max_age_hours=float(fields_max_age_hours),
        reference_max_age_hours=float(reference_max_age_hours),
        payment_sweep_hours=float(payment_sweep_hours),
        backfill=backfill,
    )
    if client is None:
        if not webhook_url:
            raise ConfigError(
                "no webhook URL: set sources.bitrix24.webhook_url in .dlt/secrets.toml "
                "or the environment variable SOURCES__BITRIX24__WEBHOOK_URL"
            )
        client = Bitrix24Client(
            WebhookAuth(webhook_url, allow_http=allow_http), rate=rate, burst=burst, timeout=timeout
        )
    # Stages, pipelines and users are replaced whole: include them only when due, since a `replace` resource
    # that yields nothing empties its table.
    state = dlt.current.source_state()
    selected = tuple(
        name
        for name in selected
        if name not in REFERENCE_LISTS
        or refresh_reference
        or reference_due(name, state, options.reference_max_age_hours)
    )
    session = SyncSession(client, options, selected)
    # Column types come from field metadata; dlt must not guess timestamps from text.
    dlt.current.source_schema().remove_type_detection("iso_timestamp")

    out: list[DltResource] = [_entity_resource(session, spec) for spec in ENTITIES if spec.resource in selected]
    if PAYMENTS in selected:
        out.append(_payments_resource(session, payment_coverage))
    out.extend(_reference_resource(session, name) for name in REFERENCE_LISTS if name in selected)
    if "fields" in selected:
        out.append(_fields_resource(session))
    return out


def _entity_resource(session: SyncSession, spec: EntitySpec) -> DltResource:
    def pages() -> Any:
        yield from session.entity_pages(spec)

    return dlt.resource(
        pages, name=spec.resource, write_disposition=_MERGE, primary_key=spec.id_field, columns=DELETED_AT_COLUMN
    )


def _payments_resource(session: SyncSession, coverage: PaymentCoverage | None) -> DltResource:
    reader = PaymentReader(session, coverage)

    def pages() -> Any:
        yield from reader.pages()

    return dlt.resource(
        pages,
        name=PAYMENTS,
        write_disposition=_MERGE,
        primary_key="id",
        columns={**PAYMENT_PLAN.columns(), **DELETED_AT_COLUMN},
    )


def _reference_resource(session: SyncSession, name: str) -> DltResource:
    reader = ReferenceReader(session, REFERENCE_LISTS[name])

    def pages() -> Any:
        yield from reader.pages()

    return dlt.resource(pages, name=name, write_disposition="replace", columns=reader.plan.columns())


def _fields_resource(session: SyncSession) -> DltResource:
    def rows() -> Any:
        yield from fields_rows(session)

    return dlt.resource(rows, name="fields", write_disposition="replace", columns=FIELDS_TABLE_COLUMNS)
