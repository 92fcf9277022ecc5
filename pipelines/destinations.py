"""One profile per destination: everything the runner, crash repair, views and the portals command need to know
about a warehouse's quirks, in one room. A new quirk is a field here (or a row in `_PROFILES`).

- file format: DuckDB loads parquet ~30x faster than dlt's default insert statements; Postgres needs ADBC for
  parquet, so it keeps dlt's default.
- resume policy: dlt resumes a half-loaded package by re-running the jobs that had started. On DuckDB the
  copies a re-run inserts are removed afterwards by their physical row id (`row_id`); Postgres declares
  `_dlt_id` UNIQUE, so there the half-loaded package is aborted and read again (`crash_repair.py`).
- view dialect: the `v_*` views' SQL (quoting, string_agg, LIKE) is DuckDB's and Postgres'.
- single writer: DuckDB takes one writing process per file (the portals command serialises them).
- tuning (peak memory is set by the load; `docs/performance.md`): DuckDB's default memory limit is 80% of RAM
  and its load of a large package grows towards it, so the load runs bounded (`bounded_load`):
  `[bitrix24_sync] duckdb_memory_limit`, default 64MB (a 1M-deal sync of every resource peaked at 381 and 396 MB
  with it, 413 MB with 96MB), one DuckDB thread (`duckdb_threads`; each thread holds its own buffers: at 96MB two
  threads ran out of memory in a merge of 100k deals' product rows, one did not even at 64MB) and no preserved
  insertion order (DuckDB's own advice for out-of-memory errors; nothing here reads rows in insertion order: the
  crash repair tells identical copies apart by row id, whichever it keeps). Queries
  (views, deletes, the crash repair, a user's `pipeline.sql_client()`) keep DuckDB's defaults: a view with a
  dozen multiple-field aggregates needs more than 96MB on a small portal already. Its load jobs run one at a
  time (dlt's 20 at once each hold their own buffers; `[load] workers` wins); Postgres's two at a time (its
  insert statements are built in memory per job: 100k deals, every resource, peaked at 598 MB with two, 696 and
  738 MB with 20), each statement at most 4 MB (`max_query_bytes`; dlt reads a job's file in pieces of half
  its 32 MB default and holds several copies of a piece: 525 MB at the peak with 32 MB, 394 MB with 4 MB, the
  same 100k sync). dlt gzips its intermediate files
  by default: they live for one run on local disk and compressing them costs about a tenth of the sync's CPU
  (`[data_writer] disable_compression` wins).
- error hints: dlt wraps driver errors in a paragraph of generic advice; the driver's reason sits after
  "The actual reason given is:". We keep that reason (first line) and add the fix users need.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

DEFAULT_DUCKDB_MEMORY_LIMIT = "64MB"
DEFAULT_DUCKDB_THREADS = 1


class DestinationError(Exception):
    """The warehouse cannot be reached or written; the message says which and how to fix it."""


@dataclass(frozen=True)
class DestinationProfile:
    name: str
    loader_file_format: str | None = None  # None: dlt's default for the destination
    resume: Literal["repair", "abort"] = "abort"  # what to do with a half-loaded package (module docstring)
    row_id: str | None = None  # the physical row id that tells a row's copies apart ("repair" only)
    views: bool = False  # the v_* views' SQL works here
    single_writer: bool = False  # one writing process per database file
    load_workers: int | None = None  # dlt's parallel load jobs (None: dlt's default)
    max_query_bytes: int | None = None  # the longest insert statement dlt builds (None: dlt's default)

    def pipeline_destination(self, duckdb_path: str | None = None, postgres_url: str | None = None) -> Any:
        """dlt's destination object, tuned. Postgres without a URL takes its credentials from dlt's config."""
        if self.name == "duckdb":
            return dlt.destinations.duckdb(duckdb_credentials(str(duckdb_path)))
        if self.name == "postgres":
            credentials = {"credentials": postgres_url} if postgres_url else {}
            return dlt.destinations.postgres(**credentials, max_query_length=self.max_query_bytes)
        return self.name


_PROFILES = {
    "duckdb": DestinationProfile(
        "duckdb", "parquet", "repair", "rowid", views=True, single_writer=True, load_workers=1
    ),
    "postgres": DestinationProfile("postgres", views=True, load_workers=2, max_query_bytes=4 * 1024 * 1024),
    "motherduck": DestinationProfile("motherduck", views=True),
}


def profile(name: str) -> DestinationProfile:
    """The profile of a destination by dlt name (any other dlt destination: dlt's defaults, no views)."""
    return _PROFILES.get(name, DestinationProfile(name))


def duckdb_credentials(path: str) -> DuckDbCredentials:
    """Credentials for the DuckDB file at `path`: DuckDB's own settings, bounded during a load (`bounded_load`)."""
    return DuckDbCredentials(path, global_config={})


def duckdb_load_settings() -> dict[str, Any]:
    """The DuckDB settings of a load (see the module docstring), from dlt config or the defaults."""
    return {
        "memory_limit": str(dlt.config.get("bitrix24_sync.duckdb_memory_limit") or DEFAULT_DUCKDB_MEMORY_LIMIT),
        "threads": int(dlt.config.get("bitrix24_sync.duckdb_threads") or DEFAULT_DUCKDB_THREADS),
        "preserve_insertion_order": False,
    }


@contextmanager
def bounded_load(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Connections opened inside take the load's DuckDB settings (`duckdb_load_settings`), the ones after it
    DuckDB's own again. dlt applies a credentials' `global_config` to each connection it opens (it closes them
    between its steps), and its load jobs use the pipeline's credentials object: changed in place, so that a copy
    of the credentials shares it. Other destinations: nothing to do."""
    credentials = getattr(pipeline.destination, "config_params", {}).get("credentials")
    settings = credentials.global_config if isinstance(credentials, DuckDbCredentials) else None
    if settings is None:
        yield
        return
    saved = dict(settings)
    settings.update(duckdb_load_settings())
    try:
        yield
    finally:
        settings.clear()
        settings.update(saved)


def default_dlt_settings(destination: str) -> None:
    """dlt settings the sync needs, unless the user's dlt config says otherwise:

    - resources extracted one after another (`[extract] next_item_mode = "fifo"`): dlt's default round robin
      keeps every resource's current batch (and the one prefetched behind it) alive at once, a few hundred MB
      with a dozen readers; one at a time, one batch;
    - the destination's load workers (`DestinationProfile.load_workers`);
    - uncompressed intermediate files, and an emptied staging dataset after each load (`<dataset>_staging` is
      where dlt's merge puts a load's rows before it merges them; kept, it holds a copy of the last load)."""
    defaults: dict[str, Any] = {
        "extract.next_item_mode": "fifo",
        "data_writer.disable_compression": True,
        "load.truncate_staging_dataset": True,
    }
    if (workers := profile(destination).load_workers) is not None:
        defaults["load.workers"] = workers
    for key, value in defaults.items():
        if dlt.config.get(key) is None:
            dlt.config[key] = value


_REASON = re.compile(r"The actual reason given is:\s*(.*)", re.DOTALL)
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Conflicting lock is held in .*?\(PID (\d+)\)"),
        "another process (PID {0}) has the DuckDB file open for writing: close it (a notebook, the duckdb "
        "CLI, another sync) and run again",
    ),
    (re.compile(r"Is a directory"), "the DuckDB path is a directory: give a file path with --duckdb-path"),
    (
        re.compile(r"No such file or directory"),
        "the folder of the DuckDB file does not exist: create it or fix --duckdb-path",
    ),
    (
        re.compile(r"Permission denied|Read-only file system"),
        "the DuckDB file or its folder is not writable: fix the permissions or choose another --duckdb-path",
    ),
    (
        re.compile(r"password authentication failed|authentication failed"),
        "Postgres refused the user or password: fix them in --postgres-url or destination.postgres.credentials",
    ),
    (
        re.compile(r"Connection refused|could not connect|could not translate host name|timeout expired"),
        "Postgres is not reachable: check the host and port in --postgres-url and that the server is running",
    ),
    (
        re.compile(r'database "[^"]+" does not exist'),
        "create the database or fix its name in --postgres-url",
    ),
)


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@]+@", re.IGNORECASE)
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def hide_passwords(text: str) -> str:
    """`postgresql://user:***@host` and `password=***`: a database URL in a message or a log keeps its password."""
    return _DSN_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def explain(text: str) -> str:
    """`reason (fix)` in one line, from a destination error's text, without a password."""
    text = hide_passwords(text)
    match = _REASON.search(text)
    reason = (match.group(1) if match else text).strip().splitlines()
    first = reason[0].strip() if reason else ""
    for pattern, hint in _HINTS:
        found = pattern.search(text)
        if found:
            return f"{first} ({hint.format(*found.groups())})"
    return first


def dataset_columns(client: Any, dataset: str) -> dict[str, set[str]]:
    """The dataset's tables (and views) and their column names, as the destination has them now."""
    if not client.has_dataset():
        return {}
    rows = client.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s", dataset
    )
    tables: dict[str, set[str]] = {}
    for table, column in rows or []:
        tables.setdefault(table, set()).add(column)
    return tables
