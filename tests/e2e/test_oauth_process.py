"""`OAuthAuth` and `TokenStore` across processes: two processes sharing one store refresh once, and a process
killed (SIGKILL) at each point between the token server's answer and a durable store leaves a complete store
file. The children run this module (`python -m tests.e2e.test_oauth_process <stage>`) or `share_a_store`."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bitrix24_emulator import Portal
from sources.bitrix24.api import AuthError
from sources.bitrix24.api.oauth import OAuthAuth
from sources.bitrix24.api.token_store import TokenPair, TokenStore

from .test_oauth_http import PAGE, make_auth, make_client, refresh_is_spent

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    with Portal(deals=30, leads=5, contacts=5, companies=5, limits=False) as portal:
        yield portal


@pytest.fixture
def chain(portal: Portal) -> dict[str, str]:
    grant = portal.auth.issue(portal.oauth["client_id"], 1)
    return {**portal.oauth, "refresh_token": grant.refresh_token}


# --------------------------------------------------------------------------------- two processes, one store


def share_a_store(oauth: dict[str, str], path: str, barrier: Any, results: Any) -> None:
    """A child: bootstrap from the shared store (or the configured token), then, once both children hold the
    same pair, refresh it as if a call had failed with expired_token, and make a call."""
    try:
        auth = make_auth(oauth, Path(path))
        auth.params()
        barrier.wait(30)
        auth.refresh(requests.Session(), 10.0)
        total = make_client(auth).call("crm.deal.list", PAGE).total
        results.put((auth.token_requests, total, ""))
    except Exception as exc:  # reported to the parent by type and message (both free of secrets)
        results.put((-1, None, f"{type(exc).__name__}: {exc}"))


def test_two_processes_sharing_a_store_spend_each_token_once(
    portal: Portal, chain: dict[str, str], tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")  # no fork of a process that runs the server thread
    barrier, results = context.Barrier(2), context.Queue()
    path = str(tmp_path / "tokens.json")
    children = [context.Process(target=share_a_store, args=(chain, path, barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = sorted(results.get(timeout=60) for _ in children)
    for child in children:
        child.join(30)
    assert [error for _, _, error in outcomes] == ["", ""]
    assert [total for _, total, _ in outcomes] == [30, 30]
    # One bootstrap grant and one refresh grant between them: the other child adopted both pairs.
    assert sum(requests_made for requests_made, _, _ in outcomes) == 2
    assert TokenStore(path).load().version == 2


# --------------------------------------------------------------------------------- SIGKILL around the save


class CrashingStore(TokenStore):
    """Kills its own process with SIGKILL at one point of a save: `before_write` (the answer is in memory,
    nothing written), `before_rename` (the complete temporary file is fsynced), `after_rename` (the new file
    is in place, the directory not yet fsynced)."""

    def __init__(self, path: str, stage: str):
        super().__init__(path)
        self.stage = stage

    def save(self, pair: TokenPair) -> None:
        self._crash_at("before_write")
        super().save(pair)

    def _commit(self, temp: str) -> None:
        self._crash_at("before_rename")
        super()._commit(temp)
        self._crash_at("after_rename")

    def _crash_at(self, stage: str) -> None:
        if stage == self.stage:
            os.kill(os.getpid(), signal.SIGKILL)


def crash_while_refreshing(stage: str) -> None:
    """The child: continue the stored chain, then refresh and die at `stage`."""
    settings = json.loads(sys.stdin.read())
    auth = OAuthAuth(
        settings["client_id"],
        settings["client_secret"],
        settings["client_endpoint"],
        CrashingStore(settings["store"], stage),
        settings["token_endpoint"],
    )
    auth.params()
    auth.refresh(requests.Session(), 10.0)
    raise SystemExit("not killed")


@pytest.mark.parametrize("stage", ["before_write", "before_rename", "after_rename"])
def test_kill_between_refresh_and_persist_leaves_a_complete_store(
    portal: Portal, chain: dict[str, str], tmp_path: Path, stage: str
) -> None:
    path = tmp_path / "tokens.json"
    make_client(make_auth(chain, path)).call("crm.deal.list", PAGE)  # a run that left a stored chain
    before = TokenStore(path).load()
    assert before.version == 1

    child = subprocess.run(
        [sys.executable, "-m", "tests.e2e.test_oauth_process", stage],
        input=json.dumps({**chain, "store": str(path)}),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    after = TokenStore(path).load()  # complete and readable either way
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert refresh_is_spent(portal, chain, before.refresh_token)  # the server did rotate
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if stage == "after_rename":
        # The new pair made it: the next run simply goes on with it.
        assert after.version == 2 and leftovers == []
        rerun = make_auth(chain, path, refresh_token=None)
        assert make_client(rerun).call("crm.deal.list", PAGE).total == 30
        assert rerun.token_requests == 0
        return

    # The residual window: the old, now dead pair is still the stored one. What the user sees next: its access
    # token was revoked with the rotation (the portal answers invalid_token, an AuthError), and renewing it is
    # refused with the one-line "authorize the app again" message. Authorizing again recovers.
    assert after == before
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in leftovers] == ([0o600] if stage == "before_rename" else [])
    rerun = make_auth(chain, path, refresh_token=None)
    with pytest.raises(AuthError):
        make_client(rerun).call("crm.deal.list", PAGE)
    with pytest.raises(AuthError, match="the refresh token was already used or expired .*authorize the app again"):
        rerun.refresh(requests.Session(), 10.0)

    again = make_auth(chain, path, refresh_token=None, authorization_code=portal.authorization_code())
    assert make_client(again).call("crm.deal.list", PAGE).total == 30
    assert TokenStore(path).load().version == 2
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # the crash's leftover is gone


if __name__ == "__main__":
    crash_while_refreshing(sys.argv[1])
