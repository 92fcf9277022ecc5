"""Field metadata of the run's entities (`crm.<x>.fields`, `crm.item.fields`): cached in state, refreshed when
older than `fields_max_age_hours` through the discovery batch (no extra request), or at once when a page shows a
user field the cache does not know. Each entity's metadata becomes one `FieldPlan` per run."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import dlt

from .api import Bitrix24Client, Bitrix24Error, TransientError
from .catalog import EntitySpec
from .fields import FieldPlan, trim_meta
from .paging import Commands
from .plan import PlanPart, RunPlan, SyncOptions
from .state import SourceState
from .window import is_due, utc_now

log = logging.getLogger("bitrix24_sync.source")


def fields_key(spec: EntitySpec) -> str:
    return f"{spec.resource}_fields"


class FieldMetadata(PlanPart):
    """The metadata and field plans of `entities` (the selected ones, or all when `fields` is selected)."""

    def __init__(self, client: Bitrix24Client, options: SyncOptions, entities: Sequence[EntitySpec]):
        self.client = client
        self.options = options
        self.entities = tuple(entities)
        self._plans: dict[str, FieldPlan] = {}
        self.offset_now: timedelta | None = None  # the portal's offset in this run (how it renders dates)
        self.refreshed: set[str] = set()  # entities whose metadata was fetched in this run

    def first_calls(self) -> Commands:
        """Metadata that is missing, old, or a backfill is running (typically after a new field)."""
        state, now = SourceState.current(), utc_now()
        return {
            fields_key(spec): (spec.fields_method, spec.base_params())
            for spec in self.entities
            if self.options.backfill is not None
            or is_due(
                (state.fields_cache(spec.resource) or {}).get("fetched_at"), self.options.fields_max_age_hours, now
            )
        }

    def discovered(self, plan: RunPlan) -> None:
        self.offset_now = plan.portal_offset
        for spec in self.entities:
            result = plan.result(fields_key(spec))
            if result is not None:
                self.store(spec, result)

    def plan(self, spec: EntitySpec) -> FieldPlan:
        if spec.resource not in self._plans:
            cache = SourceState.current().fields_cache(spec.resource)
            if not cache:
                self.refresh(spec)
            else:
                self._plans[spec.resource] = FieldPlan(
                    cache["meta"], _column_types(spec, cache["meta"]), self.offset_now
                )
        return self._plans[spec.resource]

    def metadata(self, spec: EntitySpec) -> dict[str, Any]:
        self.plan(spec)
        cache = SourceState.current().fields_cache(spec.resource)
        assert cache is not None
        return cache["meta"]

    def refresh(self, spec: EntitySpec) -> None:
        """Fetch the metadata now (one request). A smart process deleted since the catalog was built has none."""
        try:
            result = self.client.call(spec.fields_method, spec.base_params()).result
        except Bitrix24Error as error:
            if not spec.discovered or isinstance(error, TransientError):
                raise
            log.info("%s: no field metadata (%s)", spec.resource, error)
            result = {"fields": {}}
        self.store(spec, result)

    def store(self, spec: EntitySpec, result: Any) -> None:
        fields_result = spec.fields_of(result)
        if not isinstance(fields_result, Mapping):
            raise TransientError(
                f"{spec.fields_method} returned a result of an unexpected shape", method=spec.fields_method
            )
        meta = trim_meta(fields_result)
        SourceState.current().store_fields(spec.resource, meta, utc_now().isoformat())
        self._plans[spec.resource] = FieldPlan(meta, _column_types(spec, meta), self.offset_now)
        self.refreshed.add(spec.resource)


def _column_types(spec: EntitySpec, meta: Mapping[str, Any]) -> dict[str, str]:
    """Field code -> data type of its column in the schema the destination already has."""
    schema = dlt.current.source_schema()
    columns = schema.tables.get(spec.resource, {}).get("columns", {})
    types = {}
    for code in meta:
        column = columns.get(schema.naming.normalize_identifier(code), {})
        if column.get("data_type"):
            types[code] = column["data_type"]
    return types
