"""Many portals (an agency, a group of companies): one sync per portal, in parallel processes.

A TOML file lists the portals:

    layout = "datasets"          # each portal its own dataset (crm_<name>); or "shared": one dataset with a
                                 # `portal` column (dataset = "bitrix24_crm" by default)
    parallel = 4                 # processes at once (default: one per portal)

    [[portals]]
    name = "moscow"              # lower-case letters, digits, _
    webhook_url = "https://moscow.bitrix24.ru/rest/1/..."   # or leave it out and set the secret
        # bitrix24_sync.portals.moscow.webhook_url (env BITRIX24_SYNC__PORTALS__MOSCOW__WEBHOOK_URL)
    rate = 2.0                   # this portal's request rate (each portal has its own limit)

Each portal runs in its own process with its own pipeline name (`bitrix24_<name>`: dlt's state must not be
shared between concurrent runs, dlt issue #4052) and its own client, so it stays within its own portal's rate
limit, and a portal that fails (a revoked webhook, a portal that is down) does not stop the others: the run
exits 0 only when every portal succeeded, and `EXIT_SOME_PORTALS_FAILED` otherwise, after a summary line per portal.
Secrets reach the child processes through their environment, never their command line.

DuckDB takes one writing process per file: with a `{portal}` placeholder in the DuckDB path each portal gets
its own file and they run in parallel; without it they take turns on the one file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dlt
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.destinations import profile
from pipelines.exit_codes import EXIT_SOME_PORTALS_FAILED
from pipelines.runner import DATASET_NAME, SyncReport, make_pipeline, sync
from sources.bitrix24 import ConfigError

log = logging.getLogger("bitrix24_sync.portals")

PLACEHOLDER = "{portal}"
Layout = Literal["datasets", "shared"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")


@dataclass(frozen=True)
class PortalEntry:
    name: str
    webhook_url: str
    rate: float | None = None
    burst: int | None = None

    def __repr__(self) -> str:  # the URL is the credential
        return f"PortalEntry(name={self.name!r})"


@dataclass(frozen=True)
class PortalsConfig:
    portals: tuple[PortalEntry, ...]
    layout: Layout = "datasets"
    dataset: str = DATASET_NAME  # the shared dataset
    parallel: int | None = None

    def dataset_of(self, entry: PortalEntry) -> str:
        return self.dataset if self.layout == "shared" else f"crm_{entry.name}"


@dataclass
class PortalOutcome:
    name: str
    code: int
    message: str = ""
    rows: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.code == 0


def load_config(path: str | Path) -> PortalsConfig:
    """Read and check the portals file; every mistake is a `ConfigError` naming the entry."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read the portals file {path}: {error}") from None
    layout = data.get("layout", "datasets")
    if layout not in ("datasets", "shared"):
        raise ConfigError(f"{path}: layout must be 'datasets' or 'shared', not {layout!r}")
    entries = data.get("portals")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[portals]] entries")
    portals = tuple(_entry(path, n, entry) for n, entry in enumerate(entries, 1))
    names = [p.name for p in portals]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: portal names repeat: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    parallel = data.get("parallel")
    if parallel is not None and (not isinstance(parallel, int) or parallel < 1):
        raise ConfigError(f"{path}: parallel must be a positive integer")
    return PortalsConfig(portals, layout, str(data.get("dataset") or DATASET_NAME), parallel)


def _entry(path: str | Path, number: int, entry: Any) -> PortalEntry:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{path}: portal #{number} needs a name of lower-case letters, digits and _ (<= 30)")
    url = entry.get("webhook_url") or dlt.secrets.get(f"bitrix24_sync.portals.{name}.webhook_url")
    if not url:
        raise ConfigError(
            f"{path}: portal {name} has no webhook_url (in the file, or the secret "
            f"bitrix24_sync.portals.{name}.webhook_url / BITRIX24_SYNC__PORTALS__{name.upper()}__WEBHOOK_URL)"
        )
    rate, burst = entry.get("rate"), entry.get("burst")
    return PortalEntry(name, str(url), float(rate) if rate else None, int(burst) if burst else None)


# ------------------------------------------------------------------------------------------------ parent


@dataclass(frozen=True)
class Target:
    """Where the portals load: the CLI's destination options."""

    destination: str = "duckdb"
    duckdb_path: str = "bitrix24.duckdb"
    postgres_url: str | None = None
    pipelines_dir: str | None = None
    resources: str | None = None


def run_portals(config: PortalsConfig, target: Target) -> list[PortalOutcome]:
    """Sync every portal in its own process; returns one outcome per portal, in the file's order."""
    parallel = config.parallel or len(config.portals)
    if profile(target.destination).single_writer and PLACEHOLDER not in target.duckdb_path:
        parallel = 1  # one writer per DuckDB file
    # a shared dataset: the first portal alone creates the tables; two loads creating them at once collide
    first = config.portals[:1] if config.layout == "shared" else ()
    with tempfile.TemporaryDirectory(prefix="bitrix24-portals-") as results:

        def one(entry: PortalEntry) -> PortalOutcome:
            return _run_child(config, target, entry, Path(results) / f"{entry.name}.json")

        outcomes = [one(entry) for entry in first]
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return outcomes + list(pool.map(one, config.portals[len(first) :]))


