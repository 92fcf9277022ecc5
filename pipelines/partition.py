"""Several portals in one dataset: every row carries a `portal` column and each portal's load touches only its
own rows.

IDs repeat across portals (every portal has a deal 1), so the merge keys of the CRM tables become
(`portal`, id), and the reference tables, which one portal alone would replace whole, are merged by the
`portal` merge key instead: delete-insert deletes exactly the rows of the portals present in the load and
inserts the new ones (dlt's partition replace). Child tables hang off their parent's row id and need nothing.
"""

from __future__ import annotations

from typing import Any

from dlt.extract.source import DltSource

PORTAL_COLUMN = "portal"


def partition_by_portal(source: DltSource, portal: str) -> DltSource:
    """Tag every row of every resource with `portal` and key the tables by it (see the module docstring)."""

    def tag(row: Any) -> Any:
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
