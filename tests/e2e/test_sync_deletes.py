"""Deletes by reconciliation: records and payments deleted on the portal are marked (`_deleted_at`) or removed
with their child rows, restored ones are unmarked, nothing else is touched, and the ID scans cost what the
docs say (floor(N/2500) + 1 requests per entity)."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import EXIT_USAGE, main
from pipelines.deletes import DeleteOptions
from pipelines.destinations import DestinationError
from pipelines.runner import make_pipeline, reconcile, sync
from sources.bitrix24.api import Bitrix24Client, ConfigError, TransientError, WebhookAuth
from tests.e2e.syncutil import SMALL_PORTAL, new_pipeline, portal_catalog, query, run


def marked(pipeline: dlt.Pipeline, table: str) -> set[int]:
    return {r["id"] for r in query(pipeline, "SELECT id FROM {} WHERE _deleted_at IS NOT NULL", table)}


def ids(pipeline: dlt.Pipeline, table: str) -> set[int]:
    return {r["id"] for r in query(pipeline, "SELECT id FROM {}", table)}


def children_of(pipeline: dlt.Pipeline, child: str, root: str, root_id: int) -> int:
    sql = f"SELECT count(*) AS n FROM {{}} c JOIN {{}} r ON c._dlt_root_id = r._dlt_id WHERE r.id = {root_id}"
    return query(pipeline, sql, child, root)[0]["n"]


def restore(portal: Portal, key: str, record_id: int, modified: int) -> None:
    """Put a deleted record back under its ID (what a restore from the recycle bin looks like)."""
    with portal.store.lock:
        portal.store.table(key).insert(
            {"ID": record_id, "TITLE": "restored", "DATE_CREATE": modified, "DATE_MODIFY": modified}
        )


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_reconcile_marks_unmarks_restored_and_removes_with_child_rows(
    tmp_path: Path, portal: Portal, destination: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if destination == "postgres" else None
    pipeline = new_pipeline(tmp_path, destination, url)
    run(pipeline, portal)
    sql = "SELECT r.id FROM {} c JOIN {} r ON c._dlt_root_id = r._dlt_id ORDER BY r.id LIMIT 1"
    lead_id = query(pipeline, sql, "leads__phone", "leads")[0]["id"]
    phones = children_of(pipeline, "leads__phone", "leads", lead_id)
    all_phones = len(query(pipeline, "SELECT _dlt_id FROM {}", "leads__phone"))
    payment = query(pipeline, "SELECT id, owner_id FROM {} WHERE owner_type_id = 2 ORDER BY id LIMIT 1", "payments")[0]
    deal_id = 7 if payment["owner_id"] != 7 else 8
    portal.call("crm.deal.delete", {"id": deal_id})
    portal.call("crm.lead.delete", {"id": lead_id})
    portal.call("crm.contact.delete", {"id": 3})
    portal.call("crm.item.payment.delete", {"id": payment["id"]})

    report = reconcile(pipeline, credentials=portal.webhook_url)
    # every entity (smart processes included) and the sale payments: < 2,500 IDs each, one request each
    assert report.requests == len(portal_catalog(portal).entities) + 1
    assert (marked(pipeline, "deals"), marked(pipeline, "leads"), marked(pipeline, "contacts")) == (
        {deal_id},
        {lead_id},
        {3},
    )
    assert marked(pipeline, "payments") == {payment["id"]} and marked(pipeline, "companies") == set()
    assert report.checked["deals"] == 129 and report.marked["deals"] == 1

    modified = int(portal.clock.time())
    restore(portal, "deal", deal_id, modified)  # modified now: the next sync reads it again
    restore(portal, "lead", lead_id, modified - 10 * 365 * 86400)  # unchanged: only a reconcile sees it
    run(pipeline, portal)
    assert marked(pipeline, "deals") == set() and marked(pipeline, "leads") == {lead_id}
    again = reconcile(pipeline, credentials=portal.webhook_url)
    assert again.restored["leads"] == 1 and marked(pipeline, "leads") == set()

    portal.call("crm.lead.delete", {"id": lead_id})
    removed = reconcile(pipeline, credentials=portal.webhook_url, resources="leads,contacts,payments", mode="remove")
    assert removed.removed == {"leads": 1, "contacts": 1, "payments": 1}
    assert lead_id not in ids(pipeline, "leads") and 3 not in ids(pipeline, "contacts")
    assert len(query(pipeline, "SELECT _dlt_id FROM {}", "leads__phone")) == all_phones - phones
    assert payment["id"] not in ids(pipeline, "payments") and len(ids(pipeline, "deals")) == 130


@pytest.mark.parametrize("scopes", [("crm", "user", "sale"), ("crm", "user")], ids=["sale", "crm only"])
def test_payments_deleted_from_an_owner_are_found_by_the_run_and_by_reconcile(
    tmp_path: Path, portal: Portal, scopes: tuple[str, ...]
) -> None:
    webhook = portal.add_webhook(scopes=scopes)
    pipeline = new_pipeline(tmp_path, "duckdb")
    sync(pipeline, credentials=webhook, resources="deals,payments")
    owners = query(
        pipeline,
        "SELECT owner_id, min(id) AS first, max(id) AS last, count(*) AS n FROM {} WHERE owner_type_id = 2 "
        "GROUP BY owner_id HAVING count(*) > 1 ORDER BY owner_id LIMIT 2",
        "payments",
    )
    touched, untouched = owners
    portal.call("crm.item.payment.delete", {"id": touched["first"]})
    portal.call("crm.deal.update", {"id": touched["owner_id"], "fields": {"TITLE": "payment removed"}})
    report = sync(pipeline, credentials=webhook, resources="deals,payments")
    assert report.deletes is not None and report.deletes.marked == {"payments": 1}
    assert marked(pipeline, "payments") == {touched["first"]}

    portal.call("crm.item.payment.delete", {"id": untouched["last"]})  # its deal not modified: a run cannot know
    quiet = sync(pipeline, credentials=webhook, resources="deals,payments")
    assert quiet.deletes is not None and quiet.deletes.marked == {}
    found = reconcile(pipeline, credentials=webhook, resources="payments")
    assert marked(pipeline, "payments") == {touched["first"], untouched["last"]}
    if "sale" in scopes:
        assert found.requests == 1  # one sale.payment.list ID scan
    else:  # a refused sale probe, the deals' ID scan, one batch of payment lists per 50 owners
        owner_count = query(
            pipeline, "SELECT count(DISTINCT owner_type_id * 1000000 + owner_id) AS n FROM {}", "payments"
        )[0]["n"]
        assert found.requests == 1 + 2 + -(-owner_count // 50)


@pytest.mark.parametrize("mode", ["mark", "remove"])
def test_a_sweep_finds_payments_deleted_from_owners_no_run_touched(
    pipeline: dlt.Pipeline, portal: Portal, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep re-reads every payment: those its load package did not bring are gone, whoever owns them;
    every other payment stays as it is (found by `_dlt_load_id`, not by a set of the ids read)."""
    monkeypatch.setenv("SOURCES__BITRIX24__DELETE_MODE", mode)
    run(pipeline, portal, resources="deals,payments")
    stored = ids(pipeline, "payments")
    gone = sorted(stored)[:2]
    for payment_id in gone:  # their deals untouched: only the sweep can know
        portal.call("crm.item.payment.delete", {"id": payment_id})
    quiet = run(pipeline, portal, resources="deals,payments")
    assert quiet.deletes is not None and quiet.deletes.marked == {} and quiet.deletes.removed == {}
    sweep = run(pipeline, portal, resources="deals,payments", source_options={"payment_sweep_hours": 0})
    assert sweep.deletes is not None
    if mode == "mark":
        assert sweep.deletes.marked == {"payments": 2} and marked(pipeline, "payments") == set(gone)
        assert ids(pipeline, "payments") == stored
    else:
        assert sweep.deletes.removed == {"payments": 2} and ids(pipeline, "payments") == stored - set(gone)
    again = run(pipeline, portal, resources="deals,payments", source_options={"payment_sweep_hours": 0})
    assert again.deletes is not None and not again.deletes.marked.get("payments")
    assert not again.deletes.removed.get("payments")


