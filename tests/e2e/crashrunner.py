"""Test-only: the real `bitrix24-sync` CLI in a process that SIGKILLs itself at a chosen moment.

The crash points are deterministic instead of timed: the runner counts events per phase of the pipeline
(`setup`, `extract`, `normalize`, `load`) at the places where dying matters, and kills itself with SIGKILL
before the n-th event of one phase. Events: every HTTP request answered by the portal (`Bitrix24Client`), every
file dlt writes, moves or deletes in its working folder (state, schemas, load packages, job files), every SQL
statement sent to the destination. Nothing here is imported by production code; the hooks are monkeypatches.

    CRASH_AT=load:17 CRASH_EVENTS=/tmp/events python -m tests.e2e.crashrunner run --duckdb-path ... ...

`CRASH_AT` is `<phase>:<n>` (the n-th event of the phase) or `<phase>/<kind>:<n>` with kind `http`, `file`,
`file.<FileStorage method>` or `sql` (`load/file:3`: before the third job file dlt moves while loading, the
moment after a job's data was committed; `normalize/file.delete_folder:1`: between normalize's two commit
steps). `CRASH_EVENTS` (optional) gets one line per event, `<phase> <phase>/<kind> ...`, so a run without
`CRASH_AT` tells how many events of each there are. `crashing_run` starts it from a test.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlt.common.storages.file_storage import FileStorage
from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient
from dlt.destinations.impl.postgres.sql_client import Psycopg2SqlClient
from dlt.pipeline.pipeline import Pipeline

from pipelines.cli import main
from sources.bitrix24.api import Bitrix24Client

PHASES = ("extract", "normalize", "load")
REPO = Path(__file__).resolve().parents[2]
# Reference tables and field metadata re-read on every run, so that `replace` tables are loaded under kills too.
ALWAYS_REFRESH = {"SOURCES__BITRIX24__REFERENCE_MAX_AGE_HOURS": "0", "SOURCES__BITRIX24__FIELDS_MAX_AGE_HOURS": "0"}


def cli_env(webhook_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **ALWAYS_REFRESH,
        "SOURCES__BITRIX24__WEBHOOK_URL": webhook_url,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "PYTHONPATH": str(REPO),
        **extra,
    }


def cli_args(folder: Path, postgres_url: str | None = None) -> list[str]:
    """The same pipeline `syncutil.new_pipeline(folder, "duckdb")` opens in-process, or into Postgres."""
    where = ["--destination", "postgres", "--postgres-url", postgres_url] if postgres_url else []
    return [
        "run",
        "--duckdb-path",
        str(folder / "warehouse.duckdb"),
        "--pipelines-dir",
        str(folder / "pipelines"),
        *where,
    ]


def crashing_run(
    folder: Path, webhook_url: str, crash_at: str | None = None, postgres_url: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI, killed by SIGKILL at `crash_at` (`phase[/kind]:n`); without it, its events are counted into
    `folder/events`."""
    settings = cli_env(webhook_url, **env)
    if crash_at:
        settings["CRASH_AT"] = crash_at
    else:
        settings["CRASH_EVENTS"] = str(folder / "events")
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.crashrunner", *cli_args(folder, postgres_url)],
        env=settings,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )


class Crash:
    """Counts events per phase; kills this process at the planned one."""

    def __init__(self, plan: str | None, events_path: str | None):
        key, _, nth = (plan or "").partition(":")
        self.target = (key, int(nth)) if plan else None
        self.events = open(events_path, "a", buffering=1) if events_path else None  # noqa: SIM115 (lives as long as the process)
        self.phase = "setup"
        self.counts: Counter[str] = Counter()
        # CRASH_SIGNAL=SIGTERM or SIGINT: what cron, systemd or a user send, instead of a kill
        self.signal = getattr(signal, os.environ.get("CRASH_SIGNAL") or "SIGKILL")

    def event(self, kind: str) -> None:
        keys = tuple(dict.fromkeys((self.phase, f"{self.phase}/{kind.partition('.')[0]}", f"{self.phase}/{kind}")))
        self.counts.update(keys)
        if self.events is not None:
            self.events.write(" ".join(keys) + "\n")
        if self.target is not None and self.target[0] in keys and self.counts[self.target[0]] == self.target[1]:
            os.kill(os.getpid(), self.signal)


def _before(crash: Crash, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        crash.event(kind)
        return function(*args, **kwargs)

    return wrapper


def _after(crash: Crash, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        crash.event(kind)
        return result

    return wrapper


def _in_phase(crash: Crash, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous, crash.phase = crash.phase, phase
        try:
            return function(*args, **kwargs)
        finally:
            crash.phase = previous

    return wrapper


def install(crash: Crash) -> None:
    for phase in PHASES:
        setattr(Pipeline, phase, _in_phase(crash, phase, getattr(Pipeline, phase)))
    Bitrix24Client._attempt = _after(crash, "http", Bitrix24Client._attempt)  # type: ignore[method-assign]
    for name in ("save_atomic", "move_atomic_to_file"):
        setattr(FileStorage, name, staticmethod(_before(crash, f"file.{name}", getattr(FileStorage, name))))
    for name in ("atomic_rename", "rename_tree", "delete", "delete_folder"):
        setattr(FileStorage, name, _before(crash, f"file.{name}", getattr(FileStorage, name)))
    for client in (DuckDbSqlClient, Psycopg2SqlClient):
        client.execute_query = _before(crash, "sql", client.execute_query)  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Crash(os.environ.get("CRASH_AT"), os.environ.get("CRASH_EVENTS")))
    sys.exit(main(sys.argv[1:]))
