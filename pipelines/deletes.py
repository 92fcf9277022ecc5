"""Deletes by reconciliation, the warehouse's half: compare ID sets, then mark or remove in one transaction.

Why SQL through `pipeline.sql_client()` and not tombstone rows through dlt: a tombstone `{"ID": 5,
"_deleted_at": now}` merged with delete-insert would replace the whole row (every other column NULL), and a
dlt `hard_delete` tombstone is applied per table in its own merge job, so a reconcile of five entities and
their child tables would not change the warehouse at once. Here the full ID sets are computed first (nothing
is touched while the portal is read), then every UPDATE/DELETE of every table, child tables included, and
the reconcile log row run in ONE transaction: a failure leaves the warehouse as it was.

Modes: `mark` (default) sets `_deleted_at` (a column every entity and payment table has, NULL for live
rows); `remove` deletes the rows and their child-table rows (by `_dlt_root_id`). A marked record that comes
back on the portal is unmarked: by the next sync's merge when it is read again (its row arrives without
`_deleted_at`), or by the next reconcile when it is back unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import dlt
from dlt.destinations.exceptions import DatabaseException

from pipelines.destinations import DestinationError, dataset_columns, explain
from pipelines.partition import PORTAL_COLUMN
from sources.bitrix24 import (
    DEAL_CONTACTS,
    DELETED_AT,
    PAYMENTS,
    PRODUCT_ROWS,
    PRODUCTS,
    Bitrix24Client,
    Catalog,
    ConfigError,
    EntitySpec,
    PaymentCoverage,
    PortalScan,
    ScopeError,
)

log = logging.getLogger("bitrix24_sync.reconcile")

DeleteMode = Literal["mark", "remove"]
DELETE_MODES: tuple[str, ...] = ("mark", "remove")
LOG_TABLE = "_bitrix24_reconcile"
_CHUNK = 1000  # ids per IN (...) list
_STREAM_ROWS = 10_000  # rows per fetch when only a few of a table's rows are kept


def delete_mode(value: Any) -> DeleteMode:
    mode = str(value or "mark").strip().lower()
    if mode not in DELETE_MODES:
        raise ConfigError(f"delete_mode {value!r} is not valid: use mark (set _deleted_at) or remove (delete rows)")
    return mode  # type: ignore[return-value]


@dataclass
class TableIds:
    live: set[int]
    marked: set[int]
    owners: dict[int, tuple[int, int]] = field(default_factory=dict)  # payments: id -> (ownerTypeId, ownerId)


@dataclass
class Change:
    """What one table gets: `gone` rows are marked (mark mode: only live ones) or removed; `back` unmarked."""

    table: str
    gone: set[int]
    back: set[int]
    portal_rows: int | None = None  # None: a run's payment re-read, not a full reconcile
    # rows of other tables that belong to a record: (table, SQL key its ids are matched on), removed with it
    dependents: tuple[tuple[str, str], ...] = ()


@dataclass
class DeleteReport:
    mode: DeleteMode
    requests: int = 0
    marked: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    restored: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)  # table -> IDs on the portal

    @property
    def worth_showing(self) -> bool:
        """A reconcile ran, or a run's payment re-read found deletes."""
        return bool(self.checked or any(self.marked.values()) or any(self.removed.values()))

    def add(self, other: DeleteReport) -> None:
        pairs = ((self.marked, other.marked), (self.removed, other.removed), (self.restored, other.restored))
        for mine, theirs in pairs:
            for table, count in theirs.items():
                mine[table] = mine.get(table, 0) + count
        self.checked.update(other.checked)
        self.requests += other.requests

    def lines(self) -> list[str]:
        done = self.removed if self.mode == "remove" else self.marked
        verb = "removed" if self.mode == "remove" else "marked deleted"
        return [
            f"  {table:<40} {done.get(table, 0):>9} {verb}, {self.restored.get(table, 0)} restored"
            + (f" ({self.checked[table]} on the portal)" if table in self.checked else "")
            for table in sorted({*done, *self.restored, *self.checked})
        ]


