"""`bitrix24-sync run --portals FILE` against several emulator instances at once: a dataset (DuckDB file) per
portal with one portal's webhook revoked, and one shared Postgres dataset with a `portal` column."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import duckdb
import psycopg2
import pytest

from bitrix24_emulator import Portal
from pipelines.cli import main
from pipelines.exit_codes import EXIT_AUTH, EXIT_SOME_PORTALS_FAILED, EXIT_USAGE

SIZES = {"deals": 40, "leads": 20, "contacts": 20, "companies": 8, "users": 5, "limits": False}


@pytest.fixture
def portals() -> Iterator[dict[str, Portal]]:
    """Three portals with different data (seeds) and sizes."""
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(Portal(seed=seed, **{**SIZES, "deals": deals}))
            for name, seed, deals in (("north", 7, 40), ("south", 8, 30), ("east", 9, 20))
        }


def write_portals(path: Path, entries: dict[str, str], **top: str) -> Path:
    lines = [f'{key} = "{value}"' for key, value in top.items()]
    for name, url in entries.items():
        lines += ["[[portals]]", f'name = "{name}"', f'webhook_url = "{url}"', "rate = 50", "burst = 50"]
    path.write_text("\n".join(lines) + "\n")
    return path


def revoked(portal: Portal) -> str:
    return portal.webhook_url.replace(portal.token, "x" * len(portal.token))


def count(path: Path, sql: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).fetchall()[0][0]


def test_each_portal_into_its_own_dataset_and_one_failure_does_not_stop_the_others(
    tmp_path: Path, portals: dict[str, Portal], capsys: pytest.CaptureFixture[str]
) -> None:
    urls = {
        "north": portals["north"].webhook_url,
        "south": revoked(portals["south"]),
        "east": portals["east"].webhook_url,
    }
    config = write_portals(tmp_path / "portals.toml", urls)
    argv = ["run", "--portals", str(config), "--duckdb-path", str(tmp_path / "w" / "{portal}.duckdb")]
    argv += ["--pipelines-dir", str(tmp_path / "pipelines")]

    assert main(argv) == EXIT_SOME_PORTALS_FAILED
    out = capsys.readouterr()
    summary = {line.split()[0]: line for line in out.out.splitlines()[1:4]}
    assert set(summary) == {"north", "south", "east"}
    assert " ok " in summary["north"] and " ok " in summary["east"]
    assert f"exit {EXIT_AUTH}" in summary["south"] and "webhook" in summary["south"]
    assert "2 of 3 portals synced; failed: south" in out.out
    assert not any(p.token in out.out + out.err for p in portals.values())

    for name, deals in (("north", 40), ("east", 20)):
        path = tmp_path / "w" / f"{name}.duckdb"
        assert count(path, f"SELECT count(*) FROM crm_{name}.deals") == deals
        assert count(path, f"SELECT count(*) FROM crm_{name}.v_deals WHERE stage_name IS NOT NULL") == deals
        assert portals[name].stats()["requests"] > 0  # each synced from its own portal
    assert count(tmp_path / "w" / "south.duckdb", "SELECT count(*) FROM information_schema.tables") == 0
    assert {p.name for p in (tmp_path / "pipelines").iterdir()} >= {"bitrix24_north", "bitrix24_east"}

    # the revoked portal gets its webhook back: the next run syncs it and the others incrementally
    urls["south"] = portals["south"].webhook_url
    write_portals(config, urls)
    assert main(argv) == 0
    assert "3 of 3 portals synced" in capsys.readouterr().out
    assert count(tmp_path / "w" / "south.duckdb", "SELECT count(*) FROM crm_south.v_deals") == 30
    assert count(tmp_path / "w" / "north.duckdb", "SELECT count(*) FROM crm_north.deals") == 40


@pytest.mark.postgres
def test_portals_share_one_dataset_with_a_portal_column(
    tmp_path: Path, portals: dict[str, Portal], postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = f"crm_{uuid.uuid4().hex[:10]}"
    names = ("north", "south")
    config = write_portals(
        tmp_path / "portals.toml", {n: portals[n].webhook_url for n in names}, layout="shared", dataset=dataset
    )
    argv = ["run", "--portals", str(config), "--destination", "postgres", "--postgres-url", postgres_url]
    argv += ["--pipelines-dir", str(tmp_path / "pipelines")]
    for _ in range(2):  # the second run is incremental: nothing doubles, no portal's rows are replaced by another's
        assert main(argv) == 0, capsys.readouterr()
        with psycopg2.connect(postgres_url) as con, con.cursor() as cur:

            def per_portal(table: str) -> dict[str, int]:
                cur.execute(f"SELECT portal, count(*) FROM {dataset}.{table} GROUP BY portal")
                return dict(cur.fetchall())

            assert per_portal("deals") == {"north": 40, "south": 30}
            assert per_portal("v_deals") == per_portal("deals")
            stages, fields = per_portal("stages"), per_portal("fields")
            assert set(stages) == set(fields) == set(names) and all(stages.values())
            cur.execute(f"SELECT count(*) FROM {dataset}.deals WHERE id = 1")
            assert cur.fetchone()[0] == 2  # the same deal id on two portals: two rows
            # every deal's stage name comes from its own portal's stage list
            cur.execute(
                f"SELECT count(*) FROM {dataset}.v_deals v JOIN {dataset}.stages s ON s.portal = v.portal "
                "AND s.status_id = v.stage_id AND s.entity_id LIKE 'DEAL_STAGE%' "
                "AND coalesce(s.category_id, 0) = v.category_id AND s.name = v.stage_name"
            )
            assert cur.fetchone()[0] == 70
            # a multiple enumeration's labels come from its own portal's options: one label per stored value
            commas = """length(services) - length(replace(services, ', ', ','))"""
            cur.execute(f"SELECT sum({commas} + 1) FROM {dataset}.v_deals")
            labels = cur.fetchone()[0]
            cur.execute(f"SELECT count(*) FROM {dataset}.deals__uf_crm_1699000008 WHERE value IS NOT NULL")
            assert labels == cur.fetchone()[0] > 0
            # deal 1 of one portal never replaces the values of the other's deal 1: per portal, the API's count
            cur.execute(
                f"SELECT d.portal, count(*) FROM {dataset}.deals__uf_crm_1699000008 c "
                f"JOIN {dataset}.deals d ON d._dlt_id = c._dlt_parent_id GROUP BY d.portal"
            )
            assert dict(cur.fetchall()) == {n: _services_count(portals[n]) for n in names}
    con.close()


def _services_count(portal: Portal) -> int:
    rows = portal.call("crm.deal.list", {"select": ["ID", "UF_CRM_1699000008"], "start": -1})
    assert len(rows) < 50  # one page holds every deal of these portals
    return sum(len(r.get("UF_CRM_1699000008") or []) for r in rows)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[portals]]\nname = "Bad Name"\nwebhook_url = "https://x.bitrix24.com/rest/1/abc/"\n', "needs a name"),
        ('[[portals]]\nname = "alone"\n', "has no webhook_url"),
        ('layout = "mixed"\n', "layout must be"),
        ("", "no [[portals]] entries"),
    ],
)
def test_a_bad_portals_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    (tmp_path / "p.toml").write_text(text)
    assert main(["run", "--portals", str(tmp_path / "p.toml"), "--pipelines-dir", str(tmp_path)]) == EXIT_USAGE
    assert needle in capsys.readouterr().err
