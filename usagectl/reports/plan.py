"""The plan view (``report --view plan``): the v2 usage API's plan endpoint (docs/plan.md).

For one contract period as of ``--as-of``:

* ``billing_period``: ``start``, ``end``, ``days_in_period`` (local calendar days of the period),
  ``days_remaining`` (local days from as-of's day, that day included, to the end; 0 once the
  period is over) and ``renewal_date`` (the local date the next period starts; ``null`` when the
  contract has no next period);
* per meter, the consolidated view's figures read the way the plan endpoint reads them: ``used``
  (the billed value), ``limit``, ``remaining`` (never below 0), ``usage_percentage``, the
  projection's ``projected`` and ``projected_usage_percentage``, ``will_exceed_limit``,
  ``exceeds_on`` and ``trending`` (the projection's own: last 7 days vs the 7 before);
* ``plans``: the current plan priced on the projected usage, then each alternative;
* ``recommendation``: the cheapest plan, or ``null`` without alternatives.

The projection is the one every report computes (:func:`usagectl.meters.pricing.project`, read
from :func:`usagectl.reports.views.consolidated`); a plan whose period is longer or shorter than
the current one takes the same daily pace over its own period length. Money goes through
:func:`usagectl.meters.pricing.price`: the plan's price of its projected usage is the sum of its
meters' ``overage_amount_cents``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import duckdb

from usagectl.contracts import Contract, Period, period_at
from usagectl.errors import NotFoundError, ValidationError
from usagectl.meters import in_exact_context
from usagectl.meters.pricing import as_decimal, price
from usagectl.meters.select import Window

if TYPE_CHECKING:
    from usagectl.engines import ScalarEngine

#: Areas are reported, and priced, at 6 decimals (:func:`usagectl.meters.pricing.as_decimal`).
AREA_QUANTUM = Decimal("0.000001")
#: The keys of each meter of the view, in order (the CSV's meter columns too).
METER_KEYS = ("name", "aggregate", "unit", "used", "limit", "remaining", "usage_percentage",
              "projected", "projected_usage_percentage", "will_exceed_limit", "exceeds_on",
              "trending", "status")
#: The keys of each plan that are single values, in order (``meters`` is the plan's list).
PLAN_KEYS = ("contract", "tier", "cycle", "current", "period_days", "projected_cost_cents",
             "cost_for_current_period_cents")


def load_alternatives(path: str, current: Contract) -> list[Contract]:
    """The plans of an alternatives file (an ordinary contracts file) to compare with ``current``.

    Every contract in it must be for the current contract's owner (a recommendation never mixes
    owners): another owner's is a ValidationError naming it. A contract with the current one's
    id is the current plan itself and is not listed twice.
    """
    from usagectl.contracts import load_contracts_file

    plans = load_contracts_file(path)
    others = [c.id for c in plans if c.owner != current.owner]
    if others:
        raise ValidationError(
            f"{path}: {', '.join(repr(o) for o in others)} {'is' if len(others) == 1 else 'are'} "
            f"not for owner {current.owner!r}; an alternatives file holds other plans of the "
            f"contract's owner", {"path": path, "owner": current.owner, "contracts": others})
    return [c for c in plans if c.id != current.id]


def billing_period(window: Window) -> dict[str, Any]:
    """``start``, ``end``, ``days_in_period``, ``days_remaining`` and ``renewal_date``."""
    c, p = window.contract, window.period
    zone = c.zone
    first, end = p.start.astimezone(zone).date(), p.end.astimezone(zone).date()
    days = (end - first).days
    now = window.as_of.astimezone(UTC)
    if now >= p.end.astimezone(UTC):
        remaining = 0
    elif now < p.start.astimezone(UTC):
        remaining = days
    else:
        remaining = (end - window.as_of.astimezone(zone).date()).days
    return {"start": p.start.isoformat(), "end": p.end.isoformat(), "days_in_period": days,
            "days_remaining": remaining, "renewal_date": _renewal(c, p)}


def _renewal(c: Contract, p: Period) -> str | None:
    """The local date the next period starts, or None (a ``once`` contract, the last period)."""
    if c.cycle == "once":
        return None
    try:
        nxt = period_at(c, p.index + 1)
    except NotFoundError:
        return None
    return nxt.start.astimezone(c.zone).date().isoformat()


def _percent(value: Decimal, limit: Decimal | None) -> float | None:
    """100·value/limit as the consolidated view writes ``percent_used`` (6 places)."""
    if not limit:
        return None
    return round(float(Decimal(100) * value / limit), 6)


@in_exact_context
def meter_row(block: dict[str, Any]) -> dict[str, Any]:
    """One meter of the view from its consolidated block (the same figures, nothing recomputed
    but ``remaining`` kept at 0 or more and the projected percentage)."""
    from usagectl.reports.views import num

    area = block["aggregate"] == "unique_area"
    limit = block["limit"]
    used = as_decimal(block["billed"])
    proj = block["projection"]
    projected = as_decimal(proj["projected"])
    return {"name": block["name"], "aggregate": block["aggregate"], "unit": block["unit"],
            "used": block["billed"], "limit": limit,
            "remaining": num(max(Decimal(0), limit - used), area) if limit is not None else None,
            "usage_percentage": block["percent_used"],
            "projected": proj["projected"],
            "projected_usage_percentage": _percent(projected, limit),
            "will_exceed_limit": proj["will_exceed_limit"], "exceeds_on": proj["exceeds_on"],
            "trending": proj["trending"], "status": block["status"]}


def plan_period_days(plan: Contract, window: Window, current: bool) -> Decimal:
    """The length in days of the period a plan would bill: the current period for the current
    plan; for an alternative, its cycle laid from the current period's first local day (a
    ``once`` plan: its own period)."""
    if current:
        return window.period.days
    if plan.cycle == "once":
        return period_at(plan, 0).days
    first = window.period.start.astimezone(window.contract.zone).date()
    return period_at(replace(plan, start=first, end=None), 0).days


@dataclass(frozen=True)
class PlanCost:
    """One plan priced on the projected usage."""

    contract: Contract
    current: bool
    period_days: Decimal
    meters: list[dict[str, Any]]
    projected_cost_cents: int
    cost_for_current_period_cents: int

    def to_dict(self) -> dict[str, Any]:
        return {"contract": self.contract.id, "tier": self.contract.tier,
                "cycle": self.contract.cycle, "current": self.current,
                "period_days": self.period_days, "meters": self.meters,
                "projected_cost_cents": self.projected_cost_cents,
                "cost_for_current_period_cents": self.cost_for_current_period_cents}


@in_exact_context
def price_plan(plan: Contract, blocks: list[dict[str, Any]], window: Window, current: bool
               ) -> PlanCost:
    """Price a plan on the projected usage of its own meters (``blocks``: their consolidated
    figures over the current period as of ``--as-of``).

    Each meter's projection is ``carried + daily_average × days`` (SPEC §5.4, the consolidated
    projection; ``carried`` is a stock meter's standing value, 0 for a flow): over the current
    period it is the consolidated ``projected`` itself; over an alternative's longer or
    shorter period, the same daily pace over its length. Each meter is priced with
    :func:`usagectl.meters.pricing.price`; the plan's cost of one of its periods is the sum of
    the meters' cents, and its cost over the current period that sum × current days / its days,
    rounded half-up to a cent (equal lengths: the sum itself).
    """
    days = plan_period_days(plan, window, current)
    here = window.period.days
    meters, total = [], 0
    for m, block in zip(plan.meters, blocks, strict=True):
        proj = block["projection"]
        projected = as_decimal(proj["projected"])
        if days != here:
            carried = as_decimal(proj.get("carried_over", 0))
            projected = carried + (projected - carried) * days / here
            if block["aggregate"] == "unique_area":
                projected = projected.quantize(AREA_QUANTUM)  # areas are priced at 6 places
        cents = price(m, projected).overage_amount_cents
        meters.append({"name": m.name, "projected": projected, "cost_cents": cents})
        total += cents
    comparable = total if days == here else int(
        (Decimal(total) * here / days).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return PlanCost(plan, current, days, meters, total, comparable)


def recommend(plans: list[PlanCost]) -> dict[str, Any] | None:
    """The cheapest plan over the current period; ties keep the current plan (listed first),
    then the alternative listed first. None when there is no alternative."""
    if len(plans) < 2:
        return None
    now = plans[0]
    best = min(plans, key=lambda p: p.cost_for_current_period_cents)  # the first of equals
    saved = now.cost_for_current_period_cents - best.cost_for_current_period_cents
    if best is now:
        reason = (f"no alternative costs less than the current plan's "
                  f"{_dollars(now.cost_for_current_period_cents)} for this period's projected "
                  "usage; keep it")
    else:
        reason = (f"{best.contract.id} would cost {_dollars(best.cost_for_current_period_cents)}"
                  f" instead of {_dollars(now.cost_for_current_period_cents)} for this period's "
                  f"projected usage: {saved:,} cents less")
    return {"contract": best.contract.id, "tier": best.contract.tier, "change": best is not now,
            "current_cost_cents": now.cost_for_current_period_cents,
            "recommended_cost_cents": best.cost_for_current_period_cents,
            "cents_saved": saved, "reason": reason}


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def plan_view(con: duckdb.DuckDBPyConnection, window: Window, meter_names: list[str] | None = None,
              alternatives: list[Contract] | None = None, *,
              scalars: ScalarEngine | None = None) -> dict[str, Any]:
    """The view's document: header, ``billing_period``, ``meters`` (``--meter`` picks some),
    ``plans`` (the current plan, then each alternative, priced on every meter of each) and
    ``recommendation`` (``null`` when ``alternatives`` is None or empty)."""
    from usagectl.reports import views

    names = {window.contract.meter(n).name for n in meter_names or []} or {
        m.name for m in window.contract.meters}  # an unknown name: NotFoundError, the meters
    doc = views.consolidated(con, window, None, scalars=scalars)
    plans = [price_plan(window.contract, doc["meters"], window, True)]
    for alt in alternatives or []:
        alt_doc = views.consolidated(con, replace(window, contract=alt), None, scalars=scalars)
        plans.append(price_plan(alt, alt_doc["meters"], window, False))
    head = {k: doc[k] for k in ("contract", "period", "user") if k in doc}
    return {**head, "billing_period": billing_period(window),
            "meters": [meter_row(b) for b in doc["meters"] if b["name"] in names],
            "plans": [p.to_dict() for p in plans],
            "recommendation": recommend(plans)}

