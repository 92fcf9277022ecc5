"""The one mapping from what went wrong to the CLI's exit code and its one-line message.

Schedulers and monitoring branch on the code, so each class of failure has its own and they never change
(the table is `HELP_TEXT`, shown by `bitrix24-sync --help`).
"""

from __future__ import annotations

from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.crash_repair import UnloadableDataError
from pipelines.destinations import DestinationError
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
  7  run --portals: at least one portal failed (the summary lists each portal)"""

_AUTH_HINT = (
    "check the webhook URL (sources.bitrix24.webhook_url / SOURCES__BITRIX24__WEBHOOK_URL) or the OAuth app "
    "in [sources.bitrix24.oauth]"
)


def classify(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message (never a secret: our exceptions are built without them; an
    unexpected exception is named by its type only, since its text may quote a URL)."""
    if isinstance(error, AlreadyRunningError):
        return EXIT_BUSY, str(error)
    if isinstance(error, (ConfigError, DateInputError)):
        return EXIT_USAGE, str(error)
    if isinstance(error, PlanError):  # its message says what to do; the credentials are fine
        return EXIT_AUTH, str(error)
    if isinstance(error, ScopeError):  # its message says which scope to add
        return EXIT_AUTH, str(error)
    if isinstance(error, AuthError):
        return EXIT_AUTH, f"{error} ({_AUTH_HINT})"
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
