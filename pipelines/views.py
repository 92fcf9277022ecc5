"""Views that make the raw tables readable in SQL: a `v_<table>` per entity (deals, leads, contacts,
companies, invoices, quotes, activities, every `sp_<entityTypeId>`), `v_payments`, `v_stage_history` (each stay
in a stage), `v_product_rows`, `v_deal_contacts`, `v_stages` (every dictionary, named), and the analysts'
`v_stage_funnel`, `v_deal_activities` and `v_product_revenue`, created in the dataset after every successful load.
`v_deals` and `v_payments` also show their amounts in the portal's base currency.

The raw tables keep the portal's field codes as column names (`uf_crm_1699000007`) and ids where the portal
has dictionaries (stages, sources, users, enumeration options). The views join those dictionaries and name each
user field after its label in the same lower-case style as every other column, so an analyst reads `clinic`,
`prepayment_currency`, `stage_name`, `pipeline_name` instead of codes, and types them without quotes. They
are generated from what the destination holds at creation time (its columns and the `fields` table), so a user
field that appears on the portal is in the view after the next run.

The SQL is plain enough for DuckDB and Postgres alike: quoted identifiers, LEFT JOINs, `string_agg` for
multiple values. Label columns are deduplicated (a taken name gets the field's column name appended) and cut to
63 bytes (Postgres would cut them silently and then fail on the duplicate). When the tables carry a
`portal` column (several portals in one dataset), every join also matches on it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.normalizers.naming.snake_case import NamingConvention as SnakeCase

from pipelines.destinations import profile
from pipelines.partition import PORTAL_COLUMN
from sources.bitrix24 import (
    AMOUNT_SUFFIX,
    CURRENCY_RATES,
    CURRENCY_SUFFIX,
    DEAL_CONTACTS,
    DELETED_AT,
    PAYMENTS,
    PORTAL_INFO,
    PRODUCT_ROWS,
    STAGE_HISTORY,
    Catalog,
)

log = logging.getLogger("bitrix24_sync.views")

VIEW_PREFIX = "v_"
MAX_IDENTIFIER_BYTES = 63  # Postgres' NAMEDATALEN - 1
_NOT_A_WORD = re.compile(r"[\W_]+")  # \W is Unicode: a letter of any script is a word character

_STAGE_FIELDS = {"STAGE_ID", "stageId"}
_USER_TYPES = {"user", "employee"}
_SEMANTICS = {
    "stage": ("won", "lost"),  # deals and invoices: S, F; anything else is open
    "status": ("converted", "junk"),  # leads
}


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def label_identifier(label: str) -> str:
    """A label as a name in the views' one style, lower case and typed without quotes: `Discount, %` ->
    `discount`, `Arrival date` -> `arrival_date`, `Дата прилёта` -> `дата_прилёта` (DuckDB and Postgres take
    letters of any script in a plain name); empty when the label has no letter or digit."""
    name = _NOT_A_WORD.sub("_", label.casefold()).strip("_")
    return f"_{name}" if name[:1].isdigit() else name


def cap_identifier(name: str, limit: int = MAX_IDENTIFIER_BYTES) -> str:
    """Cut a name to `limit` UTF-8 bytes on a character boundary (Cyrillic letters take two bytes)."""
    encoded = name.encode()
    if len(encoded) <= limit:
        return name
    return encoded[:limit].decode(errors="ignore").rstrip(" _")


@dataclass(frozen=True)
class FieldInfo:
    """One row of the `fields` table: what a column means."""

    code: str
    type: str
    label: str | None
    multiple: bool
    custom: bool
    status_type: str | None


@dataclass
class Dataset:
    """What the destination holds: the columns of each table and the field metadata of each entity."""

    name: str
    columns: dict[str, list[str]]
    naming: Any  # dlt's naming convention: field code -> column name
    fields: dict[str, list[FieldInfo]] = field(default_factory=dict)
    timestamps: dict[str, set[str]] = field(default_factory=dict)  # table -> its timestamp-with-zone columns
    portal_zone: str | None = None  # the portal's configured time zone (`portal_info.time_zone`)
    portal_offset_seconds: int | None = None  # else its UTC offset at the last run

    def local_time(self, expression: str) -> str | None:
        """The portal's wall-clock time of a timestamp (what its users see, and what months are made of)."""
        if self.portal_zone:
            return f"timezone({literal(self.portal_zone)}, {expression})"
        if self.portal_offset_seconds is not None:
            return f"(({expression}) AT TIME ZONE 'UTC') + INTERVAL '{int(self.portal_offset_seconds)} seconds'"
        return None

    def add_local_times(self, query: SelectBuilder, table: str, skip: Collection[str] = ()) -> None:
        """`<column>_local` beside every timestamp column of `table` (user fields: under their label names only)."""
        for column in self.columns[table]:
            local = self.local_time(f"t.{quote(column)}") if column in self.timestamps.get(table, ()) else None
            if local and not column.startswith("_dlt") and column not in skip:
                query.add(local, f"{column}_local")

    def table(self, name: str) -> str:
        return f"{quote(self.name)}.{quote(name)}"

    def has(self, table: str, *columns: str) -> bool:
        return table in self.columns and all(c in self.columns[table] for c in columns)

    def column_of(self, code: str) -> str:
        return self.naming.normalize_identifier(code)

    def child_of(self, table: str, code: str) -> str:
        return self.naming.shorten_fragments(table, self.column_of(code))


