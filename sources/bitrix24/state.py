"""The only code that knows where the source keeps its cursors and caches in dlt state.

Everything lives in the source state under `resources.<resource>`, so dlt's `refresh="drop_resources"` resets it
with the tables, and dlt commits it with the load package (a failed extract rolls it back):

    resources.<entity>.cursor                 next run reads cursor_field >= this (the portal's time, ISO)
    resources.<entity>.fields                 {fetched_at, meta}: the entity's trimmed field metadata
    resources.payments.owner_cursors          {<owner resource>: cursor} of the payments' own owner scan
    resources.payments.last_payment_id        the sale keyset's position
    resources.payments.last_sweep             when every payment was last re-read
    resources.<reference list>.loaded_at      when stages / pipelines / users were last reloaded
    resources.smart_processes.types           the types crm.type.list reported last (the next run's catalog)
    resources.stage_history.last_ids          {<entityTypeId>: last ID read} of the append-only log
    resources.<owner list>.owner_cursors      {<owner resource>: cursor} of product rows' / deal contacts' owners
    resources.<owner list>.last_sweep         when every owner's list was last re-read
    portal                                    the portal the state belongs to (`host[:port]`)

Inside an extraction the source reads and writes the live state (`SourceState.current()`); the runner,
`status` and `check` read a pipeline's stored state (`SourceState.of_pipeline(pipeline.state)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dlt

from .catalog import PAYMENTS, PRODUCTS, SMART_PROCESSES, Catalog

SOURCE_NAME = "bitrix24"


class SourceState:
    """Accessors over the source state's `resources` part (see the module docstring for the layout)."""

    def __init__(self, source_state: Mapping[str, Any], writable: bool = False):
        self._state = source_state
        self._writable = writable

    @classmethod
    def current(cls) -> SourceState:
        """The live state of the source being extracted (only valid inside dlt's extraction)."""
        return cls(dlt.current.source_state(), writable=True)

    @classmethod
    def of_pipeline(cls, pipeline_state: Mapping[str, Any]) -> SourceState:
        """A pipeline's stored state, read only."""
        return cls(pipeline_state.get("sources", {}).get(SOURCE_NAME, {}))

    def _resource(self, name: str) -> dict[str, Any]:
        if self._writable:
            return self._state.setdefault("resources", {}).setdefault(name, {})  # type: ignore[attr-defined]
        return dict(self._state.get("resources", {}).get(name) or {})

    # ------------------------------------------------------------------ the portal

    def portal(self) -> str | None:
        """The portal this state (and so the warehouse it describes) belongs to: its address."""
        return self._state.get("portal")

    def bind_portal(self, portal: str) -> None:
        self._state["portal"] = portal  # type: ignore[index]

    # ------------------------------------------------------------------ CRM entities

    def cursor(self, resource: str) -> str | None:
        return self._resource(resource).get("cursor")

    def set_cursor(self, resource: str, cursor: str) -> None:
        self._resource(resource)["cursor"] = cursor

    def fields_cache(self, resource: str) -> dict[str, Any] | None:
        """{"fetched_at": ISO, "meta": {code: trimmed metadata}} or None."""
        return self._resource(resource).get("fields") or None

    def store_fields(self, resource: str, meta: dict[str, Any], fetched_at: str) -> None:
        self._resource(resource)["fields"] = {"fetched_at": fetched_at, "meta": meta}

    # ------------------------------------------------------------------ payments

    def payment_owner_cursor(self, owner: str) -> str | None:
        return (self._resource(PAYMENTS).get("owner_cursors") or {}).get(owner)

    def last_payment_id(self) -> int:
        return int(self._resource(PAYMENTS).get("last_payment_id", 0))

    def last_payment_sweep(self) -> str | None:
        return self._resource(PAYMENTS).get("last_sweep")

    def store_payment_progress(
        self, owner_cursors: dict[str, str], last_payment_id: int | None, swept_at: str | None
    ) -> None:
        state = self._resource(PAYMENTS)
        state["owner_cursors"] = owner_cursors
        if last_payment_id is not None:
            state["last_payment_id"] = max(last_payment_id, int(state.get("last_payment_id", 0)))
        if swept_at is not None:
            state["last_sweep"] = swept_at

    # ------------------------------------------------------------------ smart processes

    def smart_process_types(self) -> list[dict[str, Any]] | None:
        """The types crm.type.list reported last (None: never asked)."""
        return self._resource(SMART_PROCESSES).get("types")

    def store_smart_process_types(self, types: list[dict[str, Any]], fetched_at: str) -> None:
        state = self._resource(SMART_PROCESSES)
        state["types"], state["fetched_at"] = types, fetched_at

    def product_catalogs(self) -> list[int] | None:
        """The information blocks catalog.catalog.list reported last (None: never asked)."""
        return self._resource(PRODUCTS).get("catalogs")

    def store_product_catalogs(self, iblock_ids: list[int]) -> None:
        self._resource(PRODUCTS)["catalogs"] = list(iblock_ids)

    # ------------------------------------------------------------------ logs and owner-bound lists

    def last_id(self, resource: str, key: str) -> int:
        """The last id read of an append-only log (stage history per entityTypeId)."""
        return int((self._resource(resource).get("last_ids") or {}).get(key, 0))

    def set_last_id(self, resource: str, key: str, value: int) -> None:
        ids = self._resource(resource).setdefault("last_ids", {})
        ids[key] = max(int(value), int(ids.get(key, 0)))

    def owner_cursor(self, resource: str, owner: str) -> str | None:
        """Where the owners' change window of an owner-bound list (product rows, deal contacts) starts."""
        return (self._resource(resource).get("owner_cursors") or {}).get(owner)

    def set_owner_cursor(self, resource: str, owner: str, cursor: str) -> None:
        self._resource(resource).setdefault("owner_cursors", {})[owner] = cursor

    def last_sweep(self, resource: str) -> str | None:
        return self._resource(resource).get("last_sweep")

    def set_last_sweep(self, resource: str, at: str) -> None:
        self._resource(resource)["last_sweep"] = at

    # ------------------------------------------------------------------ reference lists

    def loaded_at(self, resource: str) -> str | None:
        return self._resource(resource).get("loaded_at")

    def mark_loaded(self, resource: str, at: str) -> None:
        self._resource(resource)["loaded_at"] = at

    # ------------------------------------------------------------------ for status

    def position(self, resource: str) -> str | None:
        """Where a resource stands, in one line: its cursor, the payments' cursors, or when it was loaded."""
        if resource == PAYMENTS:
            state = self._resource(PAYMENTS)
            parts = [f"{k} {v}" for k, v in sorted((state.get("owner_cursors") or {}).items())]  # one per owner
            if state.get("last_payment_id"):
                parts.append(f"payment id > {state['last_payment_id']}")
            return "; ".join(parts) or None
        state = self._resource(resource)
        if state.get("last_ids"):
            return "; ".join(f"{k} id > {v}" for k, v in sorted(state["last_ids"].items()))
        if state.get("owner_cursors"):
            return "; ".join(f"{k} {v}" for k, v in sorted(state["owner_cursors"].items()))
        return (
            self.cursor(resource)
            or self.loaded_at(resource)
            or state.get("fetched_at")
            or (self.fields_cache(resource) or {}).get("fetched_at")
        )

    def positions(self, catalog: Catalog) -> dict[str, str | None]:
        return {name: self.position(name) for name in catalog.resources}
