"""One table on stdout, the same figures (and the machine) as JSON."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .cases import Check, Row

RSS_LIMIT_MB = 400
RSS_GROWTH = 1.5


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "dlt": version("dlt"),
        "duckdb": version("duckdb"),
        "pyarrow": version("pyarrow"),
        "orjson": version("orjson"),
        "load_average": os.getloadavg(),
    }


def _verdict(check: Check | None) -> str:
    if check is None or check.ok is None:
        return ""
    return "PASS" if check.ok else "MISS"


COLUMNS: list[tuple[str, Callable[[Row], str]]] = [
    ("size", lambda r: r.size),
    ("dest", lambda r: r.destination),
    ("strategy", lambda r: r.strategy),
    ("case", lambda r: r.case),
    ("requests", lambda r: f"{r.requests:,}"),
    ("req target", lambda r: r.checks["requests"].target.rsplit("= ", 1)[-1] if "requests" in r.checks else ""),
    ("", lambda r: _verdict(r.checks.get("requests"))),
    ("rows ret", lambda r: f"{r.rows_returned:,}"),
    ("rows loaded", lambda r: f"{r.rows_loaded:,}"),
    ("rows/req", lambda r: f"{r.rows_per_request:,.0f}"),
    ("rows scanned", lambda r: f"{r.rows_scanned:,}"),
    ("scan<=1.1x", lambda r: _verdict(r.checks.get("scan"))),
    ("op s", lambda r: f"{r.operating_seconds:,.1f}"),
    ("portal s", lambda r: f"{r.portal_seconds:,.0f}"),
    ("CPU s", lambda r: f"{r.cpu_seconds:.1f}"),
    ("rows/CPU-s", lambda r: f"{r.rows_per_cpu_second:,.0f}"),
    (">=10k", lambda r: _verdict(r.checks.get("cpu"))),
    ("x proto", lambda r: f"{r.cpu_ratio:.2f}" if r.cpu_ratio is not None else ""),
    ("<=1.5x", lambda r: _verdict(r.checks.get("cpu_ratio"))),
    ("wall s", lambda r: f"{r.wall_seconds:.1f}"),
    ("RSS MB", lambda r: f"{r.peak_rss_mb:.0f}"),
    ("beats both", lambda r: _verdict(r.checks.get("beats"))),
]


def table(rows: list[Row]) -> str:
    cells = [[h for h, _ in COLUMNS]] + [[f(r) for _, f in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    left = {0, 1, 2, 3}
    lines = []
    for n, line in enumerate(cells):
        padded = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        lines.append("  ".join(padded))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def row_notes(rows: list[Row]) -> list[str]:
    return [f"{r.size} {r.destination} {r.case}: {r.note}" for r in rows if r.note]


def memory_checks(rows: list[Row]) -> dict[str, Check]:
    """Peak RSS of the full sync (DuckDB): under 400 MB at 1M deals, growing < 1.5x from 10k to 1M."""
    full = {
        r.size: r for r in rows if r.strategy == "ours" and r.destination == "duckdb" and r.case.startswith("full sync")
    }
    checks: dict[str, Check] = {}
    if "1M" in full:
        rss = full["1M"].peak_rss_mb
        checks["rss_1M"] = Check(f"peak RSS at 1M {rss:.0f} MB < {RSS_LIMIT_MB} MB", rss < RSS_LIMIT_MB)
    else:
        checks["rss_1M"] = Check("peak RSS at 1M: not measured (run with --big)", None)
    largest = "1M" if "1M" in full else "100k" if "100k" in full else None
    if "10k" in full and largest:
        growth = full[largest].peak_rss_mb / full["10k"].peak_rss_mb
        judged = largest == "1M"
        checks["rss_growth"] = Check(
            f"peak RSS growth 10k -> {largest}: {growth:.2f}x (target < {RSS_GROWTH}x from 10k to 1M"
            f"{'' if judged else '; judged only with --big'})",
            growth < RSS_GROWTH if judged else None,
        )
    return checks


def write_json(path: Path, rows: list[Row], extra: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **extra,
        "machine": machine(),
        "rows": [r.as_json() for r in rows],
        "memory": {k: vars(c) for k, c in memory_checks(rows).items()},
    }
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
