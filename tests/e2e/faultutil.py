"""What the robustness tests share (faults, crashes, secrets): a fast-retrying client, portal changes between
runs, and the no-duplicate check over every table of the dataset."""

from __future__ import annotations

import random
from typing import Any

import dlt

from bitrix24_emulator import Portal
from sources.bitrix24.api import Bitrix24Client, WebhookAuth

# Retries as many as in production but ~50x faster, so that fault tests take seconds (the counts are what is
# asserted, not the waits).
FAST_RETRIES = {"backoff_base": 0.01, "backoff_cap": 0.05, "rate": 200.0}
LISTED_ENTITIES = ("deal", "lead", "contact", "company")


def fast_client(portal: Portal, **settings: Any) -> Bitrix24Client:
    return Bitrix24Client(WebhookAuth(portal.webhook_url), **{**FAST_RETRIES, **settings})


def change_portal(portal: Portal, rng: random.Random, edits: int = 6) -> None:
    """Edit, add and pay what an ordinary working hour on a portal would: a few records of every entity
    (ids within the seeded range), a new deal, a new payment."""
    for entity in LISTED_ENTITIES:
        for _ in range(edits):
            record = rng.randint(1, 10)
            portal.call(f"crm.{entity}.update", {"id": record, "fields": {"TITLE": f"edit {rng.random():.6f}"}})
    portal.call("crm.deal.add", {"fields": {"TITLE": f"new {rng.random():.6f}", "OPPORTUNITY": "10.50"}})
    portal.call("crm.item.payment.add", {"entityTypeId": 2, "entityId": rng.randint(1, 10)})


def assert_no_duplicate_rows(pipeline: dlt.Pipeline) -> None:
    """Every table: unique `_dlt_id`; root tables unique on their primary key; child tables unique on
    (parent, list index) and without orphans. One query per table, over one connection."""
    schema = pipeline.default_schema
    with pipeline.sql_client() as client:
        stored = {
            name
            for (name,) in client.execute_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", pipeline.dataset_name
            )
        }
        for table in sorted(stored & set(schema.tables)):
            if table.startswith("_dlt"):
                continue
            name = client.make_qualified_table_name(table)
            checks = {"_dlt_id": f"SELECT count(*) - count(DISTINCT _dlt_id) FROM {name}"}
            primary = [c for c, hints in schema.get_table_columns(table).items() if hints.get("primary_key")]
            if primary:
                keys = ", ".join(primary)
                checks["primary key"] = (
                    f"SELECT count(*) FROM (SELECT {keys} FROM {name} GROUP BY {keys} HAVING count(*) > 1) d"
                )
            parent = schema.tables[table].get("parent")
            if parent:
                checks["list item"] = (
                    f"SELECT count(*) FROM (SELECT 1 FROM {name} GROUP BY _dlt_parent_id, _dlt_list_idx "
                    "HAVING count(*) > 1) d"
                )
                checks["orphan"] = (
                    f"SELECT count(*) FROM {name} c WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {client.make_qualified_table_name(parent)} p WHERE p._dlt_id = c._dlt_parent_id)"
                )
            for what, sql in checks.items():
                assert client.execute_sql(sql)[0][0] == 0, f"{table}: {what} not unique or orphaned rows"
