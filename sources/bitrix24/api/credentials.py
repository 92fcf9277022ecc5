"""Which credential the sync uses, resolved by dlt: an inbound webhook or an OAuth app, as one configspec union.

The dlt way (`credentials=dlt.secrets.value` on the source and on `connect`): `sources.bitrix24.credentials`
holds the webhook URL itself, or its fields:

    # .dlt/secrets.toml
    [sources.bitrix24]
    credentials = "https://your-portal.bitrix24.com/rest/1/<code>/"        # a webhook
    # or an OAuth app:
    [sources.bitrix24.credentials]
    client_endpoint = "https://your-portal.bitrix24.com/rest/"
    client_id = "local.0123456789abcd.12345678"
    client_secret = "..."
    refresh_token = "..."        # or authorization_code, or neither once the token store holds a pair
    token_store = "~/.dlt/bitrix24-sync/tokens.json"   # default: ~/.dlt/bitrix24-sync/tokens-<client_id>.json

The earlier keys keep working: `sources.bitrix24.webhook_url`, and the app in `[sources.bitrix24.oauth]`
(both set: an error, never a silent choice). The token pair lives in the token store (a 0600 file), never in dlt
state: state is copied into every load package and into the destination.

Every setting of the client has its one default here (`CLIENT_DEFAULTS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import dlt
from dlt.common.configuration import configspec, resolve_configuration, with_config
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue

from .auth import WebhookAuth
from .client import Bitrix24Client
from .errors import ConfigError
from .oauth import DEFAULT_TOKEN_ENDPOINT, OAuthAuth

_NO_CREDENTIAL = (
    "no credentials: set sources.bitrix24.credentials (the webhook URL) in .dlt/secrets.toml (or "
    "SOURCES__BITRIX24__CREDENTIALS; sources.bitrix24.webhook_url works too), or configure an OAuth app in "
    "[sources.bitrix24.credentials] (see `bitrix24-sync oauth --help`)"
)
_REQUIRED_OAUTH = ("client_endpoint", "client_id", "client_secret")


@configspec
class WebhookCredentials(CredentialsConfiguration):
    """An inbound webhook: the URL itself is the credential."""

    webhook_url: TSecretStrValue = None

    def parse_native_representation(self, native_value: Any) -> None:
        if not isinstance(native_value, str):
            raise ValueError("a webhook is given as its URL")
        self.webhook_url = native_value

    def to_native_representation(self) -> str:
        return str(self.webhook_url)

    def auth(self, allow_http: bool) -> WebhookAuth:
        return WebhookAuth(str(self.webhook_url), allow_http=allow_http)

    def __str__(self) -> str:  # dlt prints credentials in some messages: never the code
        return "webhook"


@configspec
class OAuthAppCredentials(CredentialsConfiguration):
    """An OAuth app installed on one portal (local or marketplace)."""

    client_endpoint: str = None
    client_id: str = None
    client_secret: TSecretStrValue = None
    token_store: str | None = None
    token_endpoint: str = DEFAULT_TOKEN_ENDPOINT
    refresh_token: TSecretStrValue | None = None
    authorization_code: TSecretStrValue | None = None

    def auth(self, allow_http: bool) -> OAuthAuth:
        return OAuthAuth(
            str(self.client_id),
            str(self.client_secret),
            str(self.client_endpoint),
            self.token_store_path(),
            str(self.token_endpoint or DEFAULT_TOKEN_ENDPOINT),
            allow_http,
            refresh_token=self.refresh_token,
            authorization_code=self.authorization_code,
        )

    def token_store_path(self) -> Path:
        if self.token_store:
            return Path(str(self.token_store)).expanduser()
        safe_id = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(self.client_id))
        return Path.home() / ".dlt" / "bitrix24-sync" / f"tokens-{safe_id}.json"

    def __str__(self) -> str:
        return f"OAuth app {self.client_id}"


Bitrix24Credentials = Union[WebhookCredentials, OAuthAppCredentials]  # noqa: UP007 (dlt reads the Union)
AnyCredentials = WebhookCredentials | OAuthAppCredentials


@dataclass(frozen=True)
class ClientOptions:
    """The client's settings and their one default each (`[sources.bitrix24]` in .dlt/config.toml)."""

    rate: float = 2.0  # the portal's leaky bucket: 2/s burst 50 (Enterprise: 5/s burst 250)
    burst: int = 50
    timeout: float = 60.0  # seconds per HTTP request
    max_retries: int = 8
    max_retry_seconds: float = 300.0
    allow_http: bool = False  # plain http:// to a non-local host


