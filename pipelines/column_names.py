"""Renames an older warehouse's user-field columns to the names the source gives them now.

Until this version the warehouse used dlt's snake_case naming, which breaks a name at every digit followed by a
capital: `UF_CRM_64A29A1CD5CC2` became `uf_crm_64_a29_a1_cd5_cc2`. The source's naming
(`sources/bitrix24/naming.py`) keeps the code whole: `uf_crm_64a29a1cd5cc2`. dlt never changes the naming of a
schema that has data, so a warehouse made earlier keeps its names (queries written against it keep working)
until its owner runs `bitrix24-sync rename-columns`, which:

1. in one transaction in the destination: renames the columns (and `<code>__raw`, variant columns), the tables
   of multiple fields, and the `fields` table's `column_name` / `child_table` entries;
2. saves the schema under the new naming, and stores it in the destination.

The codes come from the field metadata the pipeline's state caches (every entity that was ever synced has it),
so nothing is asked of the portal. A rename interrupted between the two steps is finished by the next run or
rename (the destination already has the new names: only the schema is left).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.schema import Schema

from pipelines.destinations import dataset_columns
from pipelines.views import literal
from sources.bitrix24 import RAW_SUFFIX, ConfigError, ReadableNaming, SourceState, catalog_of

log = logging.getLogger("bitrix24_sync.pipeline")


@dataclass
class Renames:
    """What a warehouse's move to the source's naming renames: per table (old name) its columns, old -> new;
    tables old -> new; and the `fields` table's entries, (entity, old) -> new."""

    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.columns or self.tables)


def uses_readable_names(schema: Schema) -> bool:
    return isinstance(schema.naming, ReadableNaming)


def plan_renames(schema: Schema, codes: Mapping[str, Iterable[str]]) -> Renames:
    """The renames that move `schema` (named with snake_case) to the source's naming; `codes`: entity table ->
    its field codes. Pure: reads the schema, changes nothing."""
    old, new = schema.naming, ReadableNaming(schema.naming.max_length)
    renames = Renames()
    for table, table_codes in codes.items():
        columns = schema.tables.get(table, {}).get("columns", {})
        for code in sorted(set(table_codes)):
            before, after = old.normalize_identifier(code), new.normalize_identifier(code)
            if before == after:
                continue
            raw = code + RAW_SUFFIX
            pairs = {before: after, old.normalize_identifier(raw): new.normalize_identifier(raw)}
            for name, column in columns.items():  # dlt's variant columns, `<column>__v_<type>`
                if column.get("variant") and name.startswith(before + "__"):
                    pairs[name] = after + name[len(before) :]
            for column_before, column_after in pairs.items():
                if column_before in columns:
                    renames.columns.setdefault(table, {})[column_before] = column_after
            child_before, child_after = old.shorten_fragments(table, before), new.shorten_fragments(table, after)
            if child_before in schema.tables:
                renames.tables[child_before] = child_after
    return renames


def field_codes(pipeline: dlt.Pipeline) -> dict[str, list[str]]:
    """Entity table -> the field codes of its cached metadata (the pipeline's state; no request)."""
    state = SourceState.of_pipeline(pipeline.state)
    caches = {spec.resource: state.fields_cache(spec.resource) for spec in catalog_of(state).entities}
    return {resource: list(cache["meta"]) for resource, cache in caches.items() if cache}


