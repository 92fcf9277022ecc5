"""Multiple fields as tables of their own (`sources/bitrix24/arrow_pages.py`): a record's values are replaced
whole, also when its list becomes empty, and a warehouse an older version loaded in dlt's nested layout is
moved to this one (`pipelines/list_tables.py`) without losing a value."""

from __future__ import annotations

from typing import Any

import dlt

from bitrix24_emulator import Portal
from pipelines.list_tables import migrate_list_tables, nested_list_tables
from pipelines.runner import pipeline_catalog
from sources.bitrix24 import Catalog
from tests.e2e.syncutil import assert_warehouse_equals_portal, query, run

SERVICES = "UF_CRM_1699000008"  # the deals' multiple enumeration
CHILD = "deals__uf_crm_1699000008"
DEALS = Catalog.for_portal().entity("deals")


def _services(portal: Portal) -> dict[int, list[int]]:
    """deal id -> its Services option ids, straight from the API."""
    out: dict[int, list[int]] = {}
    after = 0
    while True:
        page = portal.call(
            "crm.deal.list",
            {"select": ["ID", SERVICES], "order": {"ID": "ASC"}, "filter": {">ID": after}, "start": -1},
        )
        for row in page:
            out[int(row["ID"])] = [int(v) for v in row.get(SERVICES) or []]
        if len(page) < 50:
            return out
        after = page[-1]["ID"]


def _warehouse_services(pipeline: dlt.Pipeline) -> dict[int, list[int]]:
    rows = query(
        pipeline,
        "SELECT d.id AS id, c.value AS value FROM {} d LEFT JOIN {} c ON c._dlt_parent_id = d._dlt_id "
        "ORDER BY d.id, c._dlt_list_idx",
        "deals",
        CHILD,
    )
    out: dict[int, list[int]] = {}
    for row in rows:
        out.setdefault(int(row["id"]), [])
        if row["value"] is not None:
            out[int(row["id"])].append(int(row["value"]))
    return out


def test_a_list_that_becomes_empty_or_shorter_leaves_no_old_value(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    before = _services(portal)
    emptied = next(i for i, v in before.items() if len(v) >= 1)
    shortened = next(i for i, v in before.items() if len(v) >= 2 and i != emptied)
    portal.call("crm.deal.update", {"id": emptied, "fields": {SERVICES: []}})
    portal.call("crm.deal.update", {"id": shortened, "fields": {SERVICES: before[shortened][:1]}})

    second = run(pipeline, portal)
    after = _services(portal)
    assert after[emptied] == [] and after[shortened] == before[shortened][:1]
    # the summary counts the one value stored, not the marker that emptied the other deal's list
    assert second.row_counts["deals"] == 2 and second.row_counts[CHILD] == 1
    assert _warehouse_services(pipeline) == after
    # the markers that deleted the old values are not stored
    assert query(pipeline, "SELECT COUNT(*) AS n FROM {} WHERE _replaced IS NOT NULL", CHILD)[0]["n"] == 0
    assert_warehouse_equals_portal(pipeline, portal)


def _old_layout(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """What an older version left: the deals with their Services as dlt's nested table (random `_dlt_id`s),
    one deal's list holding a value the portal no longer has."""
    services = _services(portal)
    stale = next(i for i, v in services.items() if v)
    rows: list[dict[str, Any]] = [
        {"ID": i, SERVICES: [*v, 999] if i == stale else v, "DATE_MODIFY": "2020-01-01T00:00:00+03:00"}
        for i, v in services.items()
    ]

    @dlt.source(name="bitrix24", root_key=True, max_table_nesting=1)
    def older() -> Any:
        merge = {"disposition": "merge", "strategy": "delete-insert"}
        return dlt.resource(rows, name="deals", write_disposition=merge, primary_key="ID")

    pipeline.run(older())


def test_a_warehouse_in_the_nested_layout_is_moved_and_stays_equal_to_the_portal(
    pipeline: dlt.Pipeline, portal: Portal
) -> None:
    _old_layout(pipeline, portal)
    catalog = pipeline_catalog(pipeline)
    assert nested_list_tables(pipeline, catalog) == {CHILD: "deals"}
    old_ids = {r["_dlt_id"] for r in query(pipeline, "SELECT _dlt_id FROM {}", "deals")}
    assert not any(i.isdigit() for i in old_ids)  # dlt's random row keys

    assert migrate_list_tables(pipeline, catalog) == [CHILD]
    assert nested_list_tables(pipeline, catalog) == {}
    # every value still belongs to its record, now through the record's id
    moved = _warehouse_services(pipeline)
    assert sum(len(v) for v in moved.values()) == sum(len(v) for v in _services(portal).values()) + 1
    assert {r["_dlt_id"] for r in query(pipeline, "SELECT _dlt_id FROM {}", "deals")} == {str(i) for i in moved}
    assert migrate_list_tables(pipeline, catalog) == []  # once

    run(pipeline, portal)  # the first run of the new version reads every deal: the stale value goes
    assert _warehouse_services(pipeline) == _services(portal)
    assert_warehouse_equals_portal(pipeline, portal)


def test_a_run_moves_an_older_warehouse_itself(pipeline: dlt.Pipeline, portal: Portal) -> None:
    _old_layout(pipeline, portal)
    run(pipeline, portal)
    assert nested_list_tables(pipeline, pipeline_catalog(pipeline)) == {}
    assert _warehouse_services(pipeline) == _services(portal)


def test_a_first_load_appends_and_the_next_one_merges(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """Nothing to merge with on a first load: appended, no marker rows; the tables merge from then on."""
    run(pipeline, portal)
    schema = pipeline.default_schema
    assert schema.get_table("deals")["write_disposition"] == "append"
    assert schema.get_table(CHILD)["write_disposition"] == "append"
    deal = next(i for i, v in _services(portal).items() if v)
    portal.call("crm.deal.update", {"id": deal, "fields": {SERVICES: []}})
    run(pipeline, portal)
    assert pipeline.default_schema.get_table("deals")["write_disposition"] == "merge"
    assert pipeline.default_schema.get_table(CHILD)["write_disposition"] == "merge"
    assert _warehouse_services(pipeline) == _services(portal)
    assert_warehouse_equals_portal(pipeline, portal)
