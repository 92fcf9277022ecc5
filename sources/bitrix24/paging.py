"""ID keyset paging chained inside `batch` requests: up to 50 pages of 50 rows per HTTP request.

The official bulk recipe is `order[ID]=ASC`, `filter[>ID]=<last id>`, `start=-1` (no COUNT), stop at a short
page. Inside one batch, page k+1 takes its lower bound from page k with the reference `$result[p<k>][49][ID]`.
When a page is short that reference cannot resolve (the portal substitutes whatever part of the path it
found), so every page after the first short page of a chain is garbage: its rows AND its errors are ignored.
An error on a page that still matters is never skipped: the chain resumes after the last good row (retrying a
bounded number of times without progress) or raises.

`ListQuery`, `chain_commands` and `read_chain` are pure; `keyset_batches` (and `keyset_pages`, its pages) drive
them with a client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .api import BatchResponse, Bitrix24Client, Bitrix24Error, TransientError
from .api.client import pause
from .api.phpquery import MAX_INPUT_VARS

log = logging.getLogger("bitrix24_sync.paging")

PAGE_SIZE = 50  # rows per list page: fixed by the portal
BATCH_SIZE = 50  # commands per batch request: fixed by the portal
DEFAULT_START_ID = 0
Page = list[dict[str, Any]]
Commands = dict[str, tuple[str, dict[str, Any]]]
# Ids in one command's filter, at most: the encoder refuses a command of more than `MAX_INPUT_VARS` (1,000)
# variables, which the portal's parse_str would silently cut; 100 are left for the command's other params.
MAX_FILTER_IDS = MAX_INPUT_VARS - 100
MAX_STALLED_RETRIES = 4  # consecutive failed batches without a new row before the error is raised


@dataclass(frozen=True)
class ListQuery:
    """A keyset-pageable list method: base params (select, window filter) plus the keyset part per page."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    id_field: str = "ID"
    items_path: tuple[str, ...] = ()  # where rows sit in a result: ("payments",) for sale.payment.list

    def page_params(self, after: Any) -> dict[str, Any]:
        params = dict(self.params)
        params["filter"] = {**dict(self.params.get("filter") or {}), f">{self.id_field}": after}
        params["order"] = {self.id_field: "ASC"}
        params["start"] = -1
        return params

    def reference(self, key: str) -> str:
        """The batch reference to the id of the last row of a full page of command `key`."""
        path = "".join(f"[{p}]" for p in self.items_path)
        return f"$result[{key}]{path}[{PAGE_SIZE - 1}][{self.id_field}]"

    def rows(self, result: Any) -> Page | None:
        """The rows of one page result, or None when the result does not have the expected shape."""
        for part in self.items_path:
            if not isinstance(result, Mapping):
                return None
            result = result.get(part)
        return result if isinstance(result, list) else None

    def row_id(self, row: Mapping[str, Any]) -> int:
        return int(row[self.id_field])


