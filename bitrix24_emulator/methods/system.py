"""Methods any caller may use whatever its scopes: server.time, scope, methods, profile (CRestProvider)."""

from __future__ import annotations

from typing import Any

from . import METHODS, MethodContext, MethodResult, method

# Methods the server itself answers (not handlers in this registry) that `methods` lists too.
SERVER_METHODS = ("batch",)


@method("server.time", scope="")
def server_time(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """PHP `date('c', time())` in the portal's time zone."""
    return MethodResult(ctx.clock.isoformat())


@method("scope", scope="")
def scope(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """The caller's scopes; with `full=true` every scope the portal knows."""
    upper = {str(key).upper(): value for key, value in params.items()}
    if upper.get("FULL") in ("true", "1", True, 1):
        return MethodResult(sorted({spec.scope for spec in METHODS.values() if spec.scope}))
    return MethodResult(sorted(ctx.scopes))


@method("methods", scope="")
def methods(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """Method names available to the caller (its scopes plus the global ones), or of one `scope`."""
    upper = {str(key).upper(): value for key, value in params.items()}
    if upper.get("SCOPE"):
        wanted = {str(upper["SCOPE"])}
    elif upper.get("FULL") in ("true", "1", True, 1):
        wanted = {spec.scope for spec in METHODS.values()}
    else:
        wanted = {"", *ctx.scopes}
    names = [spec.name for spec in METHODS.values() if spec.scope in wanted]
    if "" in wanted:
        names.extend(SERVER_METHODS)
    return MethodResult(sorted(names))


@method("profile", scope="")
def profile(ctx: MethodContext, params: dict[str, Any]) -> MethodResult:
    """The calling user, shaped like CRestProvider::getProfile."""
    with ctx.store.lock:
        row = ctx.store.conn.execute(
            "SELECT ID, NAME, LAST_NAME, PERSONAL_GENDER, TIME_ZONE FROM user WHERE ID = ? AND ACTIVE = 1",
            (ctx.user_id,),
        ).fetchone()
    if row is None:
        return MethodResult([])
    offset = ctx.clock.now().utcoffset()
    return MethodResult(
        {
            "ID": str(row[0]),
            "ADMIN": ctx.user_id == 1,
            "NAME": row[1] or "",
            "LAST_NAME": row[2] or "",
            "PERSONAL_GENDER": row[3] or "",
            "TIME_ZONE": row[4] or "",
            "TIME_ZONE_OFFSET": int(offset.total_seconds()) if offset is not None else 0,
        }
    )
