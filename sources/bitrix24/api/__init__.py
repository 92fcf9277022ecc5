"""The HTTP wing: the only rooms of the sync that speak HTTP to a portal (the client, its auth, its rate
limiter, its error classification and redaction) and the credentials that configure them."""

from .auth import Auth, WebhookAuth
from .bucket import LeakyBucket
from .client import BatchResponse, Bitrix24Client, ClientStats, Response
from .credentials import (
    CLIENT_DEFAULTS,
    Bitrix24Credentials,
    ClientOptions,
    OAuthAppCredentials,
    WebhookCredentials,
    client_for,
    configured_oauth_app,
    connect,
    resolve_credentials,
)
from .errors import (
    AuthError,
    Bitrix24Error,
    ConfigError,
    MethodNotFoundError,
    PlanError,
    ScopeError,
    TransientError,
    UnreachableError,
)
from .oauth import OAuthAuth
from .phpquery import php_query
from .redaction import redact
from .token_store import TokenPair, TokenStore

__all__ = [
    "CLIENT_DEFAULTS",
    "Auth",
    "AuthError",
    "BatchResponse",
    "Bitrix24Client",
    "Bitrix24Credentials",
    "Bitrix24Error",
    "ClientOptions",
    "ClientStats",
    "ConfigError",
    "LeakyBucket",
    "MethodNotFoundError",
    "OAuthAppCredentials",
    "OAuthAuth",
    "PlanError",
    "Response",
    "ScopeError",
    "TokenPair",
    "TokenStore",
    "TransientError",
    "UnreachableError",
    "WebhookAuth",
    "WebhookCredentials",
    "client_for",
    "configured_oauth_app",
    "connect",
    "php_query",
    "redact",
    "resolve_credentials",
]
