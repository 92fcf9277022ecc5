"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder on a free port.

PostgreSQL refuses to run as root, so when the tests run as root (as CI does) the server runs as an unprivileged
user (`postgres` when Debian's package created it, otherwise a system user made for the purpose). Password
authentication is on, so tests can also check what a wrong password does.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "b24sync"
PASSWORD = "b24sync-test-pw"
DATABASE = "b24sync_test"
FALLBACK_OS_USER = "b24sync-pg"


def find_server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, preferring the newest Debian cluster version."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _os_user() -> str | None:
    """None when we are not root (run as ourselves); otherwise an unprivileged account to run the server."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_OS_USER):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER], check=True
    )
    return FALLBACK_OS_USER


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    os_user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, user=self.os_user, capture_output=True, text=True)

    @classmethod
    def start(cls, bin_dir: Path) -> PostgresServer:
        os_user = _os_user()
        root = Path(tempfile.mkdtemp(prefix="b24sync-pg-"))
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD)
        if os_user:
            entry = pwd.getpwnam(os_user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir, root, _free_port(), os_user)
        data = root / "data"
        server._run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
        )
        server._run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=USER, password=PASSWORD, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
        conn.close()
        return server

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
