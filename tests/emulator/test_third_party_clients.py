"""Bitrix24 clients written by other people, unmodified, against the emulator: the emulator's promise.

- `fast_bitrix24` (aiohttp): `get_all` (first page, then batches of `start` offsets), `get_by_ID`, `call`
  (batches), `call_batch`, its client-side leaky bucket, its retries on 5xx and its OAuth token renewal.
- `b24pysdk` (Bitrix24's official SDK, requests): typed wrappers, `as_list()` (offsets) and `as_list_fast()`
  (keyset chained through `$result[n][49][ID]` references), `call_batch`, the `User` object layer, OAuth
  application tokens, its error classes and its retries on 503. It only builds `https://{domain}/rest/...`
  URLs, so its portal serves TLS with a throw-away self-signed certificate that requests trusts through its
  documented `REQUESTS_CA_BUNDLE` variable.

Results are compared with what the emulator holds, read through the admin channel (`Portal.call`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from b24pysdk import BitrixApp, BitrixToken, BitrixWebhook, Client
from b24pysdk import errors as sdk_errors
from b24pysdk.objects.user import User
from fast_bitrix24 import Bitrix
from fast_bitrix24.server_response import ErrorInServerResponseException

from bitrix24_emulator import Portal

SIZES = {"deals": 180, "leads": 10, "contacts": 10, "companies": 5, "users": 5}
DEAL_SELECT = ["ID", "TITLE", "OPPORTUNITY", "CURRENCY_ID", "STAGE_ID", "DATE_MODIFY"]


def held(portal: Portal, select: list[str], flt: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every deal the emulator holds (matching `flt`), by ID: an admin keyset scan, not counted in stats."""
    rows: dict[str, dict[str, Any]] = {}
    last = 0
    while True:
        page = portal.call(
            "crm.deal.list",
            {"select": select, "filter": {**(flt or {}), ">ID": last}, "order": {"ID": "ASC"}, "start": -1},
        )
        rows.update((row["ID"], row) for row in page)
        if len(page) < 50:
            return rows
        last = int(page[-1]["ID"])


def reset_limits(portal: Portal, verify: str | bool = True) -> None:
    requests.post(
        f"{portal.base_url}/_emulator/limits", json={"reset": True}, timeout=10, verify=verify
    ).raise_for_status()
    portal.reset_stats()


# ---- fast_bitrix24 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(seed=7, **SIZES) as running:
        yield running


@pytest.fixture
def fast(portal: Portal) -> Bitrix:
    reset_limits(portal)
    return Bitrix(portal.webhook_url, verbose=False)


def test_fast_get_all_deals_pages_through_batches(portal: Portal, fast: Bitrix) -> None:
    deals = fast.get_all("crm.deal.list", params={"select": DEAL_SELECT})
    expected = held(portal, DEAL_SELECT)
    assert len(deals) == len(expected) >= 180
    assert {deal["ID"]: deal for deal in deals} == expected
    stats = portal.stats()
    assert stats["requests_by_method"] == {"crm.deal.list": 1, "batch": 1}  # page 1, then start=50..150
    assert stats["subcalls_by_method"] == {"crm.deal.list": 3}


def test_fast_get_all_with_filter(portal: Portal, fast: Bitrix) -> None:
    flt = {">=OPPORTUNITY": 40000, "!STAGE_ID": "WON"}
    deals = fast.get_all("crm.deal.list", params={"select": DEAL_SELECT, "filter": flt})
    expected = held(portal, DEAL_SELECT, flt)
    assert 0 < len(expected) < 180
    assert {deal["ID"]: deal for deal in deals} == expected


def test_fast_get_all_items(portal: Portal, fast: Bitrix) -> None:
    # fast_bitrix24 adds order[ID]=ASC to every get_all: crm.item.list must take UPPER_CASE field names too
    items = fast.get_all("crm.item.list", params={"entityTypeId": 2, "select": ["id", "title", "opportunity"]})
    expected = held(portal, ["ID", "TITLE", "OPPORTUNITY"])
    assert {str(item["id"]): (item["title"], item["opportunity"]) for item in items} == {
        key: (row["TITLE"], float(row["OPPORTUNITY"])) for key, row in expected.items()
    }


