"""Where an OAuth app's current token pair lives between runs: one JSON file, replaced atomically.

Why so careful. Every refresh returns a new refresh token and the old one stops working (single-use rotation,
reference §10). Losing the new pair therefore locks the user out until they authorize the app again, so:

* a save writes a temporary file in the same directory (created owner-only, 0600, by `mkstemp`: never
  chmod-after), flushes and fsyncs it, `os.replace`s it over the store and fsyncs the directory. A crash at
  any moment leaves either the old or the new complete file, never a torn one; a temporary file a crash leaves
  behind is removed by the next save;
* `locked()` serialises refreshes: a `threading.Lock` inside the process and an `fcntl.flock` on a sibling
  `<name>.lock` file across processes (the kernel drops it when a process dies, so a crash never leaves it
  held). Whoever takes the lock re-reads the store first: `TokenPair.version` grows by one with every saved
  grant, so a newer pair there means somebody else has already refreshed.

POSIX only (fcntl).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["TokenPair", "TokenStore"]

log = logging.getLogger("bitrix24_sync.oauth")

FORMAT = 1


@dataclass(frozen=True, kw_only=True)
class TokenPair:
    """An access token with the refresh token issued alongside it. Tokens stay out of `repr`.

    `seed` is a hash of the credential the chain started from (the configured refresh token or authorization
    code): when the user configures a new one, the chain in the store is recognised as an older one."""

    client_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    client_endpoint: str = ""
    expires: int | None = None
    version: int = 1
    seed: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> TokenPair:
        """Raises ValueError for anything but a complete record of our format."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a token store record")
        texts = ("client_id", "access_token", "refresh_token", "client_endpoint", "seed")
        if not all(isinstance(data.get(k), str) for k in texts) or not data["refresh_token"]:
            raise ValueError("token store record is incomplete")
        expires, version = data.get("expires"), data.get("version")
        if not isinstance(version, int) or not (expires is None or isinstance(expires, int)):
            raise ValueError("token store record is incomplete")
        return cls(**{k: data[k] for k in texts}, expires=expires, version=version)


StoreStamp = tuple[int, int, int, int]


class TokenStore:
    """A JSON file holding one `TokenPair` (see the module docstring for the guarantees)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._temp_prefix = f".{self.path.name}."
        self._thread_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenStore({str(self.path)!r})"

    def stamp(self) -> StoreStamp | None:
        """Cheap identity of the file's current content (None if there is none): a replace gives a new inode
        and times, so a changed stamp means another process (or object) has saved a pair."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def load(self) -> TokenPair | None:
        """The stored pair, or None when there is no store yet. A file that is not a complete record (edited
        by hand, or not ours) is a `ConfigError` naming the file, never quoting it."""
        problem = ""
        try:
            with open(self.path, "rb") as file:
                mode = os.fstat(file.fileno()).st_mode
                raw = file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            problem, raw, mode = f"cannot be read ({exc.strerror})", b"", 0
        if problem:
            raise ConfigError(f"the OAuth token store {self.path} {problem}")
        try:
            pair: TokenPair | None = TokenPair.from_json(json.loads(raw))
        except ValueError:
            pair = None
        if pair is None:
            raise ConfigError(
                f"the OAuth token store {self.path} is not a complete token file; if it was edited by hand, "
                "delete it and authorize the app again (set authorization_code or refresh_token)"
            )
        if mode & 0o077:
            log.warning(
                "the OAuth token store %s is readable by other users; it is rewritten owner-only (0600) at "
                "the next token refresh, or run: chmod 600 %s",
                self.path,
                self.path,
            )
        return pair

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store for a read-refresh-save sequence, against other threads and other processes."""
        with self._thread_lock:
            self._make_directory()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def save(self, pair: TokenPair) -> None:
        """Atomically replace the stored pair; durable when this returns. Call it inside `locked()` (which is
        also what makes removing a crashed save's temporary file safe)."""
        self._make_directory()
        self._remove_leftovers()
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=self._temp_prefix, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(json.dumps(pair.to_json(), indent=2).encode() + b"\n")
                file.flush()
                os.fsync(file.fileno())
            self._commit(temp)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def _commit(self, temp: str) -> None:
        """Put the complete temporary file in place and make the rename itself durable."""
        os.replace(temp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _make_directory(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _remove_leftovers(self) -> None:
        """Temporary files of saves that died before their rename (they hold tokens; nobody will use them)."""
        for leftover in self.path.parent.glob(f"{glob.escape(self._temp_prefix)}*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
