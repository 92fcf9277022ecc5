"""Freed memory handed back to the operating system while a run extracts.

CPython gives most freed memory back to the C allocator, not to the system. glibc keeps it in its arenas (one
per thread that allocated, and the prefetching thread decodes every response), so a long extraction's RSS grows
with the portal while its live Python objects do not (tracemalloc: 36 MB of them at the end of a 100k-deal sync).
`malloc_trim(0)` returns the free pages. Called every `TRIM_EVERY` items of a resource and at its end, it took
that sync's extraction peak from 317 to 289 MB and its load peak from 397 to 373 MB (`docs/performance.md`).
Without glibc (macOS, musl) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
TRIM_EVERY = 20  # items (tables of up to 2,500 rows, or pages) between two trims


def _malloc_trim() -> Callable[[int], Any] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def trimmed(items: Iterable[T]) -> Iterator[T]:
    """The items as they come, with freed memory released after every `TRIM_EVERY` of them and at the end."""
    count = 0
    for count, item in enumerate(items, 1):
        yield item
        if count % TRIM_EVERY == 0:
            release_freed_memory()
    if count % TRIM_EVERY:
        release_freed_memory()
