"""PHP `parse_str`: query strings and form bodies decoded the way a Bitrix24 portal (PHP) decodes them.

Why not `urllib.parse.parse_qs`: Bitrix parameters are PHP arrays written as `filter[>ID]=5`, `select[]=ID`,
`fields[PHONE][0][VALUE]=1`, and the portal (PHP) builds nested arrays from them.

Representation (one rule, used everywhere the emulator hands params to a method or encodes a PHP array as
JSON):
- scalars are always `str` (PHP never types query values);
- a PHP array whose keys are exactly 0, 1, ..., n-1 in insertion order becomes a Python `list` (that is also
  what PHP's `json_encode` does with it): `select[]=ID&select[]=TITLE` and `select[0]=ID&select[1]=TITLE` both
  give `["ID", "TITLE"]`;
- any other PHP array becomes a `dict` with `str` keys: `order[ID]=ASC` -> `{"ID": "ASC"}`, `a[1]=x&a[0]=y` ->
  `{"1": "x", "0": "y"}` (PHP would json_encode that as an object too).

PHP details kept: `+` is a space; a pair without `=` has the value `""`; later pairs overwrite earlier ones
and a scalar is replaced by an array when a later key nests under it; `[]` appends at max(int key)+1; in the
top-level name `.` and ` ` become `_` and an unclosed `[` becomes `_`; text after a closing `]` that does not
open another `[` is ignored; only the first `MAX_INPUT_VARS` pairs are read (PHP's `max_input_vars`, which
`parse_str` obeys too: a longer query loses its tail silently, with a warning in the server's log).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

# PHP's default max_input_vars. A server may raise it; the emulator keeps the default, so a client that works
# here works on a portal with either setting.
MAX_INPUT_VARS = 1000
_INT_KEY = re.compile(r"-?(0|[1-9][0-9]*)\Z")


def php_key(key: str) -> str | int:
    """PHP turns a canonical decimal string key into an integer key ("5" -> 5, "05" stays "05")."""
    if _INT_KEY.match(key):
        value = int(key)
        if -(2**63) <= value < 2**63:
            return value
    return key


def split_name(name: str) -> tuple[str, list[str | None]] | None:
    """`filter[>ID]` -> ("filter", [">ID"]); `select[]` -> ("select", [None]); None if PHP drops it."""
    name = name.lstrip(" ")
    bracket = name.find("[")
    base = name if bracket < 0 else name[:bracket]
    path: list[str | None] = []
    if bracket >= 0:
        pos = bracket
        while pos < len(name) and name[pos] == "[":
            close = name.find("]", pos + 1)
            if close < 0:
                if not path:  # PHP: an unclosed first bracket is part of the name, as "_"
                    base = name[:bracket] + "_" + name[bracket + 1 :]
                break
            inner = name[pos + 1 : close]
            path.append(inner if inner != "" else None)
            pos = close + 1
    base = base.replace(".", "_").replace(" ", "_")
    if base == "":
        return None
    return base, path


def assemble(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Build the PHP array from (name, value) pairs in order, in the representation documented above."""
    root: dict[str | int, Any] = {}
    for name, value in pairs:
        parts = split_name(name)
        if parts is None:
            continue
        base, path = parts
        container: dict[str | int, Any] = root
        key: str | int | None = php_key(base)
        for segment in path:
            child = container.get(key)
            if not isinstance(child, dict):
                child = {}
                container[key] = child
            container = child
            key = _next_index(container) if segment is None else php_key(segment)
        container[key] = value
    return {str(key): to_php_json(value) for key, value in root.items()}  # the top level is always a dict


def _next_index(array: dict[str | int, Any]) -> int:
    ints = [k for k in array if isinstance(k, int)]
    return max(ints) + 1 if ints and max(ints) >= 0 else 0


def to_php_json(value: Any) -> Any:
    """A PHP array (dict with int/str keys) shaped as `json_encode` would: list or str-keyed dict."""
    if not isinstance(value, dict):
        return value
    if all(k == i for i, k in enumerate(value)):  # keys exactly 0..n-1 in order (also true when empty)
        return [to_php_json(v) for v in value.values()]
    return {str(k): to_php_json(v) for k, v in value.items()}


def parse_str(query: str) -> dict[str, Any]:
    """PHP `parse_str`: decode a query string or an x-www-form-urlencoded body into nested params."""
    return assemble(_pairs(query))


def _pairs(query: str) -> Iterable[tuple[str, str]]:
    chunks = [chunk for chunk in query.split("&") if chunk]
    for chunk in chunks[:MAX_INPUT_VARS]:
        name, _, value = chunk.partition("=")
        name = unquote_plus(name, errors="replace")
        if name:
            yield name, unquote_plus(value, errors="replace")
