"""Currencies (`crm.currency.list`, in the discovery batch of every run: no request of its own) and a history
of their rates the API does not keep: `currency_rates` gets one row per currency and run day (the portal's
local date), so `v_deals` and `v_payments` can convert an amount at the rate of its own day, or the nearest
day before it that a run saw.

A rate is `AMOUNT` units of the base currency per `AMOUNT_CNT` units of the currency (TRY is often quoted per
10): `rate` is their quotient, so `amount * rate` is the amount in the base currency.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from .api import TransientError
from .fields import CoercionReport, FieldPlan
from .paging import Commands, batch_calls
from .plan import PlanPart, RunPlan

KEY = "currencies"
METHOD = "crm.currency.list"
CURRENCY_PLAN = FieldPlan(
    {
        "CURRENCY": {"type": "string", "title": "Currency code"},
        "AMOUNT_CNT": {"type": "integer", "title": "Units the rate is quoted for"},
        "AMOUNT": {"type": "double", "title": "Rate: base-currency units per AMOUNT_CNT units"},
        "SORT": {"type": "integer"},
        "BASE": {"type": "char", "title": "The portal's base currency"},
        "FULL_NAME": {"type": "string"},
        "DECIMALS": {"type": "integer"},
        "DATE_UPDATE": {"type": "datetime", "title": "Rate changed on"},
    }
)
RATE_COLUMNS: dict[str, dict[str, Any]] = {
    "currency": {"data_type": "text", "nullable": False},
    "rate_date": {"data_type": "date", "nullable": False, "description": "the portal's local date of the run"},
    "rate": {"data_type": "decimal", "precision": 38, "scale": 9, "description": "base-currency units per unit"},
    "amount": {"data_type": "decimal", "precision": 38, "scale": 9},
    "amount_cnt": {"data_type": "bigint"},
    "base_currency": {"data_type": "text"},
    "observed_at": {"data_type": "timestamp", "timezone": True},
}
RATE_KEY = ("currency", "rate_date")


class CurrencyReader(PlanPart):
    def __init__(self, client: Any):
        self.client = client
        self._rows: list[dict[str, Any]] | None = None

    def first_calls(self) -> Commands:
        return {KEY: (METHOD, {})}

    def rows(self, plan: RunPlan) -> list[dict[str, Any]]:
        plan.discover()
        if self._rows is None:
            result = plan.result(KEY)
            if result is None:
                failure = plan.failure(KEY, METHOD)
                if failure is not None and not isinstance(failure, TransientError):
                    raise failure
                result = batch_calls(self.client, {KEY: (METHOD, {})})[KEY].result
            self._rows = CURRENCY_PLAN.coerce([r for r in result or [] if isinstance(r, dict)], CoercionReport())
        return self._rows

    def currencies(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        rows = self.rows(plan)
        if rows:
            yield rows

    def rates(self, plan: RunPlan) -> Iterator[list[dict[str, Any]]]:
        rows = self.rows(plan)
        assert plan.server_time is not None
        day = plan.server_time.date()  # the portal's clock, in its own offset
        base = next((r["CURRENCY"] for r in rows if r.get("BASE")), None)
        out = []
        for row in rows:
            amount, count = row.get("AMOUNT"), row.get("AMOUNT_CNT") or 1
            if amount is None:
                continue
            exact = Decimal(str(amount))
            out.append(
                {
                    "currency": row["CURRENCY"],
                    "rate_date": day,
                    "rate": (exact / Decimal(count)).quantize(Decimal("0.000000001")),
                    "amount": exact,
                    "amount_cnt": count,
                    "base_currency": base,
                    "observed_at": plan.server_time,
                }
            )
        if out:
            yield out