class SelectBuilder:
    """One `SELECT ... FROM <root> LEFT JOIN ...` with unique output names."""

    def __init__(self, dataset: Dataset, root: str):
        self.dataset = dataset
        self.root = root
        self.columns: list[tuple[str, str]] = []
        self.joins: list[str] = []
        self._taken: set[str] = set()
        self.partitioned = dataset.has(root, PORTAL_COLUMN)

    def add(self, expression: str, name: str, fallback_suffix: str = "") -> None:
        """Add an output column; a taken name gets `_<fallback_suffix>` (then a number) appended."""
        candidates = [cap_identifier(name)]
        if fallback_suffix:
            suffix = f"_{fallback_suffix}"
            candidates.append(cap_identifier(name, MAX_IDENTIFIER_BYTES - len(suffix.encode())) + suffix)
        candidates += [cap_identifier(name, MAX_IDENTIFIER_BYTES - 4) + f"_{n}" for n in range(2, 100)]
        chosen = next(c for c in candidates if c.casefold() not in self._taken)
        self._taken.add(chosen.casefold())
        self.columns.append((expression, chosen))

    def join(self, source: str, condition: str, joined_table: str | None = None) -> str:
        """LEFT JOIN `source` (a table name or a parenthesised query) and return its alias."""
        alias = f"j{len(self.joins) + 1}"
        source_sql = self.dataset.table(source) if joined_table is None else source
        on = condition.replace("{j}", alias)
        if self.partitioned and self.dataset.has(joined_table or source, PORTAL_COLUMN):
            on += f" AND {alias}.{quote(PORTAL_COLUMN)} = t.{quote(PORTAL_COLUMN)}"
        self.joins.append(f"LEFT JOIN {source_sql} {alias} ON {on}")
        return alias

    def sql(self) -> str:
        select = ",\n       ".join(f"{expression} AS {quote(name)}" for expression, name in self.columns)
        joins = "".join(f"\n{j}" for j in self.joins)
        return f"SELECT {select}\nFROM {self.dataset.table(self.root)} t{joins}"


# ------------------------------------------------------------------------------------------------ expressions


def full_name(alias: str, dataset: Dataset, table: str) -> str | None:
    parts = [c for c in ("name", "last_name") if dataset.has(table, c)]
    if not parts:
        return None
    joined = " || ' ' || ".join(f"COALESCE({alias}.{quote(c)}, '')" for c in parts)
    return f"NULLIF(TRIM({joined}), '')"


def semantics(expression: str, kind: str) -> str:
    success, failure = _SEMANTICS[kind]
    return f"CASE {expression} WHEN 'S' THEN '{success}' WHEN 'F' THEN '{failure}' ELSE 'open' END"


def joined_name(column: str) -> str:
    """`assigned_by_id` -> `assigned_by_name`, `company_type` -> `company_type_name`."""
    return re.sub(r"_id$", "", column) + "_name"