def rename_columns(pipeline: dlt.Pipeline, resume_only: bool = False) -> Renames:
    """Move the pipeline's warehouse to the source's naming (see the module docstring); the renames done.
    `resume_only`: only finish a rename whose SQL an earlier call committed (what a run does)."""
    if not pipeline.default_schema_name or uses_readable_names(pipeline.default_schema):
        return Renames()
    schema = pipeline.default_schema
    renames = plan_renames(schema, field_codes(pipeline))
    if resume_only and not renames:
        return renames
    with pipeline.sql_client() as client:
        existing = dataset_columns(client, pipeline.dataset_name)
        pending = _pending(renames, existing)
        if resume_only:
            if pending or not _started(renames, existing):
                return Renames()
        else:
            _refuse_shared(client, schema, pipeline.pipeline_name)
        if pending:
            with client.begin_transaction():
                for statement in _rename_sql(client, pending, "fields" in existing):
                    client.execute_sql(statement)
    pipeline.schemas.save_schema(renamed_schema(schema, renames))
    pipeline.sync_schema()  # the destination's stored schema too: a state restored from it has the new names
    log.info(
        "renamed %d columns and %d tables to their field codes",
        sum(len(c) for c in renames.columns.values()),
        len(renames.tables),
    )
    return renames


def _pending(renames: Renames, existing: Mapping[str, set[str]]) -> Renames:
    """The renames whose old name the destination still has."""
    pending = Renames(tables={old: new for old, new in renames.tables.items() if old in existing})
    for table, columns in renames.columns.items():
        left = {old: new for old, new in columns.items() if old in existing.get(table, set())}
        if left:
            pending.columns[table] = left
    return pending


def _started(renames: Renames, existing: Mapping[str, set[str]]) -> bool:
    """The destination already has some of the new names (an earlier rename committed its SQL)."""
    return any(new in existing for new in renames.tables.values()) or any(
        new in existing.get(table, set()) for table, columns in renames.columns.items() for new in columns.values()
    )


def _refuse_shared(client: Any, schema: Schema, pipeline_name: str) -> None:
    """Several portals' pipelines in one dataset share its tables, each with its own schema: renaming for one
    would break the others' loads."""
    state = client.make_qualified_table_name(schema.state_table_name)
    rows = client.execute_sql(f"SELECT DISTINCT pipeline_name FROM {state} WHERE pipeline_name <> %s", pipeline_name)
    if rows:
        others = ", ".join(sorted(str(row[0]) for row in rows))
        raise ConfigError(
            f"this dataset is shared with the pipelines {others}: their schemas name the same tables, so the "
            "columns cannot be renamed for one of them; the dataset keeps dlt's snake_case names"
        )


def _rename_sql(client: Any, renames: Renames, has_fields: bool) -> list[str]:
    """The statements, with identifiers quoted as the destination quotes them (dlt's sql client)."""
    name = client.escape_column_name
    statements = []
    for table, columns in renames.columns.items():
        qualified = client.make_qualified_table_name(table)
        statements += [f"ALTER TABLE {qualified} RENAME COLUMN {name(o)} TO {name(n)}" for o, n in columns.items()]
    for old, new in renames.tables.items():
        statements.append(f"ALTER TABLE {client.make_qualified_table_name(old)} RENAME TO {name(new)}")
    if has_fields:
        fields = client.make_qualified_table_name("fields")
        for table, columns in renames.columns.items():
            statements += [
                f"UPDATE {fields} SET column_name = {literal(n)} "
                f"WHERE entity = {literal(table)} AND column_name = {literal(o)}"
                for o, n in columns.items()
            ]
        statements += [
            f"UPDATE {fields} SET child_table = {literal(new)} WHERE child_table = {literal(old)}"
            for old, new in renames.tables.items()
        ]
    return statements


def renamed_schema(schema: Schema, renames: Renames) -> Schema:
    """`schema` with the renamed tables and columns, under the source's naming, one version up."""
    stored = schema.to_dict()
    tables = stored["tables"]
    for table, columns in renames.columns.items():
        if table in tables:
            tables[table]["columns"] = {
                columns.get(name, name): {**column, "name": columns.get(name, name)}
                for name, column in tables[table]["columns"].items()
            }
    for old, new in renames.tables.items():
        if old in tables:
            tables[new] = {**tables.pop(old), "name": new}
    stored["normalizers"]["names"] = ReadableNaming.__module__
    return Schema.from_dict(stored, bump_version=True)
