"""List methods over one plain SQLite table (stage history, activities, product rows, calls, catalog
products): filter, order and page like every Bitrix list, one declaration per method.

A `FlatList` names the output fields and their storage; the filter compiler and the 50-row page are the same
as the CRM lists', so `>ID` keysets walk the primary key and `start=-1` skips the COUNT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .filters import FilterColumn, FilterCompiler, FilterError
from .methods import MethodContext
from .store import PAGE
from .values import TimeFormat


@dataclass(frozen=True)
class FlatList:
    table: str
    columns: dict[str, tuple[str, str]]  # output name -> (SQL column, storage: int/real/text/yn/datetime)
    default_order: str = '"ID" ASC'
    strict: bool = True  # unknown filter/order keys: INVALID_ARG_VALUE (new controllers) or dropped (legacy)
    error_code: Any = "INVALID_ARG_VALUE"

    def column(self, name: str) -> tuple[str, str] | None:
        return self.columns.get(name)

    def where(self, ctx: MethodContext, flt: dict[str, Any]) -> tuple[str, list[Any]]:
        def resolve(name: str) -> FilterColumn | None:
            col = self.column(name)
            return FilterColumn(f'"{col[0]}"', "integer" if col[1] == "int" else "string", col[1]) if col else None

        try:
            return FilterCompiler(resolve, ctx.store.tf, strict=self.strict, allow_logic=False).compile(flt)
        except FilterError as exc:
            raise ApiError(self.error_code, f"Invalid filter: field '{exc.field}' is not allowed in filter") from exc

    def order(self, order: dict[str, Any]) -> str:
        parts = []
        for name, direction in order.items():
            col = self.column(str(name))
            if col is None:
                if self.strict:
                    raise ApiError(self.error_code, f"Invalid order: field '{name}' is not allowed in order")
                continue
            parts.append(f'"{col[0]}" {"DESC" if str(direction).upper() == "DESC" else "ASC"}')
        return ", ".join(parts) or self.default_order

    def page(
        self,
        ctx: MethodContext,
        flt: dict[str, Any],
        order: dict[str, Any],
        start: int,
        where_extra: str = "",
        args_extra: tuple[Any, ...] = (),
    ) -> tuple[list[dict[str, Any]], int | None, int | None]:
        """(rows as {output name: stored value}, total or None for start=-1, next or None)."""
        where, args = self.where(ctx, flt)
        if where_extra:
            where, args = f"({where}) AND {where_extra}", [*args, *args_extra]
        offset = (start // PAGE) * PAGE if start >= 0 else 0
        names = list(self.columns)
        cols = ", ".join(f'"{self.columns[n][0]}"' for n in names)
        conn = ctx.store.conn
        rows = conn.execute(
            f'SELECT {cols} FROM "{self.table}" WHERE {where} ORDER BY {self.order(order)} '
            f"LIMIT {PAGE} OFFSET {offset}",
            args,
        ).fetchall()
        ctx.cost.rows_scanned += offset + len(rows)
        ctx.cost.rows_returned += len(rows)
        out = [dict(zip(names, row, strict=True)) for row in rows]
        if start < 0:
            return out, None, None
        total = conn.execute(f'SELECT COUNT(*) FROM "{self.table}" WHERE {where}', args).fetchone()[0]
        ctx.cost.counted += total
        return out, total, offset + PAGE if offset + PAGE < total else None

    def typed(self, row: dict[str, Any], tf: TimeFormat) -> dict[str, Any]:
        """New-controller values: numbers as numbers, datetimes in the portal's ISO form."""
        return {k: _typed(v, self.columns[k][1], tf) for k, v in row.items()}

    def strings(self, row: dict[str, Any], tf: TimeFormat) -> dict[str, Any]:
        """Legacy values: everything a string, `null` when empty."""
        out: dict[str, Any] = {}
        for k, v in row.items():
            typed = _typed(v, self.columns[k][1], tf)
            out[k] = None if typed is None else typed if isinstance(typed, str) else _number_text(typed)
        return out


def _typed(value: Any, storage: str, tf: TimeFormat) -> Any:
    if value is None:
        return None
    if storage == "datetime":
        return tf.datetime(int(value))
    return value


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
