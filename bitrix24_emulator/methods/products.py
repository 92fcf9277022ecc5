"""Product rows and the product catalog: crm.item.productrow.list / set (docs
crm/universal/product-rows/crm-item-productrow-*.md), catalog.catalog.list, catalog.product.list and
catalog.product.update / delete (scope `catalog`, docs catalog/catalog/catalog-catalog-list.md,
catalog/product/catalog-product-*.md).

The portal has the CRM's product catalog (an information block) and its catalog of offers (SKUs, whose
`productIblockId` names the product catalog); `catalog.product.list` needs `filter.iblockId`, `select` names
what comes back and must hold `id` and `iblockId`. A product's `timestampX` is its change time.

Rows have no timestamps. `=ownerType` (D, L, Q, SI, T<hex>) and `=ownerId` (a number or an array) are required
filters; rows come under `result.productRows`, 50 a page. `set` replaces every row of an owner and, as far as
the documentation says, leaves the owner itself untouched: the emulator does not touch its DATE_MODIFY.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, missing_parameter
from ..flat_lists import FlatList
from ..records import as_list, as_mapping
from ..seed_wider_crm import OFFERS_IBLOCK_ID, PRODUCT_IBLOCK_ID
from ..values import php_floatval, php_intval
from . import MethodContext, MethodResult, method

ROWS = FlatList(
    "product_row",
    {
        "id": ("ID", "int"),
        "ownerId": ("OWNER_ID", "int"),
        "ownerType": ("OWNER_TYPE", "text"),
        "productId": ("PRODUCT_ID", "int"),
        "productName": ("PRODUCT_NAME", "text"),
        "price": ("PRICE", "real"),
        "quantity": ("QUANTITY", "real"),
        "discountSum": ("DISCOUNT_SUM", "real"),
        "taxRate": ("TAX_RATE", "real"),
        "measureName": ("MEASURE_NAME", "text"),
        "sort": ("SORT", "int"),
    },
)
PRODUCTS = FlatList(
    "product",
    {
        "id": ("ID", "int"),
        "iblockId": ("IBLOCK_ID", "int"),
        "name": ("NAME", "text"),
        "active": ("ACTIVE", "text"),
        "timestampX": ("TIMESTAMP_X", "datetime"),
        "purchasingPrice": ("PRICE", "real"),
        "purchasingCurrency": ("CURRENCY", "text"),
    },
)


def _row(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "priceAccount": item["price"], "discountTypeId": 2, "customized": "Y", "type": 1}


@method("crm.item.productrow.list", "crm")
def product_row_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    flt = as_mapping(params.get("filter"), "filter", legacy=False)
    for required in ("=ownerType", "=ownerId"):
        if flt.get(required) in (None, "", []):
            raise missing_parameter(required)
    owner_ids = flt.pop("=ownerId")
    ids = [php_intval(i) for i in as_list(owner_ids)]
    start = php_intval(params.get("start", 0)) if not isinstance(params.get("start"), list | dict) else 0
    with ctx.store.lock:
        rows, total, nxt = ROWS.page(
            ctx,
            flt,
            as_mapping(params.get("order"), "order", legacy=False),
            start,
            f"OWNER_ID IN ({','.join('?' * len(ids))})",
            tuple(ids),
        )
    return MethodResult({"productRows": [_row(r) for r in rows]}, total=total, next=nxt)


@method("crm.item.productrow.set", "crm")
def product_row_set(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    owner_type, owner_id = str(params.get("ownerType") or ""), php_intval(params.get("ownerId"))
    if not owner_type or not owner_id:
        raise missing_parameter("ownerId" if owner_type else "ownerType")
    with ctx.store.lock:
        conn = ctx.store.conn
        owner = next((t for t in ctx.store.tables.values() if t.kind.crm_prefix == owner_type), None)
        if owner is None or not owner.exists(owner_id):
            raise ApiError("NOT_FOUND", "Owner not found")
        conn.execute("DELETE FROM product_row WHERE OWNER_TYPE = ? AND OWNER_ID = ?", (owner_type, owner_id))
        for n, item in enumerate(as_list(params.get("productRows"))):
            if not isinstance(item, dict):
                continue
            conn.execute(
                "INSERT INTO product_row (OWNER_TYPE, OWNER_ID, PRODUCT_ID, PRODUCT_NAME, PRICE, QUANTITY, "
                "DISCOUNT_SUM, TAX_RATE, MEASURE_NAME, SORT) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    owner_type,
                    owner_id,
                    php_intval(item.get("productId")),
                    str(item.get("productName") or ""),
                    php_floatval(item.get("price", 0)),
                    php_floatval(item.get("quantity", 1)),
                    php_floatval(item.get("discountSum", 0)),
                    php_floatval(item["taxRate"]) if item.get("taxRate") not in (None, "") else None,
                    str(item.get("measureName") or "pcs"),
                    php_intval(item.get("sort", 10 * (n + 1))),
                ),
            )
        rows, _t, _n = ROWS.page(ctx, {"=ownerType": owner_type, "=ownerId": owner_id}, {}, -1)
    return MethodResult({"productRows": [_row(r) for r in rows]})


CATALOGS = (
    {"iblockId": PRODUCT_IBLOCK_ID, "iblockTypeId": "CRM_PRODUCT_CATALOG", "id": PRODUCT_IBLOCK_ID, "lid": "s1",
     "name": "CRM product catalog", "productIblockId": None, "skuPropertyId": None, "subscription": "N", "vatId": None},
    {"iblockId": OFFERS_IBLOCK_ID, "iblockTypeId": "CRM_PRODUCT_CATALOG", "id": OFFERS_IBLOCK_ID, "lid": "s1",
     "name": "CRM product catalog (offers)", "productIblockId": PRODUCT_IBLOCK_ID, "skuPropertyId": 97,
     "subscription": "N", "vatId": None},
)  # fmt: skip


@method("catalog.catalog.list", "catalog")
def catalog_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Both catalogs, one page (`select` narrows the keys)."""
    select = [str(s) for s in as_list(params.get("select"))]
    catalogs = [{k: v for k, v in c.items() if not select or k in select} for c in CATALOGS]
    ctx.cost.rows_returned += len(catalogs)
    return MethodResult({"catalogs": catalogs}, total=len(catalogs))