class EntityView:
    """The view of one CRM entity: its own columns, dictionary names, and user fields named after their labels."""

    def __init__(self, dataset: Dataset, table: str, catalog: Catalog):
        self.dataset = dataset
        self.table = table
        self.spec = catalog.entity(table)
        self.fields = {f.code: f for f in dataset.fields.get(table, [])}
        self.query = SelectBuilder(dataset, table)

    def build(self) -> str:
        custom_columns = self._custom_columns()
        for column in self.dataset.columns[self.table]:
            if not column.startswith("_dlt") and column not in custom_columns:
                self.query.add(f"t.{quote(column)}", column)
        self.dataset.add_local_times(self.query, self.table, skip=custom_columns)
        for info in self.fields.values():
            if not info.custom:
                self._standard_field(info)
        for info in self.fields.values():
            if info.custom:
                self._user_field(info)
        return self.query.sql()

    def _custom_columns(self) -> set[str]:
        columns: set[str] = set()
        for info in self.fields.values():
            if info.custom:
                base = self.dataset.column_of(info.code)
                columns |= {base, base + AMOUNT_SUFFIX, base + CURRENCY_SUFFIX}
        return columns

    # ---- standard fields: names next to ids

    def _standard_field(self, info: FieldInfo) -> None:
        column = self.dataset.column_of(info.code)
        if info.multiple:
            if info.type == "crm_multifield":  # PHONE, EMAIL, ...: one text of all values
                self._aggregate(info, column)
            return
        if not self.dataset.has(self.table, column):
            return
        if info.code in _STAGE_FIELDS and self.spec.has_pipelines:
            self._stage(column)
        elif info.type == "crm_category" and self.dataset.has("pipelines", "entity_type_id", "name"):
            alias = self.query.join(
                "pipelines",
                f"{{j}}.id = t.{quote(column)} AND {{j}}.entity_type_id = {self.spec.entity_type_id}",
            )
            self.query.add(f"{alias}.name", "pipeline_name")
        elif info.status_type:
            if self.dataset.has("stages", "entity_id", "status_id", "name"):
                alias = self.query.join(
                    "stages", f"{{j}}.entity_id = {literal(info.status_type)} AND {{j}}.status_id = t.{quote(column)}"
                )
                self.query.add(f"{alias}.name", joined_name(column))
                if info.code == "STATUS_ID" and self.dataset.has("stages", "semantics"):
                    self.query.add(self._semantics(alias, "status"), "status_semantics")
        elif info.type in _USER_TYPES:
            expression = self._user_name(column)
            if expression:
                self.query.add(expression, joined_name(column))
        elif info.type == "crm_company" and self.dataset.has("companies", "title"):
            alias = self.query.join("companies", f"{{j}}.id = t.{quote(column)}")
            self.query.add(f"{alias}.title", joined_name(column))
        elif info.type == "crm_contact" and self.dataset.has("contacts"):
            alias = self.query.join("contacts", f"{{j}}.id = t.{quote(column)}")
            name = full_name(alias, self.dataset, "contacts")
            if name:
                self.query.add(name, joined_name(column))

    def _stage(self, column: str) -> None:
        """Stage ids are unique within an entity's family of stage lists (`DEAL_STAGE`, `DEAL_STAGE_1`, ...);
        the category picks the list (the default category's stages have none)."""
        if not self.dataset.has("stages", "entity_id", "status_id", "name", "category_id"):
            return
        prefix = re.sub(r"_\d+$", "", self.fields[next(iter(_STAGE_FIELDS & set(self.fields)))].status_type or "")
        category = self.dataset.column_of("CATEGORY_ID" if self.spec.key_style == "legacy" else "categoryId")
        on = f"{{j}}.status_id = t.{quote(column)} AND {{j}}.entity_id LIKE {literal(prefix + '%')}"
        if self.dataset.has(self.table, category):
            on += f" AND COALESCE({{j}}.category_id, 0) = COALESCE(t.{quote(category)}, 0)"
        alias = self.query.join("stages", on)
        self.query.add(f"{alias}.name", "stage_name")
        if self.dataset.has("stages", "sort"):
            self.query.add(f"{alias}.sort", "stage_sort")  # the stage's place in its pipeline: funnel order
        if self.dataset.has("stages", "semantics"):
            self.query.add(self._semantics(alias, "stage"), "stage_semantics")

    def _semantics(self, stage_alias: str, kind: str) -> str:
        """From the stage list (its semantics is the current one), else the row's own `*_semantic_id`."""
        own = f"{kind}_semantic_id"
        fallback = f", t.{quote(own)}" if self.dataset.has(self.table, own) else ""
        return semantics(f"COALESCE({stage_alias}.semantics{fallback})", kind)

    def _user_name(self, column: str) -> str | None:
        if not self.dataset.has("users", "id"):
            return None
        alias = self.query.join("users", f"{{j}}.id = t.{quote(column)}")
        return full_name(alias, self.dataset, "users")

    # ---- user fields: named after their labels

    def _user_field(self, info: FieldInfo) -> None:
        column = self.dataset.column_of(info.code)
        name = label_identifier(info.label or "") or column
        if info.multiple:
            self._aggregate(info, name)
            return
        if not self.dataset.has(self.table, column):
            return
        value = f"t.{quote(column)}"
        if info.type == "money":
            amount, currency = column + AMOUNT_SUFFIX, column + CURRENCY_SUFFIX
            if self.dataset.has(self.table, amount, currency):
                self.query.add(f"t.{quote(amount)}", name, column)
                self.query.add(f"t.{quote(currency)}", f"{name}_currency", column)
                return
        elif info.type == "enumeration" and self._has_options():
            alias = self.query.join(self._options(), self._option_of(info, "{j}", value), joined_table="fields")
            value = f"{alias}.value"
        elif info.type in _USER_TYPES:
            value = self._user_name(column) or value
        elif info.type == "address":  # "Tverskaya st. 7, Moscow|55.757;37.615|17": the address, its coordinates
            self.query.add(f"NULLIF(split_part({value}, '|', 2), '')", f"{name}_coordinates", column)
            value = f"NULLIF(split_part({value}, '|', 1), '')"
        self.query.add(value, name, column)
        if info.type == "crm" and (named := self._crm_reference_name(value)):
            self.query.add(named, f"{name}_name", column)

    def _crm_reference_name(self, value: str) -> str | None:
        """A `crm` user field links any record as `<prefix>_<id>` (C_118 a contact, CO_5 a company, D_12 a deal,
        L_3 a lead): the linked record's name, from whichever of those tables the dataset has."""
        names = []
        for prefix, table, title in (("C", "contacts", None), ("CO", "companies", "title"), ("D", "deals", "title"),
                                     ("L", "leads", "title")):  # fmt: skip
            if not self.dataset.has(table, "id") or (title and not self.dataset.has(table, title)):
                continue
            alias = self.query.join(table, f"{literal(prefix + '_')} || CAST({{j}}.id AS VARCHAR) = {value}")
            name = f"{alias}.{title}" if title else full_name(alias, self.dataset, table)
            if name:
                names.append(name)
        return f"COALESCE({', '.join(names)})" if names else None

    def _has_options(self) -> bool:
        return self.dataset.has("fields__items", "id", "value", "_dlt_parent_id")

    def _options(self) -> str:
        """Enumeration options with their field: (entity, code, id, value[, portal])."""
        portal = f", f.{quote(PORTAL_COLUMN)}" if self._partitioned_options() else ""
        return (
            f"(SELECT f.entity, f.code, i.id, i.value{portal} FROM {self.dataset.table('fields')} f "
            f"JOIN {self.dataset.table('fields__items')} i ON i._dlt_parent_id = f._dlt_id)"
        )

    def _option_of(self, info: FieldInfo, alias: str, id_expression: str) -> str:
        """The join condition of an option to its id (compared as text: a column kept as text still joins)."""
        return (
            f"{alias}.entity = {literal(self.table)} AND {alias}.code = {literal(info.code)} "
            f"AND CAST({alias}.id AS VARCHAR) = CAST({id_expression} AS VARCHAR)"
        )

    def _partitioned_options(self) -> bool:
        return self.query.partitioned and self.dataset.has("fields", PORTAL_COLUMN)

    def _aggregate(self, info: FieldInfo, name: str) -> None:
        """A multiple field lives in a child table: its values (option labels for an enumeration) as one
        comma-separated text in the portal's order, aggregated once per parent row and joined by hash."""
        child = self.dataset.child_of(self.table, info.code)
        if not self.dataset.has(child, "value", "_dlt_parent_id", "_dlt_list_idx"):
            return
        value, joins = "c.value", ""
        if info.type == "enumeration" and self._has_options():
            on = self._option_of(info, "e", "c.value")
            if self._partitioned_options():  # the child rows' portal is their parent's
                joins = f" JOIN {self.dataset.table(self.table)} p ON p._dlt_id = c._dlt_parent_id"
                on += f" AND e.{quote(PORTAL_COLUMN)} = p.{quote(PORTAL_COLUMN)}"
            joins += f" LEFT JOIN {self._options()} e ON {on}"
            value = "e.value"
        values = (
            f"(SELECT c._dlt_parent_id, string_agg(CAST({value} AS VARCHAR), ', ' ORDER BY c._dlt_list_idx) AS v "
            f"FROM {self.dataset.table(child)} c{joins} GROUP BY c._dlt_parent_id)"
        )
        alias = self.query.join(values, "{j}._dlt_parent_id = t._dlt_id", joined_table=child)
        self.query.add(f"{alias}.v", name, self.dataset.column_of(info.code) if info.custom else "")


