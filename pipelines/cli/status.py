"""`bitrix24-sync status`: where each resource stands, from the pipeline's local state (cursors) and the run
log (the last runs' rows, requests, errors, rate-limit use). Reads local files only: no request to the portal
or the destination, so monitoring can call it as often as it likes.

The rate-limit headroom is this sync's view of the portal's leaky bucket: how full it left it at the end of
the last run, drained at `rate` per second since then (other apps on the same portal share the bucket and
are not seen here).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import dlt

from pipelines.cli.common import Command, destination_options, pipeline_from
from pipelines.column_names import uses_readable_names
from pipelines.progress import plural
from pipelines.run_log import read_runs, run_log_path
from sources.bitrix24 import SourceState, catalog_of

SCHEMA_VERSION = 1


def status_report(pipeline: dlt.Pipeline, now: datetime | None = None) -> dict[str, Any]:
    """The `--json` document (also what the table is printed from)."""
    runs = read_runs(pipeline.working_dir)
    last = runs[-1] if runs else None
    state = SourceState.of_pipeline(pipeline.state)
    resources = {}
    for name, position in state.positions(catalog_of(state)).items():
        seen = next((r for r in reversed(runs) if name in r.get("resources", {})), None)
        resources[name] = {
            "cursor": position,
            "last_run_at": seen["finished_at"] if seen else None,
            "last_run_ok": seen["ok"] if seen else None,
            **(seen["resources"][name] if seen else {"rows": None, "requests": None, "retries": None}),
            "error": seen.get("error") if seen and not seen["ok"] else None,
        }
    return {
        "schema": SCHEMA_VERSION,
        "pipeline": pipeline.pipeline_name,
        "destination": pipeline.destination.destination_name if pipeline.destination else None,
        "dataset": pipeline.dataset_name,
        "portal": state.portal(),
        "state": str(pipeline.working_dir),
        "run_log": str(run_log_path(pipeline.working_dir)),
        "runs_recorded": len(runs),
        "last_run": _last_run(last),
        "resources": resources,
        "rate_limit": _headroom(last, now or datetime.now(UTC)),
        "column_names": _column_names(pipeline),
    }


def _column_names(pipeline: dlt.Pipeline) -> str | None:
    """`codes` (a user field's column is its code) or `snake_case` (an older warehouse's, until renamed)."""
    if not pipeline.default_schema_name:
        return None
    return "codes" if uses_readable_names(pipeline.default_schema) else "snake_case"


def _last_run(last: dict[str, Any] | None) -> dict[str, Any] | None:
    if last is None:
        return None
    keys = ("started_at", "finished_at", "mode", "ok", "error_type", "error", "seconds", "requests", "retries")
    return {k: last.get(k) for k in keys}


def _headroom(last: dict[str, Any] | None, now: datetime) -> dict[str, Any] | None:
    if last is None or not isinstance(last.get("rate_limit"), dict):
        return None
    limit = dict(last["rate_limit"])
    since = (now - datetime.fromisoformat(last["finished_at"])).total_seconds()
    level = max(0.0, float(limit["level_at_end"]) - max(0.0, since) * float(limit["rate"]))
    limit["free_at_end"] = round(float(limit["burst"]) - float(limit["level_at_end"]), 2)
    limit["free_now"] = round(float(limit["burst"]) - level, 2)
    return limit


def status_lines(report: dict[str, Any]) -> list[str]:
    last = report["last_run"]
    lines = [
        f"pipeline {report['pipeline']} -> {report['destination']} dataset {report['dataset']}"
        + (f", portal {report['portal']}" if report["portal"] else ""),
        f"state in {report['state']}",
    ]
    if last is None:
        lines.append(f"no runs recorded yet ({report['run_log']})")
    else:
        outcome = "ok" if last["ok"] else f"FAILED: {_short(last['error'])}"
        lines.append(
            f"last run: {last['mode']} {_moment(last['finished_at'])}, {last['seconds']:.1f} s, "
            f"{plural(last['requests'], 'request')}, "
            f"{plural(sum((last['retries'] or {}).values()), 'retry', 'retries')}, {outcome}"
        )
    lines.append("")
    lines.append("times: cursors in the portal's offset, runs in UTC")
    lines.append(f"{'resource':<10} {'last run':<25} {'rows':>8} {'requests':>8}  cursor / error")
    for name, r in report["resources"].items():
        rows = "-" if r["rows"] is None else f"{r['rows']:,}"
        requests = "-" if r["requests"] is None else str(r["requests"])
        where = f"ERROR: {_short(r['error'])}" if r["error"] else (r["cursor"] or "-")
        lines.append(f"{name:<10} {_moment(r['last_run_at']) or 'never':<25} {rows:>8} {requests:>8}  {where}")
    if report["column_names"] == "snake_case":
        lines.append("")
        lines.append(
            "column names: dlt's snake_case of an older version (uf_crm_64_a29_a1_cd5_cc2); "
            "`bitrix24-sync rename-columns` names them after their codes (uf_crm_64a29a1cd5cc2)"
        )
    limit = report["rate_limit"]
    if limit:
        lines.append("")
        lines.append(
            f"rate limit: {limit['free_now']:g} of {limit['burst']} requests free now ({limit['free_at_end']:g} at "
            f"the end of the last run); last run waited {limit['waited_seconds']:g} s for the limit, "
            f"{limit['refused']} refused by the portal"
        )
    return lines


def _moment(text: str | None) -> str | None:
    """An ISO instant to the second (`2026-12-01 09:07:58+00:00`): one format for every time shown."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(microsecond=0).isoformat(sep=" ")
    except ValueError:
        return text


def _short(text: str | None, limit: int = 110) -> str:
    """An error cut for the table (`--json` has it whole)."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    destination_options(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable (for monitoring)")


def run(args: argparse.Namespace) -> int:
    pipeline = pipeline_from(args)
    report = status_report(pipeline)
    if args.resources:  # only these, and a name that is not a resource is a mistake
        chosen = catalog_of(SourceState.of_pipeline(pipeline.state)).select(args.resources)
        report["resources"] = {name: r for name, r in report["resources"].items() if name in chosen}
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(status_lines(report)))
    return 0


COMMAND = Command(
    "status",
    "per resource: cursor, last run, rows, requests, errors; rate-limit headroom",
    add_arguments,
    run,
    ("bitrix24-sync status", "bitrix24-sync status --json | jq .resources.deals.cursor"),
    order=50,
)
