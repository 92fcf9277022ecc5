"""Batches shared between keyset chains: who gets how many commands, and the pool of short chains (the product
rows of 50 owners each) reading every chain to its end with full batches."""

from __future__ import annotations

import math
from array import array
from typing import Any

import pytest

from sources.bitrix24.api import BatchResponse, ScopeError, TransientError
from sources.bitrix24.packing import RECORD_POOL_PAGES, continue_chains, pooled_chains, shared_commands
from sources.bitrix24.paging import ListQuery
from sources.bitrix24.payments import orders_per_command
from sources.bitrix24.plan import covered_scans, id_pages
from tests.source.test_paging import ListPortal


def group(name: str) -> ListQuery:
    return ListQuery("crm.item.productrow.list", {"filter": {"group": name}})


class GroupPortal(ListPortal):
    """Serves, per chain, ids 1..n of its group (`filter.group`), resolving references like the portal."""

    def __init__(self, sizes: dict[str, int], fail: dict[int, list[str]] | None = None):
        super().__init__(0, fail)
        self.sizes = sizes
        self.commands: list[int] = []  # commands per request

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]]) -> BatchResponse:
        self.commands.append(len(commands))
        return super().batch(commands)

    def ids_for(self, params: dict[str, Any]) -> list[int]:
        return list(range(1, self.sizes[params["filter"]["group"]] + 1))


def read_all(portal: GroupPortal, names: list[str]) -> dict[str, list[int]]:
    read: dict[str, list[int]] = {}
    for ended in pooled_chains(portal, ((n, group(n)) for n in names), "r", sleep=lambda s: None):  # type: ignore[arg-type]
        for name, pages in ended:
            assert name not in read, "a chain ended twice"
            assert all(0 < len(p) <= 50 for p in pages)
            read[name] = [r["ID"] for p in pages for r in p]
    return read


def test_shared_commands_split_a_batch_between_chains() -> None:
    commands, keys = shared_commands({"a": (group("a"), 0), "b": (group("b"), 7), "c": (group("c"), 0)}, "c")
    assert len(commands) == 50 and [len(keys[k]) for k in "abc"] == [17, 17, 16]
    assert commands[keys["b"][0]][1]["filter"][">ID"] == 7
    assert commands[keys["b"][1]][1]["filter"][">ID"] == f"$result[{keys['b'][0]}][49][ID]"
    many, keys = shared_commands({str(i): (group("a"), 0) for i in range(50)}, "c")
    assert len(many) == 50 and all(len(k) == 1 for k in keys.values())
    with pytest.raises(AssertionError):
        shared_commands({str(i): (group("a"), 0) for i in range(51)}, "c")


def scan(name: str) -> ListQuery:
    """An ID scan (`select: [ID]`): its pages may wait in the pool."""
    return ListQuery("crm.deal.list", {"select": ["ID"], "filter": {"group": name}})


