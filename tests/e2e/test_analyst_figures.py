"""The numbers an analyst reads: the README's example queries and the notebook's tables, each checked against
figures computed independently from the portal's own API (never from the same SQL)."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import dlt
import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from bitrix24_emulator import Portal
from pipelines.runner import DATASET_NAME
from sources.bitrix24 import Catalog
from tests.e2e.syncutil import SMALL_PORTAL, canon, new_pipeline, portal_list, run

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog.for_portal()
PORTAL = {**SMALL_PORTAL, "leads": 120, "deals": 200}


def readme_query(title: str) -> str:
    """The statement under `-- <title>` in the README's example queries."""
    text = (ROOT / "README.md").read_text()
    block = text.split("### Example queries", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    match = re.search(rf"^-- {re.escape(title)}[^\n]*\n(.*?);", block, re.M | re.S)
    assert match, title
    return match.group(1)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Portal, dlt.Pipeline, Path]]:
    folder = tmp_path_factory.mktemp("figures")
    with Portal(**PORTAL) as portal:
        pipeline = new_pipeline(folder, "duckdb")
        run(pipeline, portal)
        yield portal, pipeline, folder / "warehouse.duckdb"


def rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).fetchall()


def leads_by_source(portal: Portal) -> dict[str | None, tuple[int, int]]:
    """source name -> (leads, leads that some deal names as its lead), from the API."""
    names = {s["STATUS_ID"]: s["NAME"] for s in portal.call("crm.status.list", {"filter": {"ENTITY_ID": "SOURCE"}})}
    with_deal = {
        int(d["LEAD_ID"]) for d in portal_list(portal, CATALOG.entity("deals"), ["ID", "LEAD_ID"]) if d["LEAD_ID"]
    }
    figures: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
    for lead in portal_list(portal, CATALOG.entity("leads"), ["ID", "SOURCE_ID"]):
        counts = figures[names.get(lead["SOURCE_ID"]) if lead["SOURCE_ID"] else None]
        counts[0] += 1
        counts[1] += int(lead["ID"]) in with_deal
    return {k: (v[0], v[1]) for k, v in figures.items()}


