"""Reference tables that make the CRM tables readable in SQL: stages and other dictionaries
(`crm.status.list`), pipelines (`crm.category.list`), users (`user.get`) and `fields` (every field of every
entity, with labels and enumeration items). They are small and replaced whole; their first pages ride in the
discovery batch, and the source only includes stages, pipelines and users when due (older than
`reference_max_age_hours`, or a full refresh), because a `replace` resource that yields nothing would empty
its table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dlt

from .api import Bitrix24Client
from .catalog import Catalog
from .entities import vanished
from .fields import CoercionReport, FieldPlan, field_rows
from .metadata import FieldMetadata
from .paging import PAGE_SIZE, CallResult, Commands, batch_calls
from .plan import PlanPart, RunPlan
from .state import SourceState
from .window import is_due, utc_now


@dataclass(frozen=True)
class ReferenceList:
    """One small list read with offset paging (`start`), typed with a fixed plan; unknown keys pass
    through."""

    resource: str
    calls: tuple[tuple[str, str, dict[str, Any]], ...]  # (command key, method, params)
    items_path: tuple[str, ...] = ()
    meta: Mapping[str, Mapping[str, Any]] | None = None
    optional: frozenset[str] = frozenset()  # command keys of discovered entities: skipped when they fail for good


def reference_lists(catalog: Catalog) -> dict[str, ReferenceList]:
    """The reference lists of a run: the pipelines of every catalog entity that has them."""
    return {
        "stages": ReferenceList(
            "stages",
            (("stages", "crm.status.list", {"order": {"ENTITY_ID": "ASC", "SORT": "ASC"}}),),
            meta={
                "ID": {"type": "integer"},
                "SORT": {"type": "integer"},
                "CATEGORY_ID": {"type": "integer"},
                "SYSTEM": {"type": "char"},
                "EXTRA": {"type": "file"},
            },
        ),
        "pipelines": ReferenceList(
            "pipelines",
            tuple(
                (f"pipelines_{e.entity_type_id}", "crm.category.list", {"entityTypeId": e.entity_type_id})
                for e in catalog.with_pipelines
            ),
            items_path=("categories",),
            optional=frozenset(f"pipelines_{e.entity_type_id}" for e in catalog.with_pipelines if e.discovered),
            meta={
                "id": {"type": "integer"},
                "sort": {"type": "integer"},
                "entityTypeId": {"type": "integer"},
                "isDefault": {"type": "char"},
            },
        ),
        "users": ReferenceList(
            "users",
            (("users", "user.get", {"sort": "ID", "order": "ASC"}),),
            meta={
                "ID": {"type": "integer"},
                "ACTIVE": {"type": "boolean"},
                "DATE_REGISTER": {"type": "datetime"},
                "LAST_LOGIN": {"type": "datetime"},
                "TIMESTAMP_X": {"type": "datetime"},
                "LAST_ACTIVITY_DATE": {"type": "datetime"},
                "PERSONAL_BIRTHDAY": {"type": "date"},
                "IS_ONLINE": {"type": "char"},
                "UF_DEPARTMENT": {"type": "integer", "isMultiple": True},
            },
        ),
    }


def reference_due(resource: str, state: SourceState, max_age_hours: float) -> bool:
    """Read by the source function (before extraction) to decide whether to include the resource at all."""
    return is_due(state.loaded_at(resource), max_age_hours, utc_now())


class ReferenceReader(PlanPart):
    def __init__(self, client: Bitrix24Client, spec: ReferenceList):
        self.client = client
        self.spec = spec
        self.plan = FieldPlan(spec.meta or {})
        self.invalid: Counter[str] = Counter()

    def first_calls(self) -> Commands:
        return {key: (method, params) for key, method, params in self.spec.calls}

    def pages(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        plan.discover()
        self.plan = FieldPlan(self.spec.meta or {}, offset_now=plan.portal_offset)
        for key, method, params in self.spec.calls:
            for rows in self._offset_pages(plan, key, method, params):
                report = CoercionReport()
                # a key that is null everywhere would be an untyped column dlt warns about: leave it out
                typed = [
                    {k: v for k, v in row.items() if v is not None or self.plan.knows(k)}
                    for row in self.plan.coerce(rows, report)
                ]
                self.invalid.update(report.invalid)
                if typed:
                    yield typed
        SourceState.current().mark_loaded(self.spec.resource, utc_now().isoformat())

    def _rows(self, result: Any) -> list[dict[str, Any]]:
        for part in self.spec.items_path:
            result = result.get(part) if isinstance(result, Mapping) else None
        return result if isinstance(result, list) else []

    def _offset_pages(
        self, plan: RunPlan, key: str, method: str, params: dict[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        """The first page from discovery (or fetched again), then all remaining offsets in batches."""
        found = plan.found
        if key in found.result and key not in found.errors:
            first = CallResult(found.result[key], found.total.get(key), found.next.get(key))
        elif key in self.spec.optional and vanished(plan.failure(key, method)):
            return
        else:
            first = batch_calls(self.client, {key: (method, params)})[key]
        yield self._rows(first.result)
        next_start = first.next
        while next_start:
            stop = first.total if first.total else next_start + PAGE_SIZE
            offsets = range(next_start, max(stop, next_start + 1), PAGE_SIZE)
            results = batch_calls(
                self.client,
                {f"o{i}": (method, {**params, "start": o}) for i, o in enumerate(offsets)},
            )
            for i in range(len(offsets)):
                yield self._rows(results[f"o{i}"].result)
            last = results[f"o{len(offsets) - 1}"]
            next_start = last.next if not first.total else None


def fields_rows(plan: RunPlan, metadata: FieldMetadata) -> Iterator[Any]:
    """The `fields` table from the metadata of every entity; it costs no request (the metadata is cached in
    state or rides in the discovery batch), so it is rewritten on every run. The discovery step has already
    refreshed the metadata of an entity whose first page showed an unknown user field; a field created on the
    portal while this run pages arrives in the entity's table now and in `fields` on the next run."""
    plan.discover()
    for spec in metadata.entities:
        yield field_rows(spec.resource, metadata.metadata(spec), dlt.current.source_schema().naming)
