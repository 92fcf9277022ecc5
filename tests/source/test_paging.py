"""Keyset chains in batch requests: the command plans, and reading a chain's results (short pages, errors)."""

from __future__ import annotations

from typing import Any

import pytest

from sources.bitrix24.api import BatchResponse, Bitrix24Error, ScopeError, TransientError
from sources.bitrix24.paging import (
    CallResult,
    ListQuery,
    batch_calls,
    chain_commands,
    keyset_batches,
    keyset_pages,
    read_chain,
)

DEALS = ListQuery("crm.deal.list", {"select": ["ID"], "filter": {">=DATE_MODIFY": "2024-01-01T00:00:00+03:00"}})


def test_chain_commands_link_each_page_to_the_previous_ones_last_id() -> None:
    commands = chain_commands(DEALS, 120, 3, "p")
    assert list(commands) == ["p0", "p1", "p2"]
    method, first = commands["p0"]
    assert method == "crm.deal.list"
    assert first == {
        "select": ["ID"],
        "order": {"ID": "ASC"},
        "start": -1,
        "filter": {">=DATE_MODIFY": "2024-01-01T00:00:00+03:00", ">ID": 120},
    }
    assert commands["p1"][1]["filter"][">ID"] == "$result[p0][49][ID]"
    assert commands["p2"][1]["filter"][">ID"] == "$result[p1][49][ID]"
    assert DEALS.params["filter"] == {">=DATE_MODIFY": "2024-01-01T00:00:00+03:00"}  # not mutated


def test_references_follow_the_items_path() -> None:
    sale = ListQuery("sale.payment.list", {}, "id", ("payments",))
    assert chain_commands(sale, 0, 2, "s")["s1"][1]["filter"] == {">id": "$result[s0][payments][49][id]"}
    assert sale.rows({"payments": [{"id": 1}]}) == [{"id": 1}]
    assert sale.rows([{"id": 1}]) is None


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"ID": str(i)} for i in range(first, first + count)]


def response(result: dict[str, Any], errors: dict[str, Any] | None = None) -> BatchResponse:
    return BatchResponse(result=result, errors=errors or {}, total={}, next={}, time={})


def test_read_chain_stops_at_the_first_short_page_and_ignores_what_follows() -> None:
    garbage = rows(1, 50)  # what an unresolved reference returns: the window from its start
    result = {"p0": rows(1, 50), "p1": rows(51, 7), "p2": garbage, "p3": []}
    chain = read_chain(DEALS, ["p0", "p1", "p2", "p3"], response(result, {"p3": {"error": "X"}}), 0)
    assert [len(p) for p in chain.pages] == [50, 7]
    assert chain.finished and chain.last_id == "57" and chain.failed_key is None


def test_read_chain_reports_the_first_failure_that_matters() -> None:
    result = {"p0": rows(1, 50), "p2": rows(101, 50)}
    chain = read_chain(DEALS, ["p0", "p1", "p2"], response(result, {"p1": {"error": "OPERATION_TIME_LIMIT"}}), 0)
    assert [len(p) for p in chain.pages] == [50]
    assert chain.failed_key == "p1" and chain.last_id == "50" and not chain.finished


def test_read_chain_rejects_a_page_out_of_order() -> None:
    chain = read_chain(DEALS, ["p0", "p1"], response({"p0": rows(1, 50), "p1": rows(1, 50)}), 0)
    assert chain.failed_key == "p1" and len(chain.pages) == 1


def test_an_empty_first_page_finishes_the_chain() -> None:
    chain = read_chain(DEALS, ["p0", "p1"], response({"p0": [], "p1": rows(1, 50)}), 0)
    assert chain.pages == [] and chain.finished and chain.last_id == 0


class ListPortal:
    """A stand-in for the client at the interface paging uses: serves ids 1..n with ID keyset pages and
    resolves `$result[k][49][ID]` like the portal (a short page leaves the reference unresolved)."""

    def __init__(self, n: int, fail: dict[int, list[str]] | None = None):
        self.ids = list(range(1, n + 1))
        self.fail = fail or {}  # request number -> error code per sub-call in order ("" = no error)
        self.requests = 0
        self.backoff_base, self.backoff_cap = 0.5, 30.0

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]]) -> BatchResponse:
        self.requests += 1
        codes = zip(list(commands), self.fail.get(self.requests, []), strict=False)
        failing = {key: code for key, code in codes if code}
        result: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, (_, params) in commands.items():
            after = params["filter"][">ID"]
            ids = self.ids_for(params)
            if isinstance(after, str) and after.startswith("$result["):
                ref = after[len("$result[") :].split("]")[0]
                page = result.get(ref, [])
                after = page[49]["ID"] if len(page) == 50 else page  # unresolved: the page itself
            if key in failing:
                errors[key] = {"error": failing[key], "error_description": ""}
            elif isinstance(after, list):
                result[key] = [{"ID": i} for i in ids[:50]]  # garbage
            else:
                result[key] = [{"ID": i} for i in ids if i > int(after)][:50]
        return response(result, errors)

    def ids_for(self, params: dict[str, Any]) -> list[int]:
        """The ids a command's filter selects (all of them here)."""
        return self.ids

    def subcall_error(self, method: str, error: dict[str, Any]) -> Bitrix24Error:
        if error["error"] == "insufficient_scope":
            return ScopeError("no scope", code="insufficient_scope", method=method)
        return TransientError("try later", code=error["error"], method=method)


