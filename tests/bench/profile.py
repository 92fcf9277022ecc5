"""Where the sync's CPU goes: py-spy samples the deals-only sync (all threads, idle ones dropped), and each
sample is charged to the innermost frame that belongs to a known component and, separately, to the pipeline
step (extract / normalize / load) it ran under. py-spy is a dev tool: `pip install py-spy` (not a dependency).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .cases import Bench, fresh
from .emulator import Emulator

RATE = 200  # samples per second
# Innermost match wins: a dlt frame calling our generator is charged to our code, not to dlt.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [  # py-spy shows files relative to sys.path entries
    ("imports / interpreter start", ("<frozen importlib",)),
    ("our coercion (sources/bitrix24/fields.py)", ("bitrix24/fields.py", "sources/bitrix24/fields.py")),
    (
        "HTTP + JSON decode (client.py, requests, urllib3, orjson)",
        (
            "bitrix24/client.py",
            "sources/bitrix24/client.py",
            "requests/",
            "urllib3/",
            "http/client.py",
            "socket.py",
            "ssl.py",
            "json/",
        ),
    ),
    ("gzip of dlt's intermediate files", ("gzip.py", "zlib")),
    ("our paging / session (other sources/bitrix24)", ("bitrix24/", "sources/bitrix24/")),
    ("dlt JSON encode/decode of typed jsonl", ("dlt/common/json/",)),
    ("dlt data writers (jsonl, parquet via pyarrow)", ("dlt/common/data_writers/", "pyarrow/")),
    ("dlt extract (items, hints, incremental)", ("dlt/extract/",)),
    (
        "dlt normalize (relational normalizer, schema)",
        ("dlt/normalize/", "dlt/common/normalizers/", "dlt/common/schema/"),
    ),
    ("dlt load + DuckDB/Postgres client", ("dlt/load/", "dlt/destinations/", "duckdb/", "psycopg2/")),
    ("dlt other (pipeline, state, storages)", ("dlt/",)),
]
STEPS = ("extract", "normalize", "load")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        if part.startswith("process "):  # py-spy's first frame: the command line
            continue
        m = _FRAME.match(part.strip())
        out.append((m["func"], m["file"]) if m else (part, ""))
    return out


def _step(frames: list[tuple[str, str]]) -> str:
    """The pipeline step a sample ran under; load jobs run in worker threads, recognised by their files."""
    if any(file.startswith(("dlt/load/", "dlt/destinations/")) for _, file in frames):
        return "load"
    steps = [
        f.rsplit(".", 1)[-1]
        for f, file in frames
        if f.rsplit(".", 1)[-1] in STEPS and file == "dlt/pipeline/pipeline.py"
    ]
    return steps[-1] if steps else "outside"


def summarise(raw: str) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """(samples by step/component, by pipeline step, by innermost function, total) from py-spy's raw output."""
    by_component: Counter[str] = Counter()
    by_step: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), _frames(stack) or [("(no Python frame)", "")]
        total += n
        component = "other (interpreter, stdlib)"
        for _func, file in reversed(frames):
            hit = next((name for name, prefixes in COMPONENTS if file.startswith(prefixes)), None)
            if hit:
                component = hit
                break
        step = _step(frames)
        by_component[f"{step:9} {component}"] += n
        by_step[step] += n
        func, file = frames[-1]
        by_leaf[f"{func} ({file})"] += n
    return by_component, by_step, by_leaf, total


def render(raw: str, title: str) -> str:
    by_component, by_step, by_leaf, total = summarise(raw)
    if not total:
        return f"{title}: no samples"
    lines = [f"{title}: {total} samples at {RATE}/s (~{total / RATE:.1f} CPU s)", "", "by pipeline step:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_step.most_common()]
    lines += ["", "by step and component (innermost known frame), >= 0.5%:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_component.most_common() if n >= total / 200]
    lines += ["", "top innermost functions (self time):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in by_leaf.most_common(25)]
    return "\n".join(lines)


def profile_deals(bench: Bench, emu: Emulator) -> str:
    """py-spy over the deals-only sync into DuckDB (a separate run: sampling slows it down)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "profile skipped: py-spy not installed (pip install py-spy)"
    work = fresh(bench.results / "work" / f"{emu.size.label}-profile")
    raw = bench.results / f"profile-deals-{emu.size.label}.txt"
    bench.progress(f"{emu.size.label} duckdb ours: deals only under py-spy")
    argv = [
        *bench.nice,
        spy,
        "record",
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(raw),
        "--subprocesses",
        "--",
        sys.executable,
        "-m",
        "tests.bench.runner",
        "sync",
        "--webhook",
        emu.webhook,
        "--destination",
        "duckdb",
        "--pipelines-dir",
        str(work / "pipelines"),
        "--duckdb-path",
        str(work / "bench.duckdb"),
        "--resources",
        "deals",
    ]
    with bench.log.open("ab") as log:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=log)
    return render(raw.read_text(), f"profile of the {emu.size.label} deals-only sync into DuckDB ({raw})")


if __name__ == "__main__":  # re-render a saved raw profile
    print(render(Path(sys.argv[1]).read_text(), sys.argv[1]))
