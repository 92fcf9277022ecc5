"""The pipeline runner: builds the dlt pipeline and runs an incremental sync, a backfill or a full refresh.

Order matters for exactly-once: dlt advances local state at the end of extract and commits it with the load
package, so packages left by a crashed run are loaded first (their state is the one the next extract must
start from), the destination is checked before anything is extracted (a wrong password must not leave a
package behind), and only then the source runs.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination import Destination as DltDestination
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.column_names import Renames, rename_columns
from pipelines.crash_repair import (
    UnloadableDataError,
    forget_normalized_extracts,
    never_loads,
    prepare_resume,
    reference_lost,
    reference_reloaded,
    repair_if_marked,
    set_aside,
)
from pipelines.deletes import DeleteOptions, DeleteReport, after_load, reconcile_warehouse
from pipelines.destinations import (
    DestinationError,
    bounded_load,
    dataset_columns,
    default_dlt_settings,
    explain,
    hide_passwords,
    profile,
)
from pipelines.list_tables import migrate_list_tables
from pipelines.partition import partition_by_portal
from pipelines.run_log import append_run, run_record, utc_stamp
from pipelines.run_meter import RunMeter, StepCollector
from pipelines.views import drop_views, refresh_views
from pipelines.warehouse_state import adopt_warehouse_state, check_working_folder
from sources.bitrix24 import (
    PAYMENTS,
    Backfill,
    Bitrix24Client,
    Bitrix24Error,
    Catalog,
    ConfigError,
    DateInputError,
    SourceRun,
    SourceState,
    bitrix24,
    catalog_of,
    connect,
)

log = logging.getLogger("bitrix24_sync.pipeline")

PIPELINE_NAME = "bitrix24"
DEFAULT_PIPELINES_DIR = Path(".dlt") / "pipelines"  # relative to the folder a command runs in
DATASET_NAME = "bitrix24_crm"  # must differ from the pipeline name (DuckDB catalog/schema clash)
Destination = Literal["duckdb", "postgres"]


class AlreadyRunningError(ConfigError):
    """Another run of the same pipeline holds its lock."""


@dataclass
class SyncReport:
    requests: int
    row_counts: dict[str, int] = field(default_factory=dict)
    load_info: LoadInfo | None = None
    finished_pending: bool = False
    meter: RunMeter | None = None  # per-resource rows, requests, retries, seconds
    deletes: DeleteReport | None = None  # deleted payments of re-read owners, and a reconcile if one ran


def make_pipeline(
    destination: Destination | str = "duckdb",
    *,
    duckdb_path: str | Path | None = None,
    postgres_url: str | None = None,
    pipelines_dir: str | Path | None = None,
    pipeline_name: str = PIPELINE_NAME,
    dataset_name: str = DATASET_NAME,
) -> dlt.Pipeline:
    """A pipeline into DuckDB (`duckdb_path`, default ./bitrix24.duckdb) or Postgres (`postgres_url`, default
    `destination.postgres.credentials` from dlt config), the two tested here; any other dlt destination by
    name (bigquery, snowflake, motherduck, filesystem, ...) takes its credentials from dlt config
    (`destination.<name>.credentials`).

    Relative paths are this folder's: the DuckDB file is where the user says (dlt would resolve a relative path
    against the folder of the pipeline's first run), and the state lives in `./.dlt/pipelines/` (the project's
    `.dlt/`, beside the config dlt reads from this folder), unless `pipelines_dir` says otherwise."""
    default_dlt_settings(str(getattr(destination, "destination_name", destination)))
    pipelines_dir = Path(pipelines_dir or DEFAULT_PIPELINES_DIR).expanduser().resolve()
    check_working_folder(pipelines_dir / pipeline_name)
    if destination in ("duckdb", "postgres"):
        path = str(Path(duckdb_path or f"{pipeline_name}.duckdb").expanduser().resolve())
        dest: Any = profile(destination).pipeline_destination(duckdb_path=path, postgres_url=postgres_url)
    else:
        dest = _other_destination(str(destination))
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dest,
        dataset_name=dataset_name,
        pipelines_dir=str(pipelines_dir),
    )


def _other_destination(name: str) -> Any:
    with suppress(Exception):  # dlt's UnknownDestinationModule and friends; raised below without the chain
        return DltDestination.from_reference(name)
    raise ConfigError(f"unknown destination {name!r}: duckdb, postgres or a dlt destination name (e.g. bigquery)")


def pipeline_catalog(pipeline: dlt.Pipeline) -> Catalog:
    """The catalog of the pipeline's portal, as its stored state knows it (no request)."""
    return catalog_of(SourceState.of_pipeline(pipeline.state))


