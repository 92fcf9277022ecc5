"""Undo the damage a process killed at the wrong moment leaves in dlt's working folder or the warehouse.

1. Rows inserted twice. dlt resumes a half-loaded package by re-running the jobs that had started. A job whose
   `COPY`/`INSERT` had committed when the process died, but which was not yet moved to `completed_jobs`, runs
   again: its rows land twice in a staging table (a merge table) or in the final table (a `replace` table).
   dlt de-duplicates nested tables and child-less merge tables by key when it merges, but a merge root table
   with nested tables is inserted with `_dlt_id IN (<row keys picked per primary key>)`, which lets both copies
   through (dlt 1.31, `SqlMergeFollowupJob.gen_merge_sql`; dlt issue #3023). Both copies have the same
   `_dlt_id`, so they are found and removed by it. A marker file in the pipeline's working folder is written
   before a half-loaded package is resumed and removed after the repair, so a run killed in between is
   repaired by the next one. On Postgres dlt declares `_dlt_id` UNIQUE: the re-run job fails instead, on
   every later run (the pipeline is stuck), so there a half-loaded package is aborted and read again, its
   reference tables included.
2. A package both extracted and normalized. Normalize commits by renaming the new package into `normalized`
   and then deleting the extracted one; killed in between, both stay, and normalizing the extracted copy again
   fails on every later run ("Directory not empty"). The rename is atomic, so the normalized package is
   complete and the extracted copy is dropped.

Both found by the crash loop (tests/e2e/test_crash.py, tests/soak).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import dlt
from dlt.common.storages.load_package import PackageStorage
from dlt.load.exceptions import LoadClientJobFailed
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.destinations import profile
from sources.bitrix24 import REFERENCE_LISTS

log = logging.getLogger("bitrix24_sync.pipeline")

MARKER = "bitrix24-sync-repair-duplicates"
ABORT_MARKER = "bitrix24-sync-aborting"
RELOAD_MARKER = "bitrix24-sync-reload-reference"


def _marker(pipeline: dlt.Pipeline) -> Path:
    return Path(pipeline.working_dir) / MARKER


def half_loaded(pipeline: dlt.Pipeline) -> bool:
    """Whether a normalized package has already been partly loaded (by a run that was killed)."""
    for load_id in pipeline.list_normalized_load_packages():
        info = pipeline.get_load_package_info(load_id)
        if info.jobs["started_jobs"] or info.jobs["completed_jobs"] or PackageStorage.is_package_partially_loaded(info):
            return True
    return False


def abort_interrupted(pipeline: dlt.Pipeline) -> bool:
    """Whether a run was killed while aborting a package: it is still normalized, flagged for abort. dlt
    finishes the abort on the next `load()`, but `has_pending_data` skips such a package and its jobs no longer
    look half-loaded, so unless it is finished here, the next `run()` aborts it only after extracting: the
    cleanup deletes that run's own new package with it and rewinds the state, and the run reports success."""
    packages = pipeline._get_load_storage().normalized_packages
    return any(packages.has_abort_flag(load_id) for load_id in pipeline.list_normalized_load_packages())


def prepare_resume(pipeline: dlt.Pipeline) -> None:
    """Before pending packages are loaded: on DuckDB, leave the marker for `repair_if_marked` when one was
    partly loaded. Elsewhere (Postgres declares `_dlt_id` UNIQUE, so the re-run job fails on every later run
    instead of inserting twice) abort it: dlt rewinds the local state to before it and this run reads its
    window again. What it had merged stays (real data); its state row is never restored from the destination,
    since an aborted package gets no `_dlt_loads` row. An abort a killed run began is finished the same way."""
    finish_cleanup(pipeline)
    aborting = abort_interrupted(pipeline)
    if not aborting and not half_loaded(pipeline):
        return
    if profile(pipeline.destination.destination_name).resume == "repair" and not aborting:
        _marker(pipeline).touch()
        return
    log.warning("a killed run left a half-loaded package: aborting it, this run reads its data again")
    # its `replace` tables (stages, pipelines, users) may be truncated already, while the rewound state says
    # they are fresh: read them again whether due or not. Written before the abort, so that a run killed during
    # the abort leaves it too; it survives a kill until a run has reloaded them.
    (Path(pipeline.working_dir) / RELOAD_MARKER).touch()
    abort_pending(pipeline)


