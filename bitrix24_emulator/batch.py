"""The `batch` method: up to 50 sub-calls in one request, with references to earlier results (reference §7).

Copied from core-src `CRestProvider::methodsBatch` and `CRestUtil::ParseBatchQuery`/`processBatchElement`:
- top-level keys are case-insensitive (`CMD`/`cmd`, `HALT`/`halt`); `halt` is cast to bool the PHP way, so
  `0`, `"0"`, `""` and `false` are false and any other string, even `"false"`, is true;
- `cmd` is a map or a list of `"method?php-query"` strings; commands that are not strings are skipped; every
  command past the 50th gets ERROR_BATCH_LENGTH_EXCEEDED; a nested `batch` gets
  ERROR_BATCH_METHOD_NOT_ALLOWED;
- each query is decoded with PHP `parse_str` and then every value is searched for `$result[..]`, `$next[..]`,
  `$total[..]`, `$time[..]`, `$error[..]` (the regex `\\$(result|next|total|time|error)([^\\s]*)`). The
  bracketed path is walked while keys exist (a missing or null key stops the walk and the last container found
  is used: `$result[p0][49][ID]` after a 10-row page yields p0's whole row list). A reference that is the
  whole value is replaced by what it resolved to, whatever its type; one embedded in a longer string is
  replaced only by a string (otherwise the text stays literal). Keys of params are not resolved;
- `halt=1` stops after the first failing command; results of earlier commands are kept;
- the response maps `result`, `result_error`, `result_total`, `result_next`, `result_time` are keyed by
  command key and, as PHP arrays, encode as `[]` when empty (and as a JSON list when the keys are 0..n-1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .methods import MethodResult
from .phpquery import parse_str, php_key

BATCH_MAX_LENGTH = 50
NOT_IN_BATCH = ("batch", "download", "upload")

_REFERENCE = re.compile(r"\$(result|next|total|time|error)([^\s]*)", re.IGNORECASE)
_PATH = re.compile(r"\[([^\]]+)\]")


@dataclass
class Outcome:
    """One sub-call's answer: a result with its `time` block, or an error body."""

    result: MethodResult | None = None
    time: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


# (method name as written, decoded params) -> Outcome
Execute = Callable[[str, dict[str, Any]], Outcome]
# method names of the commands that will run, in order -> position of the one to fail (a fault), or None
PickFailing = Callable[[list[str]], "int | None"]


def php_bool(value: Any) -> bool:
    """PHP's `(bool)` cast."""
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def split_command(call: str) -> tuple[str, str]:
    """`"crm.deal.list?start=0#x"` -> ("crm.deal.list", "start=0"), as PHP `parse_url` splits it."""
    call = call.split("#", 1)[0]
    method, _, query = call.partition("?")
    return method, query


def run_batch(params: dict[str, Any], execute: Execute, pick_failing: PickFailing | None = None) -> MethodResult:
    upper = {str(key).upper(): value for key, value in params.items()}
    halt = php_bool(upper.get("HALT", False))
    cmd = upper.get("CMD")
    results: dict[str, dict[str | int, Any]] = {
        "result": {},
        "next": {},
        "total": {},
        "time": {},
        "error": {},
    }
    if isinstance(cmd, dict):
        commands = [(php_key(str(key)), call) for key, call in cmd.items()]
    elif isinstance(cmd, list):
        commands = list(enumerate(cmd))
    else:
        commands = []

    runnable = [split_command(call)[0].lower() for call in commands_within_limit(commands)]
    failing = pick_failing(runnable) if pick_failing and runnable else None

    position = 0
    for number, (key, call) in enumerate(commands):
        if number >= BATCH_MAX_LENGTH:
            outcome = Outcome(error=ApiError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded").body())
        elif not isinstance(call, str):
            continue
        else:
            outcome = _run_one(call, results, execute, fault=position == failing)
            position += 1
        _store(results, key, outcome)
        if outcome.error is not None and halt:
            break

    return MethodResult(
        {
            "result": php_array(results["result"]),
            "result_error": php_array(results["error"]),
            "result_total": php_array(results["total"]),
            "result_next": php_array(results["next"]),
            "result_time": php_array(results["time"]),
        }
    )


def commands_within_limit(commands: list[tuple[str | int, Any]]) -> list[str]:
    return [call for call in (c for _, c in commands[:BATCH_MAX_LENGTH]) if isinstance(call, str)]


def _run_one(call: str, results: dict[str, dict[str | int, Any]], execute: Execute, fault: bool) -> Outcome:
    method, query = split_command(call)
    if method.lower() in NOT_IN_BATCH:
        return Outcome(
            error=ApiError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405).body()
        )
    if fault:
        return Outcome(error=ApiError("INTERNAL_SERVER_ERROR", "Internal server error", 500).body())
    params = resolve_references(parse_str(query), results) if query else {}
    return execute(method, params)


def _store(results: dict[str, dict[str | int, Any]], key: str | int, outcome: Outcome) -> None:
    if outcome.error is not None:
        results["error"][key] = outcome.error
        return
    assert outcome.result is not None
    results["result"][key] = outcome.result.result
    if outcome.result.next is not None:
        results["next"][key] = int(outcome.result.next)
    if outcome.result.total is not None:
        results["total"][key] = int(outcome.result.total)
    if outcome.time is not None:
        results["time"][key] = outcome.time


def php_array(array: dict[str | int, Any]) -> list[Any] | dict[str, Any]:
    """One level of PHP `json_encode`: keys 0..n-1 in order (or none) -> list, otherwise an object."""
    if all(key == index for index, key in enumerate(array)):
        return list(array.values())
    return {str(key): value for key, value in array.items()}


def resolve_references(value: Any, results: dict[str, dict[str | int, Any]]) -> Any:
    if isinstance(value, dict):
        return {key: resolve_references(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_references(item, results) for item in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    text = value
    for match in _REFERENCE.finditer(value):
        path = _PATH.findall(match.group(2))
        if not path:
            continue
        top = results.get(match.group(1))  # PHP looks the name up as written: `$RESULT` finds nothing
        node: Any = top
        for key in path:
            child = _child(node, key)
            if child is None:
                break
            node = child
        if node is top and top is not None:  # PHP copies arrays; this map keeps growing as commands run
            node = php_array(top)
        if match.group(0) == value:
            return node
        if isinstance(node, str):
            text = text.replace(match.group(0), node)
    return text


def _child(node: Any, key: str) -> Any:
    """PHP `isset($node[$key]) ? $node[$key] : null` for arrays (dicts and lists)."""
    if isinstance(node, dict):
        found = node.get(key)
        if found is None:
            index = php_key(key)
            if isinstance(index, int):
                found = node.get(index)
        return found
    if isinstance(node, list):
        index = php_key(key)
        if isinstance(index, int) and 0 <= index < len(node):
            return node[index]
    return None