class Warehouse:
    """The pipeline's dataset as reconcile sees it (table and column names are dlt's snake_case). With several
    portals in one dataset (`bitrix24_sync.portal`, pipelines/partition.py) it sees only this portal's rows."""

    def __init__(self, pipeline: dlt.Pipeline):
        self.pipeline = pipeline
        portal = dlt.config.get("bitrix24_sync.portal")
        self.portal = str(portal) if portal else None

    def _columns(self, client: Any) -> dict[str, set[str]]:
        return dataset_columns(client, self.pipeline.dataset_name)

    def _scope(self, table: str, columns: dict[str, set[str]]) -> str:
        """The SQL condition for this portal's rows of a table (TRUE with one portal per dataset)."""
        if PORTAL_COLUMN not in columns.get(table, set()):
            return "TRUE"
        if self.portal is None:
            raise ConfigError(
                f"table {table} holds several portals: reconcile each through `bitrix24-sync run --portals ... "
                "--reconcile` (or set bitrix24_sync.portal)"
            )
        return f"{PORTAL_COLUMN} = {_literal(self.portal)}"

    def read(self, tables: Sequence[str]) -> dict[str, TableIds]:
        """IDs of the tables that exist (a resource never synced has nothing to reconcile)."""
        out: dict[str, TableIds] = {}
        with self.pipeline.sql_client() as client:
            columns = self._columns(client)
            for table in tables:
                if not _tracks_deletes(table, columns):
                    continue
                owner = ", owner_type_id, owner_id" if table == PAYMENTS else ""
                sql = (
                    f"SELECT id, {DELETED_AT} IS NOT NULL{owner} FROM {client.make_qualified_table_name(table)} "
                    f"WHERE {self._scope(table, columns)}"
                )
                with client.execute_query(sql) as cursor:
                    rows = cursor.fetchall()
                ids = TableIds({int(r[0]) for r in rows if not r[1]}, {int(r[0]) for r in rows if r[1]})
                if table == PAYMENTS:
                    ids.owners = {int(r[0]): (r[2], r[3]) for r in rows if r[2] is not None and r[3] is not None}
                out[table] = ids
        return out

    def payments_not_loaded_by(
        self, load_id: str, owners: set[tuple[int, int]] | None, *, include_marked: bool
    ) -> set[int]:
        """IDs of the stored payments of `owners` (None: every owner) that load package `load_id` did not
        bring; the rows stream through in chunks, so only these IDs are held."""
        gone: set[int] = set()
        with self.pipeline.sql_client() as client:
            columns = self._columns(client)
            if not _tracks_deletes(PAYMENTS, columns):
                return gone
            live = "" if include_marked else f" AND {DELETED_AT} IS NULL"
            sql = (
                f"SELECT id, owner_type_id, owner_id FROM {client.make_qualified_table_name(PAYMENTS)} "
                f"WHERE {self._scope(PAYMENTS, columns)} AND _dlt_load_id <> {_literal(load_id)}{live}"
            )
            with client.execute_query(sql) as cursor:
                while rows := cursor.fetchmany(_STREAM_ROWS):
                    gone.update(int(r[0]) for r in rows if owners is None or (r[1], r[2]) in owners)
        return gone

    def last_reconciled(self) -> datetime | None:
        with self.pipeline.sql_client() as client:
            if LOG_TABLE not in self._columns(client):
                return None
            portal = "portal IS NULL" if self.portal is None else f"portal = {_literal(self.portal)}"
            sql = f"SELECT max(reconciled_at) FROM {client.make_qualified_table_name(LOG_TABLE)} WHERE {portal}"
            with client.execute_query(sql) as cursor:
                (last,) = cursor.fetchone()
        return last if last is None or last.tzinfo else last.replace(tzinfo=UTC)

    def apply(self, changes: Sequence[Change], mode: DeleteMode, report: DeleteReport) -> None:
        """Every change of every table, and the log, in one transaction (rolled back whole on an error)."""
        failure = None
        try:
            self._apply(changes, mode, report)
        except DatabaseException as error:
            failure = explain(str(error)) or type(error).__name__
        if failure is not None:  # raised outside the except block: no driver exception chained to it
            raise DestinationError(f"recording deletes failed, the warehouse is unchanged: {failure}")

    def _apply(self, changes: Sequence[Change], mode: DeleteMode, report: DeleteReport) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        stamp = f"CAST('{now.isoformat()}' AS TIMESTAMP WITH TIME ZONE)"
        with self.pipeline.sql_client() as client:
            columns = self._columns(client)
            log_table = client.make_qualified_table_name(LOG_TABLE)
            with client.begin_transaction():
                for change in changes:
                    name = client.make_qualified_table_name(change.table)
                    scope = self._scope(change.table, columns)
                    for ids in _chunks(change.back):
                        client.execute_sql(f"UPDATE {name} SET {DELETED_AT} = NULL WHERE {scope} AND id IN ({ids})")
                    if mode == "mark":
                        for ids in _chunks(change.gone):
                            client.execute_sql(
                                f"UPDATE {name} SET {DELETED_AT} = {stamp} "
                                f"WHERE {DELETED_AT} IS NULL AND {scope} AND id IN ({ids})"
                            )
                    else:
                        removed = [(change.table, "id"), *((t, key) for t, key in change.dependents if t in columns)]
                        for ids in _chunks(change.gone):
                            for table, key in removed:
                                where = f"{self._scope(table, columns)} AND {key} IN ({ids})"
                                _remove(client, table, where, columns)
                    log.info(
                        "%s: %d rows gone from the portal %s, %d restored",
                        change.table,
                        len(change.gone),
                        "removed" if mode == "remove" else "marked",
                        len(change.back),
                    )
                    (report.removed if mode == "remove" else report.marked)[change.table] = len(change.gone)
                    report.restored[change.table] = len(change.back)
                    if change.portal_rows is not None:
                        report.checked[change.table] = change.portal_rows
                client.execute_sql(
                    f"CREATE TABLE IF NOT EXISTS {log_table} (resource VARCHAR, reconciled_at TIMESTAMP WITH TIME "
                    "ZONE, mode VARCHAR, portal_rows BIGINT, gone BIGINT, restored BIGINT, portal VARCHAR)"
                )
                portal = "NULL" if self.portal is None else _literal(self.portal)
                for change in changes:
                    if change.portal_rows is not None:
                        client.execute_sql(
                            f"INSERT INTO {log_table} VALUES ('{change.table}', {stamp}, '{mode}', "
                            f"{change.portal_rows}, {len(change.gone)}, {len(change.back)}, {portal})"
                        )


