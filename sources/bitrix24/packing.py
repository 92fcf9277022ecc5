"""One shared continuation batch for every keyset chain the discovery batch left unfinished.

After discovery each resource used to send its own next batch: an incremental run where deals, leads and the
payments' owner scan each have a few pages more cost one request per chain. Here the 50 commands of one batch
are shared between those chains (25 pages each for two, ...), so small windows all finish in one request and a
large one continues on its own from where its share ended. A chain whose share failed simply continues from its
last good row with its own batches (and raises there if the failure persists): nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .api import Bitrix24Client
from .paging import (
    BATCH_SIZE,
    DEFAULT_START_ID,
    PAGE_SIZE,
    ChainResult,
    ListQuery,
    Page,
    ascending_after,
    chain_commands,
    keyset_pages,
    read_chain,
)


def continue_chains(client: Bitrix24Client, heads: Mapping[str, tuple[ListQuery, Page]]) -> dict[str, ChainResult]:
    """Read the next pages of every chain whose head (the discovery page, read from the start) was full and in
    order, sharing one batch between them. Fewer than two such chains: nothing (a lone chain gets a whole batch
    of its own anyway)."""
    chains = {
        key: (query, head)
        for key, (query, head) in heads.items()
        if len(head) == PAGE_SIZE and ascending_after(query, head, DEFAULT_START_ID)
    }
    if len(chains) < 2:
        return {}
    chains = dict(list(chains.items())[:BATCH_SIZE])
    share, extra = divmod(BATCH_SIZE, len(chains))
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    keys: dict[str, list[str]] = {}
    for i, (key, (query, head)) in enumerate(chains.items()):
        part = chain_commands(query, head[-1][query.id_field], share + (i < extra), f"c{i}x")
        commands.update(part)
        keys[key] = list(part)
    response = client.batch(commands)
    return {
        key: read_chain(query, keys[key], response, head[-1][query.id_field]) for key, (query, head) in chains.items()
    }


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
