"""One line for a destination that cannot be used or written: what is wrong and how to fix it.

dlt wraps driver errors in a paragraph of generic advice; the driver's own reason sits after "The actual
reason given is:". We keep that reason (first line) and add the fix for the failures users actually meet.
"""

from __future__ import annotations

import re


class DestinationError(Exception):
    """The warehouse cannot be reached or written; the message says which and how to fix it."""


_REASON = re.compile(r"The actual reason given is:\s*(.*)", re.DOTALL)
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Conflicting lock is held in .*?\(PID (\d+)\)"),
        "another process (PID {0}) has the DuckDB file open for writing: close it (a notebook, the duckdb "
        "CLI, another sync) and run again",
    ),
    (re.compile(r"Is a directory"), "the DuckDB path is a directory: give a file path with --duckdb-path"),
    (
        re.compile(r"No such file or directory"),
        "the folder of the DuckDB file does not exist: create it or fix --duckdb-path",
    ),
    (
        re.compile(r"Permission denied|Read-only file system"),
        "the DuckDB file or its folder is not writable: fix the permissions or choose another --duckdb-path",
    ),
    (
        re.compile(r"password authentication failed|authentication failed"),
        "Postgres refused the user or password: fix them in --postgres-url or destination.postgres.credentials",
    ),
    (
        re.compile(r"Connection refused|could not connect|could not translate host name|timeout expired"),
        "Postgres is not reachable: check the host and port in --postgres-url and that the server is running",
    ),
    (
        re.compile(r'database "[^"]+" does not exist'),
        "create the database or fix its name in --postgres-url",
    ),
)


def explain(text: str) -> str:
    """`reason (fix)` in one line, from a destination error's text."""
    match = _REASON.search(text)
    reason = (match.group(1) if match else text).strip().splitlines()
    first = reason[0].strip() if reason else ""
    for pattern, hint in _HINTS:
        found = pattern.search(text)
        if found:
            return f"{first} ({hint.format(*found.groups())})"
    return first
