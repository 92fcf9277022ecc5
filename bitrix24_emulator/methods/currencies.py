"""crm.currency.list / crm.currency.update (docs crm/currency/*.md): the portal's currencies with today's
rate against the base currency (`AMOUNT` per `AMOUNT_CNT` units), legacy string values. The API keeps no rate
history: a rate set today replaces yesterday's."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError
from ..records import as_mapping, upper_keys
from ..values import php_floatval, php_intval
from . import MethodContext, MethodResult, method

_COLUMNS = ("CURRENCY", "AMOUNT_CNT", "AMOUNT", "SORT", "BASE", "FULL_NAME", "FORMAT_STRING", "DECIMALS", "DATE_UPDATE")


@method("crm.currency.list", "crm")
def currency_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        rows = ctx.store.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM currency ORDER BY SORT, CURRENCY").fetchall()
    tf = ctx.store.tf
    out = []
    for code, count, amount, sort, base, name, fmt, decimals, updated in rows:
        out.append(
            {
                "CURRENCY": code,
                "AMOUNT_CNT": str(count),
                "AMOUNT": f"{amount:.4f}",
                "SORT": str(sort),
                "BASE": base,
                "FULL_NAME": name,
                "LID": "en",
                "FORMAT_STRING": fmt,
                "DEC_POINT": ".",
                "THOUSANDS_SEP": " ",
                "DECIMALS": str(decimals),
                "DATE_UPDATE": tf.datetime(updated),
            }
        )
    return MethodResult(out, total=len(out))


@method("crm.currency.update", "crm")
def currency_update(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    p = upper_keys(params)
    code = str(p.get("ID") or "")
    fields = {str(k).upper(): v for k, v in as_mapping(p.get("FIELDS"), "fields").items()}
    now = int(ctx.clock.now_seconds().timestamp())
    with ctx.store.lock:
        conn = ctx.store.conn
        row = conn.execute("SELECT AMOUNT_CNT, AMOUNT FROM currency WHERE CURRENCY = ?", (code,)).fetchone()
        if row is None:
            raise ApiError("", "Not found")
        count = php_intval(fields.get("AMOUNT_CNT", row[0])) or 1
        amount = php_floatval(fields.get("AMOUNT", row[1]))
        conn.execute(
            "UPDATE currency SET AMOUNT_CNT = ?, AMOUNT = ?, DATE_UPDATE = ? WHERE CURRENCY = ?",
            (count, amount, now, code),
        )
    return MethodResult(True)