def test_no_false_positives_at_page_and_batch_boundaries(tmp_path: Path) -> None:
    """2,550 deals: the ID scan crosses a batch (2,500 IDs) and ends on a full page; deletes sit on both
    sides of each boundary."""
    with Portal(deals=2550, leads=1, contacts=1, companies=1, invoices=0, users=2, limits=False) as portal:
        pipeline = new_pipeline(tmp_path, "duckdb")
        run(pipeline, portal, resources="deals")
        assert len(ids(pipeline, "deals")) == 2550
        report = reconcile(pipeline, credentials=portal.webhook_url, resources="deals")
        assert report.marked == {"deals": 0} and report.checked == {"deals": 2550} and report.requests == 2
        gone = {1, 50, 51, 2500, 2501, 2550}
        for deal_id in gone:
            portal.call("crm.deal.delete", {"id": deal_id})
        report = reconcile(pipeline, credentials=portal.webhook_url, resources="deals")
        assert marked(pipeline, "deals") == gone and report.requests == 2


def test_a_reconcile_that_fails_half_way_changes_nothing(tmp_path: Path, portal: Portal) -> None:
    """The deals' scan succeeds, the leads' fails: the deal deleted is not marked either (the ID sets are
    complete before the warehouse is touched); the next reconcile marks both."""
    pipeline = new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal, resources="deals,leads")
    portal.call("crm.deal.delete", {"id": 9})
    portal.call("crm.lead.delete", {"id": 9})
    portal.set_faults(kind="batch_subcall_error", share=1, method="crm.lead.list")
    client = Bitrix24Client(WebhookAuth(portal.webhook_url), backoff_base=0.001, max_retries=1)
    with pytest.raises(TransientError):
        reconcile(pipeline, client=client, resources="deals,leads")
    assert marked(pipeline, "deals") == set() and marked(pipeline, "leads") == set()
    portal.clear_faults()
    reconcile(pipeline, credentials=portal.webhook_url, resources="deals,leads")
    assert marked(pipeline, "deals") == {9} and marked(pipeline, "leads") == {9}