def test_fast_get_by_id_fields_and_batch(portal: Portal, fast: Bitrix) -> None:
    got = fast.get_by_ID("crm.deal.get", [3, 7, 11])
    assert sorted(got) == ["11", "3", "7"]
    assert got["7"] == portal.call("crm.deal.get", {"id": 7})
    assert fast.get_all("crm.deal.fields") == portal.call("crm.deal.fields")
    result = fast.call_batch(
        {
            "halt": 0,
            "cmd": {
                "first": "crm.deal.list?order[ID]=DESC&select[]=ID&start=-1",
                "deal": "crm.deal.get?id=$result[first][0][ID]",
            },
        }
    )
    newest = max(held(portal, ["ID"]), key=int)
    assert result["first"][0]["ID"] == newest and result["deal"]["ID"] == newest


def test_fast_get_all_dictionaries(portal: Portal, fast: Bitrix) -> None:
    users = fast.get_all("user.get")
    assert sorted(int(u["ID"]) for u in users) == list(range(1, SIZES["users"] + 1))
    pipelines = fast.get_all("crm.category.list", params={"entityTypeId": 2})  # unwrapped from `categories`
    assert pipelines == portal.call("crm.category.list", {"entityTypeId": 2})["categories"]
    stages = fast.get_all("crm.status.list", params={"filter": {"ENTITY_ID": "DEAL_STAGE"}})
    assert stages == portal.call("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}})


def test_fast_add_and_update(portal: Portal, fast: Bitrix) -> None:
    new_id = fast.call("crm.deal.add", {"fields": {"TITLE": "fast_bitrix24 deal", "OPPORTUNITY": 1234.5}})
    assert isinstance(new_id, int)
    assert fast.call("crm.deal.update", {"id": new_id, "fields": {"TITLE": "renamed"}}) is True
    stored = portal.call("crm.deal.get", {"id": new_id})
    assert (stored["TITLE"], stored["OPPORTUNITY"]) == ("renamed", "1234.50")


def test_fast_errors(portal: Portal, fast: Bitrix) -> None:
    with pytest.raises(ErrorInServerResponseException) as in_batch:  # call() goes through batch
        fast.call("crm.nothing.here", {"id": 1})
    (error,) = in_batch.value.args[0].values()
    assert error == {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
    with pytest.raises(ErrorInServerResponseException) as missing:
        fast.call("crm.deal.get", {"id": 999_999})
    assert list(missing.value.args[0].values()) == [{"error": "", "error_description": "Not found"}]
    with pytest.raises(aiohttp.ClientResponseError) as unknown:
        fast.call("crm.nothing.here", {"id": 1}, raw=True)
    assert unknown.value.status == 404
    wrong = Bitrix(portal.webhook_url.replace(portal.token, "x" * len(portal.token)), verbose=False)
    with pytest.raises(aiohttp.ClientResponseError) as denied:
        wrong.get_all("crm.deal.list")
    assert denied.value.status == 401


def test_fast_oauth_token_renewed_after_expiry() -> None:
    """fast_bitrix24's OAuth mode: `auth` in the JSON body of `client_endpoint` calls; on a 401 it asks its
    `token_func` for a new token, here refreshed at the emulator's token endpoint like at oauth.bitrix.info."""
    with Portal(seed=7, deals=60, leads=1, contacts=1, companies=1, users=2, token_lifetime=3600) as app_portal:
        oauth = app_portal.oauth
        tokens = {"refresh": oauth["refresh_token"], "issued": 0}

        async def token_func() -> str:
            tokens["issued"] += 1
            if tokens["issued"] == 1:
                return oauth["access_token"]
            grant = {"grant_type": "refresh_token", "refresh_token": tokens["refresh"]}
            grant |= {"client_id": oauth["client_id"], "client_secret": oauth["client_secret"]}
            fresh = requests.get(oauth["token_endpoint"], params=grant, timeout=10).json()
            tokens["refresh"] = fresh["refresh_token"]
            return fresh["access_token"]

        client = Bitrix(oauth["client_endpoint"], token_func=token_func, verbose=False)
        expected = set(held(app_portal, ["ID"]))
        assert {deal["ID"] for deal in client.get_all("crm.deal.list", params={"select": ["ID"]})} == expected
        app_portal.clock.advance(3601)  # the access token expires: 401 expired_token, then one refresh
        assert {deal["ID"] for deal in client.get_all("crm.deal.list", params={"select": ["ID"]})} == expected
        assert tokens["issued"] == 2


def test_fast_rate_limiting() -> None:
    ids = list(range(1, 17))  # batch_size=2: 8 requests
    with Portal(seed=7, deals=20, leads=1, contacts=1, companies=1, users=2, rate=10, burst=3) as small:
        # Its leaky bucket counts answered requests only, so 8 concurrent ones overshoot a burst of 3; the
        # 503s are retried and every deal still arrives.
        eager = Bitrix(small.webhook_url, verbose=False, request_pool_size=3, requests_per_second=5.0, batch_size=2)
        assert sorted(eager.get_by_ID("crm.deal.get", ids), key=int) == [str(i) for i in ids]
        stats = small.stats()
        assert stats["refused"]["QUERY_LIMIT_EXCEEDED"] >= 1
        assert stats["requests_by_method"]["batch"] == 8 + stats["refused"]["QUERY_LIMIT_EXCEEDED"]

        reset_limits(small)  # one request at a time: the client's bucket (3, 5/s) stays under the portal's
        polite = Bitrix(small.webhook_url, verbose=False, request_pool_size=3, requests_per_second=5.0, batch_size=2)
        with polite.slow(max_concurrent_requests=1):
            got = polite.get_by_ID("crm.deal.get", ids)
        assert {key: deal["TITLE"] for key, deal in got.items()} == {
            key: row["TITLE"] for key, row in held(small, ["ID", "TITLE"]).items() if int(key) <= 16
        }
        assert small.stats()["refused"]["QUERY_LIMIT_EXCEEDED"] == 0


# ---- b24pysdk ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA), made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not found: cannot make a certificate for the HTTPS portal b24pysdk needs")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture(scope="module")
def tls_portal(tls_files: tuple[str, str]) -> Iterator[Portal]:
    with Portal(seed=7, tls=tls_files, **SIZES) as running:
        yield running


def sdk_token(portal: Portal, token: str | None = None) -> BitrixWebhook:
    domain = portal.base_url.removeprefix("https://")  # b24pysdk wants the bare domain; it adds https://
    return BitrixWebhook(domain=domain, webhook_token=f"1/{token or portal.token}")


def sdk_client(portal: Portal, token: str | None = None, **options: Any) -> Client:
    return Client(sdk_token(portal, token), **options)


@pytest.fixture
def sdk(tls_portal: Portal, tls_files: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files[0])
    reset_limits(tls_portal, tls_files[0])
    return sdk_client(tls_portal)


def test_sdk_lists_all_deals_by_offset_and_by_keyset(tls_portal: Portal, sdk: Client) -> None:
    expected = held(tls_portal, DEAL_SELECT)
    by_offset = list(sdk.crm.deal.list(select=DEAL_SELECT).as_list().result)
    assert {deal["ID"]: deal for deal in by_offset} == expected
    tls_portal.reset_stats()
    by_keyset = list(sdk.crm.deal.list(select=DEAL_SELECT).as_list_fast().result)
    assert [deal["ID"] for deal in by_keyset] == sorted(expected, key=int)
    assert {deal["ID"]: deal for deal in by_keyset} == expected
    stats = tls_portal.stats()
    assert stats["requests_by_method"] == {"crm.deal.list": 1, "batch": 1}  # first page, then one chain
    assert stats["rows_counted"] == 0  # start=-1 throughout


def test_sdk_lists_items_by_keyset(tls_portal: Portal, sdk: Client) -> None:
    # the first page goes out with order[ID]=ASC and filter[>ID]; later ones reference $result[n][items][49][id]
    items = list(sdk.crm.item.list(entity_type_id=2, select=["id", "title"]).as_list_fast().result)
    expected = held(tls_portal, ["ID", "TITLE"])
    assert [str(item["id"]) for item in items] == sorted(expected, key=int)
    assert all(item["title"] == expected[str(item["id"])]["TITLE"] for item in items)


def test_sdk_get_fields_time_add_update(tls_portal: Portal, sdk: Client) -> None:
    assert sdk.crm.deal.get(bitrix_id=5).result == tls_portal.call("crm.deal.get", {"id": 5})
    assert sdk.crm.deal.fields().result == tls_portal.call("crm.deal.fields")
    assert datetime.fromisoformat(sdk.server.time().result).utcoffset() == timedelta(hours=3)
    new_id = sdk.crm.deal.add(fields={"TITLE": "b24pysdk deal", "OPPORTUNITY": 10}).result
    assert isinstance(new_id, int)
    assert sdk.crm.deal.update(bitrix_id=new_id, fields={"TITLE": "renamed by sdk"}).result is True
    assert tls_portal.call("crm.deal.get", {"id": new_id})["TITLE"] == "renamed by sdk"


def test_sdk_object_layer_and_adapted_values(tls_portal: Portal, sdk: Client) -> None:
    users = list(User.objects.using(client=sdk).filter(active=True))
    expected = {u["ID"]: u["NAME"] for u in tls_portal.call("user.get", {"FILTER": {"ACTIVE": True}})}
    assert {str(user.bitrix_id): user.name for user in users} == expected
    profile = sdk.profile().value
    assert (profile.bitrix_id, profile.admin) == (1, True)


def test_sdk_oauth_application_token(tls_portal: Portal, sdk: Client) -> None:
    # OAuth calls go to /rest/<method>.json with `auth` in the body (its token refresh talks to Bitrix24's own
    # OAuth server, a fixed address: not tested here)
    app = BitrixApp(client_id=tls_portal.oauth["client_id"], client_secret=tls_portal.oauth["client_secret"])
    domain = tls_portal.base_url.removeprefix("https://")
    token = BitrixToken(domain=domain, auth_token=tls_portal.oauth["access_token"], bitrix_app=app)
    oauth_client = Client(token)
    assert oauth_client.crm.deal.get(bitrix_id=3).result == tls_portal.call("crm.deal.get", {"id": 3})
    ids = [deal["ID"] for deal in oauth_client.crm.deal.list(select=["ID"]).as_list_fast().result]
    assert ids == sorted(held(tls_portal, ["ID"]), key=int)


def test_sdk_batch(tls_portal: Portal, sdk: Client) -> None:
    batch = sdk.call_batch(
        {
            "one": sdk.crm.deal.get(bitrix_id=9),
            "page": sdk.crm.deal.list(select=["ID"], order={"ID": "ASC"}, start=50),
            "missing": sdk.crm.deal.get(bitrix_id=999_999),
        }
    ).result
    assert batch.result["one"] == tls_portal.call("crm.deal.get", {"id": 9})
    assert [row["ID"] for row in batch.result["page"]] == sorted(held(tls_portal, ["ID"]), key=int)[50:100]
    assert batch.result_total["page"] == len(held(tls_portal, ["ID"])) and batch.result_next["page"] == 100
    assert batch.result_error == {"missing": {"error": "", "error_description": "Not found"}}


def test_sdk_errors(tls_portal: Portal, sdk: Client) -> None:
    with pytest.raises(sdk_errors.BitrixAPIBadRequest) as missing:
        sdk.crm.deal.get(bitrix_id=999_999).call()
    assert (missing.value.error, missing.value.error_description) == ("", "Not found")
    with pytest.raises(sdk_errors.BitrixAPINotFound) as unknown:
        sdk_token(tls_portal).call_method("crm.nothing.here", {})
    assert unknown.value.error == "ERROR_METHOD_NOT_FOUND"
    with pytest.raises(sdk_errors.BitrixAPIInvalidCredentials):
        sdk_client(tls_portal, token="x" * 16).crm.deal.get(bitrix_id=1).call()


def test_sdk_retries_rate_limit_refusals(tls_portal: Portal, sdk: Client, tls_files: tuple[str, str]) -> None:
    limits = f"{tls_portal.base_url}/_emulator/limits"
    session = requests.Session()
    session.verify = tls_files[0]
    try:
        session.post(limits, json={"burst": 3, "rate": 10, "reset": True}, timeout=10).raise_for_status()
        patient = sdk_client(tls_portal, max_retries=8, initial_retry_delay=0.2, retry_delay_increment=0.1)
        titles = [patient.crm.deal.get(bitrix_id=i).result["TITLE"] for i in range(1, 9)]
        assert titles == [held(tls_portal, ["ID", "TITLE"])[str(i)]["TITLE"] for i in range(1, 9)]
        assert tls_portal.stats()["refused"]["QUERY_LIMIT_EXCEEDED"] >= 1

        session.post(limits, json={"rate": 0.001, "reset": True}, timeout=10).raise_for_status()
        impatient = sdk_client(tls_portal, max_retries=1)
        for i in range(3):
            impatient.crm.deal.get(bitrix_id=i + 1).call()
        with pytest.raises(sdk_errors.BitrixAPIQueryLimitExceeded):
            impatient.crm.deal.get(bitrix_id=4).call()
    finally:
        session.post(limits, json={"burst": 50, "rate": 2.0, "reset": True}, timeout=10)
        session.close()
