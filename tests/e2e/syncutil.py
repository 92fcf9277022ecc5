"""What the sync e2e tests share: pipelines per destination, and "the warehouse equals the portal".

Equality is checked against what the portal's API returns (through the emulator's uncounted admin calls),
field by field, with the portal's own field metadata deciding how two values compare (a legacy `"19999.99"`
equals a numeric 19999.99, `"Y"` equals true, a date-only field equals its calendar date, datetimes equal as
instants). This canonical form is written here independently of the source's `FieldPlan`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt

from bitrix24_emulator import Portal
from pipelines.runner import SyncReport, make_pipeline, sync
from sources.bitrix24 import Catalog, EntitySpec
from sources.bitrix24.catalog import smart_process_spec

CATALOG = Catalog.for_portal()

SMALL_PORTAL = {"deals": 130, "leads": 70, "contacts": 60, "companies": 20, "users": 8, "limits": False}

_INT_TYPES = {"integer", "int", "crm_category", "enumeration", "iblock_element", "iblock_section"}
# links to a record or a user: 0 is no link
_LINK_TYPES = {"user", "employee", "crm_company", "crm_contact", "crm_lead", "crm_quote", "crm_deal", "crm_entity"}
_ENTRY_TYPES = ("crm_multifield", "crm_activity_communication")  # lists of entries: child tables
_KIND = {"double": "num", "char": "bool", "boolean": "bool", "date": "date", "datetime": "ts", "file": "json"}


def new_pipeline(tmp_path: Path, destination: str, postgres_url: str | None = None) -> dlt.Pipeline:
    """A pipeline with its own working folder, and (Postgres) its own dataset on the shared server."""
    return make_pipeline(
        destination,  # type: ignore[arg-type]
        duckdb_path=tmp_path / "warehouse.duckdb",
        postgres_url=postgres_url,
        pipelines_dir=tmp_path / "pipelines",
        dataset_name=f"crm_{uuid.uuid4().hex[:10]}" if destination == "postgres" else "bitrix24_crm",
    )


def run(pipeline: dlt.Pipeline, portal: Portal, **kwargs: Any) -> SyncReport:
    return sync(pipeline, credentials=portal.webhook_url, **kwargs)


def kind(meta: dict[str, Any]) -> str:
    if meta.get("type") in _LINK_TYPES:
        return "link"
    return "int" if meta.get("type") in _INT_TYPES else _KIND.get(str(meta.get("type")), "text")


def canon(kind_: str, value: Any, offset_now: timedelta | None = None) -> Any:
    """A comparable form of one value, from the API or from the warehouse. A date-only value from the API is
    the portal's local midnight plus the zone's offset at the time of the request (`offset_now`, read from the
    portal's clock): taking that offset off again gives the calendar date, independently of the sync's rule."""
    if value is None or value == "" or (value is False and kind_ != "bool"):
        return None
    if kind_ == "int":
        return int(value)
    if kind_ == "link":
        return int(value) or None
    if kind_ == "num":
        return round(float(value), 6)
    if kind_ == "bool":
        return value in (True, 1, "Y", "1", "true")
    if kind_ == "date":
        if isinstance(value, date):
            return value.isoformat()
        text = str(value)
        if len(text) > 10 and offset_now is not None:
            return (datetime.fromisoformat(text).replace(tzinfo=None) - offset_now).date().isoformat()
        return text[:10]
    if kind_ == "ts":
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.astimezone(UTC)
    if kind_ == "json":
        return json.loads(value) if isinstance(value, str) else value
    return str(value) if not isinstance(value, Decimal) else str(value)


def fits_decimal_column(text: str) -> bool:
    """Whether an amount fits decimal(38, 9): at most 9 decimals and 29 integer digits (the warehouse's money
    columns); what does not fit is loaded as NULL with its text."""
    try:
        number = Decimal(text.strip())
    except ArithmeticError:
        return False
    if not number.is_finite():
        return False
    exponent = number.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -9 and (not number or number.adjusted() < 29)


def portal_catalog(portal: Portal) -> Catalog:
    """The catalog of what the portal has now: the static entities and its smart processes (crm.type.list)."""
    types = portal.call("crm.type.list", {"order": {"id": "ASC"}})["types"]
    return Catalog.for_portal(smart_process_spec(t["entityTypeId"], t) for t in types)


def portal_list(portal: Portal, spec: EntitySpec, select: list[str] | None = None) -> Iterator[dict]:
    """Every row of an entity, by ID keyset through uncounted admin calls."""
    after: Any = 0
    while True:
        params = {
            **spec.base_params(),
            "select": select or spec.select(),
            "order": {spec.id_field: "ASC"},
            "filter": {f">{spec.id_field}": after},
            "start": -1,
        }
        page = portal.call(spec.list_method, params)
        for part in spec.items_path:
            page = page[part]
        yield from page
        if len(page) < 50:
            return
        after = page[-1][spec.id_field]


def query(pipeline: dlt.Pipeline, sql_template: str, *tables: str) -> list[dict[str, Any]]:
    """Rows of a query whose `{}` placeholders are filled with qualified table names."""
    with pipeline.sql_client() as client:
        sql = sql_template.format(*(client.make_qualified_table_name(t) for t in tables))
        with client.execute_query(sql) as cursor:
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def column_types(pipeline: dlt.Pipeline, table: str) -> dict[str, str]:
    rows = query(
        pipeline,
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{pipeline.dataset_name}' AND table_name = '{table}'",
    )
    return {r["column_name"]: r["data_type"].lower() for r in rows}


def norm(pipeline: dlt.Pipeline, name: str) -> str:
    return _naming(pipeline).normalize_identifier(name)


def _naming(pipeline: dlt.Pipeline) -> Any:
    """`pipeline.default_schema` reloads the schema from disk on every access: take the naming once."""
    return pipeline.default_schema.naming


def assert_entity_equal(pipeline: dlt.Pipeline, portal: Portal, spec: EntitySpec) -> None:
    """Root rows field by field, multi-fields and multiple fields as child tables; no duplicate IDs."""
    naming = _naming(pipeline)
    offset_now = portal.clock.now().utcoffset()
    meta = spec.fields_of(portal.call(spec.fields_method, spec.base_params()))
    expected = {int(r[spec.id_field]): r for r in portal_list(portal, spec)}
    stored = query(pipeline, "SELECT * FROM {}", spec.resource)
    ids = [int(r["id"]) for r in stored]
    assert len(ids) == len(set(ids)), f"{spec.resource}: duplicate IDs in the warehouse"
    assert set(ids) == set(expected), f"{spec.resource}: IDs differ from the portal"
    by_dlt_id = {r["_dlt_id"]: int(r["id"]) for r in stored}
    for row in stored:
        api = expected[int(row["id"])]
        for code, value in api.items():
            m = meta.get(code, {})
            if m.get("isMultiple") or m.get("type") in _ENTRY_TYPES:
                continue
            column = naming.normalize_identifier(code)
            got = row.get(column)
            if m.get("type") == "money":
                amount = row.get(naming.normalize_identifier(code + "_amount"))
                sent = (value or "").partition("|")[0] or None
                if amount is None and sent is not None and not fits_decimal_column(sent):
                    assert got == value, (code, row)  # NULL, with the text kept in the money column itself
                    continue
                assert canon("num", amount) == canon("num", sent), (code, row)
            assert canon(kind(m), got) == canon(kind(m), value, offset_now), (
                spec.resource,
                api[spec.id_field],
                code,
                value,
            )
    for code, m in meta.items():
        if not (m.get("isMultiple") or m.get("type") in _ENTRY_TYPES):
            continue
        child = f"{spec.resource}__{naming.normalize_identifier(code)}"
        if not any(api.get(code) for api in expected.values()):
            continue
        children = query(pipeline, "SELECT * FROM {} ORDER BY _dlt_parent_id, _dlt_list_idx", child)
        got: dict[int, list[Any]] = {}
        for c in children:
            if m.get("type") == "crm_multifield":
                item = (int(c["id"]), c["value_type"], c["value"])
            elif m.get("type") == "crm_activity_communication":
                item = (int(c["id"]), c["type"], c["value"])
            else:
                item = canon(kind(m), c["value"])
            got.setdefault(by_dlt_id[c["_dlt_parent_id"]], []).append(item)
        for entity_id, api in expected.items():
            values = api.get(code) or []
            if m.get("type") == "crm_multifield":
                want = [(int(v["ID"]), v["VALUE_TYPE"], v["VALUE"]) for v in values]
            elif m.get("type") == "crm_activity_communication":
                want = [(int(v["ID"]), v["TYPE"], v["VALUE"]) for v in values]
            else:
                want = [canon(kind(m), v, offset_now) for v in values]
            assert got.get(entity_id, []) == want, (child, entity_id)


def portal_payments(portal: Portal, owner_types: tuple[int, ...] = (2, 31)) -> dict[int, tuple]:
    """Every payment of every owner (deals, smart invoices), read per owner."""
    out = {}
    for spec in CATALOG.entities:
        if not spec.owns_payments or spec.entity_type_id not in owner_types:
            continue
        for owner in portal_list(portal, spec, [spec.id_field]):
            owner_id = int(owner[spec.id_field])
            for p in portal.call("crm.item.payment.list", {"entityTypeId": spec.entity_type_id, "entityId": owner_id}):
                out[int(p["id"])] = (
                    spec.entity_type_id,
                    owner_id,
                    canon("bool", p["paid"]),
                    canon("num", p["sum"]),
                    p["currency"],
                    canon("ts", p["datePaid"]),
                )
    return out


def assert_payments_equal(pipeline: dlt.Pipeline, portal: Portal, owner_types: tuple[int, ...] = (2, 31)) -> None:
    stored = query(pipeline, "SELECT * FROM {} WHERE _deleted_at IS NULL", "payments")  # marked deleted: gone
    got = {
        int(r["id"]): (
            r["owner_type_id"],
            r["owner_id"],
            r["paid"],
            canon("num", r["sum"]),
            r["currency"],
            canon("ts", r["date_paid"]),
        )
        for r in stored
    }
    assert len(got) == len(stored), "duplicate payment ids"
    assert got == portal_payments(portal, owner_types)


def assert_reference_equal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    catalog = portal_catalog(portal)
    stages = {(r["entity_id"], r["status_id"], r["name"]) for r in query(pipeline, "SELECT * FROM {}", "stages")}
    expected = {(s["ENTITY_ID"], s["STATUS_ID"], s["NAME"]) for s in portal.call("crm.status.list")}
    assert stages == expected, (len(stages), len(expected), sorted(stages ^ expected)[:5])
    users = {(int(r["id"]), r["name"], r["last_name"]) for r in query(pipeline, "SELECT * FROM {}", "users")}
    assert users == {(int(u["ID"]), u["NAME"], u["LAST_NAME"]) for u in portal.call("user.get")}
    categories = [
        (c["entityTypeId"], c["id"], c["name"])
        for s in catalog.entities
        if s.has_pipelines
        for c in portal.call("crm.category.list", {"entityTypeId": s.entity_type_id})["categories"]
    ]
    stored = query(pipeline, "SELECT * FROM {}", "pipelines")
    assert {(r["entity_type_id"], r["id"], r["name"]) for r in stored} == set(categories)
    fields = {(r["entity"], r["code"]) for r in query(pipeline, "SELECT * FROM {}", "fields")}
    assert fields == {
        (s.resource, code)
        for s in catalog.entities
        for code in s.fields_of(portal.call(s.fields_method, s.base_params()))
    }


def assert_warehouse_equals_portal(pipeline: dlt.Pipeline, portal: Portal) -> None:
    for spec in portal_catalog(portal).entities:
        assert_entity_equal(pipeline, portal, spec)
    assert_payments_equal(pipeline, portal)
    assert_reference_equal(pipeline, portal)


def state_of(pipeline: dlt.Pipeline) -> dict[str, Any]:
    return json.loads(json.dumps(pipeline.state["sources"]["bitrix24"]["resources"]))


def cursors_of(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The incremental positions in state (without the metadata cache and reference stamps)."""
    keys = ("cursor", "owner_cursors", "last_payment_id", "last_sweep")
    return {name: {k: v for k, v in s.items() if k in keys} for name, s in state_of(pipeline).items()}
