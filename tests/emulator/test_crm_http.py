"""CRM methods over real HTTP through `Portal`: envelopes, PHP-style queries, batch chains, error bodies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from bitrix24_emulator import Portal


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(seed=3, deals=120, leads=30, contacts=30, companies=10, invoices=10, users=5, limits=False) as p:
        yield p


def _post(portal: Portal, method: str, body: dict) -> requests.Response:
    return requests.post(portal.webhook_url + method, json=body, timeout=30)


def test_get_with_php_query_keyset_page(portal: Portal) -> None:
    r = requests.get(
        portal.webhook_url + "crm.deal.list?filter[>ID]=100&select[]=ID&select[]=DATE_MODIFY&order[ID]=ASC&start=-1",
        timeout=30,
    )
    body = r.json()
    assert r.status_code == 200
    assert [row["ID"] for row in body["result"]] == [str(i) for i in range(101, 121)]
    assert body["total"] == 0 and "next" not in body and "time" in body


def test_json_post_upper_case_keys_with_total_and_next(portal: Portal) -> None:
    body = _post(portal, "crm.deal.list", {"SELECT": ["ID"], "ORDER": {"ID": "DESC"}, "START": 0}).json()
    assert (len(body["result"]), body["total"], body["next"]) == (50, 120, 50)
    assert body["result"][0] == {"ID": "120"}


def test_legacy_not_found_envelope(portal: Portal) -> None:
    r = _post(portal, "crm.deal.get", {"id": 999_999})
    assert (r.status_code, r.json()) == (400, {"error": "", "error_description": "Not found"})


def test_item_list_without_count_has_no_navigation(portal: Portal) -> None:
    r = requests.post(
        portal.webhook_url + "crm.item.list.json",
        data={"entityTypeId": "2", "order[id]": "ASC", "filter[>id]": "110", "start": "-1", "select[]": "id"},
        timeout=30,
    )
    body = r.json()
    assert [i["id"] for i in body["result"]["items"]] == list(range(111, 121))
    assert "total" not in body and "next" not in body


def test_payment_error_has_an_integer_code(portal: Portal) -> None:
    r = _post(portal, "crm.item.payment.get", {"id": 10**9})
    assert (r.status_code, r.json()["error"]) == (400, 0)


def test_batch_chain_with_a_short_page(portal: Portal) -> None:
    cmd = {
        "p0": "crm.deal.list?order[ID]=ASC&filter[>ID]=100&select[]=ID&start=-1",
        "p1": "crm.deal.list?order[ID]=ASC&filter[>ID]=$result[p0][49][ID]&select[]=ID&start=-1",
    }
    body = _post(portal, "batch", {"halt": 0, "cmd": cmd}).json()["result"]
    assert len(body["result"]["p0"]) == 20
    assert body["result_error"]["p1"] == {
        "error": "",
        "error_description": "Failed to get list. General error.",
    }


def test_userfield_added_over_http_appears_in_lists(portal: Portal) -> None:
    added = portal.call(
        "crm.lead.userfield.add",
        {"fields": {"FIELD_NAME": "HTTP_NOTE", "USER_TYPE_ID": "string", "EDIT_FORM_LABEL": "Note"}},
    )
    assert isinstance(added, int)
    rows = portal.call("crm.lead.list", {"select": ["UF_*"], "order": {"ID": "ASC"}})
    assert all(r["UF_CRM_HTTP_NOTE"] is None for r in rows)


def test_form_encoded_add_with_multifields(portal: Portal) -> None:
    form = {
        "fields[NAME]": "Zeynep",
        "fields[PHONE][0][VALUE]": "+905321234567",
        "fields[PHONE][0][VALUE_TYPE]": "MOBILE",
        "fields[UF_CRM_1699200004]": "Y",
    }
    new_id = requests.post(portal.webhook_url + "crm.contact.add", data=form, timeout=30).json()["result"]
    contact = portal.call("crm.contact.get", {"id": new_id})
    assert contact["PHONE"][0]["VALUE"] == "+905321234567" and contact["UF_CRM_1699200004"] is True


def test_an_update_is_found_by_a_date_modify_window(portal: Portal) -> None:
    portal.clock.advance(3600)
    since = portal.clock.isoformat()
    assert portal.call("crm.deal.update", {"id": 42, "fields": {"TITLE": "moved on"}}) is True
    rows = portal.call(
        "crm.deal.list",
        {
            "select": ["ID", "DATE_MODIFY"],
            "filter": {">=DATE_MODIFY": since},
            "order": {"DATE_MODIFY": "ASC", "ID": "ASC"},
        },
    )
    assert [r["ID"] for r in rows] == ["42"] and rows[0]["DATE_MODIFY"] >= since