def payments_view(dataset: Dataset) -> str:
    """Payments with their owner: a deal, or an invoice and the deal the invoice belongs to."""
    query = SelectBuilder(dataset, PAYMENTS)
    for column in dataset.columns[PAYMENTS]:
        if not column.startswith("_dlt"):
            query.add(f"t.{quote(column)}", column)
    dataset.add_local_times(query, PAYMENTS)
    deal_id = "CASE WHEN t.owner_type_id = 2 THEN t.owner_id END"
    if dataset.has("invoices", "id", "title"):
        invoice = query.join("invoices", "t.owner_type_id = 31 AND {j}.id = t.owner_id")
        query.add(f"{invoice}.id", "invoice_id")
        query.add(f"{invoice}.title", "invoice_title")
        if dataset.has("invoices", "parent_id2"):
            deal_id = f"COALESCE({deal_id}, {invoice}.parent_id2)"
    query.add(deal_id, "deal_id")
    if dataset.has("deals", "id", "title"):
        deal = query.join("deals", f"{{j}}.id = {deal_id}")
        query.add(f"{deal}.title", "deal_title")
        if dataset.has("deals", "currency_id"):
            query.add(f"{deal}.currency_id", "deal_currency")
    return query.sql()


def same_portal(dataset: Dataset, left: tuple[str, str], right: tuple[str, str]) -> str:
    """` AND r.portal = l.portal` when both (table, alias) carry the portal column (several portals in one
    dataset), else nothing."""
    if dataset.has(left[0], PORTAL_COLUMN) and dataset.has(right[0], PORTAL_COLUMN):
        return f" AND {right[1]}.{quote(PORTAL_COLUMN)} = {left[1]}.{quote(PORTAL_COLUMN)}"
    return ""


def _stage_entity(h: str) -> str:
    """The `stages.entity_id` that lists a history row's stage: stage ids repeat across dictionaries (a lead's
    NEW and a deal's NEW), so the join names the dictionary too."""
    return (
        f"CASE {h}.entity_type_id WHEN 1 THEN 'STATUS' "
        f"WHEN 2 THEN CASE WHEN {h}.category_id = 0 THEN 'DEAL_STAGE' ELSE 'DEAL_STAGE_' || {h}.category_id END "
        f"WHEN 31 THEN 'SMART_INVOICE_STAGE_' || {h}.category_id "
        f"ELSE 'DYNAMIC_' || {h}.entity_type_id || '_STAGE_' || {h}.category_id END"
    )


def _history_labels(dataset: Dataset) -> list[str]:
    """The names the dictionaries give a history row: its stage's name and sort, its pipeline's name."""
    labels = []
    if dataset.has("stages", "status_id", "entity_id", "name"):
        labels += ["stage_name", "stage_sort"] if dataset.has("stages", "sort") else ["stage_name"]
    if dataset.has("pipelines", "id", "entity_type_id", "name"):
        labels.append("pipeline_name")
    return labels


def live_owners(
    dataset: Dataset, alias: str, table: str, owners: dict[int, str], owner_column: str = "owner_id"
) -> tuple[str, str]:
    """(LEFT JOINs, WHERE) that leave out the rows of `alias` whose owner is marked deleted: `owners` is
    entityTypeId -> owner table; the row names its owner by `owner_column` and, when it has one, its
    entity_type_id / owner_type_id column (a table of one owner type, deal_contacts, has none)."""
    type_column = next((c for c in ("entity_type_id", "owner_type_id") if dataset.has(table, c)), None)
    joins, live = "", []
    for type_id, owner in sorted(owners.items()):
        if dataset.has(owner, "id", DELETED_AT):
            o = f"d{type_id}"
            of_type = f"{alias}.{type_column} = {type_id} AND " if type_column else ""
            joins += f" LEFT JOIN {dataset.table(owner)} {o} ON {of_type}{o}.id = {alias}.{owner_column}" + same_portal(
                dataset, (table, alias), (owner, o)
            )
            live.append(f"{o}.{DELETED_AT} IS NULL")
    return joins, (f" WHERE {' AND '.join(live)}" if live else "")