def _remove(client: Any, table: str, where: str, columns: dict[str, set[str]]) -> None:
    """Rows of a root table and, first, their child-table rows (keyed to the root by `_dlt_root_id`)."""
    name = client.make_qualified_table_name(table)
    for child in _child_tables(table, columns):
        client.execute_sql(
            f"DELETE FROM {client.make_qualified_table_name(child)} WHERE _dlt_root_id IN "
            f"(SELECT _dlt_id FROM {name} WHERE {where})"
        )
    client.execute_sql(f"DELETE FROM {name} WHERE {where}")


def _tracks_deletes(table: str, columns: dict[str, set[str]]) -> bool:
    """Whether the table exists (a resource never synced has nothing to reconcile); an old one without the
    deletion column is a configuration error with its fix."""
    if table not in columns:
        return False
    if DELETED_AT not in columns[table]:
        raise ConfigError(
            f"table {table} was created before deletes were tracked and has no {DELETED_AT} column: "
            f"reload it once (`bitrix24-sync backfill --since 2000-01-01 --resources {table}`), then reconcile"
        )
    return True


def _child_tables(table: str, columns: dict[str, set[str]]) -> list[str]:
    """dlt's child tables of a root table: `<table>__<field>`, keyed to the root row by `_dlt_root_id`."""
    return sorted(t for t, names in columns.items() if t.startswith(f"{table}__") and "_dlt_root_id" in names)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _chunks(ids: Iterable[int]) -> Iterable[str]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), _CHUNK):
        yield ", ".join(str(int(i)) for i in ordered[start : start + _CHUNK])


def dependents(spec: EntitySpec) -> tuple[tuple[str, str], ...]:
    """The rows of other tables that belong to a record of this entity, which the portal deletes with it: its
    product rows, a deal's contact links. `remove` deletes them with the record; with `mark` they stay and the
    views leave out the rows of marked owners."""
    out = []
    if spec.product_owner_type:
        out.append((PRODUCT_ROWS, f"owner_type_id = {spec.entity_type_id} AND owner_id"))
    if spec.resource == "deals":
        out.append((DEAL_CONTACTS, "deal_id"))
    return tuple(out)


