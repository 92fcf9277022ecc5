"""The run plan: one discovery batch for every selected resource, then keyset chains; requests are the scarce
resource.

The plan is built from declared parts: every reader (field metadata, each entity, payments, each reference list)
is a `PlanPart` that declares its first calls and, once discovery is back, its keyset chains. Whichever resource
runs first makes the plan `discover()`: ONE batch with `server.time` as its first command (the run's start `T`
on the portal's clock; batch commands run in order, so every page read afterwards sees all changes up to `T`)
and every part's first calls. Then each part sees the results (`discovered`), and the chains still unfinished
after their first page share continuation batches (`packing.py`). An incremental run with nothing changed
therefore costs exactly one HTTP request.

An ID scan that lists the same records as another part's chain (the owners of product rows or payments, in the
window the entity itself reads in this run: a first sync, a backfill, or an incremental run after one that
moved both cursors together) is `covered`: the plan serves its pages from the ids that chain read, so those
owners cost no request of their own. Until that chain was read to its end (another extraction order, a
resource that stopped early) the scan reads its own pages, as it would without the entity.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .api import BatchResponse, Bitrix24Client, Bitrix24Error, ConfigError, ScopeError, TransientError
from .api.client import pause
from .packing import chain_pages, continue_chains
from .paging import (
    BATCH_SIZE,
    MAX_STALLED_RETRIES,
    PAGE_SIZE,
    ChainResult,
    Commands,
    ListQuery,
    Page,
    retry_delay,
    subcall_failure,
)
from .state import SourceState
from .window import Backfill, cursor_after_run, parse_instant

log = logging.getLogger("bitrix24_sync.source")

TIME_KEY = "time"


@dataclass(frozen=True)
class SyncOptions:
    """What a run reads, and how often the cached parts are refreshed: each setting's one default."""

    start_date: str | None = None  # first run reads DATE_MODIFY >= start_date (None: everything)
    overlap_seconds: int = 0  # re-read this many seconds before each cursor
    fields_max_age_hours: float = 24.0  # field metadata is cached this long (a new UF_* key refreshes it)
    reference_max_age_hours: float = 24.0  # stages, pipelines and users are reloaded this often
    payment_sweep_hours: float = 24.0  # all payments are re-read this often
    owner_sweep_hours: float = 24.0  # every deal's contacts and every owner's product rows are re-read this often
    backfill: Backfill | None = None  # re-read a window; cursors and sweep stamps stay untouched

    def window(self, cursor_field: str, cursor: str | None) -> dict[str, Any]:
        """The filter of an incremental window from `cursor` (or the start date; a backfill's own window)."""
        if self.backfill is not None:
            return self.backfill.filter(cursor_field)
        lower = cursor or self.start_date
        return {f">={cursor_field}": lower} if lower else {}


SYNC_DEFAULTS = SyncOptions()


class PortalMismatchError(ConfigError):
    """The pipeline's state (and warehouse) belongs to another portal."""


def portal_of(client: Bitrix24Client) -> str:
    """The portal a client talks to (`host[:port]`)."""
    return str(getattr(client.auth, "portal", client.auth.host))


def skipped_without_scope(plan: RunPlan, key: str, method: str, what: str, scope: str, asked_for: bool) -> bool:
    """Whether an optional reader (calls, products) goes without its data this run because its discovery probe
    failed for good; says so in one line: a warning when the run named it in `resources`, else a note."""
    failure = plan.failure(key, method)
    if failure is None or isinstance(failure, TransientError):
        return False
    why = f"the webhook has no {scope} scope (add it on the portal)" if isinstance(failure, ScopeError) else failure
    log.log(logging.WARNING if asked_for else logging.INFO, "%s are not read: %s", what, why)
    return True


class PlanPart:
    """A reader's share of the plan. `first_calls` is asked inside the extraction (state is final only there:
    dlt's refreshes drop it first); `discovered` and `chains` after the discovery batch is back."""

    def first_calls(self) -> Commands:
        return {}

    def discovered(self, plan: RunPlan) -> None:
        """Look at the discovery results before any resource yields (metadata, probes)."""

    def chains(self) -> Mapping[str, ListQuery]:
        """Keyset chains whose first page is the discovery command of the same key."""
        return {}


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

    def as_response(self) -> BatchResponse:
        return BatchResponse(self.result, self.errors, self.total, self.next, {})