def stage_history_view(dataset: Dataset, owners: dict[int, str]) -> str:
    """Each stay of a record in a stage: entered, left (the next move of the same record; NULL while it is
    still there), its length in seconds (until now for the current stay), in UTC and in the portal's time.
    The stays of records marked deleted are left out (`owners`: entityTypeId -> table)."""
    portal = f"h.{quote(PORTAL_COLUMN)}, " if dataset.has(STAGE_HISTORY, PORTAL_COLUMN) else ""
    stays = (
        f"SELECT {portal}h.entity_type_id, h.owner_id, h.id AS history_id, h.event, h.category_id, h.stage_id, "
        "h.stage_semantic_id, h.created_time AS entered_at, "
        f"LEAD(h.created_time) OVER (PARTITION BY {portal}h.entity_type_id, h.owner_id ORDER BY h.created_time, h.id) "
        f"AS left_at FROM {dataset.table(STAGE_HISTORY)} h"
    )
    select = [
        "s.*",
        "s.left_at IS NULL AS is_current",
        "EXTRACT(EPOCH FROM (COALESCE(s.left_at, CURRENT_TIMESTAMP) - s.entered_at)) AS duration_seconds",
    ]
    joins = ""
    labels = _history_labels(dataset)
    if "stage_name" in labels:
        select.append("st.name AS stage_name")
        if "stage_sort" in labels:
            select.append("st.sort AS stage_sort")
        on = f"st.status_id = s.stage_id AND st.entity_id = {_stage_entity('s')}"
        on += same_portal(dataset, (STAGE_HISTORY, "s"), ("stages", "st"))
        joins += f" LEFT JOIN {dataset.table('stages')} st ON {on}"
    if "pipeline_name" in labels:
        select.append("p.name AS pipeline_name")
        joins += (
            f" LEFT JOIN {dataset.table('pipelines')} p ON p.entity_type_id = s.entity_type_id AND p.id = s.category_id"
            + same_portal(dataset, (STAGE_HISTORY, "s"), ("pipelines", "p"))
        )
    for column in ("entered_at", "left_at"):
        local = dataset.local_time(f"s.{column}")
        if local:
            select.append(f"{local} AS {column}_local")
    live_joins, where = live_owners(dataset, "s", STAGE_HISTORY, owners)
    return f"SELECT {', '.join(select)} FROM ({stays}) s{joins}{live_joins}{where}"


def dictionaries_view(dataset: Dataset) -> str:
    """`stages` holds every crm.status.list dictionary; this says which one each row belongs to: `dictionary`
    (lead status, deal stage, invoice stage, smart process stage, quote status, source, contact type, ...), the
    `entity_type_id` and `pipeline_id` of a stage, read from ENTITY_ID (DEAL_STAGE_3 is pipeline 3; the default
    pipeline's DEAL_STAGE rows have no CATEGORY_ID), the pipeline's name and the stage's semantics in words."""
    e = "s.entity_id"
    dynamic = f"starts_with({e}, 'DYNAMIC_') AND strpos({e}, '_STAGE_') > 0"
    invoice = f"starts_with({e}, 'SMART_INVOICE_STAGE_')"
    entity_type = (
        f"CASE WHEN {e} = 'STATUS' THEN 1 WHEN {e} = 'DEAL_STAGE' OR starts_with({e}, 'DEAL_STAGE_') THEN 2 "
        f"WHEN {e} = 'QUOTE_STATUS' THEN 7 WHEN {invoice} THEN 31 "
        f"WHEN {dynamic} THEN CAST(split_part({e}, '_', 2) AS BIGINT) END"
    )
    pipeline = (
        f"CASE WHEN {e} = 'DEAL_STAGE' THEN 0 WHEN starts_with({e}, 'DEAL_STAGE_') "
        f"THEN CAST(split_part({e}, '_', 3) AS BIGINT) WHEN {invoice} OR {dynamic} "
        f"THEN CAST(split_part({e}, '_', 4) AS BIGINT) END"
    )
    kinds = {1: "lead status", 2: "deal stage", 7: "quote status", 31: "invoice stage"}
    dictionary = (
        "CASE WHEN c.entity_type_id IS NULL THEN lower(replace(c.entity_id, '_', ' ')) "
        + "".join(f"WHEN c.entity_type_id = {t} THEN '{name}' " for t, name in kinds.items())
        + "ELSE 'smart process stage' END"
    )
    words = (
        f"CASE WHEN c.entity_type_id IS NULL THEN NULL WHEN c.entity_type_id = 1 THEN "
        f"{semantics('c.semantics', 'status')} ELSE {semantics('c.semantics', 'stage')} END"
    )
    inner = f"SELECT s.*, {entity_type} AS entity_type_id, {pipeline} AS pipeline_id FROM {dataset.table('stages')} s"
    select, joins = f"SELECT c.*, {dictionary} AS dictionary, {words} AS stage_semantics", ""
    if dataset.has("pipelines", "id", "entity_type_id", "name"):
        select += ", p.name AS pipeline_name"
        joins = (
            f" LEFT JOIN {dataset.table('pipelines')} p ON p.entity_type_id = c.entity_type_id AND p.id = c.pipeline_id"
            + same_portal(dataset, ("stages", "c"), ("pipelines", "p"))
        )
    return f"{select} FROM ({inner}) c{joins}"


def stage_funnel_view(dataset: Dataset, owners: dict[int, str]) -> str:
    """Per pipeline stage, from the stays: how many records entered it, how many are in it now, their average
    finished stay in days and (with the stages dictionary) how many reached it: entered it or a later stage
    that is not a failure, which is what a funnel chart draws."""
    stays = stage_history_view(dataset, owners)
    key = [f"{quote(PORTAL_COLUMN)}"] if dataset.has(STAGE_HISTORY, PORTAL_COLUMN) else []
    key += ["entity_type_id", "category_id", "stage_id"]
    labels = _history_labels(dataset)
    per_stage = (
        f"SELECT {', '.join(key)}, "
        + "".join(f"MAX({c}) AS {c}, " for c in (*labels, "stage_semantic_id"))
        + "COUNT(DISTINCT owner_id) AS entered, "
        "COUNT(DISTINCT CASE WHEN is_current THEN owner_id END) AS in_stage_now, "
        "AVG(CASE WHEN NOT is_current THEN duration_seconds END) / 86400 AS avg_days "
        f"FROM h GROUP BY {', '.join(key)}"
    )
    kinds = f"CASE WHEN f.entity_type_id = 1 THEN {semantics('f.stage_semantic_id', 'status')} ELSE "
    select = f"f.*, {kinds}{semantics('f.stage_semantic_id', 'stage')} END AS stage_semantics"  # as v_deals has
    if "stage_sort" in labels:
        same = " AND ".join(f"r.{c} IS NOT DISTINCT FROM f.{c}" for c in key[:-1])
        select += (
            ", CASE WHEN f.stage_semantic_id = 'F' THEN f.entered ELSE (SELECT COUNT(DISTINCT r.owner_id) FROM h r "
            f"WHERE {same} AND r.stage_sort >= f.stage_sort AND r.stage_semantic_id <> 'F') END AS reached"
        )
    return f"WITH h AS ({stays}), f AS ({per_stage}) SELECT {select} FROM f"


