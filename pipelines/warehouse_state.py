"""The pipeline's local state must be readable, and the state of the warehouse it describes.

dlt keeps a pipeline's state in its working folder and a copy in every load package (`_dlt_pipeline_state` in the
warehouse). The working folder is found by pipeline name, so the same name from another folder, a warehouse file
deleted to start over, or another machine loading the same warehouse leaves a local state that describes some
other warehouse: its cursors would skip everything the new warehouse never got. Before a run, with no package
pending, the local state's hash must be the newest state the warehouse holds for this pipeline. If it is not, the
local state is dropped and the warehouse's own state restored (none: a full load). One query per run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dlt

from sources.bitrix24 import ConfigError

log = logging.getLogger("bitrix24_sync.pipeline")


def warehouse_state_hash(pipeline: dlt.Pipeline) -> str | None:
    """The hash of the state of this pipeline's newest completed load in the warehouse (None: none there)."""
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return None
        schema = pipeline.default_schema
        state = client.make_qualified_table_name(schema.state_table_name)
        loads = client.make_qualified_table_name(schema.loads_table_name)
        try:  # as dlt restores it: the state of the newest completed load (an aborted package's row is no state)
            rows = client.execute_sql(
                f"SELECT s.version_hash FROM {state} AS s JOIN {loads} AS l ON l.load_id = s._dlt_load_id "
                "WHERE s.pipeline_name = %s AND l.status = 0 ORDER BY l.load_id DESC LIMIT 1",
                pipeline.pipeline_name,
            )
        except Exception:  # no state table yet (a dataset of other tables): nothing of this pipeline there
            return None
    return rows[0][0] if rows else None


def adopt_warehouse_state(pipeline: dlt.Pipeline) -> bool:
    """Drop a local state that is not the warehouse's (see the module docstring); True when it was dropped."""
    if pipeline.first_run or pipeline.has_pending_data or not pipeline.default_schema_name:
        return False
    try:
        remote = warehouse_state_hash(pipeline)
    except NotImplementedError:  # a destination without SQL (filesystem): dlt's own restore rules apply
        return False
    local = pipeline.state.get("_version_hash")
    if remote == local:
        return False
    log.warning(
        "the local state of pipeline %s (%s) is not the state of this warehouse (%s): %s",
        pipeline.pipeline_name,
        pipeline.working_dir,
        pipeline.dataset_name,
        "restoring the warehouse's own state" if remote else "the warehouse holds none, so this run loads everything",
    )
    pipeline.drop()
    pipeline.activate()
    pipeline.sync_destination()
    return True


def check_working_folder(working_dir: Path) -> None:
    """dlt's state and schema files must be readable JSON (an editor, a full disk or a copy cut short can leave
    them empty or cut off); dlt itself fails on them with a bare JSONDecodeError on every run. The warehouse
    keeps a copy of the state with every load, so the way out is safe and costs nothing but re-reading what a
    pending package held."""
    for path in (working_dir / "state.json", *sorted((working_dir / "schemas").glob("*.json"))):
        problem = ""
        try:
            content = path.read_bytes() if path.is_file() else None
            if content is not None:
                problem = "empty" if not content.strip() else ""
                json.loads(content or b"null")
        except (ValueError, UnicodeDecodeError):
            problem = problem or "not valid JSON"
        except OSError as error:
            problem = error.strerror or type(error).__name__
        if problem:
            raise ConfigError(
                f"the pipeline's {path.name} ({path}) is {problem}: the warehouse keeps the state, so it is safe to "
                f"move the folder aside and run again (mv {working_dir} {working_dir}.broken): the state is restored "
                "from the warehouse, and only data a run had not loaded yet is read again"
            )
