"""Payments: crm.item.payment.* per deal (2) or smart invoice (31), sale.payment.list and
crm.orderentity.list.

Every payment belongs to a sale order bound to one CRM owner. Errors follow the new-style controllers:
`{"error": 0, "error_description": "Insufficient permissions"}` for no access / not found, `100` for a missing
parameter. A payment change never touches the owner's DATE_MODIFY: the reference marks that link unverified,
so a sync must not rely on it.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ApiError, missing_parameter
from ..filters import FilterColumn, FilterCompiler, FilterError
from ..records import as_list, as_mapping
from ..store import PAGE
from ..values import php_intval, truthy
from . import MethodContext, MethodResult, method

PAYMENT_OWNERS = {2: "deal", 31: "smart_invoice"}

# camelCase name -> (SQL expression, storage)
_PAYMENT_COLUMNS = {
    "id": ("p.ID", "int"),
    "orderId": ("p.ORDER_ID", "int"),
    "accountNumber": ("p.ACCOUNT_NUMBER", "text"),
    "paid": ("p.PAID", "yn"),
    "datePaid": ("p.DATE_PAID", "datetime"),
    "empPaidId": ("p.EMP_PAID_ID", "int"),
    "paySystemId": ("p.PAY_SYSTEM_ID", "int"),
    "paySystemName": ("ps.NAME", "text"),
    "sum": ("p.SUM", "real"),
    "currency": ("p.CURRENCY", "text"),
    "dateBill": ("p.DATE_BILL", "datetime"),
    "isReturn": ("p.IS_RETURN", "yn"),
    "marked": ("p.MARKED", "yn"),
    "xmlId": ("p.XML_ID", "text"),
}
_ITEM_PAYMENT_FIELDS = [
    "id",
    "accountNumber",
    "paid",
    "datePaid",
    "empPaidId",
    "paySystemId",
    "sum",
    "currency",
    "paySystemName",
]
_FROM = "payment p JOIN pay_system ps ON ps.ID = p.PAY_SYSTEM_ID"
_ORDER_ENTITY_COLUMNS = {
    "orderId": ("o.ID", "int"),
    "ownerId": ("o.OWNER_ID", "int"),
    "ownerTypeId": ("o.OWNER_TYPE_ID", "int"),
}


def _denied() -> ApiError:
    return ApiError(0, "Insufficient permissions")


def _required(params: dict[str, Any], name: str) -> int:
    value = params.get(name)
    if value is None or value == "":
        raise missing_parameter(name)
    return php_intval(value) if not isinstance(value, list | dict) else 0


def _resolver(columns: dict[str, tuple[str, str]]) -> Any:
    """Filter keys by camelCase name or its upper-case forms (crm.item.payment.list upper-cases keys):
    `paySystemId`, `PAYSYSTEMID` and `PAY_SYSTEM_ID` name the same column.
    """
    upper = {k.upper(): v for k, v in columns.items()}
    upper.update({re.sub(r"(?<!^)([A-Z])", r"_\1", k).upper(): v for k, v in columns.items()})

    def resolve(name: str) -> FilterColumn | None:
        spec = columns.get(name) or upper.get(name.upper())
        return FilterColumn(spec[0], "integer" if spec[1] == "int" else "string", spec[1]) if spec else None

    return resolve


def _where(ctx: MethodContext, columns: dict[str, tuple[str, str]], flt: dict[str, Any]) -> tuple[str, list[Any]]:
    try:
        return FilterCompiler(_resolver(columns), ctx.store.tf, strict=False, allow_logic=False).compile(flt)
    except FilterError as exc:
        raise ApiError("INVALID_ARG_VALUE", f"Invalid filter: field '{exc.field}' has invalid value") from exc


def _order(columns: dict[str, tuple[str, str]], order: dict[str, Any], default: str) -> str:
    resolve = _resolver(columns)
    parts = []
    for name, direction in order.items():
        col = resolve(str(name))
        if col is not None:
            parts.append(f"{col.sql} {'DESC' if str(direction).upper() == 'DESC' else 'ASC'}")
    return ", ".join(parts) or default


def _payment_rows(
    ctx: MethodContext, names: list[str], where: str, args: list[Any], order_sql: str, limit: str = ""
) -> list[dict[str, Any]]:
    tf = ctx.store.tf
    exprs = ", ".join(_PAYMENT_COLUMNS[n][0] for n in names)
    out = []
    for row in ctx.store.conn.execute(f"SELECT {exprs} FROM {_FROM} WHERE {where} ORDER BY {order_sql}{limit}", args):
        rec: dict[str, Any] = {}
        for name, value in zip(names, row, strict=True):
            storage = _PAYMENT_COLUMNS[name][1]
            if storage == "datetime":
                value = None if value is None else tf.datetime(value)
            elif storage == "real":
                value = float(value)
            rec[name] = value
        out.append(rec)
    return out


def _owner_of(ctx: MethodContext, params: dict[str, Any]) -> tuple[int, int] | None:
    """(entityTypeId, entityId); None for types without payments; permission error for unknown owners."""
    owner_id = _required(params, "entityId")
    type_id = _required(params, "entityTypeId")
    key = PAYMENT_OWNERS.get(type_id)
    if key is None:
        return None
    if not ctx.store.table(key).exists(owner_id):
        raise _denied()
    return type_id, owner_id


@method("crm.item.payment.list", "crm")
def payment_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    with ctx.store.lock:
        owner = _owner_of(ctx, params)
        if owner is None:
            return MethodResult([])
        where, args = _where(ctx, _PAYMENT_COLUMNS, as_mapping(params.get("filter"), "filter", legacy=False))
        rows = _payment_rows(
            ctx,
            _ITEM_PAYMENT_FIELDS,
            f"p.ORDER_ID IN (SELECT ID FROM sale_order WHERE OWNER_TYPE_ID = ? AND OWNER_ID = ?) AND {where}",
            [*owner, *args],
            _order(_PAYMENT_COLUMNS, as_mapping(params.get("order"), "order", legacy=False), "p.ID ASC"),
        )
    ctx.cost.rows_scanned += len(rows) + 1
    ctx.cost.rows_returned += len(rows)
    return MethodResult(rows)


def _payment(ctx: MethodContext, pid: int) -> dict[str, Any]:
    rows = _payment_rows(ctx, _ITEM_PAYMENT_FIELDS, "p.ID = ?", [pid], "p.ID")
    if not rows:
        raise _denied()
    ctx.cost.rows_scanned += 1
    ctx.cost.rows_returned += 1
    return rows[0]


@method("crm.item.payment.get", "crm")
def payment_get(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    pid = _required(params, "id")
    with ctx.store.lock:
        return MethodResult(_payment(ctx, pid))


@method("crm.item.payment.add", "crm")
def payment_add(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """A new unpaid payment for the rest of the owner's amount, in a new order if the owner has none yet."""
    fields = as_mapping(params.get("fields"), "fields", legacy=False)
    now = int(ctx.clock.now_seconds().timestamp())
    conn = ctx.store.conn
    with ctx.store.lock:
        owner = _owner_of(ctx, params)
        if owner is None:
            raise ApiError(0, "Entity type is not supported")
        key = PAYMENT_OWNERS[owner[0]]
        amount, currency = conn.execute(
            f'SELECT OPPORTUNITY, CURRENCY_ID FROM "{key}" WHERE ID = ?', (owner[1],)
        ).fetchone()
        found = conn.execute(
            "SELECT ID FROM sale_order WHERE OWNER_TYPE_ID = ? AND OWNER_ID = ? ORDER BY ID LIMIT 1", owner
        ).fetchone()
        if found:
            order_id = found[0]
        else:
            order_id = conn.execute(
                "INSERT INTO sale_order (OWNER_TYPE_ID, OWNER_ID, CURRENCY, DATE_INSERT) VALUES (?,?,?,?)",
                (*owner, currency or "RUB", now),
            ).lastrowid
        paid_sum, count = conn.execute(
            "SELECT COALESCE(SUM(SUM), 0), COUNT(*) FROM payment WHERE ORDER_ID = ?", (order_id,)
        ).fetchone()
        system = php_intval(fields.get("paySystemId", 1)) or 1
        if not conn.execute("SELECT 1 FROM pay_system WHERE ID = ?", (system,)).fetchone():
            system = 1
        pid = conn.execute(
            "INSERT INTO payment (ORDER_ID, ACCOUNT_NUMBER, PAID, PAY_SYSTEM_ID, SUM, CURRENCY, DATE_BILL, "
            "XML_ID) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (
                order_id,
                f"{order_id}/{count + 1}",
                "N",
                system,
                max(0.0, float(amount or 0) - paid_sum),
                currency or "RUB",
                now,
                f"bx_{order_id}_{count + 1}",
            ),
        ).lastrowid
        ctx.cost.rows_scanned += 1
    return MethodResult(int(pid or 0))


