"""The analysts' views after a real sync into DuckDB and Postgres: each view row equals the raw tables joined by
hand here (in Python, from plain SELECTs), user fields are named after the labels the portal's own metadata gives,
every view column is a lower-case name typed without quotes, and a user field added on the portal is in `v_deals`
after the next run."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

import dlt

from bitrix24_emulator import Portal
from pipelines.views import MAX_IDENTIFIER_BYTES
from tests.e2e.syncutil import SMALL_PORTAL, portal_catalog, portal_list, query, run

VIEWS = {"v_deals", "v_leads", "v_contacts", "v_companies", "v_invoices", "v_payments"}
SEMANTICS = {"S": "won", "F": "lost", None: "open"}


def rows(pipeline: dlt.Pipeline, table: str) -> list[dict[str, Any]]:
    return query(pipeline, "SELECT * FROM {}", table)


def by_id(pipeline: dlt.Pipeline, table: str) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in rows(pipeline, table)}


def full_name(person: dict[str, Any] | None) -> str | None:
    if person is None:
        return None
    return " ".join(p for p in (person.get("name") or "", person.get("last_name") or "") if p).strip() or None


def children(pipeline: dlt.Pipeline, table: str) -> dict[str, list[Any]]:
    """Child-table values per parent row, in list order."""
    values: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for r in rows(pipeline, table):
        values[r["_dlt_parent_id"]].append((r["_dlt_list_idx"], r["value"]))
    return {parent: [v for _, v in sorted(items)] for parent, items in values.items()}


def user_fields(portal: Portal) -> dict[tuple[str, bool], tuple[str, str, dict[int, str]]]:
    """(type, multiple) -> (code, label, option id -> option label) of the first such deal user field."""
    found: dict[tuple[str, bool], tuple[str, str, dict[int, str]]] = {}
    for code, meta in portal.call("crm.deal.fields").items():
        if code.startswith("UF_"):
            options = {int(i["ID"]): i["VALUE"] for i in meta.get("items") or []}
            found.setdefault((meta["type"], bool(meta["isMultiple"])), (code, meta["listLabel"], options))
    return found


def named(label: str) -> str:
    """A view's name of a label: lower case, every run of other characters one underscore."""
    return re.sub(r"[^0-9a-zа-яё]+", "_", label.lower()).strip("_")


def view_columns(pipeline: dlt.Pipeline, view: str) -> list[str]:
    found = query(
        pipeline,
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = '{pipeline.dataset_name}' AND table_name = '{view}' ORDER BY ordinal_position",
    )
    return [r["column_name"] for r in found]


