"""One CRM entity's incremental window, read as an ID keyset chain whose first page rides in the discovery
batch, typed with its field plan; the cursor advances only after the last page was yielded."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dlt
import pyarrow.compute as pc

from .api import Bitrix24Error, ConfigError, TransientError
from .arrow_pages import REPLACED, ROOT_KEY, child_columns, quiet_json_notice, tables
from .catalog import EntitySpec
from .fields import CoercionReport, FieldPlan
from .metadata import FieldMetadata
from .paging import Commands, ListQuery, Page
from .plan import SYNC_DEFAULTS, PlanPart, RunPlan, SyncOptions
from .state import SourceState

log = logging.getLogger("bitrix24_sync.source")

GROUP_ROWS = 2_500  # rows per Arrow table: one batch request's worth (dlt's work per table is per item)


def entity_query(spec: EntitySpec, window: Mapping[str, Any]) -> ListQuery:
    """The list query of an entity's window, every field selected."""
    params = {**spec.base_params(), "select": spec.select(), "filter": dict(window)}
    return ListQuery(spec.list_method, params, spec.id_field, spec.items_path)


def id_query(spec: EntitySpec, window: Mapping[str, Any] | None = None) -> ListQuery:
    """The ID-only keyset query of an entity (optionally of a window): 2,500 ids per request."""
    params = {**spec.base_params(), "select": [spec.id_field], "filter": dict(window or {})}
    return ListQuery(spec.list_method, params, spec.id_field, spec.items_path)


def vanished(failure: Bitrix24Error | None) -> bool:
    """A discovered entity's read failed for good (its type was deleted since the catalog was built)."""
    return failure is not None and not isinstance(failure, TransientError)