def _change(table: str, stored: TableIds, on_portal: set[int], mode: DeleteMode) -> Change:
    gone = (stored.live if mode == "mark" else stored.live | stored.marked) - on_portal
    return Change(table, gone, stored.marked & on_portal, len(on_portal))


def reconcile_warehouse(
    pipeline: dlt.Pipeline, client: Bitrix24Client, catalog: Catalog, resources: Sequence[str], mode: DeleteMode
) -> DeleteReport:
    """Compare the portal's ID sets of `resources` (CRM entities, payments) with the warehouse; mark or
    remove what is gone. The caller holds the pipeline's run lock."""
    report = DeleteReport(mode)
    before = client.requests_made
    warehouse = Warehouse(pipeline)
    tables = [r for r in catalog.reconcilable if r in resources]
    stored = warehouse.read(tables)
    if not stored:  # nothing synced yet: nothing can have been deleted
        return report
    scan = PortalScan(client, catalog)
    changes = []
    for table, ids in stored.items():
        if table == PAYMENTS:
            on_portal = scan.payment_ids(ids.owners.values())
        elif table == PRODUCTS:
            try:
                on_portal = scan.product_ids()
            except ScopeError:
                log.warning("products are not reconciled: the credential has no catalog scope")
                continue
        else:
            on_portal = scan.entity_ids(catalog.entity(table))
        change = _change(table, ids, on_portal, mode)
        if catalog.has_entity(table):
            change.dependents = dependents(catalog.entity(table))
        changes.append(change)
    warehouse.apply(changes, mode, report)
    report.requests = client.requests_made - before
    return report


def apply_payment_coverage(pipeline: dlt.Pipeline, coverage: PaymentCoverage, mode: DeleteMode) -> DeleteReport:
    """After a run's load: payments of owners whose payments the run re-read whole, which did not arrive with
    the run's package, are gone (a payment read again and marked before comes back unmarked by the merge)."""
    report = DeleteReport(mode)
    if coverage.load_id is None or not (coverage.owners or coverage.everything):
        return report
    warehouse = Warehouse(pipeline)
    owners = None if coverage.everything else coverage.owners
    gone = warehouse.payments_not_loaded_by(coverage.load_id, owners, include_marked=mode == "remove")
    if gone:
        warehouse.apply([Change(PAYMENTS, gone, set())], mode, report)
    return report


def reconcile_due(pipeline: dlt.Pipeline, every_hours: float | None) -> bool:
    """True when `reconcile_every_hours` is set and the last reconcile is older (or there was none)."""
    if not every_hours or every_hours <= 0:
        return False
    last = Warehouse(pipeline).last_reconciled()
    return last is None or datetime.now(UTC) - last >= timedelta(hours=float(every_hours))


@dataclass(frozen=True)
class DeleteOptions:
    """How a run handles deletes: `reconcile` forces a full reconcile after the load; `every_hours` makes one
    due periodically (`sources.bitrix24.reconcile_every_hours`); `mode` is `sources.bitrix24.delete_mode`."""

    mode: DeleteMode = "mark"
    reconcile: bool = False
    every_hours: float | None = None

    @classmethod
    def from_config(cls, reconcile: bool = False, mode: str | None = None) -> DeleteOptions:
        every = dlt.config.get("sources.bitrix24.reconcile_every_hours")
        try:
            hours = None if every in (None, "") else float(every)
        except (TypeError, ValueError):
            hours = -1.0
        if hours is not None and hours < 0:
            raise ConfigError(f"reconcile_every_hours {every!r} is not valid: use a number of hours (0: never)")
        return cls(delete_mode(mode or dlt.config.get("sources.bitrix24.delete_mode")), reconcile, hours)


def after_load(
    pipeline: dlt.Pipeline,
    client: Bitrix24Client,
    catalog: Catalog,
    selected: Sequence[str],
    coverage: PaymentCoverage,
    options: DeleteOptions,
) -> DeleteReport:
    """Deletes a successful run knows about: payments its re-read did not return, then (forced or due) a
    full reconcile of the selected entities and payments. After the load, so the ID scans see at least
    everything the warehouse got."""
    report = apply_payment_coverage(pipeline, coverage, options.mode)
    if options.reconcile or reconcile_due(pipeline, options.every_hours):
        report.add(reconcile_warehouse(pipeline, client, catalog, selected, options.mode))
    return report