def lock_path(pipelines_dir: str | Path, pipeline_name: str) -> Path:
    return Path(pipelines_dir) / f"{pipeline_name}.bitrix24-sync.lock"


@contextmanager
def exclusive_run(pipeline: dlt.Pipeline) -> Iterator[None]:
    """One run per pipeline at a time: a second one refuses instead of mixing state. The lock file sits beside
    the working folder, not in it: dlt wipes a working folder that has no state yet (a first run)."""
    Path(pipeline.pipelines_dir).mkdir(parents=True, exist_ok=True)
    with open(lock_path(pipeline.pipelines_dir, pipeline.pipeline_name), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = True
        else:
            busy = False
        if busy:
            raise AlreadyRunningError(
                f"another bitrix24-sync run of pipeline {pipeline.pipeline_name!r} is in progress "
                f"(working folder {pipeline.working_dir}); wait for it to finish"
            )
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_destination(pipeline: dlt.Pipeline) -> None:
    """Open a connection and run a trivial query, so a wrong password or a locked file fails before
    extract."""
    message = None
    try:
        with pipeline.sql_client() as client:
            client.execute_sql("SELECT 1")
            foreign = _foreign_tables(client, pipeline.dataset_name)
        if foreign:
            message = (
                f"its dataset {pipeline.dataset_name} already holds tables that no dlt pipeline made "
                f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}): choose another --duckdb-path or "
                "database, or move those tables out of the way; nothing was written"
            )
    except ConfigFieldMissingException:
        message = (
            "no credentials: set destination.postgres.credentials in .dlt/secrets.toml (or "
            "DESTINATION__POSTGRES__CREDENTIALS), or pass --postgres-url"
        )
    except Exception as error:  # any driver's error type: the message is what the user needs
        message = explain(str(error)) if str(error) else type(error).__name__
    if message is not None:  # raised outside the except block: no driver exception chained to it
        raise DestinationError(f"cannot use the {pipeline.destination.destination_name} destination: {message}")


def _foreign_tables(client: Any, dataset: str) -> list[str]:
    """Tables of a dataset dlt never loaded (it has no `_dlt_loads`): loading into them would fail half-way."""
    names = sorted(dataset_columns(client, dataset))
    return [] if not names or "_dlt_loads" in names else names


