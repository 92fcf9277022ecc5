"""The per-run plan shared by all resources of one extraction: requests are the scarce resource.

Whichever resource runs first executes ONE discovery batch for every selected resource at once: `server.time`
as its first command (the run's start `T` on the portal's clock; batch commands run in order, so every page
read afterwards sees all changes up to `T`), the first page of each CRM entity's window, field metadata that
is missing or older than its maximum age, the first pages of the payment scans, and the reference lists when
they are due. An incremental run with nothing changed therefore costs exactly one HTTP request. Each resource
then continues its own keyset chain (`paging.keyset_pages`); the chains still unfinished after discovery
first share one continuation batch (`packing.py`).

Cursors and caches live in dlt source state under `resources.<name>`, so `refresh="drop_resources"` resets
them with the tables, and dlt commits them with the load package (a failed extract rolls them back).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt

from .client import BatchResponse, Bitrix24Client, Bitrix24Error, TransientError
from .fields import CoercionReport, FieldPlan, trim_meta
from .packing import chain_pages, continue_chains
from .paging import MAX_STALLED_RETRIES, ChainResult, ListQuery, Page, retry_delay, subcall_failure
from .settings import (
    BATCH_SIZE,
    DEFAULT_FIELDS_MAX_AGE_HOURS,
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_PAYMENT_SWEEP_HOURS,
    DEFAULT_REFERENCE_MAX_AGE_HOURS,
    ENTITIES,
    EntitySpec,
)
from .window import Backfill, cursor_after_run, is_due, parse_instant, utc_now

log = logging.getLogger("bitrix24_sync.source")

TIME_KEY = "time"
Commands = dict[str, tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class SyncOptions:
    start_date: str | None = None  # first run reads DATE_MODIFY >= start_date (None: everything)
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
    fields_max_age_hours: float = DEFAULT_FIELDS_MAX_AGE_HOURS
    reference_max_age_hours: float = DEFAULT_REFERENCE_MAX_AGE_HOURS
    payment_sweep_hours: float = DEFAULT_PAYMENT_SWEEP_HOURS
    backfill: Backfill | None = None  # re-read a window; cursors and sweep stamps stay untouched


def resource_state(resource: str) -> dict[str, Any]:
    """This source's state of one resource (reset by dlt's `drop_resources` refresh together with its
    table)."""
    return dlt.current.source_state().setdefault("resources", {}).setdefault(resource, {})


@dataclass
class Discovered:
    """The merged outcome of the discovery batch(es)."""

    result: dict[str, Any]
    errors: dict[str, dict[str, Any]]
    total: dict[str, int]
    next: dict[str, int]

    def merge(self, response: BatchResponse) -> None:
        self.result.update(response.result)
        self.errors.update(response.errors)
        self.total.update(response.total)
        self.next.update(response.next)


class SyncSession:
    """What one run knows: the portal's time, discovery results, field plans, counters of bad values."""

    def __init__(self, client: Bitrix24Client, options: SyncOptions, selected: Sequence[str]):
        self.client = client
        self.options = options
        self.selected = tuple(selected)
        self.entities = [e for e in ENTITIES if e.resource in self.selected]
        self.server_time: datetime | None = None
        self.found = Discovered({}, {}, {}, {})
        self._extra: dict[str, Callable[[], Commands]] = {}
        self._chains: dict[str, Callable[[], ListQuery | None]] = {}
        self._packed: dict[str, ChainResult] = {}
        self.invalid: dict[str, Counter[str]] = defaultdict(Counter)
        self.unknown_options: dict[str, Counter[str]] = defaultdict(Counter)
        self._plans: dict[str, FieldPlan] = {}
        self._metadata_fetched: set[str] = set()
        self._untyped: dict[str, set[str]] = defaultdict(set)
        self._running: set[str] = set()

    # ------------------------------------------------------------------ discovery

    def add_discovery(self, owner: str, commands: Callable[[], Commands]) -> None:
        """Let another part of the source (payments, reference lists) put its first calls into the batch;
        `commands` is called inside the extraction (state is only final there: dlt refreshes drop it
        first)."""
        self._extra[owner] = commands

    def discover(self) -> None:
        """Run the discovery batch once per run (idempotent)."""
        if self.server_time is not None:
            return
        commands: dict[str, tuple[str, dict[str, Any]]] = {TIME_KEY: ("server.time", {})}
        for spec in self.entities:
            commands[spec.resource] = (spec.list_method, self.entity_query(spec).page_params(0))
        for spec in self._stale_metadata():
            commands[self._fields_key(spec)] = (spec.fields_method, spec.base_params())
        for extra in self._extra.values():
            commands.update(extra())
        self._run_discovery(commands)
        self.server_time = parse_instant(self.found.result[TIME_KEY])
        for spec in ENTITIES:
            key = self._fields_key(spec)
            if key in self.found.result and key not in self.found.errors:
                self._store_metadata(spec, self.found.result[key])
        self._packed = continue_chains(self.client, self._chain_heads())

    def add_chain(self, key: str, query: Callable[[], ListQuery | None]) -> None:
        """A keyset chain whose first page is discovery command `key`: its next pages may share the
        continuation batch (`packing.py`). `query` is called after discovery; None: not read in this run."""
        self._chains[key] = query

    def _chain_heads(self) -> dict[str, tuple[ListQuery, Page]]:
        queries = {spec.resource: self.entity_query(spec) for spec in self.entities}
        queries.update({key: query() for key, query in self._chains.items()})
        heads = {key: (query, self.head(key, query)) for key, query in queries.items() if query is not None}
        return {key: (query, head) for key, (query, head) in heads.items() if head is not None}

    def chain_pages(self, key: str, query: ListQuery, prefix: str) -> Iterator[Page]:
        """Every page of the chain that discovery command `key` started."""
        return chain_pages(self.client, query, self.head(key, query), self._packed.pop(key, None), prefix)

    def _run_discovery(self, commands: Commands) -> None:
        """Send the discovery commands (server.time first), again if server.time failed transiently."""
        keys = list(commands)
        for attempt in range(MAX_STALLED_RETRIES + 1):
            self.found = Discovered({}, {}, {}, {})
            for start in range(0, len(keys), BATCH_SIZE):
                self.found.merge(self.client.batch({k: commands[k] for k in keys[start : start + BATCH_SIZE]}))
            if TIME_KEY in self.found.result:
                return
            error = subcall_failure(self.client, "server.time", _as_response(self.found), TIME_KEY)
            if not isinstance(error, TransientError) or attempt == MAX_STALLED_RETRIES:
                raise error
            log.warning("the discovery batch failed (%s); sending it again", error)
            time.sleep(retry_delay(self.client, attempt + 1))

    def head(self, key: str, query: ListQuery) -> Page | None:
        """The first page a chain got from the discovery batch, or None (failed there: fetch it again)."""
        if key not in self.found.result or key in self.found.errors:
            return None
        return query.rows(self.found.result[key])

    def failure(self, key: str, method: str) -> Bitrix24Error | None:
        """The error a discovery command got, mapped by the client (None if it succeeded)."""
        if key not in self.found.errors:
            return None
        return self.client.subcall_error(method, self.found.errors[key])

    def next_cursor(self) -> str:
        assert self.server_time is not None, "discover() first"
        return cursor_after_run(self.server_time, self.options.overlap_seconds)

    # ------------------------------------------------------------------ CRM entities

    def window(self, spec: EntitySpec, cursor: str | None) -> dict[str, Any]:
        if self.options.backfill is not None:
            return self.options.backfill.filter(spec.cursor_field)
        lower = cursor or self.options.start_date
        return {f">={spec.cursor_field}": lower} if lower else {}

    def entity_query(self, spec: EntitySpec) -> ListQuery:
        window = self.window(spec, resource_state(spec.resource).get("cursor"))
        params = {**spec.base_params(), "select": spec.select(), "filter": window}
        return ListQuery(spec.list_method, params, spec.id_field, spec.items_path)

    def entity_pages(self, spec: EntitySpec) -> Iterator[Any]:
        """Typed pages of one entity's window; the cursor advances only after the last page was yielded."""
        self.discover()
        self._running.add(spec.resource)
        query = self.entity_query(spec)
        hinted = False
        for page in self.chain_pages(spec.resource, query, "p"):
            rows, replanned = self._coerce(spec, page)
            if replanned or not hinted:
                hinted = True
                yield dlt.mark.with_hints(rows, dlt.mark.make_hints(columns=self.plan(spec).columns()))
            else:
                yield rows
        if self.invalid[spec.resource]:
            log.warning(
                "%s: values that did not parse were set to NULL and kept in <field>__raw: %s",
                spec.resource,
                dict(self.invalid[spec.resource]),
            )
        if self.unknown_options[spec.resource]:
            log.warning(
                "%s: enumeration ids that are not among the field's options were kept as they are: %s",
                spec.resource,
                dict(self.unknown_options[spec.resource]),
            )
        if self.options.backfill is None:
            resource_state(spec.resource)["cursor"] = self.next_cursor()
        self._running.discard(spec.resource)

    def entities_finished(self) -> bool:
        """True once no entity resource is between its first and last page. dlt gives every resource declared
        earlier its first turn before a later one's (round robin) or drains it first (fifo)."""
        return not self._running

    def _coerce(self, spec: EntitySpec, page: Page) -> tuple[list[dict[str, Any]], bool]:
        """Coerce with the plan; a user field the metadata does not know (added on the portal) refreshes the
        metadata once per run and entity, and the page is coerced again with the new plan. Other unknown keys
        (crm.item's `entityTypeId`) pass through untyped."""
        report = CoercionReport()
        rows = self.plan(spec).coerce(page, report)
        unknown = {k for k in report.unknown_keys - self._untyped[spec.resource] if spec.is_user_field(k)}
        replanned = False
        if unknown and spec.resource not in self._metadata_fetched:
            log.info("%s: fields %s are not in the cached metadata; refreshing it", spec.resource, sorted(unknown))
            self._store_metadata(spec, self.client.call(spec.fields_method, spec.base_params()).result)
            report = CoercionReport()
            rows = self.plan(spec).coerce(page, report)
            replanned = True
        self._untyped[spec.resource] |= report.unknown_keys
        self.invalid[spec.resource].update(report.invalid)
        self.unknown_options[spec.resource].update(report.unknown_options)
        return rows, replanned

    # ------------------------------------------------------------------ field metadata

    def plan(self, spec: EntitySpec) -> FieldPlan:
        if spec.resource not in self._plans:
            cache = resource_state(spec.resource).get("fields")
            if not cache:
                self._store_metadata(spec, self.client.call(spec.fields_method, spec.base_params()).result)
            else:
                self._plans[spec.resource] = FieldPlan(cache["meta"], self._column_types(spec, cache["meta"]))
        return self._plans[spec.resource]

    @staticmethod
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

    def metadata(self, spec: EntitySpec) -> dict[str, Any]:
        self.plan(spec)
        return resource_state(spec.resource)["fields"]["meta"]

    def _store_metadata(self, spec: EntitySpec, result: Any) -> None:
        fields_result = spec.fields_of(result)
        if not isinstance(fields_result, Mapping):
            raise TransientError(
                f"{spec.fields_method} returned a result of an unexpected shape", method=spec.fields_method
            )
        meta = trim_meta(fields_result)
        resource_state(spec.resource)["fields"] = {"fetched_at": utc_now().isoformat(), "meta": meta}
        self._plans[spec.resource] = FieldPlan(meta, self._column_types(spec, meta))
        self._metadata_fetched.add(spec.resource)

    def _stale_metadata(self) -> list[EntitySpec]:
        """Entities whose metadata the batch should fetch: selected ones (all of them when the `fields` table
        is selected) whose cache is missing, old, or a backfill is running (typically after a new field)."""
        wanted = ENTITIES if "fields" in self.selected else self.entities
        now = utc_now()
        return [
            spec
            for spec in wanted
            if self.options.backfill is not None
            or is_due(
                (resource_state(spec.resource).get("fields") or {}).get("fetched_at"),
                self.options.fields_max_age_hours,
                now,
            )
        ]

    @staticmethod
    def _fields_key(spec: EntitySpec) -> str:
        return f"{spec.resource}_fields"


def _as_response(found: Discovered) -> BatchResponse:
    return BatchResponse(found.result, found.errors, found.total, found.next, {})
