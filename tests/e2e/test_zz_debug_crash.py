import json, random, subprocess
from collections import Counter
from pathlib import Path
import psycopg2, pytest
from bitrix24_emulator import Portal
from pipelines.bitrix24_pipeline import make_pipeline
from tests.e2e.crashrunner import crashing_run
from tests.e2e.faultutil import assert_no_duplicate_rows, change_portal
from tests.e2e.syncutil import assert_warehouse_equals_portal
from tests.e2e.test_crash import CRASH_PORTAL, fresh_database


def dump(tag, folder, url):
    print(f"===== {tag}")
    wd = folder / "pipelines" / "bitrix24"
    print(subprocess.run(["find", str(wd), "-path", "*load*", "-maxdepth", "4"], capture_output=True, text=True).stdout)
    st = wd / "state.json"
    if st.exists():
        s = json.loads(st.read_text())
        r = s.get("sources", {}).get("bitrix24", {}).get("resources", {})
        print("state version", s.get("_state_version"), {k: v.get("loaded_at") for k, v in r.items() if k in ("stages","pipelines","users")})
    print("markers", [p.name for p in wd.glob("bitrix24-sync-*")])
    c = psycopg2.connect(url); cur = c.cursor()
    try:
        cur.execute("select load_id, status, inserted_at from bitrix24_crm._dlt_loads order by inserted_at")
        print("loads", cur.fetchall())
        cur.execute("select _dlt_load_id, count(*) from bitrix24_crm.stages group by 1")
        print("stages", cur.fetchall())
    except Exception as e:
        print("err", e)
    c.close()


@pytest.mark.postgres
def test_dbg(tmp_path: Path, postgres_url: str) -> None:
    url = fresh_database(postgres_url)
    rng = random.Random(5)
    with Portal(**CRASH_PORTAL) as portal:
        counted = crashing_run(tmp_path, portal.webhook_url, postgres_url=url)
        assert counted.returncode == 0, counted.stderr
        dump("counted", tmp_path, url)
        load_files = Counter((tmp_path / "events").read_text().split())["load/file"]
        for i in range(3):
            change_portal(portal, rng)
            crash_at = f"load/file:{rng.randint(1, int(load_files * 0.6))}"
            killed = crashing_run(tmp_path, portal.webhook_url, crash_at, postgres_url=url)
            print("RUN", i, crash_at, killed.returncode, killed.stderr[-3000:])
            dump(f"after run {i}", tmp_path, url)
        settled = crashing_run(tmp_path, portal.webhook_url, "none:1", postgres_url=url, SOURCES__BITRIX24__REFERENCE_MAX_AGE_HOURS="24")
        print("SETTLED", settled.returncode, settled.stderr[-3000:])
        dump("after settled", tmp_path, url)
        pipeline = make_pipeline("postgres", postgres_url=url, pipelines_dir=tmp_path / "pipelines")
        assert_no_duplicate_rows(pipeline)
        assert_warehouse_equals_portal(pipeline, portal)