def new_entity_tables(pipeline: dlt.Pipeline, catalog: Catalog) -> frozenset[str]:
    """The catalog's entity tables the destination does not have: their first load appends (`SourceRun`). Read
    from the destination itself, not the schema: a table an aborted load created is there."""
    with pipeline.sql_client() as client:
        existing = dataset_columns(client, pipeline.dataset_name)
    return frozenset(spec.resource for spec in catalog.entities) - set(existing)


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load what a crashed or interrupted run extracted, before extracting anything new (and remove the rows
    a resumed load inserted twice: see crash_repair.py)."""
    forget_normalized_extracts(pipeline)
    prepare_resume(pipeline)
    pending = pipeline.has_pending_data
    if pending:
        log.warning("loading data a previous run left pending before syncing")
        try:
            with bounded_load(pipeline):
                pipeline.normalize()
                pipeline.load()
        except PipelineStepFailed as failed:
            if not never_loads(failed):
                raise
            reason = set_aside(pipeline, failed)
            log.warning(
                "data a previous run left could not be %s (%s): it was set aside and is read again now",
                "normalized" if failed.step == "normalize" else "loaded",
                reason,
            )
    repair_if_marked(pipeline)
    return pending


def sync(
    pipeline: dlt.Pipeline,
    *,
    client: Bitrix24Client | None = None,
    credentials: Any = None,
    resources: Sequence[str] | str | None = None,
    full_refresh: bool = False,
    backfill: tuple[str | None, str | None] | None = None,
    source_options: Mapping[str, Any] | None = None,
    meter: RunMeter | None = None,
    deletes: DeleteOptions | None = None,
) -> SyncReport:
    """Run one sync. `backfill=(since, until)` re-reads that DATE_MODIFY window of `resources` (default: the
    CRM entities and payments) and leaves the cursors alone; `full_refresh` drops the selected resources'
    tables and state and reads everything again. `meter` counts per resource (the CLI's progress listens to
    it); every run that got the lock, failed or not, is recorded in the run log for `status`. `deletes`: the
    delete mode and whether to reconcile after the load (default: `[sources.bitrix24]` config). The source
    resolves its credential and settings from dlt config (`credentials` overrides the credential; `client`
    shares a client already talking to this portal, such as the CLI's)."""
    if full_refresh and backfill:
        raise ConfigError("a backfill cannot be a full refresh: drop --full-refresh or the backfill window")
    window = Backfill.parse(*backfill) if backfill else None
    catalog = pipeline_catalog(pipeline)
    if not resources and backfill and not dlt.config.get("sources.bitrix24.resources"):
        resources = (*catalog.entity_resources, PAYMENTS)  # a backfill re-reads the CRM entities and payments
    if resources:
        catalog.select(resources)  # an unknown name fails before anything else happens
    deletes = deletes or DeleteOptions.from_config()
    meter = meter or RunMeter()
    run = SourceRun(client=client)
    mode = "backfill" if backfill else "full-refresh" if full_refresh else "incremental"
    with exclusive_run(pipeline):
        started_at, report, error = utc_stamp(), None, None
        try:
            report = _locked_sync(
                pipeline, run, credentials, resources, full_refresh, window, source_options, meter, deletes
            )
        except BaseException as exc:
            error = exc
            raise
        finally:
            _record_run(pipeline, run.client, meter, mode, started_at, report, error)
        return report


def _record_run(
    pipeline: dlt.Pipeline,
    client: Bitrix24Client | None,
    meter: RunMeter,
    mode: str,
    started_at: str,
    report: SyncReport | None,
    error: BaseException | None,
) -> None:
    if error is not None and isinstance(error, (Bitrix24Error, ConfigError, DestinationError, DateInputError)):
        failure: tuple[str, str] | None = (type(error).__name__, hide_passwords((str(error).splitlines() or [""])[0]))
    else:  # an unexpected exception's text may quote a URL: its type only
        failure = None if error is None else (type(error).__name__, type(error).__name__)
    record = run_record(
        mode=mode,
        started_at=started_at,
        meter=meter,
        client=client,
        row_counts=report.row_counts if report else None,
        error=failure,
    )
    try:
        append_run(pipeline.working_dir, record)
    except OSError as exc:
        log.warning("could not write the run log in %s: %s", pipeline.working_dir, exc.strerror)


def _locked_sync(
    pipeline: dlt.Pipeline,
    run: SourceRun,
    credentials: Any,
    resources: Sequence[str] | str | None,
    full_refresh: bool,
    window: Backfill | None,
    source_options: Mapping[str, Any] | None,
    meter: RunMeter,
    deletes: DeleteOptions,
) -> SyncReport:
    pipeline.activate()  # the source reads the active pipeline's state: this one's, not the last one made
    check_destination(pipeline)
    adopt_warehouse_state(pipeline)
    if full_refresh or pipeline.has_pending_data:  # a load that may drop tables: Postgres refuses under views
        drop_views(pipeline, pipeline_catalog(pipeline))
    finished = finish_pending(pipeline)
    known = pipeline_catalog(pipeline)
    migrate_list_tables(pipeline, known)  # a warehouse an older version loaded
    rename_columns(pipeline, resume_only=True)  # a rename-columns stopped before its schema was saved
    run.new_tables = new_entity_tables(pipeline, known)
    options = dict(source_options or {})
    if window:
        options.update(backfill_since=window.since, backfill_until=window.until)
    if resources:
        options["resources"] = list(resources) if not isinstance(resources, str) else resources
    if credentials is not None:
        options["credentials"] = credentials
    everything = not resources or set(known.select(resources)) == set(known.resources)
    source = bitrix24(
        client=run.client,
        refresh_reference=full_refresh or reference_lost(pipeline),
        rebind_portal=full_refresh and everything,  # every table is dropped: another portal may move in
        run=run,
        **options,
    )
    assert run.catalog is not None and run.client is not None
    catalog, client = run.catalog, run.client
    selected = tuple(source.resources)
    if portal := dlt.config.get("bitrix24_sync.portal"):  # several portals in one dataset (pipelines/portals.py)
        source = partition_by_portal(source, str(portal))
    meter.attach(source, client, run.requests_at_start)
    requests_before = run.requests_at_start
    failure: BaseException | None = None
    collector, pipeline.collector = pipeline.collector, StepCollector(meter)  # normalize and load report too
    try:
        with bounded_load(pipeline):
            info = pipeline.run(
                source,
                loader_file_format=profile(pipeline.destination.destination_name).loader_file_format,
                refresh="drop_resources" if full_refresh else None,
            )
    except PipelineStepFailed as step_failed:
        failure = _portal_cause(step_failed)
        if failure is None and never_loads(step_failed):
            step = "normalize" if step_failed.step == "normalize" else "load into the destination"
            failure = UnloadableDataError(
                f"could not {step} this run's data ({set_aside(pipeline, step_failed)}); nothing was committed "
                "and the cursors stayed: the next run reads the same data again (run with --debug to see more)"
            )
        if failure is None:
            raise
    finally:
        pipeline.collector = collector
    if failure is not None:
        raise failure  # the portal's own error (already free of secrets), not dlt's wrapper around it
    meter.finish()
    reference_reloaded(pipeline, selected)
    refresh_views(pipeline, catalog)
    trace = pipeline.last_trace
    counts = dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}
    requests = client.requests_made - requests_before
    return SyncReport(
        requests=requests,
        row_counts={t: m for t, n in counts.items() if not t.startswith("_dlt") and (m := n - run.markers[t])},
        load_info=info,
        finished_pending=finished,
        meter=meter,
        deletes=after_load(pipeline, client, catalog, selected, run.coverage, deletes),
    )


