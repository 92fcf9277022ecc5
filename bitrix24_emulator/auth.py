"""Who is calling: inbound webhooks, OAuth apps and their tokens, scopes, and the OAuth token endpoint.

Error codes and statuses follow the server source (reference §9.1, core-src `apauth/auth.php`,
`oauth/auth.php`):
- no auth at all -> 401 NO_AUTH_FOUND "Wrong authorization data";
- a webhook path whose code does not belong to the user id (or to any user) -> 401 INVALID_CREDENTIALS (the
  docs say 403; the source's OAuthException default is 401, which is what the emulator sends);
- an access token the auth server does not know (never issued, or revoked by a refresh) -> 401 invalid_token;
- an expired access token -> 401 expired_token;
- a scope the webhook/token lacks -> 401 insufficient_scope (docs: 403; source default 401). Inside a batch
  the sub-call error has an empty description, as core-src's CRestServerBatchItem raises it.

Token endpoint (reference §10): `grant_type=refresh_token` and `authorization_code`. Every refresh issues a
new access and refresh token; the used refresh token and the access token issued with it stop working (the
formerly documented single-use rotation, the stricter choice). Access tokens live `token_lifetime` seconds by
the Clock; refresh tokens 180 days; authorization codes 30 seconds and one use.
"""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import ApiError

REFRESH_LIFETIME = 180 * 24 * 3600
CODE_LIFETIME = 30
_ALNUM = string.ascii_lowercase + string.digits

# A method registered under the first scope is also allowed by any of the others (core-src
# fillAlternativeScope).
ALTERNATIVE_SCOPES: dict[str, tuple[str, ...]] = {"user": ("user_brief", "user_basic")}


def random_token(length: int = 32, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class Identity:
    """An authenticated caller; `key` identifies the webhook or app for the operating-time limit."""

    kind: str  # "webhook" | "oauth"
    key: str
    user_id: int
    scopes: frozenset[str]
    client_id: str | None = None

    def allows(self, scope: str) -> bool:
        if not scope or scope in self.scopes:
            return True
        return any(alt in self.scopes for alt in ALTERNATIVE_SCOPES.get(scope, ()))

    def require(self, scope: str, in_batch: bool = False) -> None:
        if self.allows(scope):
            return
        token_kind = "webhook token" if self.kind == "webhook" else "access token"
        description = "" if in_batch else f"The request requires higher privileges than provided by the {token_kind}"
        raise ApiError("insufficient_scope", description, 401)


@dataclass
class Webhook:
    user_id: int
    scopes: frozenset[str]
    number: int


@dataclass
class App:
    client_id: str
    client_secret: str
    scopes: frozenset[str]


@dataclass
class Grant:
    """An access token with the refresh token issued alongside it."""

    client_id: str
    user_id: int
    scopes: frozenset[str]
    access_token: str
    refresh_token: str
    expires: int
    refresh_expires: int


@dataclass
class Code:
    client_id: str
    user_id: int
    scopes: frozenset[str]
    expires: float


def no_auth() -> ApiError:
    return ApiError("NO_AUTH_FOUND", "Wrong authorization data", 401)


class OAuthError(Exception):
    """An error of the OAuth server (/oauth/token/), which has its own envelope and statuses."""

    def __init__(self, code: str, description: str, status: int):
        super().__init__(code)
        self.code = code
        self.description = description
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description}