def _set_paid(ctx: MethodContext, pid: int, paid: bool) -> None:
    now = int(ctx.clock.now_seconds().timestamp())
    ctx.store.conn.execute(
        "UPDATE payment SET PAID = ?, DATE_PAID = ?, EMP_PAID_ID = ? WHERE ID = ?",
        ("Y", now, ctx.user_id, pid) if paid else ("N", None, None, pid),
    )


@method("crm.item.payment.update", "crm")
def payment_update(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Only `paid` and `paySystemId` are applied (core-src)."""
    pid = _required(params, "id")
    if params.get("fields") in (None, ""):
        raise missing_parameter("fields")
    fields = as_mapping(params.get("fields"), "fields", legacy=False)
    with ctx.store.lock:
        _payment(ctx, pid)
        if "paid" in fields:
            _set_paid(ctx, pid, truthy(fields["paid"]))
        if "paySystemId" in fields:
            system = php_intval(fields["paySystemId"])
            if ctx.store.conn.execute("SELECT 1 FROM pay_system WHERE ID = ?", (system,)).fetchone():
                ctx.store.conn.execute("UPDATE payment SET PAY_SYSTEM_ID = ? WHERE ID = ?", (system, pid))
    return MethodResult(True)


@method("crm.item.payment.delete", "crm")
def payment_delete(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    pid = _required(params, "id")
    with ctx.store.lock:
        _payment(ctx, pid)
        ctx.store.conn.execute("DELETE FROM payment WHERE ID = ?", (pid,))
    return MethodResult(True)


def _pay(ctx: MethodContext, params: dict[str, Any], paid: bool) -> MethodResult:
    pid = _required(params, "id")
    with ctx.store.lock:
        _payment(ctx, pid)
        _set_paid(ctx, pid, paid)
    return MethodResult(True)


@method("crm.item.payment.pay", "crm")
def payment_pay(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    return _pay(ctx, params, True)


@method("crm.item.payment.unpay", "crm")
def payment_unpay(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    return _pay(ctx, params, False)


# ---- portal-wide listings (sale scope)
# ---------------------------------------------------------------------------


def _start(params: dict[str, Any]) -> int:
    raw = params.get("start", 0)
    return php_intval(raw) if not isinstance(raw, list | dict) else 0


def _count(ctx: MethodContext, from_sql: str, where: str, args: list[Any]) -> int:
    total = int(ctx.store.conn.execute(f"SELECT COUNT(*) FROM {from_sql} WHERE {where}", args).fetchone()[0])
    ctx.cost.counted += total
    return total


@method("sale.payment.list", "sale")
def sale_payment_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Standard select/filter/order/start, page 50, `{"payments": [...]}` plus total/next."""
    select = [str(s) for s in as_list(params.get("select"))]
    names = [n for n in _PAYMENT_COLUMNS if not select or "*" in select or n in select]
    start = _start(params)
    offset = (start // PAGE) * PAGE if start >= 0 else 0
    with ctx.store.lock:
        where, args = _where(ctx, _PAYMENT_COLUMNS, as_mapping(params.get("filter"), "filter", legacy=False))
        order_sql = _order(_PAYMENT_COLUMNS, as_mapping(params.get("order"), "order", legacy=False), "p.ID ASC")
        names_with_order = names if "orderId" in names else ["orderId", *names]
        rows = _payment_rows(ctx, names_with_order, where, args, order_sql, f" LIMIT {PAGE} OFFSET {offset}")
        total = _count(ctx, _FROM, where, args) if start >= 0 else None
    ctx.cost.rows_scanned += offset + len(rows)
    ctx.cost.rows_returned += len(rows)
    nxt = offset + PAGE if total is not None and offset + PAGE < total else None
    return MethodResult({"payments": rows}, total=total if total is not None else 0, next=nxt)


@method("crm.orderentity.list", "sale")
def order_entity_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """`{"orderEntity": [{orderId, ownerId, ownerTypeId}]}`; default order OWNER_ID asc; start=-1 returns
    every matching row (this method's documented meaning of -1).
    """
    start = _start(params)
    offset = (start // PAGE) * PAGE if start >= 0 else 0
    limit = f" LIMIT {PAGE} OFFSET {offset}" if start >= 0 else ""
    with ctx.store.lock:
        where, args = _where(ctx, _ORDER_ENTITY_COLUMNS, as_mapping(params.get("filter"), "filter", legacy=False))
        order_sql = _order(
            _ORDER_ENTITY_COLUMNS,
            as_mapping(params.get("order"), "order", legacy=False),
            "o.OWNER_ID ASC, o.ID ASC",
        )
        rows = [
            {"orderId": o, "ownerId": w, "ownerTypeId": t}
            for o, w, t in ctx.store.conn.execute(
                f"SELECT o.ID, o.OWNER_ID, o.OWNER_TYPE_ID FROM sale_order o WHERE {where} ORDER BY {order_sql}{limit}",
                args,
            )
        ]
        total = _count(ctx, "sale_order o", where, args) if start >= 0 else len(rows)
    ctx.cost.rows_scanned += offset + len(rows)
    ctx.cost.rows_returned += len(rows)
    nxt = offset + PAGE if start >= 0 and offset + PAGE < total else None
    return MethodResult({"orderEntity": rows}, total=total, next=nxt)