def test_a_write_that_fails_rolls_back_every_table(tmp_path: Path, portal: Portal) -> None:
    """Remove mode; the deals are removed first, then deleting the leads' child rows fails (a view shaped like
    a child table cannot be deleted from): the deals are back, nothing is logged."""
    pipeline = new_pipeline(tmp_path, "duckdb")
    run(pipeline, portal, resources="deals,leads")
    with pipeline.sql_client() as client:
        view, leads = client.make_qualified_table_name("leads__zz"), client.make_qualified_table_name("leads")
        client.execute_sql(f"CREATE VIEW {view} AS SELECT _dlt_id AS _dlt_root_id FROM {leads}")
    portal.call("crm.deal.delete", {"id": 9})
    portal.call("crm.lead.delete", {"id": 9})
    with pytest.raises(DestinationError, match="the warehouse is unchanged: .*Can only delete from base table"):
        reconcile(pipeline, credentials=portal.webhook_url, resources="deals,leads", mode="remove")
    assert 9 in ids(pipeline, "deals") and 9 in ids(pipeline, "leads")
    with pipeline.sql_client() as client:
        client.execute_sql(f"DROP VIEW {view}")
    reconcile(pipeline, credentials=portal.webhook_url, resources="deals,leads", mode="remove")
    assert 9 not in ids(pipeline, "deals") and 9 not in ids(pipeline, "leads")


