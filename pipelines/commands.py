"""The CLI's commands beyond loading (`check`, `status`, `oauth exchange`) and what every command shares:
logging with timestamps, the progress display, option defaults from dlt configuration.

Option defaults follow dlt's conventions: `[bitrix24_sync]` in .dlt/config.toml, or the environment variable
`BITRIX24_SYNC__<KEY>` (e.g. `BITRIX24_SYNC__DESTINATION=postgres`); a command-line option wins.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dlt

from pipelines.auth_config import oauth_auth, oauth_settings, setting
from pipelines.bitrix24_pipeline import check_destination, make_client, make_pipeline
from pipelines.check import OPTIONAL_SCOPES, estimate_lines, inventory, missing_scopes, scopes
from pipelines.progress import ProgressDisplay
from pipelines.run_meter import RunMeter
from pipelines.status import status_lines, status_report
from sources.bitrix24.client import Bitrix24Client, ConfigError, ScopeError
from sources.bitrix24.settings import ENTITY_BY_RESOURCE

CONFIG_SECTION = "bitrix24_sync"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CHECK_RETRIES = {"max_retries": 2, "max_retry_seconds": 20.0}  # check answers quickly, even when unreachable


def config_default(key: str, fallback: Any) -> Any:
    """`[bitrix24_sync] <key>` from .dlt/config.toml or BITRIX24_SYNC__<KEY>, else `fallback`."""
    value = dlt.config.get(f"{CONFIG_SECTION}.{key}")
    return fallback if value in (None, "") else value


@contextlib.contextmanager
def cli_logging(debug: bool, quiet: bool) -> Iterator[None]:
    """Timestamped lines on stderr for the sync's loggers (INFO: progress and retries; --quiet: warnings
    only), for the duration of one command; other libraries log through the root logger (warnings)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format=LOG_FORMAT)
    logger = logging.getLogger("bitrix24_sync")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def pipeline_from(args: argparse.Namespace) -> dlt.Pipeline:
    return make_pipeline(
        args.destination,
        duckdb_path=args.duckdb_path,
        postgres_url=args.postgres_url,
        pipelines_dir=args.pipelines_dir,
    )


def run_meter(args: argparse.Namespace, client: Bitrix24Client, pipeline: dlt.Pipeline) -> RunMeter:
    """The meter the runner fills; with a display unless --quiet. On a terminal the expected row counts
    come from one counting request (so the bars can show an ETA); elsewhere nobody watches an ETA."""
    if args.quiet:
        return RunMeter()
    terminal = sys.stderr.isatty()
    display = ProgressDisplay(sys.stderr, terminal=terminal, rate=client.bucket.rate, interval=args.progress_interval)
    meter = RunMeter(display)
    if terminal and getattr(args, "since", None) is None:  # a backfill's window is not counted
        meter.expect(_count_windows(client, None if args.full_refresh else pipeline, args.resources))
    return meter


def _count_windows(client: Bitrix24Client, pipeline: dlt.Pipeline | None, resources: str | None) -> dict[str, int]:
    """Rows each selected entity's window holds (one batch; the portal runs a COUNT per entity)."""
    names = [r.strip() for r in (resources or "").split(",") if r.strip()] or list(ENTITY_BY_RESOURCE)
    specs = [ENTITY_BY_RESOURCE[n] for n in names if n in ENTITY_BY_RESOURCE]
    if not specs:
        return {}
    states = pipeline.state.get("sources", {}).get("bitrix24", {}).get("resources", {}) if pipeline else {}
    commands = {}
    for spec in specs:
        cursor = states.get(spec.resource, {}).get("cursor")
        window = {f">={spec.cursor_field}": cursor} if cursor else {}
        commands[spec.resource] = (
            spec.list_method,
            {**spec.base_params(), "select": [spec.id_field], "filter": window, "start": 0},
        )
    response = client.batch(commands)
    return {k: v for k, v in response.total.items() if k not in response.errors}


# --------------------------------------------------------------------------------- check


def check_command(args: argparse.Namespace) -> int:
    """Prints each verified item as it passes; the first failure raises (the caller prints its one line)."""
    client = make_client(**CHECK_RETRIES)
    auth = client.auth
    kind = "OAuth app " + auth.client_id if hasattr(auth, "client_id") else f"webhook of user {auth.user_id}"
    print(f"{'portal':<12} {auth.host} ({kind})")
    have = scopes(client)
    print(f"{'connection':<12} ok")
    print(f"{'token':<12} accepted" + (f" (token store {auth.store.path})" if hasattr(auth, "store") else ""))
    missing = missing_scopes(have)
    if missing:
        raise ScopeError(
            f"the credential lacks the {', '.join(missing)} scope(s) (it has: {', '.join(have) or 'none'}); add "
            "them to the webhook or app on the portal (crm, user and sale)",
            code="insufficient_scope",
        )
    notes = [f"; no {s}: {why}" for s, why in OPTIONAL_SCOPES.items() if s not in have]
    print(f"{'scopes':<12} {', '.join(have)}{''.join(notes)}")
    pipeline = pipeline_from(args)
    check_destination(pipeline)
    print(f"{'destination':<12} {pipeline.destination.destination_name} dataset {pipeline.dataset_name}: ok")
    found = inventory(client, with_sale="sale" in have)
    print("\nwhat the portal has (row counts from list totals: one request, a COUNT per entity on the portal):")
    for line in estimate_lines(found, client.bucket.rate, client.bucket.burst + 1):
        print(line)
    print(f"\ncheck used {client.stats.requests} HTTP requests")
    return 0


# --------------------------------------------------------------------------------- status


def status_command(args: argparse.Namespace) -> int:
    report = status_report(pipeline_from(args))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(status_lines(report)))
    return 0


# --------------------------------------------------------------------------------- oauth


def oauth_exchange_command(args: argparse.Namespace) -> int:
    """Turn an authorization code (it lives 30 seconds) into a token pair in the token store."""
    settings = {k: v for k, v in oauth_settings().items() if k not in ("refresh_token", "authorization_code")}
    if not settings:
        raise ConfigError(
            "no OAuth app configured: set client_endpoint and client_id in [sources.bitrix24.oauth] of "
            ".dlt/config.toml and client_secret in .dlt/secrets.toml (or SOURCES__BITRIX24__OAUTH__<KEY>)"
        )
    settings["authorization_code"] = authorization_code(args.code)
    auth = oauth_auth(settings, allow_http=bool(setting("sources.bitrix24.allow_http")))
    with Bitrix24Client(auth, **CHECK_RETRIES) as client:
        have = scopes(client)
    print(f"authorized {auth.host}: the token pair is saved in {auth.store.path} (owner-only)")
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
