"""Freed memory is released every `TRIM_EVERY` items of a resource and at its end, and the items pass as
they come."""

from __future__ import annotations

import platform

import pytest

from sources.bitrix24 import allocator


@pytest.mark.parametrize(("items", "trims"), [(0, 0), (1, 1), (20, 1), (21, 2), (45, 3)])
def test_trims_follow_the_items(monkeypatch: pytest.MonkeyPatch, items: int, trims: int) -> None:
    calls: list[int] = []
    monkeypatch.setattr(allocator, "MALLOC_TRIM", calls.append)
    assert list(allocator.trimmed(iter(range(items)))) == list(range(items))
    assert calls == [0] * trims


def test_the_c_library_call_is_found_and_runs_with_glibc() -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert allocator.MALLOC_TRIM is not None
    allocator.release_freed_memory()