def deal_activities_view(dataset: Dataset) -> str:
    """Per deal, its activities by kind (the touches a deal took): calls, e-mails, meetings, to-dos, how many
    are done, the first and the last. Deals and activities marked deleted are left out."""
    portal = dataset.has("deals", PORTAL_COLUMN) and dataset.has("activities", PORTAL_COLUMN)
    by = f"{quote(PORTAL_COLUMN)}, owner_id" if portal else "owner_id"
    counts = (
        f"SELECT {by}, COUNT(*) AS activities, COUNT(CASE WHEN type_id = 2 THEN 1 END) AS calls, "
        "COUNT(CASE WHEN type_id = 4 THEN 1 END) AS emails, COUNT(CASE WHEN type_id = 1 THEN 1 END) AS meetings, "
        "COUNT(CASE WHEN provider_id = 'CRM_TODO' THEN 1 END) AS todos, COUNT(CASE WHEN completed THEN 1 END) AS done, "
        "MIN(created) AS first_activity_at, MAX(created) AS last_activity_at "
        f"FROM {dataset.table('activities')} WHERE owner_type_id = 2 AND {DELETED_AT} IS NULL GROUP BY {by}"
    )
    on = "a.owner_id = d.id" + same_portal(dataset, ("deals", "d"), ("activities", "a"))
    select = [f"d.{quote(PORTAL_COLUMN)}"] if dataset.has("deals", PORTAL_COLUMN) else []
    select += ["d.id AS deal_id"]
    select += [f"COALESCE(a.{c}, 0) AS {c}" for c in ("activities", "calls", "emails", "meetings", "todos", "done")]
    select += ["a.first_activity_at", "a.last_activity_at"]
    return (
        f"SELECT {', '.join(select)} FROM {dataset.table('deals')} d LEFT JOIN ({counts}) a ON {on} "
        f"WHERE d.{DELETED_AT} IS NULL"
    )


def product_revenue_view(dataset: Dataset, owners: dict[int, str]) -> str:
    """Revenue of won deals per product and currency: how many deals, how much of it, for how much."""
    portal = dataset.has(PRODUCT_ROWS, PORTAL_COLUMN)
    by = [f"p.{quote(PORTAL_COLUMN)}"] if portal else []
    by += ["p.product_id", "p.product_name", "p.currency"]
    on = "p.owner_type_id = 2 AND d.id = p.owner_id"
    if portal and dataset.has("deals", PORTAL_COLUMN):
        on += f" AND d.{quote(PORTAL_COLUMN)} = p.{quote(PORTAL_COLUMN)}"
    return (
        f"SELECT {', '.join(by)}, COUNT(DISTINCT p.owner_id) AS deals, SUM(p.quantity) AS quantity, "
        f"SUM(p.amount) AS revenue FROM ({product_rows_view(dataset, owners)}) p "
        f"JOIN {dataset.table('deals')} d ON {on} "
        f"WHERE d.stage_semantic_id = 'S' AND d.{DELETED_AT} IS NULL GROUP BY {', '.join(by)}"
    )


def deal_contacts_view(dataset: Dataset) -> str:
    """One row per contact of a deal (the loaded shape keeps each deal's list whole in a child table), without
    the links of deals marked deleted."""
    child = dataset.table(dataset.child_of(DEAL_CONTACTS, "contacts"))
    portal = f"d.{quote(PORTAL_COLUMN)}, " if dataset.has(DEAL_CONTACTS, PORTAL_COLUMN) else ""
    joins, where = live_owners(dataset, "d", DEAL_CONTACTS, {2: "deals"}, owner_column="deal_id")
    return (
        f"SELECT {portal}d.deal_id, c.contact_id, c.sort, c.is_primary, d.read_at "
        f"FROM {dataset.table(DEAL_CONTACTS)} d JOIN {child} c ON c._dlt_parent_id = d._dlt_id{joins}{where}"
    )


def product_rows_view(dataset: Dataset, owners: dict[int, str]) -> str:
    """One row per product row with its owner and the owner's currency: what was sold, where. `owners`:
    entityTypeId -> table of every entity with product rows; rows of an owner marked deleted are left out."""
    child = dataset.child_of(PRODUCT_ROWS, "items")
    wanted = (
        "id",
        "product_id",
        "product_name",
        "price",
        "quantity",
        "discount_sum",
        "tax_rate",
        "measure_name",
        "sort",
    )
    select = [f"o.{quote(PORTAL_COLUMN)}"] if dataset.has(PRODUCT_ROWS, PORTAL_COLUMN) else []
    select += ["o.owner_type_id", "o.owner_id", "o.owner_type"]
    select += [f"i.{quote(c)}" for c in wanted if c in dataset.columns[child]]
    if dataset.has(child, "price", "quantity"):
        select.append("i.price * i.quantity AS amount")
    joins, currencies = "", []
    for type_id, table in sorted(owners.items()):
        if dataset.has(table, "id", "currency_id"):
            alias = f"o{type_id}"
            joins += (
                f" LEFT JOIN {dataset.table(table)} {alias} ON o.owner_type_id = {type_id} AND {alias}.id = o.owner_id"
                + same_portal(dataset, (PRODUCT_ROWS, "o"), (table, alias))
            )
            currencies.append(f"{alias}.currency_id")
    if currencies:
        select.append(f"COALESCE({', '.join(currencies)}) AS currency")
    live_joins, where = live_owners(dataset, "o", PRODUCT_ROWS, owners)
    joins += live_joins
    return (
        f"SELECT {', '.join(select)} FROM {dataset.table(PRODUCT_ROWS)} o "
        f"JOIN {dataset.table(child)} i ON i._dlt_parent_id = o._dlt_id{joins}{where}"
    )


