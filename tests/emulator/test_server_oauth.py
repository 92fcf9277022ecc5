"""OAuth: the token endpoint, rotation, expiry by the portal clock (reference §9.3, §10)."""

from __future__ import annotations

from typing import Any

import requests

from tests.emulator.conftest import Server


def refresh(server: Server, refresh_token: str, secret: str | None = None, verb: str = "GET") -> requests.Response:
    params = {
        "grant_type": "refresh_token",
        "client_id": server.app.client_id,
        "client_secret": secret or server.app.client_secret,
        "refresh_token": refresh_token,
    }
    if verb == "GET":
        return requests.get(f"{server.base_url}/oauth/token/", params=params, timeout=10)
    return requests.post(f"{server.base_url}/oauth/token/", data=params, timeout=10)


def call(server: Server, access_token: str) -> requests.Response:
    return requests.get(f"{server.base_url}/rest/test.echo.json", params={"auth": access_token}, timeout=10)


def test_refresh_response_shape_and_rotation(server: Server) -> None:
    first = server.auth.issue(server.app.client_id, 1)
    response = refresh(server, first.refresh_token)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert set(body) == {
        "access_token",
        "client_endpoint",
        "domain",
        "expires",
        "expires_in",
        "member_id",
        "refresh_token",
        "scope",
        "server_endpoint",
        "status",
        "user_id",
    }
    assert body["client_endpoint"] == f"{server.base_url}/rest/"
    assert body["expires_in"] == 3600 and body["expires"] == int(server.clock.time()) + 3600
    assert body["scope"] == "crm,sale,user" and body["user_id"] == 1
    assert body["refresh_token"] != first.refresh_token and body["access_token"] != first.access_token
    assert call(server, body["access_token"]).status_code == 200

    reused = refresh(server, first.refresh_token)  # single-use rotation
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    revoked = call(server, first.access_token)  # the access token issued with it went too
    assert (revoked.status_code, revoked.json()["error"]) == (401, "invalid_token")
    assert refresh(server, body["refresh_token"], verb="POST").status_code == 200


def test_access_token_expires_by_the_clock(server_factory) -> None:
    server = server_factory(token_lifetime=60)
    grant = server.auth.issue(server.app.client_id, 1)
    assert call(server, grant.access_token).status_code == 200
    server.clock.advance(60)
    expired = call(server, grant.access_token)
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "expired_token",
        "error_description": "The access token provided has expired",
    }
    renewed = refresh(server, grant.refresh_token).json()
    assert call(server, renewed["access_token"]).status_code == 200


def test_bad_client_and_bad_requests(server: Server) -> None:
    grant = server.auth.issue(server.app.client_id, 1)
    wrong_secret = refresh(server, grant.refresh_token, secret="nope")
    assert (wrong_secret.status_code, wrong_secret.json()["error"]) == (401, "invalid_client")
    missing = requests.get(
        f"{server.base_url}/oauth/token/",
        params={
            "grant_type": "refresh_token",
            "client_id": server.app.client_id,
            "client_secret": server.app.client_secret,
        },
        timeout=10,
    )
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    assert refresh(server, grant.refresh_token).status_code == 200  # a refused attempt does not burn the token


def test_authorization_code_grant(server: Server) -> None:
    minted = requests.post(f"{server.base_url}/_emulator/oauth/code", json={"scopes": ["crm"]}, timeout=10).json()
    params = {
        "grant_type": "authorization_code",
        "client_id": server.app.client_id,
        "client_secret": server.app.client_secret,
        "code": minted["code"],
    }
    body = requests.get(f"{server.base_url}/oauth/token/", params=params, timeout=10).json()
    assert body["scope"] == "crm" and "expires" not in body and "user_id" not in body
    assert call(server, body["access_token"]).status_code == 200
    again = requests.get(f"{server.base_url}/oauth/token/", params=params, timeout=10)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    late = requests.post(f"{server.base_url}/_emulator/oauth/code", json={}, timeout=10).json()["code"]
    server.clock.advance(31)
    expired = requests.get(f"{server.base_url}/oauth/token/", params={**params, "code": late}, timeout=10)
    assert expired.json()["error"] == "invalid_grant"


def test_oauth_scope_description_names_the_access_token(server: Server) -> None:
    grant = server.auth.issue(server.app.client_id, 1, frozenset({"crm"}))
    response = requests.get(f"{server.base_url}/rest/test.user.only", params={"auth": grant.access_token}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_description"].endswith("provided by the access token")
