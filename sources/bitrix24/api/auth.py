"""How a request proves who it is: the `Auth` protocol the client needs, and the inbound webhook (OAuth apps
are in `oauth.py`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from .errors import ConfigError
from .redaction import redact


class Auth(Protocol):
    """What the client needs from an authentication method (webhook now; OAuth later with the same shape)."""

    host: str
    portal: str  # the portal's identity: its address, `host[:port]` (what a warehouse is bound to)
    secrets: tuple[str, ...]

    def url_for(self, method: str) -> str: ...

    def params(self) -> dict[str, Any]: ...

    def redact(self, text: str) -> str: ...

    def refresh(self, session: requests.Session, timeout: float) -> bool:
        """Called once per call on a 401 `expired_token`; True if the call should be repeated (new token)."""
        ...


_WEBHOOK_SHAPE = "https://<portal>/rest/<user id>/<webhook code>/"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
_MIN_CODE_LENGTH = 8
_METHOD_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", re.IGNORECASE)


class WebhookAuth:
    """An incoming webhook: the URL itself is the credential (`https://host/rest/<user_id>/<code>/`)."""

    def __init__(self, webhook_url: str, allow_http: bool = False):
        parts = urlsplit(str(webhook_url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"the webhook URL must look like {_WEBHOOK_SHAPE}; copy it from the webhook's page")
        host = parts.hostname
        if parts.query or parts.fragment:
            raise ConfigError(f"the webhook URL for {host} must not carry a query string; use {_WEBHOOK_SHAPE}")
        segments = parts.path.strip("/").split("/")
        if len(segments) < 3 or segments[0] != "rest" or not segments[1].isdigit():
            raise ConfigError(f"the webhook URL for {host} must look like {_WEBHOOK_SHAPE}")
        code = segments[2]
        if len(segments) > 3:
            # Name the extra part only when it is plainly a method name: anything else might be a secret.
            suffix = segments[3] if len(segments) == 4 and _METHOD_NAME.fullmatch(segments[3]) else "extra path"
            raise ConfigError(
                f"the webhook URL for {host} goes on after the code ({suffix}); give it only up to the code: "
                f"{parts.scheme}://{parts.netloc}/rest/{segments[1]}/<code>/"
            )
        if len(code) < _MIN_CODE_LENGTH or not code.isalnum():
            raise ConfigError(
                f"the webhook code in the URL for {host} does not look like a Bitrix24 webhook code "
                "(letters and digits, usually 16); copy the URL again from the webhook's page"
            )
        if parts.scheme == "http" and not (allow_http or is_loopback(host)):
            raise ConfigError(
                f"the webhook URL for {host} uses plain http, which would send the webhook code unencrypted; "
                "use https:// (the allow_http setting permits plain http on a trusted network)"
            )
        self.host = host
        self.portal = portal_address(parts.hostname, parts.port)
        self.user_id = int(segments[1])
        self.base_url = f"{parts.scheme}://{parts.netloc}/rest/{segments[1]}/{code}/"
        self.secrets: tuple[str, ...] = (code,)

    def url_for(self, method: str) -> str:
        return self.base_url + method

    def params(self) -> dict[str, Any]:
        return {}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def refresh(self, session: requests.Session, timeout: float) -> bool:
        return False  # a webhook cannot be refreshed: an expired one is an AuthError

    def __repr__(self) -> str:
        return f"WebhookAuth({self.redact(self.base_url)!r})"


def portal_address(host: str | None, port: int | None) -> str:
    """`host[:port]`, lower case: the same portal however its URL was typed."""
    return f"{(host or '').lower()}:{port}" if port else (host or "").lower()


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
