"""Shared fixtures: a real PostgreSQL server for the whole session, and dlt kept quiet and local."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres_server import PostgresServer, find_server_bin

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A connection URL to a real, empty PostgreSQL database.

    `BITRIX24_TEST_POSTGRES_URL` points the tests at an existing server; otherwise one is started for the session.
    """
    given = os.environ.get("BITRIX24_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bin_dir = find_server_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (make test installs Debian's postgresql package as root)")
    server = PostgresServer.start(bin_dir)
    try:
        yield server.url
    finally:
        server.stop()
