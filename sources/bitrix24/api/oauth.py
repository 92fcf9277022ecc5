"""OAuth 2.0 app authentication for `Bitrix24Client`: the `Auth` protocol backed by a rotating token pair.

How it behaves (reference §10, §9.3):

* calls go to `<client_endpoint><method>` with the access token as the `auth` parameter of the JSON body (the
  documented form; a body parameter also keeps the token out of request lines and proxy logs);
* the token is refreshed only when the portal answers 401 `expired_token` (the client then calls `refresh()`
  once and repeats the call), never proactively or per call, as the docs recommend;
* the first use bootstraps the chain from the configured refresh token or authorization code
  (`grant_type=authorization_code`), unless the token store already holds a chain started from that same
  credential (a hash of it is kept as `TokenPair.seed`): configuring a new credential starts a new chain;
* every grant is saved to the `TokenStore` (atomic, 0600) immediately after the response arrives, before the
  new tokens are used for anything (see "Residual window" below);
* refreshes are serialised by the store's lock; whoever gets the lock re-reads the store, and if another
  thread or process saved a newer pair than the one this thread's failed call used, it adopts that pair
  instead of spending the (already rotated) refresh token, which would be `invalid_grant`. Before each call
  a `stat()` of the store notices a pair saved by another process, so a process sharing the store picks it
  up without a failed call;
* token endpoint errors become one-line `AuthError`s saying what to do; transport failures a `TransientError`.
  Exceptions are raised outside `except` blocks and carry no secret; `secrets` lists the client secret, the
  configured credential and every token this object has held, and they are registered with the client's log
  filter as soon as they are known.

The token endpoint is called with GET and a query string, as documented (`oauth.bitrix.info/oauth/token/?
grant_type=...`). urllib3 logs that request line at DEBUG; the registered secret filter rewrites it.

Residual window. The auth server invalidates the old refresh token when it answers; if the process dies
after the server rotated the pair but before the new one is fsynced (while the answer is in flight or being
written), the new pair is lost and the store still holds the old, dead one: the next run fails with "the
refresh token was already used or expired: authorize the app again". The window is kept to parsing the
answer and one small fsynced write. A timeout while waiting for the answer is the same situation seen from
outside: the server may or may not have rotated, and only the next refresh can tell.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from .auth import is_loopback, portal_address
from .errors import AuthError, Bitrix24Error, ConfigError, TransientError
from .redaction import redact
from .token_store import TokenPair, TokenStore

__all__ = ["DEFAULT_TOKEN_ENDPOINT", "OAuthAuth"]

log = logging.getLogger("bitrix24_sync.oauth")

DEFAULT_TOKEN_ENDPOINT = "https://oauth.bitrix.info/oauth/token/"
CONFIG_SECTION = "[sources.bitrix24.oauth]"
_TOKEN_ENDPOINT_NAME = "oauth/token"


class OAuthAuth:
    """An OAuth app installed on one portal (local or marketplace). Thread-safe; see the module docstring."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        client_endpoint: str,
        token_store: TokenStore | str | os.PathLike[str],
        token_endpoint: str = DEFAULT_TOKEN_ENDPOINT,
        allow_http: bool = False,
        *,
        refresh_token: str | None = None,
        authorization_code: str | None = None,
        timeout: float = 60.0,
    ):
        client_id, client_secret = str(client_id or "").strip(), str(client_secret or "").strip()
        if not client_id or not client_secret:
            raise ConfigError(
                f"an OAuth app needs client_id and client_secret in {CONFIG_SECTION}; copy them from the "
                "app's page on the portal (local app) or from the partner account (marketplace app)"
            )
        if refresh_token and authorization_code:
            raise ConfigError(f"give either refresh_token or authorization_code in {CONFIG_SECTION}, not both")
        self.client_endpoint, self.host = _rest_base(client_endpoint, allow_http)
        endpoint = urlsplit(self.client_endpoint)
        self.portal = portal_address(endpoint.hostname, endpoint.port)
        self.portal_url = self.client_endpoint[: -len("rest/")]
        self.token_endpoint = _token_endpoint(token_endpoint, allow_http)
        self.client_id = client_id
        self.store = token_store if isinstance(token_store, TokenStore) else TokenStore(token_store)
        self.timeout = timeout
        self.token_requests = 0  # grants requested from the token endpoint by this object
        self._client_secret = client_secret
        self._bootstrap: tuple[str, str] | None = None
        if refresh_token or authorization_code:
            grant_type = "refresh_token" if refresh_token else "authorization_code"
            self._bootstrap = (grant_type, str(refresh_token or authorization_code).strip())
        self._seed = (
            hashlib.sha256(f"{self._bootstrap[0]}:{self._bootstrap[1]}".encode()).hexdigest() if self._bootstrap else ""
        )
        self._pair: TokenPair | None = None
        self._stamp: tuple[int, ...] | None = None
        self._known = {client_secret, *(self._bootstrap[1:] if self._bootstrap else ())}
        self._local = threading.local()  # the pair this thread last sent (see refresh())
        self.secrets: tuple[str, ...] = ()
        self._transport: requests.Session | None = None
        self._publish_secrets()

    def __repr__(self) -> str:
        return f"OAuthAuth(client_id={self.client_id!r}, portal={self.host!r}, store={self.store!r})"

    # ------------------------------------------------------------------ the Auth protocol

    def bind_transport(self, session: requests.Session) -> None:
        """The client's session: token requests go through the same transport as the calls."""
        self._transport = session

    def url_for(self, method: str) -> str:
        return self.client_endpoint + method

    def params(self) -> dict[str, Any]:
        pair = self._current()
        self._local.used = pair
        return {"auth": pair.access_token}

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def refresh(self, session: requests.Session, timeout: float) -> bool:
        """The portal said `expired_token` for the pair this thread last sent: make a newer pair current,
        by adopting one another thread/process already saved, or by one refresh grant. Raises `AuthError`
        (the user must act) or `TransientError`."""
        used: TokenPair | None = getattr(self._local, "used", None) or self._pair
        with self.store.locked():
            stored = self.store.load()
            usable = stored if self._usable(stored) else None
            known = [p for p in (usable, self._pair) if p is not None]
            newest = max(known, key=lambda p: p.version) if known else None
            if newest is None:
                self._start_chain(session, timeout, stored)
            elif used is not None and newest.version > used.version:
                log.info("OAuth: using the token pair another run or thread has just refreshed")
                self._adopt(newest)
            else:
                grant = {"grant_type": "refresh_token", "refresh_token": newest.refresh_token}
                self._grant(session, timeout, grant, newest.version + 1, newest.seed)
                log.info("OAuth: access token refreshed for %s", self.host)
        return True

    # ------------------------------------------------------------------ the current pair

    def _current(self) -> TokenPair:
        pair = self._pair
        if pair is not None and self.store.stamp() in (self._stamp, None):
            return pair  # unchanged (or deleted under us: keep going, the next grant writes it again)
        with self.store.locked():
            stored = self.store.load()
            if self._usable(stored) and (self._pair is None or stored.version > self._pair.version):
                self._adopt(stored)
            elif self._pair is None:
                if self._transport is not None:
                    self._start_chain(self._transport, self.timeout, stored)
                else:
                    with requests.Session() as session:
                        self._start_chain(session, self.timeout, stored)
            else:
                self._stamp = self.store.stamp()
            assert self._pair is not None
            return self._pair

    def _usable(self, stored: TokenPair | None) -> bool:
        """A stored chain of this app, started from the configured credential (or any, if none is given)."""
        return (
            stored is not None and stored.client_id == self.client_id and (not self._seed or stored.seed == self._seed)
        )

    def _start_chain(self, session: requests.Session, timeout: float, stored: TokenPair | None) -> None:
        """Exchange the configured refresh token or authorization code (under the store lock)."""
        if self._bootstrap is None:
            why = "holds another app's tokens" if stored is not None else "does not exist yet"
            raise ConfigError(
                f"no OAuth token for {self.host}: the token store {self.store.path} {why}; set "
                f"refresh_token or authorization_code in {CONFIG_SECTION} ({self._how_to_authorize()})"
            )
        grant_type, credential = self._bootstrap
        key = "refresh_token" if grant_type == "refresh_token" else "code"
        version = stored.version + 1 if stored is not None else 1
        self._grant(session, timeout, {"grant_type": grant_type, key: credential}, version, self._seed)
        log.info("OAuth: authorized %s with the configured %s", self.host, grant_type.replace("_", " "))

    def _adopt(self, pair: TokenPair) -> None:
        """Make `pair` current (under the store lock, so the stamp matches the file that holds it)."""
        self._pair = pair
        self._stamp = self.store.stamp()
        self._known.update((pair.access_token, pair.refresh_token))
        self._publish_secrets()

    def _publish_secrets(self) -> None:
        self.secrets = tuple(sorted(self._known, key=len, reverse=True))  # read by the client's log filter

    # ------------------------------------------------------------------ the token endpoint

    def _grant(self, session: requests.Session, timeout: float, grant: dict[str, str], version: int, seed: str) -> None:
        """One token request; the answer is saved to the store before anything else happens to it."""
        query = {**grant, "client_id": self.client_id, "client_secret": self._client_secret}
        self.token_requests += 1
        problem = ""
        try:
            response = session.get(
                self.token_endpoint,
                params=query,
                timeout=timeout,
                allow_redirects=False,
                headers={"Accept": "application/json", "User-Agent": "bitrix24-sync"},
            )
        except (requests.RequestException, OSError) as exc:  # texts hold the URL with the secrets: not copied
            problem = _transport_problem(exc, timeout)
        if problem:
            raise TransientError(
                f"renewing the OAuth token for {self.host}: {problem}; a later run can try again",
                status=None,
                method=_TOKEN_ENDPOINT_NAME,
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        access, refresh = _tokens(body) if response.status_code == 200 else ("", "")
        if access and refresh:
            assert isinstance(body, Mapping)
            expires = body.get("expires")
            pair = TokenPair(
                client_id=self.client_id,
                access_token=access,
                refresh_token=refresh,
                client_endpoint=str(body.get("client_endpoint") or self.client_endpoint),
                expires=expires if isinstance(expires, int) else None,
                version=version,
                seed=seed,
            )
            unsaved = ""
            try:
                self.store.save(pair)  # first: the previous refresh token is already dead
            except OSError as exc:
                unsaved = exc.strerror or type(exc).__name__
            self._adopt(pair)
            if unsaved:  # the pair still serves this run; the next one will have to authorize again
                log.error(
                    "OAuth: the renewed tokens could not be saved to %s (%s): this run goes on, but the next "
                    "one will ask to authorize the app again unless a later refresh in this run can save",
                    self.store.path,
                    unsaved,
                )
            if pair.client_endpoint != self.client_endpoint:
                log.warning(
                    "OAuth: the tokens are for %s, but client_endpoint is %s; check client_endpoint",
                    urlsplit(pair.client_endpoint).hostname,
                    self.host,
                )
            return
        raise self._grant_error(grant["grant_type"], response.status_code, body)

    def _grant_error(self, grant_type: str, status: int, body: Any) -> Bitrix24Error:
        code = body.get("error") if isinstance(body, Mapping) else None
        description = str(body.get("error_description") or "") if isinstance(body, Mapping) else ""
        description = self.redact(description)
        prefix = f"OAuth for {self.host}"
        if code == "invalid_grant" and grant_type == "refresh_token":
            text = (
                "the refresh token was already used or expired (invalid_grant): authorize the app again: "
                + self._how_to_authorize()
            )
        elif code == "invalid_grant":
            text = (
                "the authorization code was already used or expired (invalid_grant): get a new one: "
                + self._how_to_authorize()
            )
        elif code == "invalid_client":
            text = (
                "the OAuth server rejected the client id or client secret (invalid_client): check client_id "
                f"and client_secret in {CONFIG_SECTION} against the app's page on {self.portal_url}, and "
                "that the app is still installed there"
            )
        elif status >= 500 or body is None or (status == 200 and not code):
            shape = "not JSON" if body is None else "JSON without tokens" if not code else f"error {code}"
            return TransientError(
                self.redact(
                    f"{prefix}: the OAuth server answered HTTP {status} ({shape}); a later run can try again "
                    f"(if this persists, check token_endpoint {self.token_endpoint})"
                ),
                code=code,
                status=status,
                method=_TOKEN_ENDPOINT_NAME,
            )
        elif code:
            said = f"{code} ({description})" if description else str(code)
            text = f"the OAuth server refused to issue a token: {said} (HTTP {status})"
        else:
            text = f"the OAuth server answered HTTP {status}; check token_endpoint ({self.token_endpoint})"
        return AuthError(
            self.redact(f"{prefix}: {text}"),
            code=code,
            description=description,
            status=status,
            method=_TOKEN_ENDPOINT_NAME,
        )

    def _how_to_authorize(self) -> str:
        return (
            f"open {self.portal_url}oauth/authorize/?client_id={self.client_id} in a browser as the portal "
            "user, copy the code parameter from the address it redirects to, set it as authorization_code in "
            f"{CONFIG_SECTION} and run again (a code lives 30 seconds)"
        )


# --------------------------------------------------------------------------------- helpers


def _tokens(body: Any) -> tuple[str, str]:
    if not isinstance(body, Mapping) or "error" in body:
        return "", ""
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if isinstance(access, str) and isinstance(refresh, str):
        return access, refresh
    return "", ""


def _transport_problem(exc: BaseException, timeout: float) -> str:
    """Our words for a failed token request (requests' texts contain the URL, hence the client secret)."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"no connection to the OAuth server within {timeout:g}s"
    if isinstance(exc, requests.Timeout):
        return (
            f"the OAuth server did not answer within {timeout:g}s (if it renewed the token anyway, the "
            "refresh token is spent and the next run will ask to authorize the app again)"
        )
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect to the OAuth server"
    return f"the request to the OAuth server failed ({type(exc).__name__})"


_REST_SHAPE = "https://<portal>/rest/"


def _rest_base(url: str, allow_http: bool) -> tuple[str, str]:
    """Normalise the portal's REST base (`client_endpoint`) to `scheme://host/rest/`; also return the host."""
    parts = urlsplit(str(url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"client_endpoint must look like {_REST_SHAPE} (the portal's address)")
    host = parts.hostname
    path = parts.path.rstrip("/")
    if parts.query or parts.fragment or path not in ("", "/rest"):
        # Do not echo the path: a webhook URL pasted here would carry its code.
        raise ConfigError(
            f"client_endpoint for {host} must be just the portal's REST base, {parts.scheme}://{parts.netloc}"
            "/rest/ (a webhook URL does not belong here)"
        )
    _require_https(parts.scheme, host, allow_http, "client_endpoint")
    return f"{parts.scheme}://{parts.netloc}/rest/", host


def _token_endpoint(url: str, allow_http: bool) -> str:
    parts = urlsplit(str(url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"token_endpoint must look like {DEFAULT_TOKEN_ENDPOINT}")
    _require_https(parts.scheme, parts.hostname, allow_http, "token_endpoint")
    return parts.geturl()


def _require_https(scheme: str, host: str, allow_http: bool, name: str) -> None:
    if scheme == "http" and not (allow_http or is_loopback(host)):
        raise ConfigError(
            f"{name} for {host} uses plain http, which would send the app's tokens unencrypted; use https:// "
            "(the allow_http setting permits plain http on a trusted network)"
        )
