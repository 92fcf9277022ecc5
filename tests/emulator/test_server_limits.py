"""The leaky bucket (503) and the operating-time window (429), moved by the portal clock (reference §8)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from bitrix24_emulator.limits import CostModel
from bitrix24_emulator.methods import Cost
from tests.emulator.conftest import Server


def status(server: Server, method: str = "test.echo", url: str | None = None, **params: str) -> int:
    return requests.get((url or server.webhook_url) + method, params=params, timeout=10).status_code


def test_burst_then_503_then_drain_by_the_clock(server_factory) -> None:
    server = server_factory(rate=2.0, burst=5)
    assert [status(server) for _ in range(5)] == [200] * 5
    refused = requests.get(server.webhook_url + "test.echo", timeout=10)
    assert refused.status_code == 503
    assert refused.json() == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    server.clock.advance(0.5)  # drains one request
    assert [status(server), status(server)] == [200, 503]
    server.clock.advance(10)
    assert [status(server) for _ in range(6)] == [200] * 5 + [503]
    stats = server.stats()
    assert stats["refused"]["QUERY_LIMIT_EXCEEDED"] == 3
    assert stats["requests"] == 14  # refused requests are requests too


def test_a_batch_is_one_hit_and_admin_calls_are_free(server_factory) -> None:
    server = server_factory(rate=2.0, burst=2)
    cmd = {"cmd": {f"c{i}": "test.echo" for i in range(50)}}
    assert requests.post(server.webhook_url + "batch", json=cmd, timeout=10).status_code == 200
    admin = {"X-Emulator-Admin": "1"}
    for _ in range(5):
        assert requests.get(server.webhook_url + "test.echo", headers=admin, timeout=10).status_code == 200
    assert [status(server), status(server)] == [200, 503]
    assert server.stats()["requests"] == 3


def test_no_limits(server_factory) -> None:
    server = server_factory(burst=1, limits=False, operating_limit=0.0)
    assert [status(server, "test.expensive", rows="100000") for _ in range(5)] == [200] * 5


def test_cost_model_keyset_cheap_offset_and_count_expensive() -> None:
    model = CostModel()
    keyset = model.seconds(Cost(rows_scanned=50, rows_returned=50))
    deep_offset = model.seconds(Cost(rows_scanned=100_050, rows_returned=50))
    counted = model.seconds(Cost(rows_scanned=50, rows_returned=50, counted=1_000_000))
    assert keyset < 0.1 < deep_offset  # a keyset page is below the 0.1 s core-src records at all
    assert counted > 5


def test_operating_limit_blocks_the_method_for_that_webhook_only(server_factory) -> None:
    server = server_factory(operating_limit=10.0)
    # rows=300000 costs 0.002 + 6 = 6.002 s per call
    first = requests.get(server.webhook_url + "test.expensive", params={"rows": 300000}, timeout=10).json()
    assert first["time"]["operating"] == 6.002
    reset_at = first["time"]["operating_reset_at"]
    assert reset_at == int(first["time"]["start"] + 600)
    assert status(server, "test.expensive", rows="300000") == 200  # 6 s <= 10 s: runs, crossing the limit
    blocked = requests.get(server.webhook_url + "test.expensive", timeout=10)
    assert blocked.status_code == 429
    assert blocked.json() == {
        "error": "OPERATION_TIME_LIMIT",
        "error_description": "Method is blocked due to operation time limit",
    }
    assert status(server, "test.echo") == 200  # other methods are unaffected
    other_hook = f"{server.base_url}/rest/1/{server.auth.add_webhook(('crm',), 1)}/"
    assert status(server, "test.expensive", url=other_hook) == 200  # and other webhooks
    in_batch = requests.post(server.webhook_url + "batch", json={"cmd": {"x": "test.expensive"}}, timeout=10)
    assert in_batch.json()["result"]["result_error"]["x"]["error"] == "OPERATION_TIME_LIMIT"
    server.clock.advance(reset_at - server.clock.time())  # the oldest bucket expires
    assert status(server, "test.expensive") == 200
    assert server.stats()["refused"]["OPERATION_TIME_LIMIT"] == 2


def test_calls_under_a_tenth_of_a_second_are_not_recorded_but_a_batch_of_them_is(server: Server) -> None:
    single = requests.get(server.webhook_url + "test.row.list", params={"start": "-1"}, timeout=10).json()
    assert single["time"]["operating"] == 0  # 0.003 s: below core-src's 0.1 s threshold
    cmd = {f"p{i}": "test.row.list?start=-1" for i in range(50)}
    result = requests.post(server.webhook_url + "batch", json={"cmd": cmd}, timeout=10).json()
    assert result["time"]["operating"] == 0  # batch itself is never charged
    assert result["result"]["result_time"]["p49"]["operating"] == 0.15  # 50 x 0.003 s in this request
    after = requests.get(server.webhook_url + "test.row.list", params={"start": "-1"}, timeout=10).json()
    assert after["time"]["operating"] == 0.15


def test_bucket_holds_under_concurrent_requests(server_factory) -> None:
    server = server_factory(burst=20)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: status(server), range(60)))
    assert (statuses.count(200), statuses.count(503)) == (20, 40)
