"""Fault injection: the failures a client meets on the way to a real portal, on demand.

A rule picks requests to /rest/ either by share (probability, from a seeded RNG so runs repeat) or as the next
`count` requests, optionally only for one method (for `batch_subcall_error`: the sub-call's method). Kinds:

- `rate_limit`: 503 QUERY_LIMIT_EXCEEDED; `operation_limit`: 429 OPERATION_TIME_LIMIT;
- `server_error`: 500 INTERNAL_SERVER_ERROR (JSON); `bad_gateway`: 502 with nginx's HTML page;
- `expired_token`: 401 expired_token (whatever the auth, so webhook clients can be tested too);
- `drop`: the connection is closed without any response;
- `slow`: the request is served normally after sleeping `seconds` of real time (it is the client's timeout
  that is being tested);
- `truncated`: the normal 200 response with its JSON body cut in half;
- `plan_restricted`: 403 ACCESS_DENIED "REST is available only on commercial plans." (what a portal on a plan
  without REST, or a method outside the plan, answers: `share=1` for the whole portal);
- `batch_subcall_error`: in the next batch, one sub-command (the one at `index`, else the first calling
  `method`, else one picked by the RNG) is answered with INTERNAL_SERVER_ERROR in `result_error` instead of
  running.

Spec forms: CLI `--fault KIND:SHARE[:METHOD]`; JSON or dict `{"kind": "drop", "count": 2, "method":
"crm.deal.list", "seconds": 1.5, "index": 3}`. Requests with the admin header are never faulted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ApiError

REQUEST_KINDS = (
    "rate_limit",
    "operation_limit",
    "server_error",
    "bad_gateway",
    "expired_token",
    "drop",
    "slow",
    "truncated",
    "plan_restricted",
)
KINDS = (*REQUEST_KINDS, "batch_subcall_error")

BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

ERRORS: dict[str, ApiError] = {
    "rate_limit": ApiError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503),
    "operation_limit": ApiError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit", 429),
    "server_error": ApiError("INTERNAL_SERVER_ERROR", "Internal server error", 500),
    "expired_token": ApiError("expired_token", "The access token provided has expired", 401),
    "batch_subcall_error": ApiError("INTERNAL_SERVER_ERROR", "Internal server error", 500),
    "plan_restricted": ApiError("ACCESS_DENIED", "REST is available only on commercial plans.", 403),
}


@dataclass
class FaultRule:
    kind: str
    share: float | None = None
    count: int | None = None
    method: str | None = None
    seconds: float = 3.0
    index: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(KINDS)}")
        if (self.share is None) == (self.count is None):
            raise ValueError("a fault needs exactly one of share (0..1) or count (next N requests)")
        if self.share is not None and not 0 < self.share <= 1:
            raise ValueError("fault share must be in (0, 1]")
        if self.method:
            self.method = self.method.lower()

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """CLI form `KIND:SHARE[:METHOD]`, e.g. `server_error:0.05` or `drop:0.1:crm.deal.list`."""
        kind, _, rest = text.partition(":")
        share, _, method = rest.partition(":")
        try:
            value = float(share)
        except ValueError:
            raise ValueError(f"fault {text!r}: expected KIND:SHARE[:METHOD]") from None
        return cls(kind=kind, share=value, method=method or None)

    @classmethod
    def from_spec(cls, spec: FaultRule | str | dict[str, Any]) -> FaultRule:
        if isinstance(spec, FaultRule):
            return spec
        if isinstance(spec, str):
            return cls.parse(spec)
        known = {k: spec[k] for k in ("kind", "share", "count", "method", "seconds", "index") if k in spec}
        return cls(**known)


class Faults:
    """The active rules; the first rule that matches a request fires."""

    def __init__(self, seed: int = 7):
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, spec: FaultRule | str | dict[str, Any]) -> FaultRule:
        rule = FaultRule.from_spec(spec)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def for_request(self, method: str) -> FaultRule | None:
        return self._fire(method, REQUEST_KINDS)

    def for_batch(self, methods: list[str]) -> int | None:
        """Position of the sub-command (among `methods`, the batch's commands in order) to fail, or None."""
        candidates = list(range(len(methods)))
        with self._lock:
            for rule in self._rules:
                if rule.kind != "batch_subcall_error":
                    continue
                if rule.index is not None:
                    targets = [rule.index] if rule.index < len(methods) else []
                else:
                    targets = [i for i in candidates if not rule.method or methods[i] == rule.method]
                if targets and self._fires(rule):
                    return targets[0] if rule.index is not None or rule.method else self._rng.choice(targets)
            return None

    def _fire(self, method: str, kinds: tuple[str, ...]) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and (not rule.method or rule.method == method) and self._fires(rule):
                    return rule
            return None

    def _fires(self, rule: FaultRule) -> bool:
        """Whether `rule` fires now (caller holds the lock); a counted rule is used up and removed."""
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0:
                self._rules.remove(rule)
            return True
        return self._rng.random() < (rule.share or 0)