def test_leads_by_source_count_each_lead_once(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    deals_per_lead = Counter(
        int(d["LEAD_ID"]) for d in portal_list(portal, CATALOG.entity("deals"), ["ID", "LEAD_ID"]) if d["LEAD_ID"]
    )
    assert max(deals_per_lead.values()) > 1  # some lead has two deals: a join would count it twice
    got = {
        source: (leads, with_deals)
        for source, leads, with_deals in rows(path, readme_query("leads by advertising source"))
    }
    assert got == leads_by_source(portal)


def test_won_revenue_by_month_and_currency(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    won_stages = {
        s["STATUS_ID"]
        for s in portal.call("crm.status.list")
        if s["ENTITY_ID"].startswith("DEAL_STAGE") and s.get("SEMANTICS") == "S"
    }
    offset_now = portal.clock.now().utcoffset()
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for deal in portal_list(
        portal, CATALOG.entity("deals"), ["ID", "STAGE_ID", "CLOSEDATE", "CURRENCY_ID", "OPPORTUNITY"]
    ):
        if deal["STAGE_ID"] in won_stages:
            day = canon("date", deal["CLOSEDATE"], offset_now)
            month = f"{day[:7]}-01" if day else None
            expected[(month, deal["CURRENCY_ID"])] += Decimal(deal["OPPORTUNITY"] or "0")
    got = {
        (str(month)[:10] if month else None, currency): won
        for month, currency, won in rows(path, readme_query("won revenue by month and currency"))
    }
    assert got == dict(expected)


def test_a_custom_enumeration_decoded_by_its_label(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    meta = portal.call("crm.deal.fields")["UF_CRM_1699000007"]
    assert meta["listLabel"] == "Clinic"
    labels = {int(i["ID"]): i["VALUE"] for i in meta["items"]}
    expected = {
        int(d["ID"]): labels[int(d["UF_CRM_1699000007"])]
        for d in portal_list(portal, CATALOG.entity("deals"), ["ID", "UF_CRM_1699000007"])
        if d["UF_CRM_1699000007"] and int(d["UF_CRM_1699000007"]) in labels
    }
    assert dict(rows(path, readme_query("decode a custom enumeration field by its label"))) == expected


def test_the_notebooks_tables(loaded: tuple[Portal, dlt.Pipeline, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The notebook's leads by source, median days in stage, treatments sold and funnel, against the API's
    figures."""
    portal, _, path = loaded
    monkeypatch.setenv("BITRIX24_DUCKDB", str(path))
    monkeypatch.setenv("BITRIX24_DATASET", DATASET_NAME)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(ROOT / "notebooks" / "crm_analyses.ipynb", as_version=4)
    for table in ("sources", "stays", "treatments", "funnel"):
        notebook.cells.append(nbformat.v4.new_code_cell(f'print({table}.to_json(orient="records"))'))
    NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    printed = ["".join(o.get("text", "") for o in cell.outputs) for cell in notebook.cells[-4:]]
    table = {r["source"]: (r["leads"], r["leads_with_deals"]) for r in json.loads(printed[0])}
    expected = {(k or "(no source)"): v for k, v in leads_by_source(portal).items()}
    assert table == expected
    medians = {(r["pipeline_name"], r["stage_name"]): (r["median_days"], r["stays"]) for r in json.loads(printed[1])}
    stays = deal_stays(portal)
    assert set(medians) == set(stays)
    for key, seconds in stays.items():
        assert medians[key][1] == len(seconds)
        assert abs(medians[key][0] - statistics.median(seconds) / 86400) < 1e-6, key
    sold = {(r["product_name"], r["currency"]): r["revenue"] for r in json.loads(printed[2])}
    revenue = won_treatments(portal)
    assert set(sold) == set(revenue)
    assert all(abs(sold[k] - float(v)) < 0.01 for k, v in revenue.items())
    funnel = {(r["pipeline_name"], r["stage_name"]): (r["reached"], r["in_stage_now"]) for r in json.loads(printed[3])}
    assert funnel == deal_funnel(portal)


def test_payments_by_month_fall_in_the_portals_month(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    """Payments made just after midnight on the 1st (portal time, +03:00) belong to the new month, not to the
    previous one as a UTC month would have it."""
    portal, pipeline, path = loaded
    zone = portal.clock.tz
    with portal.store.lock:
        ids = [i for (i,) in portal.store.conn.execute("SELECT ID FROM payment ORDER BY ID LIMIT 6").fetchall()]
        for n, payment_id in enumerate(ids):
            paid_at = datetime(2024, 1 + n, 1, 0, 30, tzinfo=zone).timestamp()
            portal.store.conn.execute(
                "UPDATE payment SET PAID = 'Y', DATE_PAID = ? WHERE ID = ?", (int(paid_at), payment_id)
            )
    run(pipeline, portal, source_options={"payment_sweep_hours": 0})  # a sweep re-reads every payment
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for spec in CATALOG.payment_owners:
        for owner in portal_list(portal, spec, [spec.id_field]):
            params = {"entityTypeId": spec.entity_type_id, "entityId": owner[spec.id_field]}
            for payment in portal.call("crm.item.payment.list", params):
                if payment["paid"] == "Y" and payment["datePaid"]:
                    expected[(payment["datePaid"][:7], payment["currency"])] += Decimal(str(payment["sum"]))
    got = {
        (str(month)[:7], currency): Decimal(str(received))
        for month, currency, received in rows(path, readme_query("payments received by month"))
    }
    assert got == {key: value.quantize(Decimal("0.000000001")) for key, value in expected.items()}
    assert {("2024-01", c) for (m, c) in got if m == "2024-01"}  # the 00:30 payments are there


def api_rows(portal: Portal, method: str, params: dict, rows_at: str | None, id_field: str) -> list[dict]:
    """Every row of a list method through the API, by ID keyset."""
    out, after = [], 0
    while True:
        page = portal.call(
            method,
            {**params, "order": {id_field: "ASC"}, "filter": {**params.get("filter", {}), f">{id_field}": after}},
        )
        page = page[rows_at] if rows_at else page
        out += page
        if len(page) < 50:
            return out
        after = page[-1][id_field]


def deal_stays(portal: Portal) -> dict[tuple[str, str], list[float]]:
    """(pipeline, stage) -> seconds of each finished stay, from the deals' stage history in the API."""
    pipelines = {c["id"]: c["name"] for c in portal.call("crm.category.list", {"entityTypeId": 2})["categories"]}
    names = {(s["ENTITY_ID"], s["STATUS_ID"]): s["NAME"] for s in portal.call("crm.status.list")}
    moves: dict[int, list[tuple[datetime, int, dict]]] = defaultdict(list)
    for row in api_rows(portal, "crm.stagehistory.list", {"entityTypeId": 2}, "items", "ID"):
        moves[row["OWNER_ID"]].append((datetime.fromisoformat(row["CREATED_TIME"]), row["ID"], row))
    stays: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path_of_deal in moves.values():
        path_of_deal.sort(key=lambda m: (m[0], m[1]))
        for (entered, _i, row), (left, _j, _r) in zip(path_of_deal, path_of_deal[1:], strict=False):
            entity = "DEAL_STAGE" if row["CATEGORY_ID"] == 0 else f"DEAL_STAGE_{row['CATEGORY_ID']}"
            key = (pipelines[row["CATEGORY_ID"]], names[(entity, row["STAGE_ID"])])
            stays[key].append((left - entered).total_seconds())
    return stays


def test_days_in_each_stage_per_pipeline(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    """Each finished stay from the deals' stage history, measured from one move to the next."""
    portal, _, path = loaded
    stays = deal_stays(portal)
    assert sum(len(v) for v in stays.values()) > 20
    got = {(p, s): (days, n) for p, s, days, n in rows(path, readme_query("average days deals spend in each stage"))}
    assert set(got) == set(stays)
    for key, seconds in stays.items():
        days, n = got[key]
        assert n == len(seconds)
        assert abs(float(days) - sum(seconds) / len(seconds) / 86400) <= 0.05 + 1e-9, key


def won_treatments(portal: Portal) -> dict[tuple[str, str], Decimal]:
    """(product, currency) -> revenue of won deals, from the deals and their product rows in the API."""
    won = {
        int(d["ID"]): d["CURRENCY_ID"]
        for d in portal_list(portal, CATALOG.entity("deals"), ["ID", "STAGE_SEMANTIC_ID", "CURRENCY_ID"])
        if d["STAGE_SEMANTIC_ID"] == "S"
    }
    expected: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    ids = sorted(won)
    for start in range(0, len(ids), 50):
        flt = {"=ownerType": "D", "=ownerId": ids[start : start + 50]}
        for r in api_rows(portal, "crm.item.productrow.list", {"filter": flt}, "productRows", "id"):
            expected[(r["productName"], won[r["ownerId"]])] += Decimal(str(r["price"])) * Decimal(str(r["quantity"]))
    return expected


def test_revenue_of_won_deals_by_treatment(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    expected = won_treatments(portal)
    assert expected
    got = {(name, cur): revenue for name, cur, revenue in rows(path, readme_query("treatments sold"))}
    assert got.keys() == expected.keys()
    for key, revenue in expected.items():
        assert abs(got[key] - revenue) < Decimal("0.01"), key


def test_touches_per_deal(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    """Activities per deal and of which kind (TYPE_ID 2 call, 4 e-mail), counted from crm.activity.list."""
    portal, _, path = loaded
    select = ["ID", "OWNER_ID", "TYPE_ID"]
    activities = api_rows(portal, "crm.activity.list", {"filter": {"OWNER_TYPE_ID": 2}, "select": select}, None, "ID")
    touches = Counter(int(a["OWNER_ID"]) for a in activities)
    calls = Counter(int(a["OWNER_ID"]) for a in activities if a["TYPE_ID"] == "2")
    emails = Counter(int(a["OWNER_ID"]) for a in activities if a["TYPE_ID"] == "4")
    deals = [int(d["ID"]) for d in portal_list(portal, CATALOG.entity("deals"), ["ID"])]
    got = {d: (t, c, e) for d, t, c, e in rows(path, readme_query("touches per deal"))}
    assert got == {d: (touches[d], calls[d], emails[d]) for d in deals}
    assert max(t for t, _c, _e in got.values()) >= 3 and sum(calls.values()) and sum(emails.values())


def deal_funnel(portal: Portal) -> dict[tuple[str, str], tuple[int, int]]:
    """(pipeline, stage) -> (deals that reached it, deals in it now), from the API: a deal reached a stage when
    its history has that stage or a later one (by the stage's sort) that is not a failure; a failure stage
    is reached only by entering it."""
    pipelines = {c["id"]: c["name"] for c in portal.call("crm.category.list", {"entityTypeId": 2})["categories"]}
    stages = {}
    for s in portal.call("crm.status.list"):
        if s["ENTITY_ID"].startswith("DEAL_STAGE"):
            category = int(s.get("CATEGORY_ID") or 0)
            stages[(category, s["STATUS_ID"])] = (s["NAME"], int(s["SORT"]), s["SEMANTICS"] == "F")
    entered: dict[int, set[tuple[int, str]]] = defaultdict(set)
    for row in api_rows(portal, "crm.stagehistory.list", {"entityTypeId": 2}, "items", "ID"):
        entered[row["OWNER_ID"]].add((row["CATEGORY_ID"], row["STAGE_ID"]))
    current = Counter(
        (int(d["CATEGORY_ID"]), d["STAGE_ID"])
        for d in portal_list(portal, CATALOG.entity("deals"), ["ID", "CATEGORY_ID", "STAGE_ID"])
    )

    def reached(path: set[tuple[int, str]], category: int, stage: str) -> bool:
        _name, sort, failure = stages[(category, stage)]
        if failure:
            return (category, stage) in path
        return any(c == category and stages[(c, s)][1] >= sort and not stages[(c, s)][2] for c, s in path)

    return {
        (pipelines[category], name): (
            sum(1 for path in entered.values() if reached(path, category, stage)),
            current[(category, stage)],
        )
        for (category, stage), (name, _sort, _failure) in stages.items()
        if any((category, stage) in path for path in entered.values())
    }


def test_the_deal_funnel_from_the_history(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    expected = deal_funnel(portal)
    got = {(p, s): (r, n) for p, s, r, n in rows(path, readme_query("the deal funnel"))}
    assert got == expected
    assert any(r > n for r, n in expected.values())  # deals went on past a stage


def test_open_deals_per_pipeline_and_stage_through_the_view(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    pipelines = {c["id"]: c["name"] for c in portal.call("crm.category.list", {"entityTypeId": 2})["categories"]}
    stages = {
        (int(s.get("CATEGORY_ID") or 0), s["STATUS_ID"]): (s["NAME"], s.get("SEMANTICS"))
        for s in portal.call("crm.status.list")
        if s["ENTITY_ID"].startswith("DEAL_STAGE")
    }
    expected: Counter[tuple[str, str]] = Counter()
    for deal in portal_list(portal, CATALOG.entity("deals"), ["ID", "CATEGORY_ID", "STAGE_ID"]):
        name, semantics = stages[(int(deal["CATEGORY_ID"]), deal["STAGE_ID"])]
        if semantics not in ("S", "F"):
            expected[(pipelines[int(deal["CATEGORY_ID"])], name)] += 1
    got = {(p, s): n for p, s, n in rows(path, readme_query("open deals per pipeline and stage"))}
    assert got == dict(expected) and len(got) > 3


def test_custom_fields_through_the_view_under_their_label_names(loaded: tuple[Portal, dlt.Pipeline, Path]) -> None:
    portal, _, path = loaded
    by_label = {
        m["listLabel"]: (code, m) for code, m in portal.call("crm.deal.fields").items() if code.startswith("UF_")
    }
    clinic, clinic_meta = by_label["Clinic"]
    prepayment, prepayment_meta = by_label["Prepayment"]
    assert prepayment_meta["type"] == "money"
    labels = {int(i["ID"]): i["VALUE"] for i in clinic_meta["items"]}
    expected = {}
    for deal in portal_list(portal, CATALOG.entity("deals"), ["ID", clinic, prepayment]):
        amount, _, currency = (deal[prepayment] or "").partition("|")
        if amount:
            option = int(deal[clinic]) if deal[clinic] else None
            expected[int(deal["ID"])] = (labels.get(option) if option else None, Decimal(amount), currency)
    got = {i: (c, a, cur) for i, c, a, cur in rows(path, readme_query("custom fields through the view"))}
    assert got == expected and len(got) > 10
