"""Batches shared between keyset chains, so that short chains do not each pay for a request of their own.

* `continue_chains`: after discovery each resource used to send its own next batch: an incremental run where
  deals, leads and the payments' owner scan each have a few pages more cost one request per chain. Here the 50
  commands of a batch are shared between those chains (25 pages each for two, ...) for up to three rounds (whole
  records only while the pool holds at most two batches of them), so small windows all finish in a request or two
  and a large one continues on its own from where its share ended. A chain whose share failed simply continues
  from its last good row with its own batches (and raises there if the failure persists): nothing is skipped.
* `pooled_chains`: many short chains read from the start (the product rows of 200 owners each): every request
  carries 50 commands, the next pages of the unfinished chains first, then the first pages of new ones, so a
  chain's second page rides with other chains' first pages instead of costing a request of its own.

`shared_commands` (who gets how many of a batch's 50 commands) is pure; the two functions drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Generic, TypeVar

from .api import Bitrix24Client, TransientError
from .api.client import pause
from .paging import (
    BATCH_SIZE,
    DEFAULT_START_ID,
    MAX_STALLED_RETRIES,
    PAGE_SIZE,
    ChainResult,
    Commands,
    ListQuery,
    Page,
    ascending_after,
    chain_commands,
    keyset_pages,
    read_chain,
    retry_delay,
    subcall_failure,
)

log = logging.getLogger("bitrix24_sync.paging")
Tag = TypeVar("Tag")
SHARED_ROUNDS = 3  # shared continuation batches after discovery, at most
NARROW_FIELDS = 2  # fields an ID scan selects, at most
RECORD_POOL_PAGES = 2 * BATCH_SIZE  # pages of whole records the shared rounds may hold, at most: two batches' worth


def shared_commands(chains: Mapping[str, tuple[ListQuery, Any]], prefix: str) -> tuple[Commands, dict[str, list[str]]]:
    """One batch's commands for up to 50 chains, each continuing after its id: the 50 commands split as evenly
    as they go (the first ones get the remainder). Also the command keys of each chain, in page order."""
    assert 0 < len(chains) <= BATCH_SIZE, "one batch takes 1 to 50 chains"
    share, extra = divmod(BATCH_SIZE, len(chains))
    commands: Commands = {}
    keys: dict[str, list[str]] = {}
    for i, (key, (query, after)) in enumerate(chains.items()):
        part = chain_commands(query, after, share + (i < extra), f"{prefix}{i}x")
        commands.update(part)
        keys[key] = list(part)
    return commands, keys


def narrow(query: ListQuery) -> bool:
    """An ID scan (`select: [ID]`, or with one more small field such as a deal's contactIds): its pages weigh
    little, so they may wait in memory for their resource."""
    select = query.params.get("select")
    return isinstance(select, list | tuple) and 0 < len(select) <= NARROW_FIELDS and "*" not in select


def continue_chains(client: Bitrix24Client, heads: Mapping[str, tuple[ListQuery, Page]]) -> dict[str, ChainResult]:
    """Read the next pages of every chain whose head (the discovery page, read from the start) was full and in
    order, sharing batches between them. Fewer than two such chains: nothing (a lone chain gets a whole batch
    of its own anyway).

    Up to `SHARED_ROUNDS` batches are shared while at least two chains are unfinished, the first split evenly
    between them all. Whatever the pool read waits in memory until its resource is extracted, so the chains
    that read whole records take part in a round only while their pages in the pool stay within two batches
    (`RECORD_POOL_PAGES`: about 26 MB for 5,000 deals of 62 fields); the ID scans (the owners of payments and
    product rows, deal contacts) weigh little and share every round. An incremental window of 1,000 changed
    deals and leads thus needs two requests after discovery (six before the pool, four with the ID scans
    alone in its later rounds). A round that finishes no chain costs no request either: its pages would
    have been read by the chains' own batches."""
    chains = {
        key: (query, head)
        for key, (query, head) in heads.items()
        if len(head) == PAGE_SIZE and ascending_after(query, head, DEFAULT_START_ID)
    }
    if len(chains) < 2:
        return {}
    shared = dict(list(chains.items())[:BATCH_SIZE])
    read = {key: ChainResult([], False, head[-1][query.id_field]) for key, (query, head) in shared.items()}
    turn = list(read)
    for round_ in range(SHARED_ROUNDS):
        commands, keys = shared_commands({k: (shared[k][0], read[k].last_id) for k in turn}, f"c{round_}")
        response = client.batch(commands)
        for key in turn:
            part = read_chain(shared[key][0], keys[key], response, read[key].last_id)
            read[key] = ChainResult([*read[key].pages, *part.pages], part.finished, part.last_id, part.failed_key)
        turn = [k for k in turn if not (read[k].finished or read[k].failed_key)]
        turn = _within_record_pool(turn, shared, read)
        if len(turn) < 2:
            break
    return read


def _within_record_pool(
    turn: list[str], shared: Mapping[str, tuple[ListQuery, Page]], read: Mapping[str, ChainResult]
) -> list[str]:
    """The chains of the next shared round: all of `turn`, or its ID scans alone when the record chains'
    share of that round would take their pages in the pool past `RECORD_POOL_PAGES`."""
    records = [k for k in turn if not narrow(shared[k][0])]
    held = sum(len(result.pages) for k, result in read.items() if not narrow(shared[k][0]))
    share = -(-BATCH_SIZE // max(1, len(turn)))
    if records and held + share * len(records) > RECORD_POOL_PAGES:
        return [k for k in turn if narrow(shared[k][0])]
    return turn


def chain_pages(
    client: Bitrix24Client, query: ListQuery, head: Page | None, packed: ChainResult | None, prefix: str
) -> Iterator[Page]:
    """A chain's pages: its discovery head, what the shared batch read for it (`packed`, the head already
    checked there), then its own batches."""
    if head is None or packed is None:
        yield from keyset_pages(client, query, first_page=head, prefix=prefix)
        return
    yield head
    yield from packed.pages
    if not packed.finished:
        yield from keyset_pages(client, query, after=packed.last_id, prefix=prefix)


@dataclass(eq=False)
class _Chain(Generic[Tag]):
    tag: Tag
    query: ListQuery
    after: Any = DEFAULT_START_ID
    pages: list[Page] = field(default_factory=list)
    stalled: int = 0  # failed rounds in a row without a new row


def pooled_chains(
    client: Bitrix24Client,
    chains: Iterable[tuple[Tag, ListQuery]],
    prefix: str,
    *,
    sleep: Callable[[float], None] = pause,
) -> Iterator[list[tuple[Tag, list[Page]]]]:
    """Read every chain of `chains` (each from the start) to its end, 50 commands per request shared between
    them: unfinished chains first (one page each, oldest first), then new chains pulled from `chains` (lazily:
    pulling may cost the caller's own requests) until 50 are open; with fewer than 50 open the spare commands
    chain more pages onto each. After every request, the chains that ended, with their pages.

    A failed page is read again in the next round (the chain's earlier pages stay); an error that is not
    transient, or one that repeats `MAX_STALLED_RETRIES` times without a new row, is raised: nothing is
    skipped."""
    new = iter(chains)
    open_chains: list[_Chain[Tag]] = []
    while True:
        open_chains.extend(_Chain(tag, query) for tag, query in islice(new, BATCH_SIZE - len(open_chains)))
        if not open_chains:
            return
        turn = {str(i): chain for i, chain in enumerate(open_chains[:BATCH_SIZE])}
        commands, keys = shared_commands({k: (c.query, c.after) for k, c in turn.items()}, prefix)
        response = client.batch(commands)
        ended: list[_Chain[Tag]] = []
        failed: list[tuple[_Chain[Tag], Exception]] = []
        for key, chain in turn.items():
            read = read_chain(chain.query, keys[key], response, chain.after)
            chain.pages.extend(read.pages)
            chain.after = read.last_id
            if read.failed_key is not None:
                error = subcall_failure(client, chain.query.method, response, read.failed_key)
                chain.stalled = 0 if read.pages else chain.stalled + 1
                if not isinstance(error, TransientError) or chain.stalled > MAX_STALLED_RETRIES:
                    raise error
                failed.append((chain, error))
            elif read.finished:
                ended.append(chain)
        if failed:
            log.warning("%d pages failed (%s); reading them again", len(failed), failed[0][1])
            sleep(retry_delay(client, max(chain.stalled for chain, _ in failed)))
        if ended:
            gone = {id(chain) for chain in ended}
            open_chains = [chain for chain in open_chains if id(chain) not in gone]
            yield [(chain.tag, chain.pages) for chain in ended]
