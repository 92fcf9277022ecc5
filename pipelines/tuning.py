"""Resource defaults for the local side of a sync: the portal must be what a user waits for, and memory must
be bounded by the page size, not by the portal (issue 5).

- DuckDB's default memory limit is 80% of RAM: its merge of a large load package grows towards it (measured:
  1 GB peak RSS at a 100k-deal full sync). A bounded limit makes it spill to disk instead.
  `[bitrix24_sync] duckdb_memory_limit` (default 384MB) and `duckdb_threads` (default: DuckDB's, the cores).
- dlt gzips its intermediate files by default; they live for one run on local disk, and compressing them costs
  about a tenth of the sync's CPU. `[data_writer] disable_compression` set anywhere in dlt config (any section,
  env var) wins over this default.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

DEFAULT_DUCKDB_MEMORY_LIMIT = "384MB"


def duckdb_credentials(path: str) -> DuckDbCredentials:
    """Credentials for the DuckDB file at `path` with a bounded memory limit (see the module docstring)."""
    settings: dict[str, Any] = {
        "memory_limit": str(dlt.config.get("bitrix24_sync.duckdb_memory_limit") or DEFAULT_DUCKDB_MEMORY_LIMIT)
    }
    if threads := dlt.config.get("bitrix24_sync.duckdb_threads"):
        settings["threads"] = int(threads)
    return DuckDbCredentials(path, global_config=settings)


def default_writer_settings() -> None:
    """Uncompressed intermediate files unless the user's dlt config says otherwise."""
    if dlt.config.get("data_writer.disable_compression") is None:
        dlt.config["data_writer.disable_compression"] = True
