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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.pipeline import LoadInfo
from dlt.pipeline.exceptions import PipelineStepFailed

from sources.bitrix24 import ENTITIES, bitrix24, select_resources
from sources.bitrix24.client import Bitrix24Client, Bitrix24Error, ConfigError, WebhookAuth
from sources.bitrix24.settings import PAYMENTS
from sources.bitrix24.window import Backfill

log = logging.getLogger("bitrix24_sync.pipeline")

PIPELINE_NAME = "bitrix24"
DATASET_NAME = "bitrix24_crm"  # must differ from the pipeline name (DuckDB catalog/schema clash)
Destination = Literal["duckdb", "postgres"]
BACKFILL_DEFAULT = (*(e.resource for e in ENTITIES), PAYMENTS)


class AlreadyRunningError(ConfigError):
    """Another run of the same pipeline holds its lock."""


class DestinationError(Exception):
    """The warehouse cannot be reached or written; the message says which and how to fix it."""


@dataclass
class SyncReport:
    requests: int
    row_counts: dict[str, int] = field(default_factory=dict)
    load_info: LoadInfo | None = None
    finished_pending: bool = False


def make_pipeline(
    destination: Destination = "duckdb",
    *,
    duckdb_path: str | Path | None = None,
    postgres_url: str | None = None,
    pipelines_dir: str | Path | None = None,
    pipeline_name: str = PIPELINE_NAME,
    dataset_name: str = DATASET_NAME,
) -> dlt.Pipeline:
    """A pipeline into DuckDB (`duckdb_path`, default ./bitrix24.duckdb) or Postgres (`postgres_url`, default
    `destination.postgres.credentials` from dlt config)."""
    if destination == "duckdb":
        dest: Any = dlt.destinations.duckdb(str(duckdb_path or f"{pipeline_name}.duckdb"))
    elif destination == "postgres":
        dest = dlt.destinations.postgres(credentials=postgres_url) if postgres_url else "postgres"
    else:
        raise ConfigError(f"unknown destination {destination!r}: choose duckdb or postgres")
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dest,
        dataset_name=dataset_name,
        pipelines_dir=str(pipelines_dir) if pipelines_dir else None,
    )


def make_client(webhook_url: str | None = None, **overrides: Any) -> Bitrix24Client:
    """The HTTP client from an explicit URL or dlt config (`sources.bitrix24.webhook_url`, rate, burst)."""
    url = webhook_url or dlt.secrets.get("sources.bitrix24.webhook_url")
    if not url:
        raise ConfigError(
            "no webhook URL: set sources.bitrix24.webhook_url in .dlt/secrets.toml "
            "or the environment variable SOURCES__BITRIX24__WEBHOOK_URL"
        )

    def setting(name: str, default: Any) -> Any:
        if overrides.get(name) is not None:
            return overrides[name]
        value = dlt.config.get(f"sources.bitrix24.{name}")
        return default if value is None else value

    auth = WebhookAuth(str(url), allow_http=bool(setting("allow_http", False)))
    return Bitrix24Client(auth, rate=float(setting("rate", 2.0)), burst=int(setting("burst", 50)))


@contextmanager
def exclusive_run(pipeline: dlt.Pipeline) -> Iterator[None]:
    """One run per pipeline working folder at a time: a second one refuses instead of mixing state."""
    Path(pipeline.working_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(pipeline.working_dir) / "bitrix24-sync.lock", "a+") as lock:
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
    except ConfigFieldMissingException:
        message = (
            "no credentials: set destination.postgres.credentials in .dlt/secrets.toml (or "
            "DESTINATION__POSTGRES__CREDENTIALS), or pass --postgres-url"
        )
    except Exception as error:  # any driver's error type: the message is what the user needs
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if message is not None:  # raised outside the except block: no driver exception chained to it
        raise DestinationError(f"cannot use the {pipeline.destination.destination_name} destination: {message}")


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load what a crashed or interrupted run extracted, before extracting anything new."""
    if not pipeline.has_pending_data:
        return False
    log.warning("loading data a previous run left pending before syncing")
    pipeline.normalize()
    pipeline.load()
    return True


def sync(
    pipeline: dlt.Pipeline,
    *,
    client: Bitrix24Client | None = None,
    webhook_url: str | None = None,
    resources: Sequence[str] | str | None = None,
    full_refresh: bool = False,
    backfill: tuple[str | None, str | None] | None = None,
    source_options: Mapping[str, Any] | None = None,
) -> SyncReport:
    """Run one sync. `backfill=(since, until)` re-reads that DATE_MODIFY window of `resources` (default: the
    CRM entities and payments) and leaves the cursors alone; `full_refresh` drops the selected resources'
    tables and state and reads everything again."""
    if full_refresh and backfill:
        raise ConfigError("a backfill cannot be a full refresh: drop --full-refresh or the backfill window")
    window = Backfill.parse(*backfill) if backfill else None
    resources = resources or dlt.config.get("sources.bitrix24.resources") or (BACKFILL_DEFAULT if backfill else None)
    selected = select_resources(resources)
    client = client or make_client(webhook_url)
    with exclusive_run(pipeline):
        return _locked_sync(pipeline, client, selected, full_refresh, window, source_options)


def _locked_sync(
    pipeline: dlt.Pipeline,
    client: Bitrix24Client,
    selected: Sequence[str],
    full_refresh: bool,
    window: Backfill | None,
    source_options: Mapping[str, Any] | None,
) -> SyncReport:
    check_destination(pipeline)
    finished = finish_pending(pipeline)
    options = dict(source_options or {})
    if window:
        options.update(backfill_since=window.since, backfill_until=window.until)
    source = bitrix24(client=client, resources=list(selected), refresh_reference=full_refresh, **options)
    requests_before = client.requests_made
    failure: BaseException | None = None
    try:
        info = pipeline.run(
            source,
            loader_file_format="parquet" if pipeline.destination.destination_name == "duckdb" else None,
            refresh="drop_resources" if full_refresh else None,
        )
    except PipelineStepFailed as step_failed:
        failure = _portal_cause(step_failed)
        if failure is None:
            raise
    if failure is not None:
        raise failure  # the portal's own error (already free of secrets), not dlt's wrapper around it
    trace = pipeline.last_trace
    counts = dict(trace.last_normalize_info.row_counts) if trace and trace.last_normalize_info else {}
    return SyncReport(
        requests=client.requests_made - requests_before,
        row_counts={t: n for t, n in counts.items() if not t.startswith("_dlt")},
        load_info=info,
        finished_pending=finished,
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