CLIENT_DEFAULTS = ClientOptions()


def resolve_credentials(credentials: Any) -> AnyCredentials:
    """What dlt resolved (a configspec, or a webhook URL given as a string), else the earlier keys."""
    if isinstance(credentials, WebhookCredentials | OAuthAppCredentials):
        return credentials
    if isinstance(credentials, str) and credentials:
        webhook = WebhookCredentials()
        webhook.parse_native_representation(credentials)
        return webhook
    if credentials:
        raise ConfigError("credentials must be a webhook URL or an OAuth app's settings")
    webhook = WebhookCredentials(webhook_url=_earlier("webhook_url"))
    oauth = _earlier_oauth_app()
    oauth_given = [k for k in (*_REQUIRED_OAUTH, "refresh_token", "authorization_code") if _given(oauth, k)]
    if _given(webhook, "webhook_url") and oauth_given:
        raise ConfigError(
            "both a webhook URL (sources.bitrix24.webhook_url) and an OAuth app ([sources.bitrix24.oauth]) are "
            "configured: remove one of them"
        )
    if oauth_given:
        missing = [k for k in _REQUIRED_OAUTH if not _given(oauth, k)]
        if missing:
            raise ConfigError(
                f"the OAuth app in [sources.bitrix24.oauth] lacks {', '.join(missing)} (client_secret belongs in "
                ".dlt/secrets.toml; or SOURCES__BITRIX24__OAUTH__<KEY>)"
            )
        return oauth
    if _given(webhook, "webhook_url"):
        return webhook
    raise ConfigError(_NO_CREDENTIAL)


def _earlier(key: str) -> Any:
    """A value under an earlier key of `[sources.bitrix24]` (environment, secrets.toml, config.toml)."""
    value = dlt.secrets.get(f"sources.bitrix24.{key}")
    if value is None:
        value = dlt.config.get(f"sources.bitrix24.{key}")
    return None if value in ("", None) else value


def _earlier_oauth_app() -> OAuthAppCredentials:
    app = OAuthAppCredentials()
    for key in app.get_resolvable_fields():
        value = _earlier(f"oauth.{key}")
        if value is not None:
            setattr(app, key, str(value))
    return app


def _given(config: Any, key: str) -> bool:
    return getattr(config, key, None) not in (None, "")


def client_for(credentials: Any, options: ClientOptions = CLIENT_DEFAULTS) -> Bitrix24Client:
    """The client of one run, from resolved (or given) credentials and options."""
    auth = resolve_credentials(credentials).auth(bool(options.allow_http))
    return Bitrix24Client(
        auth,
        rate=float(options.rate),
        burst=int(options.burst),
        timeout=float(options.timeout),
        max_retries=int(options.max_retries),
        max_retry_seconds=float(options.max_retry_seconds),
    )


@with_config(sections=("sources", "bitrix24"))
def connect(
    credentials: Bitrix24Credentials | None = dlt.secrets.value,
    rate: float = CLIENT_DEFAULTS.rate,
    burst: int = CLIENT_DEFAULTS.burst,
    timeout: float = CLIENT_DEFAULTS.timeout,
    max_retries: int = CLIENT_DEFAULTS.max_retries,
    max_retry_seconds: float = CLIENT_DEFAULTS.max_retry_seconds,
    allow_http: bool = CLIENT_DEFAULTS.allow_http,
) -> Bitrix24Client:
    """A client configured the way the source configures its own (for check, reconcile and oauth, which talk
    to the portal outside a dlt extraction)."""
    return client_for(credentials, ClientOptions(rate, burst, timeout, max_retries, max_retry_seconds, allow_http))


def configured_oauth_app() -> OAuthAppCredentials | None:
    """The OAuth app the configuration names (`sources.bitrix24.credentials`, else `[sources.bitrix24.oauth]`),
    complete or not; None when neither names a client_id."""
    for app in (
        resolve_configuration(OAuthAppCredentials(), sections=("sources", "bitrix24"), accept_partial=True),
        _earlier_oauth_app(),
    ):
        if _given(app, "client_id") or _given(app, "client_endpoint"):
            return app
    return None