def in_base_currency(dataset: Dataset, select: str, amount: str, currency: str) -> str:
    """`select` plus `<amount>_base` and `base_currency`: the amount at the newest rate a run has seen (the API
    keeps no rate history; `currency_rates` keeps one snapshot per run day from the first run on)."""
    if not dataset.has(CURRENCY_RATES, "currency", "rate", "rate_date", "base_currency"):
        return select
    rates = dataset.table(CURRENCY_RATES)
    partitioned = dataset.has(CURRENCY_RATES, PORTAL_COLUMN)
    portal = f"r0.{quote(PORTAL_COLUMN)}, " if partitioned else ""
    newest = f"SELECT MAX(r1.rate_date) FROM {rates} r1" + (
        f" WHERE r1.{quote(PORTAL_COLUMN)} = r0.{quote(PORTAL_COLUMN)}" if partitioned else ""
    )
    latest = (
        f"SELECT {portal}r0.currency, r0.rate, r0.base_currency, r0.rate_date FROM {rates} r0 "
        f"WHERE r0.rate_date = ({newest})"
    )
    on = f"r.currency = v.{quote(currency)}"
    if partitioned:
        on += f" AND r.{quote(PORTAL_COLUMN)} = v.{quote(PORTAL_COLUMN)}"
    return (
        f"SELECT v.*, v.{quote(amount)} * r.rate AS {quote(amount + '_base')}, r.base_currency, "
        f"r.rate_date AS base_rate_date FROM ({select}) v LEFT JOIN ({latest}) r ON {on}"
    )


# ------------------------------------------------------------------------------------------------ creation


STAGE_FUNNEL, DEAL_ACTIVITIES, PRODUCT_REVENUE = "stage_funnel", "deal_activities", "product_revenue"
DICTIONARIES = "stages"  # v_stages: the stages table with each row's dictionary decoded


def view_names(catalog: Catalog) -> list[str]:
    """Every view a dataset of this catalog can have (those built on others first: they are dropped first)."""
    derived = (STAGE_FUNNEL, DEAL_ACTIVITIES, PRODUCT_REVENUE, DICTIONARIES)
    tables = (*catalog.entity_resources, PAYMENTS, STAGE_HISTORY, PRODUCT_ROWS, DEAL_CONTACTS)
    return [VIEW_PREFIX + name for name in (*derived, *tables)]


def view_definitions(dataset: Dataset, catalog: Catalog) -> dict[str, str]:
    """View name -> SELECT, for every entity table of the catalog the dataset has, and the log and link
    tables."""
    tables = [table for table in catalog.entity_resources if table in dataset.columns]
    views = {VIEW_PREFIX + table: EntityView(dataset, table, catalog).build() for table in tables}
    if dataset.has("deals", "opportunity", "currency_id"):
        views[VIEW_PREFIX + "deals"] = in_base_currency(
            dataset, views[VIEW_PREFIX + "deals"], "opportunity", "currency_id"
        )
    if dataset.has(PAYMENTS, "owner_type_id", "owner_id"):
        views[VIEW_PREFIX + PAYMENTS] = payments_view(dataset)
        if dataset.has(PAYMENTS, "sum", "currency"):
            views[VIEW_PREFIX + PAYMENTS] = in_base_currency(dataset, views[VIEW_PREFIX + PAYMENTS], "sum", "currency")
    if dataset.has("stages", "entity_id", "status_id", "semantics"):
        views[VIEW_PREFIX + DICTIONARIES] = dictionaries_view(dataset)
    if dataset.has(STAGE_HISTORY, "entity_type_id", "owner_id", "created_time"):
        history_owners = {e.entity_type_id: e.resource for e in catalog.history_owners}
        views[VIEW_PREFIX + STAGE_HISTORY] = stage_history_view(dataset, history_owners)
        views[VIEW_PREFIX + STAGE_FUNNEL] = stage_funnel_view(dataset, history_owners)
    activity_columns = ("owner_type_id", "owner_id", "type_id", "provider_id", "completed", "created", DELETED_AT)
    if dataset.has("deals", "id", DELETED_AT) and dataset.has("activities", *activity_columns):
        views[VIEW_PREFIX + DEAL_ACTIVITIES] = deal_activities_view(dataset)
    if dataset.has(PRODUCT_ROWS, "owner_id") and dataset.child_of(PRODUCT_ROWS, "items") in dataset.columns:
        owners = {e.entity_type_id: e.resource for e in catalog.product_owners}
        views[VIEW_PREFIX + PRODUCT_ROWS] = product_rows_view(dataset, owners)
        if dataset.has("deals", "id", "stage_semantic_id", "currency_id", DELETED_AT):
            views[VIEW_PREFIX + PRODUCT_REVENUE] = product_revenue_view(dataset, owners)
    if dataset.has(DEAL_CONTACTS, "deal_id") and dataset.child_of(DEAL_CONTACTS, "contacts") in dataset.columns:
        views[VIEW_PREFIX + DEAL_CONTACTS] = deal_contacts_view(dataset)
    return views


