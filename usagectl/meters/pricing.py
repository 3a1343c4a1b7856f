"""Limits, overage to the cent, status and projection (SPEC §5.4).

Exact decimal arithmetic throughout (in the 100-digit :data:`usagectl.meters.EXACT` context, so
a 38-digit sum is never rounded); money is integer cents rounded half-up once, at the end.
Area values arrive as floats in the meter's unit and are taken at the 6 decimals the reports show,
so the priced quantity is the reported one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from usagectl.contracts import Meter, Period
from usagectl.meters import in_exact_context

MICRO = Decimal("0.000001")
WEEK = 7


def as_decimal(value: float | int | Decimal) -> Decimal:
    """A meter value as an exact Decimal (floats at 6 decimals, the reported precision)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    return Decimal(f"{value:.6f}")


@in_exact_context
def tiered_cents(quantity: Decimal, meter: Meter) -> Decimal:
    """Price ``quantity`` units with the meter's tier table (graduated or volume).

    Graduated: each unit at the tier it falls in, plus the ``flat_cents`` of every tier reached;
    volume: every unit at the tier the total lands in, plus that tier's ``flat_cents``. A quantity
    of 0 lies in the first tier, so an idle period pays the first tier's flat fee (SPEC §5.4, as
    OpenMeter and Stripe bill a tiered price). Tier ``k`` covers ``(up_to[k-1], up_to[k]]``.
    """
    tiers = meter.price
    if not tiers:
        return Decimal(0)
    quantity = max(quantity, Decimal(0))
    if meter.pricing == "volume":
        for tier in tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return quantity * tier.cents_per_unit + tier.flat_cents
        last = tiers[-1]
        return quantity * last.cents_per_unit + last.flat_cents
    total = tiers[0].flat_cents  # the first tier is always reached
    lower = Decimal(0)
    for k, tier in enumerate(tiers):
        if k and quantity <= lower:
            break
        if k:
            total += tier.flat_cents
        upper = tier.up_to
        in_tier = (quantity if upper is None else min(quantity, upper)) - lower
        total += max(in_tier, Decimal(0)) * tier.cents_per_unit
        if upper is None:
            break
        lower = upper
    return total


@dataclass
class Priced:
    """The §5.4 block of one meter: ``included``, ``overage`` and ``overage_units`` are the
    quantities ``overage_amount_cents`` was priced from, whatever the price model."""

    billed: Decimal
    limit: Decimal | None
    included: Decimal
    remaining: Decimal | None
    percent_used: Decimal | None
    overage: Decimal
    overage_units: int
    overage_amount_cents: int
    status: str


@in_exact_context
def price(meter: Meter, billed: Decimal) -> Priced:
    """remaining, percent_used, overage, overage_units, cents and status for a billed value.

    ``included`` defaults to 0, so ``overage = max(0, billed − included)`` is every unit when
    the contract has no allotment (a per-unit price then charges every unit, as a one-tier table
    at the same rate does); ``overage_units = ceil(overage / overage_unit)``. The amount is
    ``overage_units × overage_cents_per_unit``, or the tier table's price of ``overage_units``
    (graduated or volume; 0 units still pay the first tier's flat fee). A meter without any
    price reports its overage and units at 0 cents. Half-up to a whole cent, once.
    """
    limit = meter.limit
    included = meter.included if meter.included is not None else Decimal(0)
    overage = max(Decimal(0), billed - included)
    step = meter.overage_unit or Decimal(1)
    overage_units = (int((overage / step).to_integral_value(rounding=ROUND_CEILING))
                     if overage > 0 else 0)
    if meter.pricing:
        cents = tiered_cents(Decimal(overage_units), meter)
    else:
        cents = Decimal(overage_units) * (meter.overage_cents_per_unit or Decimal(0))
    amount = int(cents.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    remaining = limit - billed if limit is not None else None
    percent = (Decimal(100) * billed / limit) if limit else None
    if limit is not None and billed > limit:
        status = "exceeded"
    elif limit is not None and billed >= meter.warn_at * limit:
        status = "warning"
    else:
        status = "ok"
    return Priced(billed, limit, included, remaining, percent, overage, overage_units, amount,
                  status)


@dataclass
class Projection:
    """Linear projection to the period's end (SPEC §5.4)."""

    daily_average: Decimal
    projected: Decimal
    will_exceed_limit: bool
    exceeds_on: date | None
    trending: str

    def to_dict(self) -> dict:
        return {"daily_average": self.daily_average, "projected": self.projected,
                "will_exceed_limit": self.will_exceed_limit,
                "exceeds_on": self.exceeds_on.isoformat() if self.exceeds_on else None,
                "trending": self.trending}


@in_exact_context
def week_sums(daily: dict[date, Decimal], as_of: datetime | date, tz=None  # noqa: ANN001
              ) -> tuple[Decimal, Decimal]:
    """New consumption in the 7 local days up to and including as_of's day, and the 7 before.

    ``as_of`` is an instant (its local day in ``tz`` ends the window) or the last local day itself.
    """
    today = as_of.astimezone(tz).date() if isinstance(as_of, datetime) else as_of
    last = sum((v for d, v in daily.items() if today - timedelta(days=WEEK) < d <= today), Decimal(0))
    prev = sum((v for d, v in daily.items()
                if today - timedelta(days=2 * WEEK) < d <= today - timedelta(days=WEEK)), Decimal(0))
    return last, prev


@in_exact_context
def trend(last: Decimal, prev: Decimal) -> str:
    """``increasing`` (> +10 %), ``decreasing`` (< −10 %) or ``stable``: last week vs the one
    before; from nothing to something is increasing."""
    if prev == 0:
        return "increasing" if last > 0 else "stable"
    change = (last - prev) / prev
    if change > Decimal("0.1"):
        return "increasing"
    if change < Decimal("-0.1"):
        return "decreasing"
    return "stable"


@in_exact_context
def project(meter: Meter, billed: Decimal, period: Period, as_of: datetime,
            weeks: tuple[Decimal, Decimal], carried: Decimal = Decimal(0)) -> Projection:
    """Linear projection of what is new in the period, on top of what the meter already held.

    ``carried`` is the part of ``billed`` that was there before the period started (a stock
    meter's standing value; 0 for a flow). ``daily_average = (billed − carried) / elapsed days``;
    ``projected = carried + daily_average × period days``, so a flow projects
    ``billed / elapsed × days`` and a flat stock projects what it holds. ``exceeds_on`` is the
    local date that line crosses the limit: the period's first day when the stock alone is over.
    """
    elapsed = period.elapsed_days(as_of)
    days = period.days
    new = billed - carried
    daily_average = new / elapsed if elapsed > 0 else Decimal(0)
    projected = carried + daily_average * days
    limit = meter.limit
    will_exceed = limit is not None and projected > limit
    exceeds_on = None
    if limit is not None and carried > limit:
        exceeds_on = period.start.date()
    elif limit is not None and daily_average > 0:
        crossing = (limit - carried) / daily_average  # days after the period start
        if crossing < days:
            instant = period.start + timedelta(seconds=float(crossing * 86400))
            exceeds_on = instant.astimezone(period.start.tzinfo).date()
    return Projection(daily_average, projected, will_exceed, exceeds_on, trend(*weeks))
