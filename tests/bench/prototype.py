"""The ceiling the benchmark holds our sync against: a bare, throwaway reader of one entity that does the least a
typed load needs. `crm.<x>.fields` gives each column a pyarrow type; batches of 50 chained keyset pages
(`$result[p<k>][49][ID]`) are decoded with orjson and turned column by column (one vectorized cast each)
into one typed Arrow table per batch, appended to a DuckDB table. No merge, no child tables (a multiple field
is its JSON text), no state, no bad-value bookkeeping beyond NULL: what is left when everything a product needs
is taken away.

Throwaway quality on purpose; the sync shares no code with it, so the ratio of the two measures our overhead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import requests

TYPES = {
    "integer": pa.int64(),
    "double": pa.float64(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "char": pa.bool_(),
    "boolean": pa.bool_(),
    "crm_category": pa.int64(),
    "user": pa.int64(),
    "crm_company": pa.int64(),
    "crm_contact": pa.int64(),
    "crm_lead": pa.int64(),
    "enumeration": pa.int64(),
}


def _value(kind: pa.DataType, multiple: bool, value: Any) -> Any:
    if value is None or value == "" or value is False and kind != pa.bool_():
        return None
    if multiple or isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    try:
        if kind == pa.int64():
            return int(value)
        if kind == pa.float64():
            return float(value)
        if kind == pa.bool_():
            return value in ("Y", "1", 1, True)
        if kind == pa.date32():
            return date.fromisoformat(value[:10])
        if kind == pa.timestamp("us", tz="UTC"):
            return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return str(value)


def _cast(kind: pa.DataType, multiple: bool, values: list[Any]) -> pa.Array:
    """One column: text first, then one vectorized cast (per value only where the cast fails)."""
    if multiple or kind == pa.string():
        return pa.array([_value(kind, multiple, v) for v in values], kind)
    text = pa.array([None if v is None or v == "" or v is False else str(v) for v in values], pa.string())
    try:
        if kind == pa.bool_():
            return pc.is_in(text, pa.array(["Y", "1", "True"]))
        if kind == pa.date32():
            return pc.cast(pc.strptime(pc.utf8_slice_codeunits(text, 0, 10), "%Y-%m-%d", "s"), pa.date32())
        if kind == pa.timestamp("us", tz="UTC"):
            return pc.strptime(text, "%Y-%m-%dT%H:%M:%S%z", "us")
        return pc.cast(text, kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_value(kind, multiple, v) for v in values], kind)


def _command(method: str, after: str) -> str:
    query = [("select[]", "*"), ("select[]", "UF_*"), ("order[ID]", "ASC"), ("filter[>ID]", after), ("start", "-1")]
    return f"{method}?{urlencode(query)}"


def read_into_duckdb(session: requests.Session, webhook: str, entity: str, path: str) -> int:
    """Every row of `crm.<entity>.list` into table `<entity>` of the DuckDB file at `path`; the row count."""
    meta = orjson.loads(session.post(f"{webhook}crm.{entity}.fields", timeout=600).content)["result"]
    schema = pa.schema(
        [
            (code, pa.string() if m.get("isMultiple") else TYPES.get(m.get("type"), pa.string()))
            for code, m in meta.items()
            if m.get("type") != "crm_multifield"
        ]
    )
    multiple = {code for code, m in meta.items() if m.get("isMultiple")}
    con = duckdb.connect(path)
    rows, after, created = 0, "0", False
    while True:
        keys = [f"p{i}" for i in range(50)]
        cmd = {keys[0]: _command(f"crm.{entity}.list", after)}
        for prev, key in zip(keys, keys[1:], strict=False):
            cmd[key] = _command(f"crm.{entity}.list", f"$result[{prev}][49][ID]")
        body = orjson.loads(session.post(f"{webhook}batch", json={"halt": 0, "cmd": cmd}, timeout=600).content)
        pages = body["result"]["result"]
        batch: list[dict[str, Any]] = []
        done = False
        for key in keys:
            page = pages.get(key) or []
            batch += page
            if len(page) < 50:
                done = True
                break
        if batch:
            columns = {f.name: _cast(f.type, f.name in multiple, [r.get(f.name) for r in batch]) for f in schema}
            table = pa.table(columns)
            con.register("page", table)
            con.execute(
                f"{'INSERT INTO' if created else 'CREATE TABLE'} {entity} {'' if created else 'AS '}SELECT * FROM page"
            )
            con.unregister("page")
            created = True
            rows += len(batch)
            after = str(batch[-1]["ID"])
        if done:
            break
    con.close()
    return rows
