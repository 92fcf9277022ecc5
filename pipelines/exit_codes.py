"""The one mapping from what went wrong to the CLI's exit code and its one-line message.

Schedulers and monitoring branch on the code, so each class of failure has its own and they never change
(the table is `HELP_TEXT`, shown by `bitrix24-sync --help`).
"""

from __future__ import annotations

import errno
import signal

from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.exceptions import SignalReceivedException
from dlt.common.runtime import signals
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.crash_repair import UnloadableDataError
from pipelines.destinations import DestinationError, hide_passwords
from pipelines.runner import AlreadyRunningError
from sources.bitrix24 import AuthError, Bitrix24Error, ConfigError, DateInputError, PlanError, ScopeError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_PORTAL = 4
EXIT_DESTINATION = 5
EXIT_BUSY = 6
EXIT_SOME_PORTALS_FAILED = 7

EXIT_NAMES = {
    EXIT_OK: "ok",
    EXIT_UNEXPECTED: "unexpected",
    EXIT_USAGE: "usage",
    EXIT_AUTH: "auth",
    EXIT_PORTAL: "portal",
    EXIT_DESTINATION: "destination",
    EXIT_BUSY: "busy",
    EXIT_SOME_PORTALS_FAILED: "some portals failed",
}

HELP_TEXT = """exit codes:
  0  success
  1  unexpected error (run again with --debug for the traceback)
  2  usage or configuration mistake (bad option, URL, date, unknown resource)
  3  authentication or permission (rejected webhook/token, missing scope)
  4  the portal failed after retries (rate limit, 5xx, network): run again later
  5  the destination failed (unreachable, wrong password, locked file)
  6  another run of this pipeline is in progress
  7  run --portals: at least one portal failed (the summary lists each portal)
  130, 143  stopped by Ctrl-C (SIGINT) or SIGTERM at a safe point: nothing half-written, the next run goes on"""

_AUTH_HINT = "check the credential (sources.bitrix24.credentials: the webhook URL, or the OAuth app's settings)"


_READ_ONLY = (errno.EACCES, errno.EROFS, errno.EPERM)


def stop_code() -> int:
    """128 + the signal that stopped the run (130 for Ctrl-C, 143 for SIGTERM), as shells report it."""
    received = signals.exception_for_signal() if signals.was_signal_received() else None
    number = received.signal_code if isinstance(received, SignalReceivedException) else signal.SIGINT
    return 128 + int(number)


def stopped_message(error: BaseException, finished: bool = False) -> str:
    code = getattr(error, "signal_code", signal.SIGINT)
    name = "Ctrl-C" if code == signal.SIGINT else signal.Signals(code).name
    if finished:
        return f"stopped by {name} after the run had finished: everything was committed"
    return (
        f"stopped by {name} at a safe point: nothing was half-written; the next run goes on from where this one stopped"
    )


def _stop_in(error: BaseException) -> BaseException | None:
    """The signal (dlt's SignalReceivedException, or a second Ctrl-C's KeyboardInterrupt) behind an error."""
    return next((e for e in _chain(error) if isinstance(e, KeyboardInterrupt)), None)


def classify(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message (never a secret: our exceptions are built without them, a
    database URL's password is masked, an unexpected exception is named by its type only, since its text may
    quote a URL)."""
    code, message = _classify(error)
    return code, hide_passwords(message)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return seen


def _classify(error: BaseException) -> tuple[int, str]:
    chain = _chain(error)
    disk = next((e for e in chain if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)), None)
    if disk is not None:
        where = f" ({disk.filename})" if getattr(disk, "filename", None) else ""
        return EXIT_DESTINATION, (
            f"the disk is full{where}: free some space and run again; nothing was committed, the next run goes on "
            "from the last committed point"
        )
    unwritable = next((e for e in chain if isinstance(e, PermissionError | OSError) and e.errno in _READ_ONLY), None)
    if unwritable is not None and getattr(unwritable, "filename", None):
        return EXIT_USAGE, (
            f"cannot write {unwritable.filename} ({unwritable.strerror}): make the folder writable or choose "
            "another one (--pipelines-dir, --duckdb-path)"
        )
    coerced = next((e for e in chain if isinstance(e, ConfigValueCannotBeCoercedException)), None)
    if coerced is not None:  # the value itself is not shown: it may be a secret
        hint = getattr(coerced.hint, "__name__", str(coerced.hint))
        return EXIT_USAGE, (
            f"the setting {coerced.field_name} cannot be read as {hint}: fix it in .dlt/config.toml or its "
            f"environment variable (e.g. SOURCES__BITRIX24__{coerced.field_name.upper()})"
        )
    stop = _stop_in(error)
    if stop is not None or signals.was_signal_received():
        return stop_code(), stopped_message(stop or signals.exception_for_signal())
    if isinstance(error, AlreadyRunningError):
        return EXIT_BUSY, str(error)
    if isinstance(error, (ConfigError, DateInputError)):
        return EXIT_USAGE, str(error)
    if isinstance(error, PlanError):  # its message says what to do; the credentials are fine
        return EXIT_AUTH, str(error)
    if isinstance(error, ScopeError):  # its message says which scope to add
        return EXIT_AUTH, str(error)
    if isinstance(error, AuthError):  # the client's message has its own hint; OAuth errors say what to do
        said = str(error)
        return EXIT_AUTH, said if "check" in said or "authorize" in said else f"{said} ({_AUTH_HINT})"
    if isinstance(error, DestinationError):
        return EXIT_DESTINATION, str(error)
    if isinstance(error, UnloadableDataError):  # set aside already: the message says the next run is clean
        return EXIT_DESTINATION, str(error)
    if isinstance(error, PipelineStepFailed) and error.step == "load":  # after check_destination passed
        cause = (str(error.exception).splitlines() or [""])[0][:300]
        return EXIT_DESTINATION, f"loading into the destination failed: {type(error.exception).__name__}: {cause}"
    if isinstance(error, Bitrix24Error):
        return EXIT_PORTAL, f"{error}; nothing was committed, run again later"
    return EXIT_UNEXPECTED, f"unexpected {type(error).__name__}; run again with --debug to see the traceback"
