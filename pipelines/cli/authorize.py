"""`bitrix24-sync oauth exchange`: turn an authorization code (it lives 30 seconds) into a token pair in the
token store; the sync renews the pair itself from then on."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import parse_qs, urlsplit

from pipelines.cli.check import scopes
from pipelines.cli.common import CHECK_RETRIES, Command
from sources.bitrix24 import ConfigError, configured_oauth_app, connect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("exchange",), help="exchange: code -> token pair in the token store")
    parser.add_argument(
        "--code", required=True, help="the code (lives 30 s), the address the portal redirected to, or - (stdin)"
    )


def run(args: argparse.Namespace) -> int:
    app = configured_oauth_app()
    if app is None:
        raise ConfigError(
            "no OAuth app configured: set client_endpoint and client_id in [sources.bitrix24.credentials] of "
            ".dlt/config.toml and client_secret in .dlt/secrets.toml (or SOURCES__BITRIX24__CREDENTIALS__<KEY>)"
        )
    app.refresh_token, app.authorization_code = None, authorization_code(args.code)
    with connect(credentials=app, **CHECK_RETRIES) as client:
        have = scopes(client)
    auth = client.auth
    print(f"authorized {auth.host}: the token pair is saved in {auth.store.path} (owner-only)")  # type: ignore[attr-defined]
    print(f"scopes: {', '.join(have) or 'none'}")
    print("the sync now renews the tokens itself; remove authorization_code or refresh_token from secrets.toml")
    return 0


def authorization_code(text: str) -> str:
    """The code itself, or the whole address the portal redirected to (its `code` parameter); '-' reads it
    from stdin (keeps it out of the shell history and the process list)."""
    value = sys.stdin.readline().strip() if text == "-" else text.strip()
    if value.startswith(("http://", "https://")):
        value = (parse_qs(urlsplit(value).query).get("code") or [""])[0]
    if not value:
        raise ConfigError("no authorization code given: pass --code CODE (or the redirect address)")
    return value


COMMAND = Command(
    "oauth",
    "OAuth app: turn an authorization code into stored tokens",
    add_arguments,
    run,
    (
        "bitrix24-sync oauth exchange --code 5ad2f76500...",
        "bitrix24-sync oauth exchange --code 'https://example.com/?code=5ad2f76500...&state=...'",
        "bitrix24-sync oauth exchange --code -    # read the code from stdin",
    ),
    order=70,
)