@pytest.mark.parametrize("n", [0, 1, 49, 50, 51, 2500, 2549, 2550, 5001])
def test_keyset_pages_read_every_row_once_at_2500_rows_per_request(n: int) -> None:
    portal = ListPortal(n)
    pages = list(keyset_pages(portal, DEALS))  # type: ignore[arg-type]
    assert [r["ID"] for p in pages for r in p] == portal.ids
    assert all(0 < len(p) <= 50 for p in pages)
    assert portal.requests == n // 2500 + 1


def test_keyset_pages_continue_from_a_discovery_page() -> None:
    portal = ListPortal(120)
    head = [{"ID": i} for i in range(1, 51)]
    pages = list(keyset_pages(portal, DEALS, first_page=head))  # type: ignore[arg-type]
    assert [r["ID"] for p in pages for r in p] == portal.ids and portal.requests == 1
    short = ListPortal(30)
    assert len(list(keyset_pages(short, DEALS, first_page=[{"ID": 1}]))) == 1  # type: ignore[arg-type]
    assert short.requests == 0


def test_a_rider_about_a_batch_arrives_with_the_next_one() -> None:
    """A command about the pages just read (here: the row at the batch's last id) takes a seat of the next
    request; the chain reads 49 pages there, and every row still arrives once."""
    portal = ListPortal(6000)

    def rider(pages: list[list[dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any]]]:
        return {"m": ("crm.deal.list", {"filter": {">ID": pages[-1][-1]["ID"] - 1}})}

    head = [{"ID": i} for i in range(1, 51)]
    batches = list(keyset_batches(portal, DEALS, first_page=head, rider=rider))  # type: ignore[arg-type]
    assert [r["ID"] for b in batches for p in b.pages for r in p] == portal.ids
    assert [sum(len(p) for p in b.pages) for b in batches] == [50, 2450, 2450, 1050]
    for before, batch in zip(batches, batches[1:], strict=False):
        mapped = batch.riders["m"]
        assert isinstance(mapped, CallResult) and mapped.result[0]["ID"] == before.pages[-1][-1]["ID"]
    assert batches[0].riders == {} and portal.requests == 3  # the last batch's rider is the caller's to send


def test_a_failed_page_resumes_after_the_last_good_row() -> None:
    portal = ListPortal(400, fail={1: ["", "", "", "OPERATION_TIME_LIMIT"]})  # page 4 of the first batch fails
    pages = list(keyset_pages(portal, DEALS, sleep=lambda s: None))  # type: ignore[arg-type]
    assert [r["ID"] for p in pages for r in p] == portal.ids
    assert portal.requests == 2


def test_a_persistent_or_fatal_failure_is_raised_not_skipped() -> None:
    always = ListPortal(200, fail={i: ["OPERATION_TIME_LIMIT"] for i in range(1, 20)})
    head = [{"ID": i} for i in range(1, 51)]
    with pytest.raises(TransientError):
        list(keyset_pages(always, DEALS, first_page=[*head], sleep=lambda s: None))  # type: ignore[arg-type]
    scope = ListPortal(200, fail={1: ["insufficient_scope"]})
    with pytest.raises(ScopeError):
        list(keyset_pages(scope, DEALS, first_page=[*head], sleep=lambda s: None))  # type: ignore[arg-type]


class CallPortal:
    def __init__(self, failures: list[set[str]]):
        self.failures = failures
        self.sent: list[list[str]] = []
        self.backoff_base, self.backoff_cap = 0.5, 30.0

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]]) -> BatchResponse:
        failing = self.failures[len(self.sent)] if len(self.sent) < len(self.failures) else set()
        self.sent.append(list(commands))
        return response(
            {k: p["n"] for k, (_, p) in commands.items() if k not in failing},
            {k: {"error": "QUERY_LIMIT_EXCEEDED"} for k in commands if k in failing},
        )

    subcall_error = ListPortal.subcall_error


def test_batch_calls_resend_only_failed_sub_calls() -> None:
    portal = CallPortal([{"b"}])
    commands = {k: ("m", {"n": i}) for i, k in enumerate("abc")}
    results = batch_calls(portal, commands, sleep=lambda s: None)  # type: ignore[arg-type]
    assert {k: r.result for k, r in results.items()} == {"a": 0, "b": 1, "c": 2}
    assert portal.sent == [["a", "b", "c"], ["b"]]
    stuck = CallPortal([{"a"}] * 10)
    with pytest.raises(TransientError):
        batch_calls(stuck, {"a": ("m", {"n": 1})}, sleep=lambda s: None)  # type: ignore[arg-type]
