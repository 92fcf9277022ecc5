"""`batch`: shapes, references, halt, length and nesting limits (reference §7, core-src methodsBatch)."""

from __future__ import annotations

from typing import Any

import requests

from tests.emulator.conftest import Server

PAGE = "test.row.list?order[ID]=ASC&start=-1&filter[%3EID]="


def batch(server: Server, payload: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    response = requests.post((url or server.webhook_url) + "batch", json=payload, timeout=10)
    assert response.status_code == 200
    return response.json()["result"]


def ids(rows: list[dict[str, str]]) -> list[int]:
    return [int(row["ID"]) for row in rows]


def test_keyset_chain_resolves_result_references(server: Server) -> None:
    result = batch(
        server,
        {
            "halt": 0,
            "cmd": {
                "p0": PAGE + "0",
                "p1": PAGE + "$result[p0][49][ID]",
                "p2": PAGE + "$result[p1][49][ID]",
            },
        },
    )
    assert ids(result["result"]["p0"]) == list(range(1, 51))
    assert ids(result["result"]["p1"]) == list(range(51, 101))
    assert ids(result["result"]["p2"]) == list(range(101, 121))
    assert result["result_error"] == [] and result["result_total"] == [] and result["result_next"] == []
    assert set(result["result_time"]) == {"p0", "p1", "p2"}
    assert set(result["result_time"]["p0"]) >= {
        "start",
        "finish",
        "duration",
        "processing",
        "date_start",
        "date_finish",
    }


def test_short_page_reference_falls_back_to_the_last_container(server: Server) -> None:
    """p2 has 20 rows: `$result[p2][49][ID]` stops at p2's row list and the whole list becomes the value."""
    result = batch(
        server,
        {
            "cmd": {
                "p2": PAGE + "100",
                "echo": "test.echo?whole=$result[p2][49][ID]&missing_cmd=$result[nope][0][ID]"
                "&embedded=id-$result[p2][49][ID]"
                "&first=$result[p2][0][ID]&mixed=a-$result[p2][0][ID]-b&spaced=a+$result[p2][0][ID]+b",
            }
        },
    )
    echoed = result["result"]["echo"]
    assert ids(echoed["whole"]) == list(range(101, 121))  # any type replaces a whole value
    assert ids(echoed["missing_cmd"]["p2"]) == list(range(101, 121))  # walk stops at the map of all results
    assert echoed["embedded"] == "id-$result[p2][49][ID]"  # a non-string is never spliced into a string
    assert echoed["first"] == "101"
    assert echoed["mixed"] == "a-101"  # the reference runs to the next whitespace, so "-b" is replaced too
    assert echoed["spaced"] == "a 101 b"


def test_next_total_time_and_error_references(server: Server) -> None:
    result = batch(
        server,
        {
            "cmd": {
                "counted": "test.row.list?start=0",
                "fails": "test.fail",
                "echo": "test.echo?next=$next[counted]&total=$total[counted]&start=$time[counted][start]"
                "&err=$error[fails][error_description]&upper=$RESULT[counted][0][ID]&bare=$result",
            }
        },
    )
    assert result["result_total"] == {"counted": 120}
    assert result["result_next"] == {"counted": 50}
    assert result["result_error"] == {"fails": {"error": "", "error_description": "Not found"}}
    echoed = result["result"]["echo"]
    assert echoed["next"] == 50 and echoed["total"] == 120
    assert echoed["start"] == result["result_time"]["counted"]["start"]
    assert echoed["err"] == "Not found"
    assert echoed["upper"] is None  # PHP looks up `$arResult['RESULT']`, which does not exist
    assert echoed["bare"] == "$result"  # no [path]: not a reference


def test_cmd_as_list_gives_list_shaped_maps(server: Server) -> None:
    result = batch(server, {"cmd": ["test.echo?a=1", "test.echo?a=$result[0][a]"]})
    assert result["result"] == [{"a": "1"}, {"a": "1"}]
    assert isinstance(result["result_time"], list)


def test_cmd_over_get_with_double_encoding_and_case_insensitive_keys(server: Server) -> None:
    query = "HALT=0&CMD[x]=" + requests.utils.quote("test.echo?q=a%26b&f[%3EID]=5", safe="")
    result = requests.get(server.webhook_url + "batch", params=query, timeout=10).json()["result"]
    assert result["result"]["x"] == {"q": "a&b", "f": {">ID": "5"}}


def test_halt_stops_after_the_first_error(server: Server) -> None:
    cmd = {"a": "test.echo?x=1", "b": "test.fail", "c": "test.echo?x=3"}
    halted = batch(server, {"halt": 1, "cmd": cmd})
    assert set(halted["result"]) == {"a"} and set(halted["result_error"]) == {"b"}
    assert set(batch(server, {"halt": 0, "cmd": cmd})["result"]) == {"a", "c"}
    # PHP (bool) cast: the string "false" is true, "0" is false
    assert set(batch(server, {"halt": "false", "cmd": cmd})["result"]) == {"a"}
    assert set(batch(server, {"halt": "0", "cmd": cmd})["result"]) == {"a", "c"}


def test_more_than_50_commands(server: Server) -> None:
    cmd = {f"c{i}": f"test.echo?i={i}" for i in range(53)}
    result = batch(server, {"cmd": cmd})
    assert len(result["result"]) == 50
    assert result["result_error"] == {
        f"c{i}": {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
        for i in (50, 51, 52)
    }


def test_nested_batch_and_unknown_methods_fail_per_command(server: Server) -> None:
    result = batch(
        server,
        {
            "cmd": {
                "nested": "batch?cmd[a]=server.time",
                "unknown": "crm.nothing",
                "ok": "server.time",
                "skipped": 5,
            }
        },
    )
    assert result["result_error"] == {
        "nested": {
            "error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
            "error_description": "Method is not allowed for batch usage",
        },
        "unknown": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
    }
    assert set(result["result"]) == {"ok"}  # a non-string command is skipped silently


def test_scope_is_checked_per_command(server: Server) -> None:
    crm_only = f"{server.base_url}/rest/1/{server.auth.add_webhook(('crm',), 1)}/"
    result = batch(server, {"cmd": {"user": "test.user.only", "crm": "test.echo?a=1"}}, url=crm_only)
    assert result["result_error"] == {"user": {"error": "insufficient_scope", "error_description": ""}}
    assert result["result"] == {"crm": {"a": "1"}}


def test_empty_batch(server: Server) -> None:
    assert batch(server, {}) == {
        "result": [],
        "result_error": [],
        "result_total": [],
        "result_next": [],
        "result_time": [],
    }


def test_batch_counts_once_and_subcalls_separately(server: Server) -> None:
    batch(server, {"cmd": {f"p{i}": PAGE + "0" for i in range(3)}})
    stats = server.stats()
    assert stats["requests"] == 1 and stats["requests_by_method"] == {"batch": 1}
    assert stats["subcalls"] == 3 and stats["subcalls_by_method"] == {"test.row.list": 3}
    assert stats["rows_returned"] == 150
