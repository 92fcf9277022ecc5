"""Which credential the sync uses, read from dlt configuration: a webhook or an OAuth app, never both.

Webhook: `sources.bitrix24.webhook_url` (.dlt/secrets.toml or SOURCES__BITRIX24__WEBHOOK_URL).
OAuth app (`[sources.bitrix24.oauth]`, or SOURCES__BITRIX24__OAUTH__<KEY>):

    # .dlt/config.toml
    [sources.bitrix24.oauth]
    client_endpoint = "https://your-portal.bitrix24.com/rest/"
    client_id = "local.0123456789abcd.12345678"
    token_store = "~/.dlt/bitrix24-sync/tokens.json"     # default: ~/.dlt/bitrix24-sync/tokens-<client_id>.json
    token_endpoint = "https://oauth.bitrix.info/oauth/token/"   # the default

    # .dlt/secrets.toml
    [sources.bitrix24.oauth]
    client_secret = "..."
    refresh_token = "..."          # or authorization_code, or neither once the token store holds a pair

The token pair lives in the token store (a 0600 file), never in dlt state: state is copied into every load
package and into the destination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt

from sources.bitrix24.client import ConfigError, WebhookAuth
from sources.bitrix24.oauth import DEFAULT_TOKEN_ENDPOINT, OAuthAuth

OAUTH_KEYS = ("client_endpoint", "client_id", "client_secret", "token_store", "token_endpoint")
_BOOTSTRAP_KEYS = ("refresh_token", "authorization_code")
_NO_CREDENTIAL = (
    "no credentials: set sources.bitrix24.webhook_url in .dlt/secrets.toml (or SOURCES__BITRIX24__WEBHOOK_URL), "
    "or configure an OAuth app in [sources.bitrix24.oauth] (see `bitrix24-sync oauth --help`)"
)


def setting(key: str) -> Any:
    """A value from dlt's providers (environment, secrets.toml, config.toml), None when unset or empty."""
    value = dlt.secrets.get(key)
    if value is None:
        value = dlt.config.get(key)
    return None if value in ("", None) else value


def oauth_settings() -> dict[str, Any]:
    """The `[sources.bitrix24.oauth]` keys that are set."""
    keys = (*OAUTH_KEYS, *_BOOTSTRAP_KEYS)
    return {k: v for k in keys if (v := setting(f"sources.bitrix24.oauth.{k}")) is not None}


def make_auth(webhook_url: str | None = None, *, allow_http: bool = False) -> WebhookAuth | OAuthAuth:
    """A `WebhookAuth` for an explicit URL; otherwise the configured webhook or OAuth app (both: an error)."""
    if webhook_url:
        return WebhookAuth(str(webhook_url), allow_http=allow_http)
    configured_url = setting("sources.bitrix24.webhook_url")
    oauth = oauth_settings()
    if configured_url and oauth:
        raise ConfigError(
            "both a webhook URL (sources.bitrix24.webhook_url) and an OAuth app ([sources.bitrix24.oauth]) are "
            "configured: remove one of them"
        )
    if oauth:
        return oauth_auth(oauth, allow_http=allow_http)
    if configured_url:
        return WebhookAuth(str(configured_url), allow_http=allow_http)
    raise ConfigError(_NO_CREDENTIAL)


def oauth_auth(settings: dict[str, Any], *, allow_http: bool = False) -> OAuthAuth:
    missing = [k for k in ("client_endpoint", "client_id", "client_secret") if not settings.get(k)]
    if missing:
        raise ConfigError(
            f"the OAuth app in [sources.bitrix24.oauth] lacks {', '.join(missing)} (client_secret belongs in "
            ".dlt/secrets.toml; or SOURCES__BITRIX24__OAUTH__<KEY>)"
        )
    return OAuthAuth(
        str(settings["client_id"]),
        str(settings["client_secret"]),
        str(settings["client_endpoint"]),
        token_store_path(settings),
        str(settings.get("token_endpoint") or DEFAULT_TOKEN_ENDPOINT),
        allow_http,
        refresh_token=settings.get("refresh_token"),
        authorization_code=settings.get("authorization_code"),
    )


def token_store_path(settings: dict[str, Any]) -> Path:
    configured = settings.get("token_store")
    if configured:
        return Path(str(configured)).expanduser()
    safe_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(settings["client_id"]))
    return Path.home() / ".dlt" / "bitrix24-sync" / f"tokens-{safe_id}.json"