class AuthRegistry:
    """Webhooks, apps, tokens and codes of one portal. Thread-safe."""

    def __init__(self, clock: Clock, token_lifetime: int = 3600):
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.member_id = secrets.token_hex(16)
        self._webhooks: dict[str, Webhook] = {}
        self._apps: dict[str, App] = {}
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}
        self._codes: dict[str, Code] = {}
        self._lock = threading.Lock()

    # webhooks

    def add_webhook(self, scopes: tuple[str, ...] | list[str], user_id: int = 1, token: str | None = None) -> str:
        token = token or random_token(16)
        with self._lock:
            self._webhooks[token] = Webhook(user_id, frozenset(scopes), len(self._webhooks) + 1)
        return token

    def webhook(self, user: str, code: str) -> Identity:
        with self._lock:
            hook = self._webhooks.get(code)
        if hook is None or str(hook.user_id) != user:
            raise ApiError("INVALID_CREDENTIALS", "Invalid request credentials", 401)
        return Identity("webhook", f"webhook:{hook.number}", hook.user_id, hook.scopes)

    # apps and tokens

    def add_app(self, scopes: tuple[str, ...] | list[str]) -> App:
        client_id = f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
        app = App(client_id, random_token(50, string.ascii_letters + string.digits), frozenset(scopes))
        with self._lock:
            self._apps[client_id] = app
        return app

    def issue(self, client_id: str, user_id: int, scopes: frozenset[str] | None = None) -> Grant:
        with self._lock:
            app = self._apps[client_id]
            return self._issue(app, user_id, scopes if scopes is not None else app.scopes)

    def _issue(self, app: App, user_id: int, scopes: frozenset[str]) -> Grant:
        now = int(self.clock.time())
        grant = Grant(
            app.client_id,
            user_id,
            scopes,
            random_token(),
            random_token(),
            now + self.token_lifetime,
            now + REFRESH_LIFETIME,
        )
        self._access[grant.access_token] = grant
        self._refresh[grant.refresh_token] = grant
        return grant

    def access(self, token: str) -> Identity:
        with self._lock:
            grant = self._access.get(token)
        if grant is None:
            raise ApiError("invalid_token", "Unable to get application by token", 401)
        if grant.expires <= self.clock.time():
            raise ApiError("expired_token", "The access token provided has expired", 401)
        return Identity("oauth", f"app:{grant.client_id}", grant.user_id, grant.scopes, grant.client_id)

    def mint_code(self, client_id: str, user_id: int = 1, scopes: tuple[str, ...] | list[str] | None = None) -> str:
        with self._lock:
            app = self._apps.get(client_id)
            if app is None:
                raise KeyError(client_id)
            code = random_token()
            granted = frozenset(scopes) if scopes is not None else app.scopes
            self._codes[code] = Code(client_id, user_id, granted, self.clock.time() + CODE_LIFETIME)
        return code

    # the OAuth server

    def token_endpoint(self, params: dict[str, Any]) -> Grant:
        """/oauth/token/: exchange a refresh token or an authorization code for a new grant."""
        grant_type = params.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            raise OAuthError(
                "invalid_request",
                'No "grant_type" parameter found' if not grant_type else "Unsupported grant_type",
                400,
            )
        with self._lock:
            app = self._apps.get(str(params.get("client_id", "")))
            if app is None or str(params.get("client_secret", "")) != app.client_secret:
                raise OAuthError("invalid_client", "Invalid client credentials", 401)
            if grant_type == "refresh_token":
                return self._refresh_grant(app, params)
            return self._code_grant(app, params)

    def _refresh_grant(self, app: App, params: dict[str, Any]) -> Grant:
        token = params.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", 'No "refresh_token" parameter found', 400)
        old = self._refresh.get(str(token))
        if old is None or old.client_id != app.client_id or old.refresh_expires <= self.clock.time():
            raise OAuthError("invalid_grant", "Invalid refresh token", 400)
        del self._refresh[old.refresh_token]
        self._access.pop(old.access_token, None)
        return self._issue(app, old.user_id, old.scopes)

    def _code_grant(self, app: App, params: dict[str, Any]) -> Grant:
        code = params.get("code")
        if not code:
            raise OAuthError("invalid_request", 'No "code" parameter found', 400)
        found = self._codes.pop(str(code), None)
        if found is None or found.client_id != app.client_id or found.expires <= self.clock.time():
            raise OAuthError("invalid_grant", "Code not found or expired", 400)
        return self._issue(app, found.user_id, found.scopes)