def _run_child(config: PortalsConfig, target: Target, entry: PortalEntry, result_file: Path) -> PortalOutcome:
    inherited = (
        "SOURCES__BITRIX24__CREDENTIALS",
        "SOURCES__BITRIX24__WEBHOOK_URL",
        "SOURCES__BITRIX24__OAUTH__",
        "BITRIX24_SYNC__PORTAL",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}  # the parent's own credential
    env["SOURCES__BITRIX24__CREDENTIALS"] = entry.webhook_url
    for key, value in (("RATE", entry.rate), ("BURST", entry.burst)):
        if value is not None:
            env[f"SOURCES__BITRIX24__{key}"] = str(value)
    if config.layout == "shared":
        env["BITRIX24_SYNC__PORTAL"] = entry.name
    if target.postgres_url:
        env["DESTINATION__POSTGRES__CREDENTIALS"] = target.postgres_url
    command = [
        sys.executable, "-m", "pipelines.portals",
        "--name", entry.name,
        "--destination", target.destination,
        "--duckdb-path", target.duckdb_path.replace(PLACEHOLDER, entry.name),
        "--dataset", config.dataset_of(entry),
        "--result", str(result_file),
    ]  # fmt: skip
    if target.pipelines_dir:
        command += ["--pipelines-dir", target.pipelines_dir]
    if target.resources:
        command += ["--resources", target.resources]
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=os.getcwd())
    seconds = time.monotonic() - started
    for line in done.stderr.splitlines():
        print(f"[{entry.name}] {line}", file=sys.stderr)
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):  # the child died before writing its result
        result = {"message": f"the sync process ended with code {done.returncode}"}
    return PortalOutcome(
        entry.name,
        done.returncode,
        str(result.get("message", "")),
        int(result.get("rows", 0)),
        int(result.get("requests", 0)),
        seconds,
    )


def summary_lines(outcomes: Sequence[PortalOutcome]) -> list[str]:
    width = max(len("portal"), *(len(o.name) for o in outcomes))
    lines = [f"{'portal':<{width}}  {'result':<7} {'rows':>9} {'requests':>8} {'seconds':>7}  message"]
    for o in outcomes:
        result = "ok" if o.ok else f"exit {o.code}"
        lines.append(f"{o.name:<{width}}  {result:<7} {o.rows:>9} {o.requests:>8} {o.seconds:>7.1f}  {o.message}")
    failed = [o.name for o in outcomes if not o.ok]
    lines.append(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} portals synced"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return lines


def portals_command(args: argparse.Namespace) -> int:
    """`bitrix24-sync run --portals FILE`: every portal, then the summary; the exit code says whether all
    succeeded."""
    config = load_config(args.portals)
    if args.full_refresh or getattr(args, "reconcile", False):
        raise ConfigError("--portals runs incremental syncs only: refresh or reconcile one portal at a time")
    target = Target(args.destination, args.duckdb_path, args.postgres_url, args.pipelines_dir, args.resources)
    outcomes = run_portals(config, target)
    if not args.quiet or any(not o.ok for o in outcomes):
        print("\n".join(summary_lines(outcomes)))
    return 0 if all(o.ok for o in outcomes) else EXIT_SOME_PORTALS_FAILED


# ------------------------------------------------------------------------------------------------ child


def child_main(argv: Sequence[str] | None = None) -> int:
    """One portal's sync (the parent set its webhook URL and portal tag in the environment); writes its
    outcome as JSON for the parent. Its one-line error message is secret-free (`classify`)."""
    from pipelines.exit_codes import classify  # the CLI's mapping; imported late: it imports the runner

    parser = argparse.ArgumentParser(prog="python -m pipelines.portals")
    for option in ("--name", "--destination", "--duckdb-path", "--dataset", "--result"):
        parser.add_argument(option, required=True)
    parser.add_argument("--pipelines-dir")
    parser.add_argument("--resources")
    args = parser.parse_args(argv)
    result: dict[str, Any]
    if args.destination == "duckdb":
        Path(args.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        pipeline = make_pipeline(
            args.destination,  # type: ignore[arg-type]
            duckdb_path=args.duckdb_path,
            pipelines_dir=args.pipelines_dir,
            pipeline_name=f"bitrix24_{args.name}",
            dataset_name=args.dataset,
        )
        report = _sync_shared_safely(pipeline, args.resources)
    except Exception as error:  # every failure: one line and its exit code, like the CLI
        code, message = classify(error)
        result = {"code": code, "message": message}
    else:
        code = 0
        result = {"code": 0, "rows": sum(report.row_counts.values()), "requests": report.requests}
    Path(args.result).write_text(json.dumps(result))
    if code:
        print(f"bitrix24-sync: error: {result['message']}", file=sys.stderr)
    return code


def _sync_shared_safely(pipeline: dlt.Pipeline, resources: str | None) -> SyncReport:
    """In a shared dataset another portal's load may add the same new column at the same moment, and one of
    the two schema updates fails; the package stays pending, so the second attempt loads it first."""
    try:
        return sync(pipeline, resources=resources)
    except PipelineStepFailed as failed:
        if failed.step != "load" or not dlt.config.get("bitrix24_sync.portal"):
            raise
    log.warning("another portal changed the shared tables at the same moment: loading again")
    return sync(pipeline, resources=resources)


if __name__ == "__main__":
    sys.exit(child_main())