def chain_commands(query: ListQuery, after: Any, count: int, prefix: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """`count` chained page commands: the first starts after `after`, each next one after its predecessor."""
    keys = [f"{prefix}{i}" for i in range(count)]
    commands = {keys[0]: (query.method, query.page_params(after))}
    for previous, key in zip(keys, keys[1:], strict=False):
        commands[key] = (query.method, query.page_params(query.reference(previous)))
    return commands


@dataclass
class ChainResult:
    pages: list[Page]  # non-empty pages that matter, in order
    finished: bool  # a short page ended the list
    last_id: Any  # id of the last row read: where to continue
    failed_key: str | None = None  # first page that matters and failed (error or unexpected shape)


def read_chain(query: ListQuery, keys: Sequence[str], response: BatchResponse, after: Any) -> ChainResult:
    """Walk a chain's results in order up to the first short page (later pages are garbage) or failure."""
    pages: list[Page] = []
    last_id = after
    for key in keys:
        rows = query.rows(response.result[key]) if key in response.result else None
        if key in response.errors or rows is None or not ascending_after(query, rows, last_id):
            return ChainResult(pages, False, last_id, key)
        if rows:
            pages.append(rows)
            last_id = rows[-1][query.id_field]
        if len(rows) < PAGE_SIZE:
            return ChainResult(pages, True, last_id, None)
    return ChainResult(pages, False, last_id, None)


def ascending_after(query: ListQuery, rows: Page, after: Any) -> bool:
    """A page that matters starts after the previous page and is ordered by id (guards a misresolved
    chain)."""
    try:
        ids = [query.row_id(r) for r in rows]
        floor = int(after)
    except (KeyError, TypeError, ValueError):
        return False
    return all(a < b for a, b in zip([floor, *ids], ids, strict=False))


@dataclass
class CallResult:
    result: Any
    total: int | None = None
    next: int | None = None


Rider = Callable[[list[Page]], Commands]  # the pages a batch read -> commands for the next request (< 50)


@dataclass
class KeysetBatch:
    """What one request of a keyset read brought: the chain's pages, and the commands that rode along
    (`rider`, about the pages of the batch before) with their results, so a failed one can be sent again."""

    pages: list[Page]
    rode: Commands = field(default_factory=dict)
    riders: dict[str, CallResult | Bitrix24Error] = field(default_factory=dict)


def keyset_pages(
    client: Bitrix24Client,
    query: ListQuery,
    *,
    first_page: Page | None = None,
    after: Any = DEFAULT_START_ID,
    prefix: str = "p",
    sleep: Callable[[float], None] = pause,
) -> Iterator[Page]:
    """Yield every page of `query` after id `after`, 2,500 rows per request. `first_page` is a page already
    fetched (by the discovery batch) starting after `after`."""
    for batch in keyset_batches(client, query, first_page=first_page, after=after, prefix=prefix, sleep=sleep):
        yield from batch.pages


def keyset_batches(
    client: Bitrix24Client,
    query: ListQuery,
    *,
    first_page: Page | None = None,
    after: Any = DEFAULT_START_ID,
    prefix: str = "p",
    rider: Rider | None = None,
    sleep: Callable[[float], None] = pause,
) -> Iterator[KeysetBatch]:
    """`keyset_pages` a request at a time. `rider`, given the pages a batch (or `first_page`) read, returns
    commands about them that take seats of the next request (the chain gets the rest); their results arrive
    with the next batch. The last batch's riders have no next request: the caller sends them itself."""
    if first_page is not None:
        if not ascending_after(query, first_page, after):
            raise TransientError(f"{query.method} returned a page out of id order", method=query.method)
        yield KeysetBatch([first_page] if first_page else [])
        if len(first_page) < PAGE_SIZE:
            return
        after = first_page[-1][query.id_field]
    stalled = 0
    # One batch ahead: the next request is in flight while the caller types and writes this batch's pages, so
    # the portal's round trips overlap local work. Only a batch the loop would send next is sent early.
    # A caller that stops early (an error, dlt's add_limit) does not wait for the request in flight.
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bitrix24-prefetch")

    def send(pages: list[Page]) -> tuple[list[str], Commands, Future[BatchResponse]]:
        riding = rider(pages) if rider is not None and pages else {}
        assert len(riding) < BATCH_SIZE, "riders leave the chain at least one page"
        chain = chain_commands(query, after, BATCH_SIZE - len(riding), prefix)
        return list(chain), riding, ahead.submit(client.batch, {**chain, **riding})

    try:
        keys, riding, pending = send([first_page] if first_page else [])
        while True:
            response = pending.result()
            chain = read_chain(query, keys, response, after)
            rode = riding
            arrived = {key: call_result(client, method, response, key) for key, (method, _) in rode.items()}
            if chain.failed_key is None and not chain.finished:
                after, stalled = chain.last_id, 0
                keys, riding, pending = send(chain.pages)
            yield KeysetBatch(chain.pages, rode, arrived)
            if chain.failed_key is None:
                if chain.finished:
                    return
                continue
            stalled = 0 if chain.pages else stalled + 1
            error = subcall_failure(client, query.method, response, chain.failed_key)
            if not isinstance(error, TransientError) or stalled > MAX_STALLED_RETRIES:
                raise error
            log.warning("%s: a page failed (%s); resuming after id %s", query.method, error, chain.last_id)
            sleep(retry_delay(client, stalled))
            after = chain.last_id
            keys, riding, pending = send(chain.pages)
    finally:
        ahead.shutdown(wait=False, cancel_futures=True)


def call_result(client: Bitrix24Client, method: str, response: BatchResponse, key: str) -> CallResult | Bitrix24Error:
    """One sub-call's outcome in a batch response: its result, or the error it failed with."""
    if key in response.errors or key not in response.result:
        return subcall_failure(client, method, response, key)
    return CallResult(response.result[key], response.total.get(key), response.next.get(key))


def retry_delay(client: Bitrix24Client, attempt: int) -> float:
    """Back off like the client does for whole requests (its base and cap)."""
    return float(min(client.backoff_cap, client.backoff_base * 2 ** max(0, attempt - 1)))


def subcall_failure(client: Bitrix24Client, method: str, response: BatchResponse, key: str) -> Bitrix24Error:
    """The exception for a failed sub-call: the portal's error mapped by the client, or a transient error for
    a result with an unexpected shape."""
    if key in response.errors:
        return client.subcall_error(method, response.errors[key])
    return TransientError(f"{method} returned a result of an unexpected shape", method=method)


def filter_chunks(ids: list[int]) -> list[list[int]]:
    """`ids` in runs of at most `MAX_FILTER_IDS`, one command's filter each."""
    return [ids[start : start + MAX_FILTER_IDS] for start in range(0, len(ids), MAX_FILTER_IDS)]


def batch_calls(
    client: Bitrix24Client,
    commands: Mapping[str, tuple[str, Mapping[str, Any]]],
    *,
    sleep: Callable[[float], None] = pause,
) -> dict[str, CallResult]:
    """Run independent commands, 50 per request; failed sub-calls are re-sent (bounded) when transient and
    raised otherwise. Results come back keyed like `commands`."""
    done: dict[str, CallResult] = {}
    pending = dict(commands)
    stalled = 0
    while pending:
        failures: dict[str, Bitrix24Error] = {}
        keys = list(pending)
        for start in range(0, len(keys), BATCH_SIZE):
            chunk = {k: pending[k] for k in keys[start : start + BATCH_SIZE]}
            response = client.batch(chunk)
            for key, (method, _) in chunk.items():
                outcome = call_result(client, method, response, key)
                if isinstance(outcome, CallResult):
                    done[key] = outcome
                else:
                    failures[key] = outcome
        if not failures:
            break
        fatal = next((e for e in failures.values() if not isinstance(e, TransientError)), None)
        stalled = stalled + 1 if len(failures) == len(pending) else 0
        if fatal is not None or stalled > MAX_STALLED_RETRIES:
            raise fatal or next(iter(failures.values()))
        log.warning(
            "%d of %d sub-calls failed (%s); sending them again",
            len(failures),
            len(pending),
            next(iter(failures.values())),
        )
        sleep(retry_delay(client, stalled))
        pending = {k: commands[k] for k in failures}
    return done