def test_views_join_the_dictionaries_and_label_user_fields(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    views = query(
        pipeline,
        f"SELECT table_name FROM information_schema.views WHERE table_schema = '{pipeline.dataset_name}'",
    )
    smart = {f"v_sp_{t['entityTypeId']}" for t in portal.call("crm.type.list")["types"]}
    wider = {
        "v_quotes",
        "v_activities",
        "v_stage_history",
        "v_product_rows",
        "v_deal_contacts",
        "v_stages",
        "v_stage_funnel",
        "v_deal_activities",
        "v_product_revenue",
    }
    assert {v["table_name"] for v in views} == VIEWS | wider | smart
    for v in views:  # one style: every column a lower-case name that needs no quotes (Cyrillic labels included)
        odd = [c for c in view_columns(pipeline, v["table_name"]) if not re.fullmatch(r"[a-zа-яё_][0-9a-zа-яё_]*", c)]
        assert not odd, (v["table_name"], odd)

    stages = rows(pipeline, "stages")
    pipelines = {(p["entity_type_id"], p["id"]): p["name"] for p in rows(pipeline, "pipelines")}
    users, companies, contacts = by_id(pipeline, "users"), by_id(pipeline, "companies"), by_id(pipeline, "contacts")
    raw_deals = rows(pipeline, "deals")
    naming = pipeline.default_schema.naming
    ufs = {key: (code, named(label), options) for key, (code, label, options) in user_fields(portal).items()}
    clinic, clinic_label, clinic_options = ufs[("enumeration", False)]
    services, services_label, services_options = ufs[("enumeration", True)]
    prepayment, prepayment_label, _ = ufs[("money", False)]
    coordinator, coordinator_label, _ = ufs[("employee", False)]
    referrer, referrer_label, _ = ufs[("crm", False)]
    hotel, hotel_label, _ = ufs[("address", False)]
    services_values = children(pipeline, naming.shorten_fragments("deals", naming.normalize_identifier(services)))

    view = by_id(pipeline, "v_deals")
    assert len(view) == len(raw_deals) == SMALL_PORTAL["deals"]
    assert not any(c.startswith("uf_crm") or c.startswith("_dlt") for c in view[raw_deals[0]["id"]])
    checked = defaultdict(int)
    for deal in raw_deals:
        v = view[deal["id"]]
        stage = next(
            s
            for s in stages
            if s["status_id"] == deal["stage_id"]
            and s["entity_id"].startswith("DEAL_STAGE")
            and (s["category_id"] or 0) == deal["category_id"]
        )
        assert v["stage_name"] == stage["name"]
        assert v["stage_semantics"] == SEMANTICS[stage.get("semantics")]
        checked[v["stage_semantics"]] += 1
        assert v["pipeline_name"] == pipelines[(2, deal["category_id"])]
        assert v["assigned_by_name"] == full_name(users.get(deal["assigned_by_id"]))
        assert v["company_name"] == (companies[deal["company_id"]]["title"] if deal["company_id"] else None)
        assert v["contact_name"] == full_name(contacts.get(deal["contact_id"]))
        assert v["title"] == deal["title"] and v["opportunity"] == deal["opportunity"]

        enum_id = deal[naming.normalize_identifier(clinic)]
        assert v[clinic_label] == (clinic_options[enum_id] if enum_id is not None else None)
        chosen = [services_options[i] for i in services_values.get(deal["_dlt_id"], [])]
        assert v[services_label] == (", ".join(chosen) or None)
        money = naming.normalize_identifier(prepayment)
        assert v[prepayment_label] == deal[money + "_amount"]
        assert v[f"{prepayment_label}_currency"] == deal[money + "_currency"]
        assert v[coordinator_label] == full_name(users.get(deal[naming.normalize_identifier(coordinator)]))
        link = deal[naming.normalize_identifier(referrer)]  # a `crm` field: C_<contact id> or CO_<company id>
        kind, _, linked = (link or "").partition("_")
        expected = full_name(contacts.get(int(linked))) if kind == "C" else None
        expected = companies[int(linked)]["title"] if kind == "CO" else expected
        assert v[referrer_label] == link and v[f"{referrer_label}_name"] == expected, link
        checked["referrers"] += expected is not None
        address, _, rest = (deal[naming.normalize_identifier(hotel)] or "").partition("|")
        assert v[hotel_label] == (address or None) and v[f"{hotel_label}_coordinates"] == (rest.split("|")[0] or None)
        checked["addresses"] += bool(rest)
        checked["labels"] += bool(enum_id is not None and chosen and deal[money + "_amount"] is not None)
    assert checked["won"] and checked["lost"] and checked["open"] and checked["labels"] and checked["referrers"]
    assert checked["addresses"]
    assert any(isinstance(v[prepayment_label], Decimal) for v in view.values())

    leads = by_id(pipeline, "v_leads")
    for lead in rows(pipeline, "leads"):
        v = leads[lead["id"]]
        source = next((s for s in stages if s["entity_id"] == "SOURCE" and s["status_id"] == lead["source_id"]), None)
        status = next(s for s in stages if s["entity_id"] == "STATUS" and s["status_id"] == lead["status_id"])
        assert v["source_name"] == (source["name"] if source else None)
        assert v["status_name"] == status["name"]
        assert v["status_semantics"] == {"S": "converted", "F": "junk", None: "open"}[status.get("semantics")]

    phones = children(pipeline, "contacts__phone")
    contact_view = by_id(pipeline, "v_contacts")
    for contact in contacts.values():
        assert contact_view[contact["id"]]["phone"] == (", ".join(phones.get(contact["_dlt_id"], [])) or None)
        assert contact_view[contact["id"]]["company_name"] == (
            companies[contact["company_id"]]["title"] if contact["company_id"] else None
        )

    invoices = by_id(pipeline, "invoices")
    deals = {d["id"]: d for d in raw_deals}
    payments = by_id(pipeline, "v_payments")
    assert len(payments) == len(rows(pipeline, "payments"))
    for payment in payments.values():
        if payment["owner_type_id"] == 2:
            deal_id = payment["owner_id"]
        else:
            assert payment["invoice_title"] == invoices[payment["owner_id"]]["title"]
            deal_id = invoices[payment["owner_id"]]["parent_id2"]
        assert payment["deal_id"] == deal_id
        assert payment["deal_title"] == (deals[deal_id]["title"] if deal_id in deals else None)


def test_a_new_user_field_appears_in_the_view_after_the_next_run(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    _, clinic_label, _ = user_fields(portal)[("enumeration", False)]
    long_label = "Источник финансирования лечения пациента за рубежом"  # 97 bytes in UTF-8
    added = {}
    for name, label in (("FUNDING", long_label), ("CLINIC2", clinic_label)):
        portal.call(
            "crm.deal.userfield.add",
            {
                "fields": {
                    "FIELD_NAME": name,
                    "USER_TYPE_ID": "enumeration",
                    "LIST_COLUMN_LABEL": label,
                    "EDIT_FORM_LABEL": label,
                    "LIST": [{"VALUE": "ОМС"}, {"VALUE": "Собственные средства"}],
                }
            },
        )
        added[name] = next((c, m) for c, m in portal.call("crm.deal.fields").items() if c.startswith(f"UF_CRM_{name}"))
    chosen = {
        code: next(i["ID"] for i in meta["items"] if i["VALUE"] == "Собственные средства")
        for code, meta in added.values()
    }
    portal.call("crm.deal.update", {"id": 5, "fields": chosen})
    clinic2 = added["CLINIC2"][0]

    run(pipeline, portal)
    columns = view_columns(pipeline, "v_deals")
    capped = named(long_label).encode()[:MAX_IDENTIFIER_BYTES].decode(errors="ignore").rstrip("_")
    assert capped in columns and len(capped.encode()) <= MAX_IDENTIFIER_BYTES
    naming = pipeline.default_schema.naming
    duplicate = f"{named(clinic_label)}_{naming.normalize_identifier(clinic2)}"  # the name was taken
    assert duplicate in columns and columns.count(named(clinic_label)) == 1
    sql = f"SELECT id, {capped} AS funding, {duplicate} AS clinic2 FROM {{}} ORDER BY id"  # no quotes needed
    found = query(pipeline, sql, "v_deals")
    assert found[4] == {"id": 5, "funding": "Собственные средства", "clinic2": "Собственные средства"}
    assert all(r["funding"] is None for r in found if r["id"] != 5)

    # a full refresh drops and reloads the tables (Postgres refuses to drop a table under a view): views again
    run(pipeline, portal, full_refresh=True)
    assert query(pipeline, sql, "v_deals")[4] == found[4]


def test_the_fields_table_names_each_fields_column_or_child_table(pipeline: dlt.Pipeline, portal: Portal) -> None:
    """An analyst finds a field's column from its label: `fields.column_name` (or `child_table`) is where it is."""
    run(pipeline, portal)
    with pipeline.sql_client() as client:
        existing = {
            (table, column)
            for table, column in client.execute_sql(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
                pipeline.dataset_name,
            )
        }
    rows = query(pipeline, "SELECT entity, code, column_name, child_table FROM {}", "fields")
    assert rows and all(bool(r["column_name"]) != bool(r["child_table"]) for r in rows)
    named = {(r["entity"], r["column_name"]) for r in rows if r["column_name"]}
    for entity in ("deals", "leads", "contacts", "companies", "invoices"):
        columns = {c for t, c in existing if t == entity}
        own = {
            c
            for c in columns
            if not c.startswith("_") and not c.endswith(("__raw", "_amount", "_currency")) and c != "portal"
        } - {"entity_type_id"}  # crm.item.list sends entityTypeId, which crm.item.fields does not describe
        assert own and own <= {c for e, c in named if e == entity}, (entity, own - {c for e, c in named})
    children = {(r["entity"], r["code"]): r["child_table"] for r in rows if r["child_table"]}
    assert children[("contacts", "PHONE")] == "contacts__phone"
    assert {t for t, _ in existing if t.startswith("contacts__")} <= set(children.values())


def test_field_labels_are_column_comments(pipeline: dlt.Pipeline, portal: Portal) -> None:
    run(pipeline, portal)
    if pipeline.destination.destination_name == "duckdb":
        sql = (
            "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = %s AND table_name = 'deals' "
            "AND comment IS NOT NULL"
        )
    else:
        sql = (
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'deals' AND col_description(a.attrelid, a.attnum) IS NOT NULL"
        )
    with pipeline.sql_client() as client:
        comments = dict(client.execute_sql(sql, pipeline.dataset_name))
    meta = portal.call("crm.deal.fields")
    assert comments["uf_crm_1699000007"] == meta["UF_CRM_1699000007"]["listLabel"] == "Clinic"
    assert comments["title"] == meta["TITLE"]["title"]


def test_v_stages_names_the_dictionary_and_pipeline_of_every_value_the_records_use(
    pipeline: dlt.Pipeline, portal: Portal
) -> None:
    """Independently of how the view reads ENTITY_ID: every (pipeline, stage) a deal or smart-process item has
    on the portal is a row of v_stages with that entity type, pipeline id and the pipeline's name from
    crm.category.list; a lead's status is a lead status, its source a source."""
    run(pipeline, portal)
    rows = query(pipeline, "SELECT * FROM {}", "v_stages")
    by_value: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_value[(row["dictionary"], row["status_id"])].append(row)
    catalog = portal_catalog(portal)
    used = {(2, int(d["CATEGORY_ID"]), d["STAGE_ID"]) for d in portal_list(portal, catalog.entity("deals"))}
    for spec in catalog.smart_processes:
        used |= {(spec.entity_type_id, i["categoryId"], i["stageId"]) for i in portal_list(portal, spec)}
    names = {
        (type_id, c["id"]): c["name"]
        for type_id in {u[0] for u in used}
        for c in portal.call("crm.category.list", {"entityTypeId": type_id})["categories"]
    }
    assert len({u[0] for u in used}) >= 3
    for type_id, category, stage in used:
        kind = "deal stage" if type_id == 2 else "smart process stage"
        (row,) = [r for r in by_value[(kind, stage)] if r["entity_type_id"] == type_id]
        assert (row["pipeline_id"], row["pipeline_name"]) == (category, names[(type_id, category)]), stage
        assert row["stage_semantics"] in ("open", "won", "lost")
    leads = list(portal_list(portal, catalog.entity("leads")))
    assert all(by_value[("lead status", lead["STATUS_ID"])] for lead in leads)
    assert all(by_value[("source", lead["SOURCE_ID"])] for lead in leads if lead["SOURCE_ID"])
    assert {r["stage_semantics"] for r in rows if r["dictionary"] == "lead status"} >= {"converted", "junk", "open"}
    assert {r["stage_semantics"] for r in rows if r["dictionary"] == "source"} == {None}
