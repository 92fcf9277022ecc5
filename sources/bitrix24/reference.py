"""Reference tables that make the CRM tables readable in SQL: stages and other dictionaries
(`crm.status.list`), pipelines (`crm.category.list`), users (`user.get`) and `fields` (every field of every
entity, with labels and enumeration items). They are small and replaced whole; their first pages ride in the
discovery batch, and the source only includes stages, pipelines and users when due (older than
`reference_max_age_hours`, or a full refresh), because a `replace` resource that yields nothing would empty
its table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .fields import CoercionReport, FieldPlan, field_rows
from .paging import CallResult, batch_calls
from .session import SyncSession, resource_state
from .settings import ENTITIES, PAGE_SIZE
from .window import is_due, utc_now


@dataclass(frozen=True)
class ReferenceList:
    """One small list read with offset paging (`start`), typed with a fixed plan; unknown keys pass
    through."""

    resource: str
    calls: tuple[tuple[str, str, dict[str, Any]], ...]  # (command key, method, params)
    items_path: tuple[str, ...] = ()
    meta: Mapping[str, Mapping[str, Any]] | None = None


REFERENCE_LISTS: dict[str, ReferenceList] = {
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
            for e in ENTITIES
            if e.has_pipelines
        ),
        items_path=("categories",),
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
            "PERSONAL_BIRTHDAY": {"type": "date"},
            "IS_ONLINE": {"type": "char"},
            "UF_DEPARTMENT": {"type": "integer", "isMultiple": True},
        },
    ),
}


def reference_due(resource: str, state: Mapping[str, Any], max_age_hours: float) -> bool:
    """Read by the source function (before extraction) to decide whether to include the resource at all."""
    resources = state.get("resources", {})
    return is_due((resources.get(resource) or {}).get("loaded_at"), max_age_hours, utc_now())


class ReferenceReader:
    def __init__(self, session: SyncSession, spec: ReferenceList):
        self.session = session
        self.spec = spec
        self.plan = FieldPlan(spec.meta or {})
        session.add_discovery(spec.resource, lambda: {key: (m, p) for key, m, p in spec.calls})

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        self.session.discover()
        for key, method, params in self.spec.calls:
            for rows in self._offset_pages(key, method, params):
                report = CoercionReport()
                # a key that is null everywhere would be an untyped column dlt warns about: leave it out
                typed = [
                    {k: v for k, v in row.items() if v is not None or self.plan.knows(k)}
                    for row in self.plan.coerce(rows, report)
                ]
                self.session.invalid[self.spec.resource].update(report.invalid)
                if typed:
                    yield typed
        resource_state(self.spec.resource)["loaded_at"] = utc_now().isoformat()

    def _rows(self, result: Any) -> list[dict[str, Any]]:
        for part in self.spec.items_path:
            result = result.get(part) if isinstance(result, Mapping) else None
        return result if isinstance(result, list) else []

    def _offset_pages(self, key: str, method: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The first page from discovery (or fetched again), then all remaining offsets in batches."""
        found = self.session.found
        if key in found.result and key not in found.errors:
            first = CallResult(found.result[key], found.total.get(key), found.next.get(key))
        else:
            first = batch_calls(self.session.client, {key: (method, params)})[key]
        yield self._rows(first.result)
        next_start = first.next
        while next_start:
            stop = first.total if first.total else next_start + PAGE_SIZE
            offsets = range(next_start, max(stop, next_start + 1), PAGE_SIZE)
            results = batch_calls(
                self.session.client,
                {f"o{i}": (method, {**params, "start": o}) for i, o in enumerate(offsets)},
            )
            for i in range(len(offsets)):
                yield self._rows(results[f"o{i}"].result)
            last = results[f"o{len(offsets) - 1}"]
            next_start = last.next if not first.total else None


def fields_rows(session: SyncSession) -> Iterator[Any]:
    """The `fields` table from the metadata of every entity; it costs no request (the metadata is cached in
    state or rides in the discovery batch), so it is rewritten on every run, after the entity resources have
    finished: a user field that appeared mid-run (and refreshed the metadata) is in it."""
    session.discover()
    while not session.entities_finished():
        yield None  # dlt moves on to the other resources
    for spec in ENTITIES:
        yield field_rows(spec.resource, session.metadata(spec))
