"""The emulator in its own process (limits off, seeded), on a working copy of a portal file generated once
per size and emulator version, plus the admin calls the cases need (uncounted, unlimited: `X-Emulator-Admin: 1`)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ADMIN = {"X-Emulator-Admin": "1"}
SEED = 7
EMULATOR = Path(__file__).resolve().parents[2] / "bitrix24_emulator"


def emulator_version() -> str:
    """A digest of the emulator's code: a portal file seeded by other code is another portal."""
    digest = hashlib.sha256()
    for path in sorted(EMULATOR.rglob("*.py")):
        digest.update(path.relative_to(EMULATOR).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


@dataclass(frozen=True)
class PortalSize:
    deals: int

    @property
    def leads(self) -> int:
        return self.deals

    @property
    def contacts(self) -> int:
        return self.deals * 6 // 10

    @property
    def companies(self) -> int:
        return self.deals * 2 // 10

    @property
    def label(self) -> str:
        return f"{self.deals // 1_000_000}M" if self.deals >= 1_000_000 else f"{self.deals // 1000}k"

    def cli_args(self) -> list[str]:
        return [
            f"--deals={self.deals}",
            f"--leads={self.leads}",
            f"--contacts={self.contacts}",
            f"--companies={self.companies}",
        ]


class Emulator:
    """`python -m bitrix24_emulator --no-limits` on `work_db`, a copy of the pristine `<size>.sqlite` (seeded
    on first use), so the cases' edits never leak into the next benchmark run."""

    def __init__(self, size: PortalSize, results: Path, nice: list[str]):
        self.size = size
        self.pristine = results / f"portal-{size.label}-seed{SEED}-{emulator_version()}.sqlite"
        self.work_db = results / f"work-{size.label}.sqlite"
        self.nice = nice
        self.process: subprocess.Popen[str] | None = None
        self.webhook = ""
        self.base = ""
        self.http = requests.Session()
        self.seed_seconds: float | None = None

    def __enter__(self) -> Emulator:
        if not self.pristine.exists():
            for stale in self.pristine.parent.glob(f"portal-{self.size.label}-seed{SEED}*.sqlite"):
                stale.unlink()  # seeded by an earlier emulator
            started = time.monotonic()
            self._start(self.pristine)  # seeds the file, then serves; stop it and keep the file
            self.stop()
            self.seed_seconds = time.monotonic() - started
        shutil.copyfile(self.pristine, self.work_db)
        self._start(self.work_db)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.work_db.unlink(missing_ok=True)

    def _start(self, db: Path) -> None:
        cmd = [
            *self.nice,
            sys.executable,
            "-m",
            "bitrix24_emulator",
            "--port=0",
            "--no-limits",
            f"--seed={SEED}",
            *self.size.cli_args(),
            f"--db={db}",
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start (first line {line!r})")
        self.webhook = line
        self.base = line.split("/rest/")[0]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def stats(self) -> dict[str, Any]:
        return self.http.get(f"{self.base}/_emulator/stats", timeout=60).json()

    def reset_stats(self) -> None:
        self.http.post(f"{self.base}/_emulator/stats/reset", timeout=60).raise_for_status()

    def admin(self, method: str, params: dict[str, Any] | None = None) -> Any:
        body = self.http.post(self.webhook + method, json=params or {}, headers=ADMIN, timeout=600).json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body.get('error')} {body.get('error_description')}")
        return body["result"]

    def touch(self, entity: str, ids: list[int], stamp: str) -> None:
        """Change one field of each record (`crm.<entity>.update`, 50 per admin batch): DATE_MODIFY moves."""
        for i in range(0, len(ids), 50):
            cmd = {f"u{rid}": f"crm.{entity}.update?id={rid}&fields[COMMENTS]={stamp}" for rid in ids[i : i + 50]}
            result = self.admin("batch", {"halt": 1, "cmd": cmd})
            if result.get("result_error"):
                raise RuntimeError(f"crm.{entity}.update failed: {result['result_error']}")
