"""PHP `http_build_query` for the query part of `batch` commands
(`"crm.deal.list?filter[%3EID]=5&select[0]=ID"`).

A batch command is a string the portal `parse_str`s, so nested params must be flattened the way PHP does it:

* mappings become `key[sub]=...`, lists and tuples become `key[0]=...&key[1]=...` (PHP's indexed form);
* `True` -> `1`, `False` -> `0` (PHP casts booleans to int); `None` and empty containers produce nothing at
  all, exactly like PHP drops `null` and `[]` (so `{"filter": {}}` sends no `filter`);
* `int`/`float`/`str`/`Decimal` as their text; `date`/`datetime` as ISO 8601 (PHP has no such type);
* every key segment and value is percent-encoded (RFC 3986, space -> `%20`, like `PHP_QUERY_RFC3986`), except
  that the brackets between key segments stay literal, as in the reference's own examples. `%20` rather than
  `+` decodes identically with PHP's `urldecode` and `rawurldecode`. Batch references such as
  `$result[p0][49][ID]` are values like any other: encoded here, decoded by the server before it resolves
  them.

The portal decodes a command with `parse_str`, which keeps the first `max_input_vars` variables (PHP's default
1,000) and silently drops the rest, the params after a long filter list included: a command of more
variables is refused here rather than sent to be truncated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

MAX_INPUT_VARS = 1000  # PHP's default max_input_vars, which parse_str obeys


def php_query(params: Mapping[str, Any]) -> str:
    """Encode `params` as PHP's `http_build_query` would (see the module docstring for the exact rules).
    Raises `ValueError` past `MAX_INPUT_VARS` variables, which the portal would drop unseen."""
    pairs = [f"{key}={_quote(value)}" for key, value in _flatten(params, prefix=None)]
    if len(pairs) > MAX_INPUT_VARS:
        raise ValueError(
            f"a command of {len(pairs):,} variables: the portal reads only the first {MAX_INPUT_VARS:,} "
            "(PHP max_input_vars); split its filter"
        )
    return "&".join(pairs)


def _flatten(value: Any, prefix: str | None) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        if prefix is None:
            raise TypeError(f"php_query needs a mapping of parameters, got {type(value).__name__}")
        text = _scalar(value)
        if text is not None:
            yield prefix, text
        return
    for key, item in items:
        segment = _quote(str(key))
        yield from _flatten(item, segment if prefix is None else f"{prefix}[{segment}]")


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str | Decimal):
        return str(value)
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    raise TypeError(f"php_query cannot encode a {type(value).__name__} value")


def _quote(text: str) -> str:
    return quote(text, safe="")