def test_cli_reconcile_options_and_periodic_config(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCES__BITRIX24__WEBHOOK_URL", portal.webhook_url)
    where = ["--duckdb-path", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    assert main(["reconcile", *where]) == EXIT_USAGE
    assert "nothing to reconcile: the warehouse has no table of deals" in capsys.readouterr().err
    assert main(["run", "--resources", "deals,companies", *where]) == 0
    portal.call("crm.company.delete", {"id": 2})
    capsys.readouterr()
    assert main(["reconcile", "--resources", "companies", *where]) == 0
    out = capsys.readouterr().out
    assert "with 1 HTTP request" in out and "1 marked deleted" in out

    portal.call("crm.deal.delete", {"id": 4})
    assert main(["run", "--resources", "deals,companies", "--reconcile", "--delete-mode", "remove", *where]) == 0
    assert "removed" in capsys.readouterr().out
    pipeline = _pipeline_of(tmp_path)
    assert 4 not in ids(pipeline, "deals") and 2 not in ids(pipeline, "companies")

    assert main(["reconcile", "--resources", "stages", *where]) == EXIT_USAGE
    assert "nothing to reconcile" in capsys.readouterr().err
    monkeypatch.setenv("SOURCES__BITRIX24__DELETE_MODE", "erase")
    assert main(["reconcile", *where]) == EXIT_USAGE
    assert "delete_mode 'erase' is not valid" in capsys.readouterr().err

    monkeypatch.setenv("SOURCES__BITRIX24__DELETE_MODE", "mark")
    monkeypatch.setenv("SOURCES__BITRIX24__RECONCILE_EVERY_HOURS", "1")
    assert DeleteOptions.from_config() == DeleteOptions("mark", False, 1)
    assert main(["run", "--resources", "deals", *where]) == 0  # the last reconcile was just now: not due
    assert "reconciled" not in capsys.readouterr().out
    monkeypatch.setenv("SOURCES__BITRIX24__RECONCILE_EVERY_HOURS", "1e-9")  # due again at once
    assert main(["run", "--resources", "deals", *where]) == 0
    assert "reconciled deletes (mark) with 1 HTTP request\n" in capsys.readouterr().out


def _pipeline_of(tmp_path: Path) -> dlt.Pipeline:
    return make_pipeline("duckdb", duckdb_path=tmp_path / "w.duckdb", pipelines_dir=tmp_path / "p")


def test_several_portals_in_one_dataset_reconcile_only_their_own_rows(
    tmp_path: Path, portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deal 5 exists on both portals; deleted on one, it is marked for that portal's rows only."""
    pipeline = new_pipeline(tmp_path, "duckdb")
    other_pipeline = make_pipeline(  # each portal its own pipeline (state), one dataset
        "duckdb", duckdb_path=tmp_path / "warehouse.duckdb", pipelines_dir=tmp_path / "b", pipeline_name="b"
    )
    with Portal(**SMALL_PORTAL) as other:
        for name, source, into in (("a", portal, pipeline), ("b", other, other_pipeline)):
            monkeypatch.setenv("BITRIX24_SYNC__PORTAL", name)
            run(into, source, resources="deals")
        assert query(pipeline, "SELECT portal, count(*) AS n FROM {} GROUP BY 1 ORDER BY 1", "deals") == [
            {"portal": "a", "n": 130},
            {"portal": "b", "n": 130},
        ]
        portal.call("crm.deal.delete", {"id": 5})
        monkeypatch.setenv("BITRIX24_SYNC__PORTAL", "a")
        report = reconcile(pipeline, credentials=portal.webhook_url, resources="deals")
    rows = query(pipeline, "SELECT portal, id FROM {} WHERE _deleted_at IS NOT NULL", "deals")
    assert rows == [{"portal": "a", "id": 5}] and report.checked == {"deals": 129}
    monkeypatch.delenv("BITRIX24_SYNC__PORTAL")
    with pytest.raises(ConfigError, match="holds several portals"):
        reconcile(pipeline, credentials=portal.webhook_url, resources="deals")