class RunPlan:
    """What one run knows: the portal's time, the discovery results, the chains' shared continuation."""

    def __init__(
        self, client: Bitrix24Client, options: SyncOptions, parts: Sequence[PlanPart], rebind_portal: bool = False
    ):
        self.client = client
        self.rebind_portal = rebind_portal
        self.options = options
        self.parts = tuple(parts)
        self.server_time: datetime | None = None
        self.found = Discovered({}, {}, {}, {})
        self._packed: dict[str, ChainResult] = {}
        self._covered: dict[str, str] = {}  # ID scan -> the chain that lists the same records
        self._ids_read: dict[str, array[int]] = {}  # a covering chain read to its end -> the ids it read

    def discover(self) -> None:
        """Run the discovery batch once per run (idempotent)."""
        if self.server_time is not None:
            return
        commands: Commands = {TIME_KEY: ("server.time", {})}
        for part in self.parts:
            commands.update(part.first_calls())
        self._run_discovery(commands)
        self._bind_portal()
        self.server_time = parse_instant(self.found.result[TIME_KEY])
        for part in self.parts:
            part.discovered(self)
        chains = {key: query for part in self.parts for key, query in part.chains().items()}
        self._covered = covered_scans(chains)
        heads = {}
        for key, query in chains.items():
            head = self.head(key, query)
            if head is not None and key not in self._covered:
                heads[key] = (query, head)
        self._packed = continue_chains(self.client, heads)

    def _bind_portal(self) -> None:
        """A pipeline's state, and so its warehouse, belongs to one portal: checked once the portal has answered
        (a wrong URL reports itself first), before any page is yielded; bound on the first run, or anew by a
        full refresh of every resource."""
        state, portal = SourceState.current(), portal_of(self.client)
        bound = state.portal()
        if bound and bound != portal and not self.rebind_portal:
            raise PortalMismatchError(
                f"this pipeline's warehouse holds the portal {bound}, not {portal}: never mixed; for {portal} use "
                "another dataset or pipeline (--duckdb-path, --pipelines-dir, or run --portals for several), or run "
                f"--full-refresh to replace {bound}'s data with {portal}'s"
            )
        state.bind_portal(portal)

    def _run_discovery(self, commands: Commands) -> None:
        """Send the discovery commands (server.time first), again if server.time failed transiently."""
        keys = list(commands)
        for attempt in range(MAX_STALLED_RETRIES + 1):
            self.found = Discovered({}, {}, {}, {})
            for start in range(0, len(keys), BATCH_SIZE):
                self.found.merge(self.client.batch({k: commands[k] for k in keys[start : start + BATCH_SIZE]}))
            if TIME_KEY in self.found.result:
                return
            error = subcall_failure(self.client, "server.time", self.found.as_response(), TIME_KEY)
            if not isinstance(error, TransientError) or attempt == MAX_STALLED_RETRIES:
                raise error
            log.warning("the discovery batch failed (%s); sending it again", error)
            pause(retry_delay(self.client, attempt + 1))

    def result(self, key: str) -> Any:
        """A discovery command's result, or None when it failed or was not sent."""
        if key not in self.found.result or key in self.found.errors:
            return None
        return self.found.result[key]

    def head(self, key: str, query: ListQuery) -> Page | None:
        """The first page a chain got from the discovery batch, or None (failed there: fetch it again)."""
        result = self.result(key)
        return None if result is None else query.rows(result)

    def failure(self, key: str, method: str) -> Bitrix24Error | None:
        """The error a discovery command got, mapped by the client (None if it succeeded)."""
        if key not in self.found.errors:
            return None
        return self.client.subcall_error(method, self.found.errors[key])

    def chain_pages(self, key: str, query: ListQuery, prefix: str) -> Iterator[Page]:
        """Every page of the chain that discovery command `key` started; a covered scan's from the ids its
        covering chain read, once that one was read to its end."""
        covering = self._covered.pop(key, None)
        ids = self._ids_read.get(covering) if covering else None
        if covering and covering not in self._covered.values():  # its last scan: the ids need not outlive it
            self._ids_read.pop(covering, None)
        if ids is not None:
            return id_pages(ids, query.id_field)
        pages = chain_pages(self.client, query, self.head(key, query), self._packed.pop(key, None), prefix)
        return self._recorded(key, query, pages) if key in self._covered.values() else pages

    def _recorded(self, key: str, query: ListQuery, pages: Iterator[Page]) -> Iterator[Page]:
        """The pages of a covering chain, its ids kept (8 bytes each) once the last page went by, until its last
        covered scan takes them (1M deals: 8 MB, which the load would otherwise carry)."""
        ids: array[int] = array("q")
        for page in pages:
            ids.extend(query.row_id(row) for row in page)
            yield page
        self._ids_read[key] = ids

    @property
    def portal_offset(self) -> timedelta | None:
        """The portal's UTC offset at the time of this run (how it renders date-only values: `fields.to_date`)."""
        return None if self.server_time is None else self.server_time.utcoffset()

    def portal_info(self, time_zone: str | None) -> Iterator[list[dict[str, Any]]]:
        """The `portal_info` row: what the warehouse needs to show times as the portal's users see them (the API
        gives offsets, not the zone's name: `time_zone` is what the user configured). Costs no request."""
        self.discover()
        assert self.server_time is not None
        offset = self.server_time.utcoffset() or timedelta(0)
        yield [
            {
                "address": portal_of(self.client),
                "utc_offset": self.server_time.replace(microsecond=0).isoformat()[19:],
                "utc_offset_seconds": int(offset.total_seconds()),
                "time_zone": time_zone,
                "observed_at": self.server_time,
            }
        ]

    def next_cursor(self) -> str:
        assert self.server_time is not None, "discover() first"
        return cursor_after_run(self.server_time, self.options.overlap_seconds)


def covered_scans(chains: Mapping[str, ListQuery]) -> dict[str, str]:
    """ID-only scans (`select: [<id field>]`) that list the records of another chain: the same method,
    parameters and filter, that chain selecting more. Scan key -> covering chain key."""
    readers: dict[tuple[Any, ...], str] = {}
    scans: dict[str, tuple[Any, ...]] = {}
    for key, query in chains.items():
        rest = {k: v for k, v in query.params.items() if k != "select"}
        what = (query.method, query.id_field, query.items_path, json.dumps(rest, sort_keys=True, default=str))
        if list(query.params.get("select") or ()) == [query.id_field]:
            scans[key] = what
        else:
            readers.setdefault(what, key)
    return {key: readers[what] for key, what in scans.items() if what in readers}


def id_pages(ids: Sequence[int], id_field: str) -> Iterator[Page]:
    """Ids as the pages of an ID scan (50 rows of `{id_field: id}`)."""
    for start in range(0, len(ids), PAGE_SIZE):
        yield [{id_field: i} for i in ids[start : start + PAGE_SIZE]]
