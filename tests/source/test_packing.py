"""Batches shared between keyset chains: who gets how many commands, and the pool of short chains (the product
rows of 50 owners each) reading every chain to its end with full batches."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sources.bitrix24.api import BatchResponse, ScopeError, TransientError
from sources.bitrix24.packing import pooled_chains, shared_commands
from sources.bitrix24.paging import ListQuery
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
