"""A small log of the last runs of a pipeline, for `bitrix24-sync status`: a JSON file in the pipeline's
working folder (next to dlt's state), written by the runner at the end of every run, failed ones included.

It holds counts, times and one-line error messages, never a secret (errors are our own secret-free messages;
an unexpected exception is named by its type only). Like the pipeline's state it lives on the machine that
runs the sync: keep the working folder (`--pipelines-dir`) on persistent storage.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.run_meter import RunMeter
from sources.bitrix24 import Bitrix24Client, ClientStats

RUN_LOG_NAME = "bitrix24-sync-runs.json"
KEEP_RUNS = 50
FORMAT = 1


def run_log_path(working_dir: str | Path) -> Path:
    return Path(working_dir) / RUN_LOG_NAME


def read_runs(working_dir: str | Path) -> list[dict[str, Any]]:
    """The recorded runs, oldest first ([] when there are none or the file is unreadable)."""
    try:
        data = json.loads(run_log_path(working_dir).read_text())
    except (OSError, ValueError):
        return []
    runs = data.get("runs") if isinstance(data, dict) else None
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def append_run(working_dir: str | Path, record: dict[str, Any]) -> None:
    """Add one run, keeping the last `KEEP_RUNS`; replaced atomically (a crash leaves the old file)."""
    path = run_log_path(working_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = [*read_runs(working_dir), record][-KEEP_RUNS:]
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{RUN_LOG_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            json.dump({"format": FORMAT, "runs": runs}, file, indent=1, default=str)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_record(
    *,
    mode: str,
    started_at: str,
    meter: RunMeter,
    client: Bitrix24Client | None,
    row_counts: dict[str, int] | None,
    error: tuple[str, str] | None,
) -> dict[str, Any]:
    """What `status` shows about one run; `error` is (type name, secret-free one-line message). `client` is
    None when the run failed before it had one (a bad credential)."""
    stats = client.stats if client is not None else ClientStats()
    resources = {}
    for name, m in meter.resources.items():
        loaded = (row_counts or {}).get(name)
        resources[name] = {
            "rows": m.rows if loaded is None else loaded,
            "requests": m.requests,
            "retries": m.retries,
            "seconds": round(m.seconds, 3),
        }
    return {
        "started_at": started_at,
        "finished_at": utc_stamp(),
        "mode": mode,
        "ok": error is None,
        "error_type": error[0] if error else None,
        "error": error[1] if error else None,
        "seconds": round(meter.elapsed, 3),
        "requests": stats.requests,
        "retries": dict(stats.retries),
        "resources": resources,
        "rate_limit": None
        if client is None
        else {
            "rate": client.bucket.rate,
            "burst": client.burst,
            "level_at_end": round(client.bucket.level, 2),
            "waited_seconds": round(stats.bucket_sleep_seconds, 2),
            "backoff_seconds": round(stats.backoff_sleep_seconds, 2),
            "refused": sum(n for reason, n in stats.retries.items() if reason in REFUSALS),
        },
    }


REFUSALS = ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT")