def column_labels(dataset: Dataset, catalog: Catalog) -> list[tuple[str, str, str]]:
    """(table, column, label) of every labelled field's column: the labels become column comments, which BI
    tools (DBeaver, Metabase, Superset, DataGrip) show next to the codes."""
    labelled = []
    for table in catalog.entity_resources:
        for info in dataset.fields.get(table, []):
            column = dataset.column_of(info.code)
            if info.label and not info.multiple and dataset.has(table, column):
                labelled.append((table, column, info.label))
    return labelled


def read_dataset(client: Any, dataset_name: str, naming: Any) -> Dataset:
    """Columns from the information schema (what really exists, in table order) and the `fields` table."""
    rows = client.execute_sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
        "ORDER BY table_name, ordinal_position",
        dataset_name,
    )
    columns: dict[str, list[str]] = {}
    timestamps: dict[str, set[str]] = {}
    for table, column, data_type in rows or []:
        columns.setdefault(table, []).append(column)
        if "time zone" in str(data_type).lower() and "without" not in str(data_type).lower():
            timestamps.setdefault(table, set()).add(column)
    dataset = Dataset(dataset_name, columns, naming, timestamps=timestamps)
    if dataset.has(PORTAL_INFO, "time_zone", "utc_offset_seconds"):
        found = client.execute_sql(
            f"SELECT time_zone, utc_offset_seconds FROM {dataset.table(PORTAL_INFO)} ORDER BY observed_at DESC LIMIT 1"
        )
        if found:
            dataset.portal_zone, dataset.portal_offset_seconds = found[0][0], found[0][1]
    if dataset.has("fields", "entity", "code", "type", "label", "is_multiple", "is_custom", "status_type"):
        fields = client.execute_sql(
            "SELECT entity, code, min(type), min(label), bool_or(is_multiple), bool_or(is_custom), min(status_type) "
            f"FROM {dataset.table('fields')} GROUP BY entity, code ORDER BY entity, code"
        )
        for entity, code, type_, label, multiple, custom, status_type in fields or []:
            info = FieldInfo(code, type_ or "", label, bool(multiple), bool(custom), status_type)
            dataset.fields.setdefault(entity, []).append(info)
    return dataset


def create_views(pipeline: dlt.Pipeline, catalog: Catalog) -> list[str]:
    """(Re)create the views in the pipeline's dataset; returns their names. Dropped and created in one
    transaction: Postgres' CREATE OR REPLACE VIEW cannot drop or rename columns, and readers never see a
    dataset without its views."""
    with pipeline.sql_client() as client:
        naming = pipeline.default_schema.naming if pipeline.default_schema_name else SnakeCase()
        dataset = read_dataset(client, client.dataset_name, naming)
        definitions = view_definitions(dataset, catalog)
        with client.begin_transaction():
            for name, select in definitions.items():
                client.execute_sql(f"DROP VIEW IF EXISTS {dataset.table(name)}")
                client.execute_sql(f"CREATE VIEW {dataset.table(name)} AS\n{select}")
            stored = column_comments(client, pipeline.destination.destination_name, dataset.name)
            for table, column, label in column_labels(dataset, catalog):
                if stored.get((table, column)) != label:  # a comment is a catalog write: only when it changed
                    client.execute_sql(f"COMMENT ON COLUMN {dataset.table(table)}.{quote(column)} IS {literal(label)}")
    log.debug("created views %s", ", ".join(definitions))
    return list(definitions)


_COMMENTS_SQL = {
    "duckdb": "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE schema_name = %s",
    "postgres": (
        "SELECT c.relname, a.attname, col_description(c.oid, a.attnum) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND a.attnum > 0 AND c.relkind = 'r'"
    ),
}


def column_comments(client: Any, destination: str, schema: str) -> dict[tuple[str, str], str]:
    """(table, column) -> the comment the destination holds now (empty where it cannot say)."""
    sql = _COMMENTS_SQL.get(destination)
    if sql is None:
        return {}
    with client.execute_query(sql.replace("%s", "?") if destination == "duckdb" else sql, schema) as cursor:
        return {(t, c): comment for t, c, comment in cursor.fetchall() if comment}


def refresh_views(pipeline: dlt.Pipeline, catalog: Catalog) -> list[str]:
    """After a load: the data is committed whatever happens here, so a view that cannot be created is a
    warning, not a failed sync (the next run tries again)."""
    if not profile(pipeline.destination.destination_name).views:
        log.info("no SQL views on %s: they are written for DuckDB and Postgres", pipeline.destination.destination_name)
        return []
    try:
        return create_views(pipeline, catalog)
    except Exception as error:  # any driver's error: the message says which view and why
        log.warning("the SQL views were not refreshed: %s", str(error).splitlines()[0] if str(error) else error)
        return []


def drop_views(pipeline: dlt.Pipeline, catalog: Catalog) -> None:
    """Before a load that drops tables (a full refresh, or a pending package left by one): Postgres refuses
    to drop a table a view depends on. The views come back after the load."""
    if not profile(pipeline.destination.destination_name).views:
        return
    names = view_names(catalog)
    try:
        with pipeline.sql_client() as client, client.begin_transaction():
            for name in names:
                client.execute_sql(f"DROP VIEW IF EXISTS {quote(client.dataset_name)}.{quote(name)}")
    except Exception as error:  # the load that follows reports the destination's problem
        log.warning("the SQL views were not dropped: %s", str(error).splitlines()[0] if str(error) else error)