def continued(portal: GroupPortal, queries: dict[str, ListQuery]) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The shared batches' results, and every chain's rows: its head (what discovery brought), what the
    shared batches read, and the rest read on its own (as `chain_pages` does)."""
    ids = {name: portal.ids_for(query.params) for name, query in queries.items()}  # type: ignore[arg-type]
    heads = {name: (query, [{"ID": i} for i in ids[name][:50]]) for name, query in queries.items()}
    packed = continue_chains(portal, heads)  # type: ignore[arg-type]
    rows = {}
    for name, (_, head) in heads.items():
        got = [r["ID"] for r in head]
        if name in packed:
            got += [r["ID"] for p in packed[name].pages for r in p]
            if not packed[name].finished:
                got += [i for i in ids[name] if i > packed[name].last_id]
        rows[name] = got
    return packed, rows


def test_a_small_window_finishes_every_chain_in_the_pools_two_batches() -> None:
    """An incremental window of 1,000 changed deals and leads at 100k: one batch split between all five
    chains, then one more finishes them all (the records' 40 pages stay within the pool's two batches)."""
    names = ["deals", "leads", "owners", "product_owners", "deal_contacts"]
    portal = GroupPortal(dict.fromkeys(names, 1000))
    queries = {n: group(n) if n in ("deals", "leads") else scan(n) for n in names}
    packed, rows = continued(portal, queries)
    assert rows == {n: list(range(1, 1001)) for n in names}
    assert portal.commands == [50, 50] and portal.requests == 2  # the pool's two batches
    assert all(packed[n].finished for n in names)
    assert sum(len(packed[n].pages) for n in ("deals", "leads")) <= RECORD_POOL_PAGES


def test_records_leave_the_pool_before_it_holds_more_than_two_batches_of_them() -> None:
    """A first full sync: two rounds take the records to 68 pages in the pool; a third would take them past
    two batches, so deals and leads go on alone (and the lone ID scan with them)."""
    names = ["deals", "leads", "owners"]
    portal = GroupPortal(dict.fromkeys(names, 20_000))
    queries = {n: group(n) if n in ("deals", "leads") else scan(n) for n in names}
    packed, rows = continued(portal, queries)
    assert rows == {n: list(range(1, 20_001)) for n in names}
    assert portal.requests == 2 and [len(packed[n].pages) for n in names] == [34, 34, 32]
    assert sum(len(packed[n].pages) for n in ("deals", "leads")) <= RECORD_POOL_PAGES


def test_the_pool_stops_after_its_rounds_and_with_one_chain_left() -> None:
    portal = GroupPortal({"a": 20_000, "b": 20_000})  # a first full sync's scans: 3 rounds, then on their own
    packed, rows = continued(portal, {"a": scan("a"), "b": scan("b")})
    assert portal.requests == 3 and [len(packed[k].pages) for k in "ab"] == [75, 75]
    assert rows == {"a": list(range(1, 20_001)), "b": list(range(1, 20_001))}
    portal = GroupPortal({"a": 500, "b": 20_000, "c": 900})  # one scan left unfinished: it goes on alone
    packed, rows = continued(portal, {"a": scan("a"), "b": scan("b"), "c": group("c")})
    assert portal.requests == 2 and packed["a"].finished and packed["c"].finished and not packed["b"].finished
    assert rows == {"a": list(range(1, 501)), "b": list(range(1, 20_001)), "c": list(range(1, 901))}


@pytest.mark.parametrize("rows", [0, 1, 49, 50, 70, 130, 251])
def test_every_chain_is_read_to_its_end_once_with_full_batches(rows: int) -> None:
    names = [f"g{i}" for i in range(120)]
    sizes = {n: (rows + 7 * i) % 260 if rows else 0 for i, n in enumerate(names)}  # uneven groups
    portal = GroupPortal(sizes)
    read = read_all(portal, names)
    assert read == {n: list(range(1, sizes[n] + 1)) for n in names}
    pages = sum(max(1, math.ceil(sizes[n] / 50) + (sizes[n] % 50 == 0 and sizes[n] > 0)) for n in names)
    # every request but the last few (where fewer than 50 chains are left) carries 50 commands
    assert all(n == 50 for n in portal.commands)
    assert portal.requests <= math.ceil(pages / 50) + 3


def test_a_few_chains_finish_in_one_request() -> None:
    portal = GroupPortal({"a": 60, "b": 10})
    assert read_all(portal, ["a", "b"]) == {"a": list(range(1, 61)), "b": list(range(1, 11))}
    assert portal.requests == 1


def test_a_failed_page_is_read_again_and_a_fatal_one_raised() -> None:
    sizes = {f"g{i}": 70 for i in range(60)}
    portal = GroupPortal(sizes, fail={1: ["", "", "OPERATION_TIME_LIMIT"], 2: ["OPERATION_TIME_LIMIT"]})
    assert read_all(portal, list(sizes)) == {n: list(range(1, 71)) for n in sizes}
    stuck = GroupPortal({"a": 70}, fail={i: ["OPERATION_TIME_LIMIT"] for i in range(1, 20)})
    with pytest.raises(TransientError):
        read_all(stuck, ["a"])
    scope = GroupPortal({"a": 70, "b": 70}, fail={1: ["", "insufficient_scope"]})
    with pytest.raises(ScopeError):
        read_all(scope, ["a", "b"])


@pytest.mark.parametrize("orders", [1, 49, 50, 51, 350, 1250, 1251, 2500, 5000, 12_345])
def test_orders_spread_over_the_commands_of_the_fewest_requests(orders: int) -> None:
    """The payments of changed owners' orders: as few requests as 25 orders per command allow, and within
    them as few orders per command as fit, so a page rarely overflows into a round of `next` pages."""
    per = orders_per_command(orders)
    commands = math.ceil(orders / per)
    assert 1 <= per <= 25
    assert math.ceil(commands / 50) == math.ceil(orders / (25 * 50))  # no request more than 25 per command
    assert per == 1 or math.ceil(orders / (per - 1)) > 50 * math.ceil(commands / 50)  # one fewer would not fit


def test_an_id_scan_is_covered_by_the_chain_that_reads_the_same_records() -> None:
    """Covered: the same method, parameters and filter, the scan selecting the ids alone. Not covered: another
    window, another entity type, a scan that selects more than the id (deal contacts), or no reader at all."""
    window = {">=DATE_MODIFY": "2026-11-30T00:00:00+03:00"}
    deals = ListQuery("crm.deal.list", {"select": ["*", "UF_*"], "filter": dict(window)})
    invoices = ListQuery("crm.item.list", {"entityTypeId": 31, "select": ["*"], "filter": {}}, "id", ("items",))
    chains = {
        "deals": deals,
        "invoices": invoices,
        "owners": ListQuery("crm.deal.list", {"select": ["ID"], "filter": dict(window)}),
        "product_owners": ListQuery("crm.deal.list", {"filter": dict(window), "select": ["ID"]}),
        "swept_owners": ListQuery("crm.deal.list", {"select": ["ID"], "filter": {}}),
        "quote_owners": ListQuery("crm.item.list", {"entityTypeId": 7, "select": ["id"]}, "id", ("items",)),
        "deal_contacts": ListQuery("crm.item.list", {"entityTypeId": 2, "select": ["id", "contactIds"]}),
        "invoice_owners": ListQuery(
            "crm.item.list", {"entityTypeId": 31, "select": ["id"], "filter": {}}, "id", ("items",)
        ),
    }
    assert covered_scans(chains) == {"owners": "deals", "product_owners": "deals", "invoice_owners": "invoices"}


def test_covered_ids_come_back_as_the_pages_of_a_scan() -> None:
    pages = list(id_pages(array("q", range(1, 121)), "ID"))
    assert [len(p) for p in pages] == [50, 50, 20] and pages[2][-1] == {"ID": 120}
    assert list(id_pages(array("q"), "id")) == []
