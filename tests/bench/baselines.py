"""What users do today, replayed against the emulator so `make bench` can put our figures beside theirs.

- `offset_pages`: one `crm.<x>.list` call per 50-row page, walking `start` = 0, 50, 100, ... (every call counts).
- `offset_batches`: one call with `start=0` to learn `total`, then batches of 50 commands with explicit `start`
  offsets (the "fast list" pattern several SDKs ship).
Both select `*` and `UF_*` and order by ID, as a careful user would.
"""

from __future__ import annotations

from urllib.parse import urlencode

import requests

SELECT = ("*", "UF_*")


def _list_params(start: int) -> dict[str, object]:
    return {"select": list(SELECT), "order": {"ID": "ASC"}, "start": start}


def offset_pages(session: requests.Session, webhook_url: str, method: str) -> int:
    """Rows read by walking `start` one page per HTTP request."""
    rows, start = 0, 0
    while True:
        body = session.post(webhook_url + method, json=_list_params(start), timeout=600).json()
        rows += len(body["result"])
        if "next" not in body:
            return rows
        start = body["next"]


def _cmd(method: str, start: int) -> str:
    query = [("select[]", s) for s in SELECT] + [("order[ID]", "ASC"), ("start", str(start))]
    return f"{method}?{urlencode(query)}"


def offset_batches(session: requests.Session, webhook_url: str, method: str) -> int:
    """Rows read by the SDKs' batch-of-offsets pattern."""
    first = session.post(webhook_url + method, json=_list_params(0), timeout=600).json()
    rows, total = len(first["result"]), int(first.get("total", 0))
    offsets = list(range(50, total, 50))
    for i in range(0, len(offsets), 50):
        cmd = {f"p{start}": _cmd(method, start) for start in offsets[i : i + 50]}
        body = session.post(webhook_url + "batch", json={"halt": 0, "cmd": cmd}, timeout=600).json()
        rows += sum(len(page) for page in body["result"]["result"].values())
    return rows
