"""Ctrl-C and SIGTERM (what cron, systemd and Kubernetes send) during extract, normalize and load: the run stops at
the next safe point with one line and exit 130 or 143, the state stays intact, and the next run completes with
the warehouse equal to the portal."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bitrix24_emulator import Portal
from tests.e2e.crashrunner import crashing_run
from tests.e2e.faultutil import assert_no_duplicate_rows
from tests.e2e.syncutil import SMALL_PORTAL, assert_warehouse_equals_portal, new_pipeline

STOP_PORTAL = {**SMALL_PORTAL, "deals": 300, "leads": 60, "contacts": 40, "companies": 10}


@pytest.mark.parametrize(
    ("sent", "at"),
    [  # each step once, each signal at least twice (a SIGTERM during extract takes the same path as SIGINT's)
        ("SIGINT", "extract/http:3"),
        ("SIGTERM", "normalize:4"),
        ("SIGINT", "load/sql:6"),
        ("SIGTERM", "load/file:2"),
    ],
)
def test_a_stop_request_ends_the_run_cleanly_and_the_next_run_completes(tmp_path: Path, sent: str, at: str) -> None:
    with Portal(**STOP_PORTAL) as portal:
        stopped = crashing_run(tmp_path, portal.webhook_url, at, CRASH_SIGNAL=sent)
        assert stopped.returncode == 128 + getattr(signal, sent), stopped.stderr
        lines = [line for line in stopped.stderr.splitlines() if "bitrix24-sync: error" in line]
        assert len(lines) == 1 and "stopped by" in lines[0], stopped.stderr
        assert "Traceback" not in stopped.stderr
        again = crashing_run(tmp_path, portal.webhook_url)
        assert again.returncode == 0, again.stderr
        pipeline = new_pipeline(tmp_path, "duckdb")
        assert_no_duplicate_rows(pipeline)
        assert_warehouse_equals_portal(pipeline, portal)
