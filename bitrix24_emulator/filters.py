"""Bitrix24 list filters (`{">=DATE_MODIFY": "2024-01-01", "@STAGE_ID": [...]}`) translated to SQL with
parameters.

Both dialects share this: legacy lists drop unknown keys silently, crm.item.list rejects them; crm.item.list
also accepts nested `{"logic": "OR", ...}` groups. Values are converted to the column's storage form first, so
`>=DATE_MODIFY` compares unix seconds and `>ID` compares integers through the primary key.

A value of the wrong shape (an array where a comparison needs a scalar — what a batch reference such as
`$result[p][49][ID]` becomes when page `p` is short and the whole page is substituted — or a date nothing can
parse) raises `FilterError("invalid")`: the legacy methods answer "Failed to get list. General error.",
crm.item.list answers INVALID_ARG_VALUE. The emulator refuses instead of guessing, the stricter of the
possible behaviours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .values import TimeFormat, php_floatval, php_intval, truthy

# Longest prefixes first so "!=%" is not read as "!" + "=%FIELD".
OPERATORS = ("!=%", "!%=", "!@", "!=", "!%", ">=", "<=", "=%", "%=", "@", "!", ">", "<", "=", "%")
_NO_LIKE_TYPES = {"crm_status", "crm_company", "crm_contact"}


@dataclass(frozen=True)
class FilterColumn:
    """What the filter needs to know about a field."""

    sql: str  # quoted column, e.g. "t"."DATE_MODIFY"
    type: str  # Bitrix type (standard) or user_type_id (UF)
    storage: str  # int/real/text/yn/bool/datetime/date
    multiple: bool = False
    multifield: str | None = None  # PHONE/EMAIL/... : matched through the multifield table
    entity: str = ""  # multifield owner (LEAD/CONTACT/COMPANY)


class FilterError(Exception):
    def __init__(self, kind: str, field: str):
        super().__init__(f"{kind}: {field}")
        self.kind = kind  # "unknown" | "invalid"
        self.field = field


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.isdigit()


def split_key(key: str) -> tuple[str, str]:
    for op in OPERATORS:
        if key.startswith(op):
            return op, key[len(op) :]
    return "=", key


Resolver = Callable[[str], FilterColumn | None]


class FilterCompiler:
    def __init__(self, resolve: Resolver, tf: TimeFormat, *, strict: bool, allow_logic: bool):
        self.resolve = resolve
        self.tf = tf
        self.strict = strict
        self.allow_logic = allow_logic

    def compile(self, flt: dict[str, Any] | None) -> tuple[str, list[Any]]:
        params: list[Any] = []
        sql = self._group(self._tightest_lower_bounds(flt or {}), params, "AND")
        return sql, params

    def _tightest_lower_bounds(self, flt: dict[str, Any]) -> dict[str, Any]:
        """Only the tightest of several integer lower bounds on one column (`>=ID: 1` beside `>ID: 700000`).

        The same rows either way; SQLite's planner walks the primary key from one of them only, so keeping the
        loose one would scan the whole table before each keyset page (quadratic, where a portal's MySQL is not).
        """
        if any(str(k).lower() == "logic" for k in flt):
            return flt
        tightest: dict[str, tuple[int, str]] = {}
        redundant: set[str] = set()
        for key, value in flt.items():
            op, name = split_key(str(key))
            col = self.resolve(name) if op in (">", ">=") else None
            if col is None or col.storage != "int" or col.multiple or not _plain_int(value):
                continue
            after = int(value) - (op == ">=")  # rows with the column > after
            best = tightest.get(name)
            if best is None or after > best[0]:
                if best is not None:
                    redundant.add(best[1])
                tightest[name] = (after, str(key))
            else:
                redundant.add(str(key))
        return {k: v for k, v in flt.items() if str(k) not in redundant} if redundant else flt

    def _group(self, flt: dict[str, Any], params: list[Any], default_logic: str) -> str:
        logic = default_logic
        parts: list[str] = []
        for key, value in flt.items():
            key = str(key)
            if key.lower() == "logic":
                if self.allow_logic:
                    logic = "OR" if str(value).upper() == "OR" else "AND"
                continue
            if isinstance(value, dict) and (self.allow_logic and (key.isdigit() or key.startswith("__"))):
                parts.append(self._group(value, params, "AND"))
                continue
            op, name = split_key(key)
            col = self.resolve(name)
            if col is None:
                if self.strict:
                    raise FilterError("unknown", name)
                continue
            parts.append(self._condition(op, name, col, value, params))
        if not parts:
            return "1"
        return "(" + f" {logic} ".join(parts) + ")"

    # ---- one condition ------------------------------------------------------------------------------------

    def _condition(self, op: str, name: str, col: FilterColumn, value: Any, params: list[Any]) -> str:
        negate = op.startswith("!")
        base = op[1:] if negate else op
        if base == "":
            base = "="
        if base in ("%", "=%", "%=") and col.type in _NO_LIKE_TYPES:
            base = "="
        if col.multifield:
            return self._multifield(negate, base, name, col, value, params)
        if col.multiple and base == "=" and self._is_empty(value):
            return f"({col.sql} IS {'NOT ' if negate else ''}NULL)"
        if col.multiple:
            inner = self._positive(base, name, col, "je.value", value, params, nullable=False)
            exists = f"EXISTS (SELECT 1 FROM json_each({col.sql}) je WHERE {inner})"
            return f"NOT {exists}" if negate else exists
        positive = self._positive(base, name, col, col.sql, value, params, nullable=True)
        if not negate:
            return positive
        if self._is_empty(value) and base == "=":
            return f"NOT {positive}"
        return f"({col.sql} IS NULL OR NOT {positive})"

    @staticmethod
    def _is_empty(value: Any) -> bool:
        return value is None or (isinstance(value, str) and value == "")

    def _positive(
        self,
        base: str,
        name: str,
        col: FilterColumn,
        expr: str,
        value: Any,
        params: list[Any],
        nullable: bool,
    ) -> str:
        if base == "@" or (base == "=" and isinstance(value, list | dict)):
            items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
            conv = [self._scalar(name, col, v) for v in items]
            if not conv:
                return "0"
            params.extend(conv)
            return f"{expr} IN ({','.join('?' * len(conv))})"
        if base == "=" and self._is_empty(value):
            if nullable and col.storage == "text":
                return f"({expr} IS NULL OR {expr} = '')"
            return f"({expr} IS NULL)" if nullable else "0"
        if base in ("%", "=%", "%="):
            if isinstance(value, list | dict):
                raise FilterError("invalid", name)
            text = str(value)
            if base == "%":
                text = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                params.append(text)
                return f"{expr} LIKE ? ESCAPE '\\'"
            params.append(text)
            return f"{expr} LIKE ?"
        params.append(self._scalar(name, col, value))
        sql_op = {"=": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}[base]
        return f"{expr} {sql_op} ?"

    def _scalar(self, name: str, col: FilterColumn, value: Any) -> Any:
        if isinstance(value, list | dict):
            raise FilterError("invalid", name)
        storage = col.storage
        if storage == "int":
            return php_intval(value)
        if storage == "real":
            return php_floatval(value)
        if storage in ("datetime", "date"):
            conv = self.tf.to_ts(value) if storage == "datetime" else self.tf.to_day(value)
            if conv is None:
                raise FilterError("invalid", name)
            return conv
        if storage == "yn":
            return "Y" if truthy(value) else "N"
        if storage == "bool":
            return 1 if truthy(value) else 0
        return str(value)

    def _multifield(self, negate: bool, base: str, name: str, col: FilterColumn, value: Any, params: list[Any]) -> str:
        """Multifield filters match exact values only (docs), whatever the operator."""
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, list | dict) for v in items):
            raise FilterError("invalid", name)
        params.extend([col.entity, col.multifield, *[str(v) for v in items]])
        marks = ",".join("?" * len(items))
        sub = (
            f'"t"."ID" IN (SELECT ELEMENT_ID FROM multifield WHERE ENTITY_ID = ? AND TYPE_ID = ? '
            f"AND VALUE IN ({marks}))"
        )
        return f"NOT {sub}" if negate else sub