@method("catalog.product.list", "catalog")
def product_list(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    flt = as_mapping(params.get("filter"), "filter", legacy=False)
    if flt.get("iblockId") in (None, ""):
        raise ApiError(200040300010, "Required filter field iblockId is missing")
    select = [str(s) for s in as_list(params.get("select"))]
    if not {"id", "iblockId"} <= set(select):
        raise ApiError(200040300010, "Required select fields: id, iblockId")
    start = php_intval(params.get("start", 0)) if not isinstance(params.get("start"), list | dict) else 0
    with ctx.store.lock:
        rows, total, nxt = PRODUCTS.page(ctx, flt, as_mapping(params.get("order"), "order", legacy=False), start)
        items = [{k: v for k, v in PRODUCTS.typed(r, ctx.store.tf).items() if k in select} for r in rows]
    return MethodResult({"products": items}, total=total, next=nxt)


@method("catalog.product.update", "catalog")
def product_update(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """`name`, `active`, `purchasingPrice`, `purchasingCurrency`; sets `timestampX` to now."""
    pid = php_intval(params.get("id"))
    fields = as_mapping(params.get("fields"), "fields", legacy=False)
    writable = {"name": "NAME", "active": "ACTIVE", "purchasingPrice": "PRICE", "purchasingCurrency": "CURRENCY"}
    values = {writable[k]: v for k, v in fields.items() if k in writable}
    with ctx.store.lock:
        conn = ctx.store.conn
        if conn.execute("SELECT 1 FROM product WHERE ID = ?", (pid,)).fetchone() is None:
            raise ApiError(200040300040, "Product is not exists")
        values["TIMESTAMP_X"] = int(ctx.clock.time())
        assignments = ", ".join(f"{column} = ?" for column in values)
        conn.execute(f"UPDATE product SET {assignments} WHERE ID = ?", (*values.values(), pid))
        rows, _total, _next = PRODUCTS.page(ctx, {"id": pid}, {}, -1)
        product = PRODUCTS.typed(rows[0], ctx.store.tf)
    return MethodResult({"product": product})


@method("catalog.product.delete", "catalog")
def product_delete(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    pid = php_intval(params.get("id"))
    with ctx.store.lock:
        if ctx.store.conn.execute("DELETE FROM product WHERE ID = ?", (pid,)).rowcount == 0:
            raise ApiError(200040300040, "Product is not exists")
        ctx.cost.rows_scanned += 1
    return MethodResult(True)