def _portal_cause(error: BaseException) -> BaseException | None:
    """The `Bitrix24Error` or configuration error a failed pipeline step wraps (through dlt's exception
    chain)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, (Bitrix24Error, ConfigError)):
            return current
        seen.add(id(current))
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return None


def reconcile(
    pipeline: dlt.Pipeline,
    *,
    client: Bitrix24Client | None = None,
    credentials: Any = None,
    resources: Sequence[str] | str | None = None,
    mode: str | None = None,
) -> DeleteReport:
    """`bitrix24-sync reconcile`: compare the portal's IDs of `resources` (default: every CRM entity and
    payments) with the warehouse and mark or remove the deleted ones (see pipelines/deletes.py)."""
    catalog = pipeline_catalog(pipeline)
    selected = [r for r in catalog.select(resources) if r in catalog.reconcilable]
    if not selected:
        raise ConfigError(f"nothing to reconcile: choose resources from {', '.join(catalog.reconcilable)}")
    options = DeleteOptions.from_config(True, mode)
    if client is None:
        client = connect(credentials) if credentials else connect()
    with exclusive_run(pipeline):
        check_destination(pipeline)
        finish_pending(pipeline)
        report = reconcile_warehouse(pipeline, client, catalog, selected, options.mode)
    if not report.checked:
        raise ConfigError(
            f"nothing to reconcile: the warehouse has no table of {', '.join(selected)} yet; run `bitrix24-sync run`"
        )
    return report


def rename_warehouse_columns(pipeline: dlt.Pipeline) -> Renames:
    """`bitrix24-sync rename-columns`: an older warehouse's user-field columns named as the source names them
    now (`pipelines/column_names.py`), the views made again on the new names."""
    if not pipeline.default_schema_name:
        raise ConfigError("this pipeline has not loaded anything yet: its first run names the columns already")
    with exclusive_run(pipeline):
        check_destination(pipeline)
        catalog = pipeline_catalog(pipeline)
        drop_views(pipeline, catalog)
        finish_pending(pipeline)
        migrate_list_tables(pipeline, catalog)
        renames = rename_columns(pipeline)
        refresh_views(pipeline, catalog)
    return renames
