"""Several portals in one dataset: every row carries a `portal` column and each portal's load touches only its
own rows.

IDs repeat across portals (every portal has a deal 1), so the merge keys of the CRM tables become
(`portal`, id), and the reference tables, which one portal alone would replace whole, are merged by the
`portal` merge key instead: delete-insert deletes exactly the rows of the portals present in the load and
inserts the new ones (dlt's partition replace). The row keys a record's tables share (`_dlt_id` of a record,
`_dlt_parent_id` and `_dlt_root_id` of its multiple fields' rows: the record's id, `arrow_pages.py`) get the
portal in front, `<portal>:<id>`, so that deal 1 of one portal never replaces the values of another's deal 1.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.source import DltSource

from sources.bitrix24 import ROOT_KEY

PORTAL_COLUMN = "portal"


def partition_by_portal(source: DltSource, portal: str) -> DltSource:
    """Tag every row of every resource with `portal` and key the tables by it (see the module docstring)."""

    def tag(row: Any) -> Any:
        if isinstance(row, pa.Table):
            return portal_table(row, portal)
        return {**row, PORTAL_COLUMN: portal} if isinstance(row, dict) else row

    for resource in source.resources.values():
        resource.add_map(tag)
        table = resource.compute_table_schema()
        keys = [name for name, column in table.get("columns", {}).items() if column.get("primary_key")]
        if keys:  # the CRM tables and payments (merged on their id)
            resource.apply_hints(primary_key=[PORTAL_COLUMN, *keys])
        else:  # the reference tables (replaced whole): a partition replace of this portal's rows
            resource.apply_hints(
                write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                merge_key=PORTAL_COLUMN,
            )
    return source


ROW_KEYS = ("_dlt_id", "_dlt_parent_id", ROOT_KEY)
KEY_SEPARATOR = ":"  # a portal's row keys are <portal>:<id> (also pipelines/list_tables.py's SQL)


def portal_table(table: pa.Table, portal: str) -> pa.Table:
    """An Arrow page with its row keys prefixed by the portal and, a record's table (a multiple field's table
    has its record's portal through `_dlt_parent_id`, as dlt's nested tables had), the portal column."""
    prefix = pa.scalar(portal + KEY_SEPARATOR, pa.string())
    for name in ROW_KEYS:
        if name in table.column_names:
            index = table.column_names.index(name)
            keyed = pc.binary_join_element_wise(prefix, table[name], "")
            table = table.set_column(index, table.schema.field(index), keyed)
    if "_dlt_parent_id" in table.column_names:
        return table
    return table.append_column(PORTAL_COLUMN, pa.array([portal] * table.num_rows, pa.string()))
