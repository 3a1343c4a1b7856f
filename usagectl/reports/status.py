"""Compact status for scripts: ``usage``, ``check`` and ``alerts`` (SPEC §5.4, §6, §7)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from usagectl.contracts import Contract, Meter, model, period_containing
from usagectl.meters import EXACT, in_exact_context
from usagectl.meters.pricing import price
from usagectl.meters.select import Window
from usagectl.reports import views
from usagectl.store import contracts_repo

TOKEN_FIELDS = frozenset(model.TOKEN_FIELDS)


def current_windows(con: duckdb.DuckDBPyConnection, as_of: datetime, owner: str | None = None,
                    contract_id: str | None = None) -> list[Window]:
    """The current period's window of each contract (of ``owner``, or just ``contract_id``)."""
    contracts = ([contracts_repo.get_contract(con, contract_id)] if contract_id
                 else contracts_repo.list_contracts(con, owner))
    return [w for _, w in _current(contracts, as_of)]


def _current(contracts: list[Contract], as_of: datetime) -> list[tuple[Contract, Window]]:
    out = []
    for c in contracts:
        p = period_containing(c, as_of)
        if p is not None:
            out.append((c, Window(c, p, as_of)))
    return out


def usage(con: duckdb.DuckDBPyConnection, owner: str, as_of: datetime,
          first_token_meter: bool = False) -> list[dict[str, Any]]:
    """One object per meter of the owner's current contract(s); zeros when there is none.

    ``first_token_meter``: only what the land-data API's ``GET /usage/`` answers — the first
    token meter's row (a ``sum`` of token fields), or, when no current contract has one, the
    first meter's row with zero figures; the other meters are not computed.
    """
    rows: list[dict[str, Any]] = []
    for c, window in _current(contracts_repo.list_contracts(con, owner), as_of):
        for m in c.meters:
            tokens = m.aggregate == "sum" and set(m.fields) <= TOKEN_FIELDS
            row = {"contract": c.id, "meter": m.name, "tier": c.tier, "used": 0, "included": 0,
                   "overage": 0, "overage_amount_cents": 0,
                   "period_start": window.period.start.isoformat(),
                   "period_end": window.period.end.isoformat()}
            if first_token_meter and not tokens:
                if not rows:  # the zero row the route falls back on, not computed
                    rows.append(row)
                continue
            value = views.compute_meter(con, m, window)
            billed = views.billed_value(m, value)
            priced = price(m, billed)
            area = m.aggregate == "unique_area"
            row.update(used=views.num(billed, area), included=views.num(priced.included),
                       overage=views.num(priced.overage, area),
                       overage_amount_cents=priced.overage_amount_cents)
            if tokens:
                row.update(tokens_used=row["used"], tokens_included=row["included"],
                           tokens_overage=row["overage"])
                if first_token_meter:
                    return [row]
            rows.append(row)
    if not rows:
        rows.append({"contract": None, "meter": None, "tier": None, "used": 0, "included": 0,
                     "overage": 0, "overage_amount_cents": 0, "period_start": None,
                     "period_end": None})
    return rows


def meter_statuses(con: duckdb.DuckDBPyConnection, contract: Contract, as_of: datetime
                   ) -> dict[str, str] | None:
    """Each meter's status (ok, warning, exceeded) in the period containing ``as_of``, None when
    no period contains it: the consolidated report's ``status`` (:func:`views.meter_block`: the
    billed value priced by :func:`price`), computed the same way (``contracts list/show``)."""
    period = period_containing(contract, as_of)
    if period is None:
        return None
    window = Window(contract, period, as_of)
    return {m.name: price(m, views.billed_value(m, views.compute_meter(con, m, window))).status
            for m in contract.meters}


def unit_word(m: Meter) -> str:
    """What a meter counts, for messages: acres, credits, tokens, requests, datasets…"""
    if m.aggregate == "unique_area":
        return {"acre": "acres", "hectare": "hectares", "m2": "m²", "km2": "km²"}[m.unit_label]
    return m.unit_label


def _plain(d: Decimal) -> str:
    """2, 1.5, 1000 — no exponent, no trailing zeros, every digit (an amount has up to 38)."""
    return format(d.normalize(EXACT), "f")


@in_exact_context
def check(con: duckdb.DuckDBPyConnection, contract_id: str, meter_name: str, amount: Decimal,
          as_of: datetime) -> dict[str, Any]:
    """Can ``amount`` more units be used?  available = limit + prepaid − billed (SPEC §5.4)."""
    c = contracts_repo.get_contract(con, contract_id)
    m = c.meter(meter_name)
    period = period_containing(c, as_of)
    word = unit_word(m)
    if period is None:
        return {"can_proceed": False, "current_usage": 0, "limit": views.num(m.limit),
                "required": amount, "available": 0, "reset_date": None, "prepaid": m.prepaid,
                "message": f"contract {c.id} has no period containing {as_of.isoformat()}"}
    window = Window(c, period, as_of)
    billed = views.billed_value(m, views.compute_meter(con, m, window))
    area = m.aggregate == "unique_area"
    if m.limit is None:
        available = None
        can = True
        message = f"No limit on {m.name}: {_plain(amount)} {word} can be used"
    else:
        available = m.limit + (m.prepaid or Decimal(0)) - billed
        can = amount <= available
        # The message states the signed number the JSON holds (one truth); below zero it says
        # by how much usage is over what was available.
        if can:
            message = f"Operation requires {_plain(amount)} {word}, and {_plain(available)} are available"
        else:
            message = f"Operation requires {_plain(amount)} {word}, but only {_plain(available)} available"
            if available < 0:
                cap = "the limit plus prepaid" if m.prepaid else "the limit"
                message += f" (usage is {_plain(-available)} over {cap})"
    return {"can_proceed": can, "current_usage": views.num(billed, area),
            "limit": views.num(m.limit), "required": amount,
            "available": views.num(available, area) if available is not None else None,
            "reset_date": period.end.isoformat(), "message": message,
            "prepaid": m.prepaid}


def alerts(con: duckdb.DuckDBPyConnection, as_of: datetime, contract_id: str | None = None
           ) -> list[dict[str, Any]]:
    """Every meter at warning or exceeded, or projected to exceed its limit."""
    contracts = ([contracts_repo.get_contract(con, contract_id)] if contract_id
                 else contracts_repo.list_contracts(con))
    out = []
    for c, window in _current(contracts, as_of):
        doc = views.consolidated(con, window)
        for m in doc["meters"]:
            if m["status"] in ("warning", "exceeded") or m["projection"]["will_exceed_limit"]:
                out.append({"contract": c.id, "owner": c.owner, "meter": m["name"],
                            "status": m["status"], "billed": m["billed"], "limit": m["limit"],
                            "percent_used": m["percent_used"],
                            "projected": m["projection"]["projected"],
                            "will_exceed_limit": m["projection"]["will_exceed_limit"],
                            "exceeds_on": m["projection"]["exceeds_on"],
                            "period_end": window.period.end.isoformat()})
    return out
