"""Moves a warehouse's multiple-field tables from dlt's nested layout to the layout the source writes now.

Until the source yielded Arrow tables, dlt's row normalizer made each multiple field (PHONE, a multiple `UF_*`)
a nested table of its record's table, keyed by a random `_dlt_id` per load. The source now writes them as
tables of their own keyed by the record's id (`sources/bitrix24/arrow_pages.py`), which dlt refuses to merge
into a table its schema calls nested. So, once per warehouse, before the first run that extracts:

1. in one transaction per entity: rows of a nested table whose record row is gone are deleted, the others point
   at their record by its id (`_dlt_parent_id`, `_dlt_root_id`, `_dlt_id`), then the record rows' `_dlt_id`
   becomes the id;
2. the schema forgets the nesting: the tables are merged on `_dlt_root_id`, as the source declares them.

Idempotent: a migration killed between the two steps runs again, and its SQL finds the ids already stable.
"""

from __future__ import annotations

import logging
from typing import Any

import dlt

from pipelines.destinations import dataset_columns
from pipelines.partition import KEY_SEPARATOR, PORTAL_COLUMN
from sources.bitrix24 import ROOT_KEY, Catalog

log = logging.getLogger("bitrix24_sync.pipeline")


def nested_list_tables(pipeline: dlt.Pipeline, catalog: Catalog) -> dict[str, str]:
    """Nested tables of the catalog's entity tables in the pipeline's schema: table -> its record's table."""
    if not pipeline.default_schema_name:
        return {}
    entities = {spec.resource for spec in catalog.entities}
    return {
        name: table["parent"]
        for name, table in pipeline.default_schema.tables.items()
        if table.get("parent") in entities
    }


def migrate_list_tables(pipeline: dlt.Pipeline, catalog: Catalog) -> list[str]:
    """Move the nested tables of entity tables to the source's layout; the tables moved."""
    nested = nested_list_tables(pipeline, catalog)
    if not nested:
        return []
    schema = pipeline.default_schema
    naming = schema.naming
    ids = {spec.resource: naming.normalize_identifier(spec.id_field) for spec in catalog.entities}
    with pipeline.sql_client() as client:
        existing = dataset_columns(client, pipeline.dataset_name)
        for parent in sorted(set(nested.values())):
            children = [c for c, p in nested.items() if p == parent and c in existing]
            if parent in existing and children:
                partitioned = PORTAL_COLUMN in existing[parent]
                with client.begin_transaction():
                    for child in children:
                        client.execute_sql(
                            _repoint_sql(client, parent, child, _record_key("p", ids[parent], partitioned))
                        )
                    record = client.make_qualified_table_name(parent)
                    key = _record_key("r", ids[parent], partitioned)
                    client.execute_sql(f"UPDATE {record} AS r SET _dlt_id = {key}")
    for name in nested:
        _unnest(schema.tables[name])
    pipeline.schemas.save_schema(schema)
    log.info("moved %d multiple-field tables to tables keyed by the record's id: %s", len(nested), sorted(nested))
    return sorted(nested)


def _record_key(alias: str, id_column: str, partitioned: bool) -> str:
    """SQL of a record row's stable key: its id, after its portal in a dataset of several (`partition.py`)."""
    key = f"CAST({alias}.{id_column} AS VARCHAR)"
    return f"{alias}.{PORTAL_COLUMN} || '{KEY_SEPARATOR}' || {key}" if partitioned else key


def _repoint_sql(client: Any, parent: str, child: str, new_id: str) -> str:
    record, values = client.make_qualified_table_name(parent), client.make_qualified_table_name(child)
    return (
        f"DELETE FROM {values} WHERE NOT EXISTS (SELECT 1 FROM {record} p WHERE p._dlt_id = {values}._dlt_parent_id);"
        f"UPDATE {values} AS c SET _dlt_parent_id = {new_id}, {ROOT_KEY} = {new_id}, "
        f"_dlt_id = {new_id} || '.' || CAST(c._dlt_list_idx AS VARCHAR) FROM {record} p "
        f"WHERE c._dlt_parent_id = p._dlt_id"
    )


def _unnest(table: dict[str, Any]) -> None:
    """A nested table's schema as the source declares its tables: no parent, merged on `_dlt_root_id`."""
    table.pop("parent", None)
    table["write_disposition"] = "merge"
    table["x-merge-strategy"] = "delete-insert"  # type: ignore[typeddict-unknown-key]
    for column in table["columns"].values():
        column.pop("root_key", None)  # type: ignore[misc]
        column.pop("parent_key", None)  # type: ignore[misc]
    if ROOT_KEY in table["columns"]:
        table["columns"][ROOT_KEY]["merge_key"] = True