class EntityReader(PlanPart):
    def __init__(
        self,
        spec: EntitySpec,
        options: SyncOptions,
        metadata: FieldMetadata,
        root_columns: Mapping[str, Any] | None = None,
        appends: bool = False,
        markers: Counter[str] | None = None,
    ):
        """`root_columns`: hints the root table has besides the plan's (the deletion mark). `appends`: the
        destination has no table of this entity yet (`SourceRun.new_tables`): its first load is appended."""
        self.spec = spec
        self.appends = appends
        self.markers = markers if markers is not None else Counter()
        self.root_columns = dict(root_columns or {})
        self.options = options
        self.metadata = metadata
        self.invalid: Counter[str] = Counter()
        self.unknown_options: Counter[str] = Counter()
        self._untyped: set[str] = set()

    def query(self) -> ListQuery:
        return entity_query(
            self.spec, self.options.window(self.spec.cursor_field, SourceState.current().cursor(self.spec.resource))
        )

    def first_calls(self) -> Commands:
        return {self.spec.resource: (self.spec.list_method, self.query().page_params(0))}

    def discovered(self, plan: RunPlan) -> None:
        """A user field on the first page that the metadata does not know (added on the portal): refresh the
        metadata before anything is typed, so the `fields` table has it in this run."""
        head = plan.head(self.spec.resource, self.query()) or []
        known = self.metadata.plan(self.spec)
        if any(self.spec.is_user_field(k) and not known.knows(k) for row in head[:1] for k in row):
            self._refresh_once()

    def chains(self) -> Mapping[str, ListQuery]:
        return {self.spec.resource: self.query()}

    def pages(self, plan: RunPlan) -> Iterator[Any]:
        plan.discover()
        if self.spec.discovered and vanished(plan.failure(self.spec.resource, self.spec.list_method)):
            log.info("%s: the portal no longer has this smart process; its table is kept", self.spec.resource)
            return
        quiet_json_notice(self.spec.resource)
        group: list[dict[str, Any]] = []
        group_plan: FieldPlan | None = None
        hinted: set[str] = set()
        for page in plan.chain_pages(self.spec.resource, self.query(), "p"):
            if self._replanned(page):  # rows of the old plan go out with it; every table's hints again
                if group_plan is not None and group:
                    yield from self._tables(group_plan, group, hinted)
                group, hinted = [], set()
            group_plan = self.metadata.plan(self.spec)
            group.extend(page)
            if len(group) >= GROUP_ROWS:
                yield from self._tables(group_plan, group, hinted)
                group = []
        if group_plan is not None and group:
            yield from self._tables(group_plan, group, hinted)
        self._log_findings()
        if self.options.backfill is None:
            SourceState.current().set_cursor(self.spec.resource, plan.next_cursor())

    def _tables(self, field_plan: FieldPlan, rows: list[dict[str, Any]], hinted: set[str]) -> Iterator[Any]:
        """The Arrow tables of a group of rows as sent: the root table, then one per multiple field (a table
        not created yet is left out while it would get markers only)."""
        schema = dlt.current.source_schema()
        report = CoercionReport()
        load_id = dlt.current.load_package_state()["load_id"]
        typed = tables(field_plan, rows, report, key=(self.spec.id_field,), load_id=load_id)
        self.invalid.update(report.invalid)
        self.unknown_options.update(report.unknown_options)
        root_columns = lambda: {**field_plan.columns(), **self.root_columns}  # noqa: E731
        yield self._marked(typed.root, self.spec.resource, hinted, root_columns, appends=self.appends)
        for code, child in typed.children.items():
            name = self._child_table(schema.naming, code)
            if schema.tables.get(name, {}).get("parent"):
                raise ConfigError(
                    f"table {name} has the nested layout of an older version: run `bitrix24-sync run` once "
                    "(it moves it), or call pipelines.list_tables.migrate_list_tables(pipeline, catalog) "
                    "before pipeline.run"
                )
            if self.appends:  # no old values to delete: the markers would only cost the load
                child = child.filter(pc.is_null(child[REPLACED]))
            if name in hinted or name in schema.tables or child[REPLACED].null_count:
                self.markers[name] += child.num_rows - child[REPLACED].null_count
                spec = field_plan.specs[code]
                columns = lambda spec=spec: child_columns(spec, merged=not self.appends)  # noqa: E731
                yield self._marked(child, name, hinted, columns, child=True, appends=self.appends)

    def _child_table(self, naming: Any, code: str) -> str:
        """The table of a multiple field, named as dlt names a nested table (and the `fields` table says)."""
        return str(naming.shorten_fragments(self.spec.resource, naming.normalize_identifier(code)))

    @staticmethod
    def _marked(
        item: Any, table: str, hinted: set[str], columns: Any, child: bool = False, appends: bool = False
    ) -> Any:
        """A table's first page of the run (or after a replan) carries its hints, as a variant of the
        resource's so that a multiple field's table gets none of the root's; later pages only its name. A
        record's list is merged on `_dlt_root_id` (`arrow_pages.py`); a first load appends."""
        if table in hinted:
            return dlt.mark.with_table_name(item, table)
        hinted.add(table)
        keys: dict[str, Any] = {"primary_key": [], "merge_key": ROOT_KEY} if child else {}
        if appends:
            keys["write_disposition"] = "append"
        hints = dlt.mark.make_hints(table_name=table, columns=columns(), **keys)
        return dlt.mark.with_hints(item, hints, create_table_variant=True)

    def _replanned(self, page: Page) -> bool:
        """A user field the metadata does not know (added on the portal mid-run) refreshes the metadata once per
        run and entity, before the page is typed. Other unknown keys (crm.item's `entityTypeId`) pass through
        untyped."""
        plan = self.metadata.plan(self.spec)
        unknown = {k for row in page[:1] for k in row if not plan.knows(k)} - self._untyped
        new_fields = sorted(k for k in unknown if self.spec.is_user_field(k))
        replanned = False
        if new_fields and self._refresh_once():
            log.info("%s: fields %s are not in the cached metadata; refreshed it", self.spec.resource, new_fields)
            plan, replanned = self.metadata.plan(self.spec), True
        self._untyped |= {k for k in unknown if not plan.knows(k)}
        return replanned

    def _refresh_once(self) -> bool:
        if self.spec.resource in self.metadata.refreshed:
            return False
        self.metadata.refresh(self.spec)
        return True

    def _log_findings(self) -> None:
        if self.invalid:
            log.warning(
                "%s: values that did not parse were set to NULL and kept in <field>__raw: %s",
                self.spec.resource,
                dict(self.invalid),
            )
        if self.unknown_options:
            log.warning(
                "%s: enumeration ids that are not among the field's options were kept as they are: %s",
                self.spec.resource,
                dict(self.unknown_options),
            )


def count_params(spec: EntitySpec, window: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A first page with `start=0`: its `total` is the row count of the window (a COUNT on the portal)."""
    return {**spec.base_params(), "select": [spec.id_field], "filter": dict(window or {}), "start": 0}


def count_windows(
    client: Any, specs: Sequence[EntitySpec], state: SourceState | None, options: SyncOptions = SYNC_DEFAULTS
) -> dict[str, int]:
    """Rows each entity's next window holds (`state` None: everything), in one batch."""
    if not specs:
        return {}
    commands = {
        spec.resource: (
            spec.list_method,
            count_params(spec, options.window(spec.cursor_field, state.cursor(spec.resource) if state else None)),
        )
        for spec in specs
    }
    response = client.batch(commands)
    return {k: v for k, v in response.total.items() if k not in response.errors}
