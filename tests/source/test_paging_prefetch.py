"""The next batch of a keyset chain is requested while the caller still works on the current one's pages."""

from __future__ import annotations

import threading
from typing import Any

from sources.bitrix24.api import BatchResponse
from sources.bitrix24.paging import keyset_pages
from tests.source.test_paging import DEALS, ListPortal


class SignallingPortal(ListPortal):
    """Sets an event per request, so a test can wait for the background request without timing it."""

    def __init__(self, n: int):
        super().__init__(n)
        self.sent = [threading.Event() for _ in range(8)]

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]]) -> BatchResponse:
        answer = super().batch(commands)
        self.sent[self.requests - 1].set()
        return answer


def test_the_next_batch_is_in_flight_before_the_first_page_is_consumed() -> None:
    portal = SignallingPortal(6000)
    pages = keyset_pages(portal, DEALS)  # type: ignore[arg-type]
    first = next(pages)
    assert first[0]["ID"] == 1
    assert portal.sent[1].wait(30), "the second batch was not requested while the first page was held"
    assert [r["ID"] for p in [first, *pages] for r in p] == portal.ids
    assert portal.requests == 3  # no request beyond the ones the chain needs


def test_a_chain_that_ends_sends_nothing_ahead() -> None:
    portal = SignallingPortal(120)
    assert sum(len(p) for p in keyset_pages(portal, DEALS)) == 120  # type: ignore[arg-type]
    assert portal.requests == 1


class BlockingPortal(ListPortal):
    """Holds every request after the first until the test releases it (or 30 s pass: `timed_out`)."""

    def __init__(self, n: int):
        super().__init__(n)
        self.entered, self.release, self.done = threading.Event(), threading.Event(), threading.Event()
        self.timed_out = False

    def batch(self, commands: dict[str, tuple[str, dict[str, Any]]]) -> BatchResponse:
        if self.requests >= 1:
            self.entered.set()
            self.timed_out = not self.release.wait(30)
            self.done.set()
        return super().batch(commands)


def test_a_caller_that_stops_early_does_not_wait_for_the_request_in_flight() -> None:
    portal = BlockingPortal(6000)
    pages = keyset_pages(portal, DEALS)  # type: ignore[arg-type]
    next(pages)
    pages.close()  # returns at once: waiting for the held prefetch would time it out
    portal.release.set()
    assert portal.requests <= 2
    if portal.entered.is_set():  # else the prefetch was cancelled before it started
        assert portal.done.wait(60) and not portal.timed_out
