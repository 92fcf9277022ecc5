"""The exceptions of the sync's HTTP wing: a few classes a caller (and the CLI's exit codes) can act on. Their
messages are built from our own words and never hold a secret."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A mistake the user can fix (bad webhook URL): a one-line message saying how, never a secret."""


class Bitrix24Error(Exception):
    """A call failed. The message never holds a secret; `code` is the portal's `error` ("" and ints occur)."""

    def __init__(
        self,
        message: str,
        code: str | int | None = None,
        description: str = "",
        status: int | None = None,
        method: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.description = description
        self.status = status
        self.method = method

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the attributes when pickled (dlt may ship exceptions between processes).
        return (type(self), (str(self), self.code, self.description, self.status, self.method))


class AuthError(Bitrix24Error):
    """The portal refused the credentials or the URL is wrong (NO_AUTH_FOUND, 401s, a 404 HTML page, ...)."""


class ScopeError(Bitrix24Error):
    """The webhook/app lacks the scope a method needs (`insufficient_scope`)."""


class PlanError(AuthError):
    """`ACCESS_DENIED` "REST is available only on commercial plans": the portal's plan, not the credentials."""


class MethodNotFoundError(Bitrix24Error):
    """`ERROR_METHOD_NOT_FOUND`: unknown method, or one this portal/plan does not offer."""


class TransientError(Bitrix24Error):
    """Retries exhausted on rate limits, 5xx, network failures or unusable bodies; a later run may succeed."""


class UnreachableError(ConfigError, TransientError):
    """The host does not resolve or refuses connections, and it has not answered once since the client was
    made: almost always a typo in the URL, so it is a configuration error after one quick retry instead of
    minutes of backoff. (Also a `TransientError`: a portal down at the very start is possible too.)"""

    __init__ = Bitrix24Error.__init__
