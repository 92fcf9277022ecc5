"""Secret redaction, owned by each client: no text that leaves the HTTP wing may hold a secret.

A webhook's code sits in the URL path, so any text that mentions the URL leaks it. urllib3 logs its request
lines (`"POST /rest/1/<code>/batch HTTP/1.1" 200`) at DEBUG. Instead of silencing urllib3 (a `--debug` run should
still show connection activity), a client installs its own `SecretFilter` on urllib3's loggers and the sync's:
a `logging.Filter` that rewrites any record containing one of the client's current secrets (read from its auth
on every record, so tokens an OAuth refresh brings are covered at once). Filters on a logger apply to that
logger's own records only (not to children's), so it is installed on every such logger by name; it is removed
when the client is closed or collected, so nothing outlives the client.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable

REDACTED = "***"
_LOGGER_PREFIXES = ("urllib3", "requests", "bitrix24_sync")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret in `text` by `***` (longest first, so overlapping secrets vanish whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Rewrites log records that contain one of `secrets()` (message, args and exception text)."""

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._secrets = secrets
        self._loggers: list[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self._secrets() if s]
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: logging reports it itself; nothing of ours to redact
            return True
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"), secrets)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True

    def install(self) -> None:
        """Sit on every urllib3, requests and bitrix24_sync logger (loggers made since are added next time)."""
        names = {"urllib3", "requests", "bitrix24_sync.client", "bitrix24_sync.oauth"}
        names.update(n for n in logging.root.manager.loggerDict if n.startswith(_LOGGER_PREFIXES))
        for name in names:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)
                self._loggers.append(logger)

    def uninstall(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()
