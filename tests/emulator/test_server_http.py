"""Routing, envelopes, statuses, auth errors and parameter decoding of /rest/ (reference §1, §2, §9.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import requests

from tests.emulator.conftest import Server

TIME_KEYS = {
    "start",
    "finish",
    "duration",
    "processing",
    "date_start",
    "date_finish",
    "operating_reset_at",
    "operating",
}


def test_success_envelope_has_result_total_next_and_time(server: Server) -> None:
    response = requests.get(server.webhook_url + "test.row.list.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert float(response.headers["X-Bitrix-Rest-Time"]) >= 0
    body = response.json()
    assert list(body) == ["result", "next", "total", "time"]
    assert (len(body["result"]), body["next"], body["total"]) == (50, 50, 120)
    timing = body["time"]
    assert set(timing) == TIME_KEYS
    assert timing["finish"] >= timing["start"] == pytest.approx(server.clock.time())
    assert timing["duration"] == pytest.approx(timing["finish"] - timing["start"])
    started = datetime.fromisoformat(timing["date_start"])
    assert timing["date_start"].endswith("+03:00") and started.microsecond == 0  # Europe/Moscow, date('c')
    assert started.timestamp() == int(timing["start"])
    assert timing["operating_reset_at"] == int(timing["start"] + 600)


def test_last_page_has_no_next(server: Server) -> None:
    body = requests.get(server.webhook_url + "test.row.list?start=100", timeout=10).json()
    assert (len(body["result"]), body["total"]) == (20, 120)
    assert "next" not in body


@pytest.mark.parametrize("suffix", ["test.echo", "test.echo.json", "test.echo/", "TEST.Echo.JSON/"])
def test_method_suffixes_and_case(server: Server, suffix: str) -> None:
    response = requests.get(server.webhook_url + suffix + "?x=1", timeout=10)
    assert response.status_code == 200
    assert response.json()["result"] == {"x": "1"}


def test_unknown_method_is_404_even_without_auth(server: Server) -> None:
    for url in (
        server.webhook_url + "crm.nothing.list",
        f"{server.base_url}/rest/crm.nothing.list",
        f"{server.base_url}/rest/1/x/y/z",
    ):
        response = requests.get(url, timeout=10)
        assert response.status_code == 404
        assert response.json() == {
            "error": "ERROR_METHOD_NOT_FOUND",
            "error_description": "Method not found!",
        }


def _error(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_auth_errors(server: Server) -> None:
    base = server.base_url
    assert _error(requests.get(f"{base}/rest/test.echo", timeout=10)) == (401, "NO_AUTH_FOUND")
    assert _error(requests.get(f"{base}/rest/test.echo?auth=", timeout=10)) == (401, "NO_AUTH_FOUND")
    wrong_code = requests.get(f"{base}/rest/1/{'x' * 16}/test.echo", timeout=10)
    assert _error(wrong_code) == (401, "INVALID_CREDENTIALS")
    assert wrong_code.json()["error_description"] == "Invalid request credentials"
    other_user = requests.get(f"{base}/rest/2/{server.token}/test.echo", timeout=10)
    assert _error(other_user) == (401, "INVALID_CREDENTIALS")
    assert _error(requests.get(f"{base}/rest/test.echo?auth=nope", timeout=10)) == (401, "invalid_token")


def test_error_bodies_never_echo_the_secret(server: Server) -> None:
    response = requests.get(f"{server.base_url}/rest/2/{server.token}/test.echo", timeout=10)
    assert server.token not in response.text


def test_missing_scope_is_insufficient_scope(server: Server) -> None:
    crm_only = server.auth.add_webhook(("crm",), 1)
    response = requests.get(f"{server.base_url}/rest/1/{crm_only}/test.user.only", timeout=10)
    assert response.status_code == 401
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the webhook token",
    }
    brief = server.auth.add_webhook(("user_brief",), 1)
    assert requests.get(f"{server.base_url}/rest/1/{brief}/test.user.only", timeout=10).json()["result"] == 1


def test_scopeless_methods_work_with_any_scope(server: Server) -> None:
    hook = server.auth.add_webhook(("user",), 1)
    url = f"{server.base_url}/rest/1/{hook}/"
    assert requests.get(url + "scope", timeout=10).json()["result"] == ["user"]
    server_time = requests.get(url + "server.time", timeout=10).json()["result"]
    assert datetime.fromisoformat(server_time).timestamp() == int(server.clock.time())
    assert "batch" in requests.get(url + "methods", timeout=10).json()["result"]


def test_method_error_is_passed_through(server: Server) -> None:
    response = requests.get(server.webhook_url + "test.fail", timeout=10)
    assert response.status_code == 400
    assert response.json() == {"error": "", "error_description": "Not found"}


EXPECTED = {
    "filter": {">ID": "5", "@STAGE_ID": ["NEW", "WON"]},
    "select": ["ID", "TITLE"],
    "order": {"ID": "ASC"},
    "start": "-1",
}
QUERY = (
    "filter[%3EID]=5&filter[%40STAGE_ID][]=NEW&filter[%40STAGE_ID][]=WON&select[]=ID&select[1]=TITLE"
    "&order[ID]=ASC&start=-1"
)


def _echo(server: Server, **kwargs: Any) -> Any:
    method = "POST" if "data" in kwargs or "json" in kwargs or "files" in kwargs else "GET"
    response = requests.request(method, server.webhook_url + "test.echo", timeout=10, **kwargs)
    assert response.status_code == 200
    return response.json()["result"]


def test_get_form_multipart_and_json_decode_alike(server: Server) -> None:
    assert _echo(server, params=QUERY) == EXPECTED
    assert _echo(server, data=QUERY, headers={"Content-Type": "application/x-www-form-urlencoded"}) == EXPECTED
    pairs = [
        ("filter[>ID]", "5"),
        ("filter[@STAGE_ID][]", "NEW"),
        ("filter[@STAGE_ID][]", "WON"),
        ("select[]", "ID"),
        ("select[1]", "TITLE"),
        ("order[ID]", "ASC"),
        ("start", "-1"),
    ]
    assert _echo(server, files={name: (None, value) for name, value in pairs[:1]}) == {"filter": {">ID": "5"}}
    multipart = requests.Request("POST", "http://x", files=[(n, (None, v)) for n, v in pairs]).prepare()
    assert _echo(server, data=multipart.body, headers={"Content-Type": multipart.headers["Content-Type"]}) == EXPECTED
    as_json = {
        "filter": {">ID": "5", "@STAGE_ID": ["NEW", "WON"]},
        "select": ["ID", "TITLE"],
        "order": {"ID": "ASC"},
        "start": "-1",
    }
    assert _echo(server, json=as_json) == EXPECTED


def test_body_overrides_query_key_by_key(server: Server) -> None:
    result = _echo(server, params="a=query&b[x]=1", json={"b": {"y": 2}})
    assert result == {"a": "query", "b": {"y": 2}}


def test_undecodable_json_body_means_no_params(server: Server) -> None:
    result = _echo(server, params="a=1", data=b"{not json", headers={"Content-Type": "application/json"})
    assert result == {"a": "1"}


def test_oauth_auth_params_are_not_passed_to_the_method(server: Server) -> None:
    grant = server.auth.issue(server.app.client_id, 1)
    url = f"{server.base_url}/rest/test.echo"
    for kwargs in (
        {"params": {"auth": grant.access_token, "x": "1"}},
        {"params": {"access_token": grant.access_token, "x": "1"}},
        {"json": {"auth": grant.access_token, "x": "1"}},
        {"params": {"x": "1"}, "headers": {"Authorization": f"Bearer {grant.access_token}"}},
    ):
        response = requests.post(url, timeout=10, **kwargs)
        assert response.status_code == 200, kwargs
        assert response.json()["result"] == {"x": "1"}
        assert response.headers["X-Bitrix-Rest-Application"] == server.app.client_id


def test_unknown_paths_outside_rest(server: Server) -> None:
    assert requests.get(f"{server.base_url}/", timeout=10).status_code == 404
    assert requests.get(f"{server.base_url}/_emulator/nothing", timeout=10).status_code == 404
