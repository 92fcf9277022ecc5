"""Run one child process and read what it cost from the kernel (`os.wait4`): its own user+sys CPU seconds and
peak RSS, never the emulator's."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Measured:
    result: dict[str, Any]
    cpu_seconds: float
    peak_rss_mb: float
    wall_seconds: float


class ChildFailed(RuntimeError):
    pass


def run_measured(argv: list[str], log: Path) -> Measured:
    """`argv` may start with `nice -n N`: nice execs the real command, so the pid (and rusage) is the same."""
    started = time.monotonic()
    with log.open("ab") as err:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
        assert child.stdout is not None
        out = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    wall = time.monotonic() - started
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        raise ChildFailed(f"{' '.join(argv[-6:])} exited {child.returncode}; see {log}")
    return Measured(
        result=json.loads(lines[-1]),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        wall_seconds=wall,
    )