def abort_pending(pipeline: dlt.Pipeline) -> None:
    """dlt's `abort_packages`, made safe against a kill: dlt first completes the aborted package (moves it to
    `loaded/`) and only then rewinds the local state to before it. Killed in between, the package no longer looks
    pending and the state keeps the cursors of data that was never merged. So the package's id is written down
    first; `finish_cleanup` completes the rewind on the next run."""
    plan = pipeline.abort_packages(dry_run=True)
    if plan is None:
        return
    aborted = (plan["package_to_abort"] or {}).get("load_id") or plan["restore_from_load_id"]
    marker = Path(pipeline.working_dir) / ABORT_MARKER
    marker.write_text(aborted)
    pipeline.abort_packages()
    marker.unlink(missing_ok=True)


def finish_cleanup(pipeline: dlt.Pipeline) -> None:
    """Complete an abort that a killed run left between dlt's move of the package and its state rewind."""
    marker = Path(pipeline.working_dir) / ABORT_MARKER
    if not marker.exists():
        return
    aborted = marker.read_text().strip()
    if aborted in pipeline.list_completed_load_packages():
        log.warning("a killed run left an abort unfinished: rewinding the state to before package %s", aborted)
        pipeline._cleanup_aborted_package(aborted)
    elif abort_interrupted(pipeline):
        return  # still flagged: dlt finishes it in `prepare_resume`, then the marker goes
    marker.unlink(missing_ok=True)


class UnloadableDataError(Exception):
    """A package that normalize or the destination refused for good; it was set aside, the cursors rewound."""


def never_loads(failed: PipelineStepFailed) -> bool:
    """Normalize is local and deterministic: a package it refused once it refuses on every run. A load job the
    destination refused as terminal likewise. Anything else (a connection) may succeed later: keep it."""
    return failed.step == "normalize" or (failed.step == "load" and isinstance(failed.exception, LoadClientJobFailed))


def set_aside(pipeline: dlt.Pipeline, failed: PipelineStepFailed) -> str:
    """Abort every pending package: dlt rewinds the state to before them, so their data is read again by the
    next extract (nothing is lost, nothing is loaded twice), and the reference tables are reloaded since a
    `replace` table may have been truncated. Returns the reason, in one line."""
    reason = (str(failed.exception).strip().splitlines() or [type(failed.exception).__name__])[-1][:300]
    (Path(pipeline.working_dir) / RELOAD_MARKER).touch()
    abort_pending(pipeline)
    return reason


def reference_lost(pipeline: dlt.Pipeline) -> bool:
    """Whether an aborted package may have emptied reference tables that no later run has reloaded yet."""
    return (Path(pipeline.working_dir) / RELOAD_MARKER).exists()


def reference_reloaded(pipeline: dlt.Pipeline, selected: Iterable[str]) -> None:
    """After a run that loaded every reference table."""
    if set(REFERENCE_LISTS) <= set(selected):
        (Path(pipeline.working_dir) / RELOAD_MARKER).unlink(missing_ok=True)


def repair_if_marked(pipeline: dlt.Pipeline) -> None:
    """Delete the second copy of every row (same `_dlt_id`) in every data table, then the marker."""
    if not _marker(pipeline).exists():
        return
    row_id = profile(pipeline.destination.destination_name).row_id
    if row_id is not None:
        schema = pipeline.default_schema
        with pipeline.sql_client() as client:
            stored = {
                name
                for (name,) in client.execute_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    pipeline.dataset_name,
                )
            }
            for table in sorted(stored & set(schema.data_table_names())):
                if "_dlt_id" not in schema.get_table_columns(table):
                    continue
                name = client.make_qualified_table_name(table)
                client.execute_sql(
                    f"DELETE FROM {name} WHERE {row_id} IN (SELECT {row_id} FROM (SELECT {row_id}, row_number() "
                    f"OVER (PARTITION BY _dlt_id ORDER BY {row_id}) AS copy FROM {name}) AS numbered "
                    "WHERE copy > 1)"
                )
        log.info("removed any rows the resumed load had inserted twice")
    _marker(pipeline).unlink()


def forget_normalized_extracts(pipeline: dlt.Pipeline) -> None:
    """Drop extracted packages whose normalized package already exists (normalize was killed mid-commit)."""
    done = {*pipeline.list_normalized_load_packages(), *pipeline.list_completed_load_packages()}
    for load_id in pipeline.list_extracted_load_packages():
        if load_id in done:
            log.warning("package %s was normalized by a run that was killed: dropping its extracted copy", load_id)
            pipeline._get_normalize_storage().extracted_packages.delete_package(load_id)
