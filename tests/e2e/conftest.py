"""Fixtures the end-to-end tests share: a small seeded portal, and a pipeline into DuckDB and into Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dlt
import pytest

from bitrix24_emulator import Portal
from tests.e2e.syncutil import SMALL_PORTAL, new_pipeline


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> dlt.Pipeline:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return new_pipeline(tmp_path, request.param, url)


@pytest.fixture
def portal() -> Iterator[Portal]:
    with Portal(**SMALL_PORTAL) as p:
        yield p
