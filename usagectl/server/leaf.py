"""Leaf's billing endpoints in Leaf's shape (docs/api.md "Leaf billing").

Leaf bills spatially unique area per product, one contract per product. A usagectl contract
holds several meters, so each of its ``unique_area`` meters is one Leaf contract, with the id
``CONTRACT:METER`` (the bare contract id means its first area meter). Every figure comes from
the report view the CLI prints (``report --view users|consolidated|daily``), through
:func:`usagectl.reports.report.build_view`; this module only renames fields.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from usagectl.contracts import Contract, Meter, period_containing
from usagectl.contracts.periods import local_midnight, period_at
from usagectl.errors import NotFoundError, UsageError
from usagectl.meters.select import Window
from usagectl.reports import ranges
from usagectl.reports.report import ViewOptions, build_view

#: Leaf's ``areaUnit`` for usagectl's units; m² and km² have no Leaf name (docs/api.md).
AREA_UNITS = {"acre": "Acre", "hectare": "Hectare", "m2": "SquareMeter", "km2": "SquareKilometer"}
SEPARATOR = ":"


def area_meters(c: Contract) -> list[Meter]:
    return [m for m in c.meters if m.aggregate == "unique_area"]


def leaf_id(c: Contract, m: Meter) -> str:
    return f"{c.id}{SEPARATOR}{m.name}"


def split_id(leaf_contract_id: str) -> tuple[str, str | None]:
    """``CONTRACT:METER`` → (contract, meter); a bare id → (contract, None)."""
    cid, sep, meter = leaf_contract_id.rpartition(SEPARATOR)
    return (cid, meter) if sep else (leaf_contract_id, None)


def pick_meter(c: Contract, meter_name: str | None, leaf_contract_id: str) -> Meter:
    """The area meter a Leaf contract id names (404 when the contract has none by that name)."""
    meters = area_meters(c)
    for m in meters:
        if meter_name is None or m.name == meter_name:
            return m
    raise NotFoundError(f"no contract {leaf_contract_id!r}",
                        {"contract_id": leaf_contract_id})


def product(m: Meter) -> str:
    """Leaf's product identifier of an area meter: its one product; UNIFIED_AREA for every
    product; AUDIT_FIELDS_BOUNDARY for an audit-mode meter; several products joined by ``,``."""
    if m.mode == "audit":
        return "AUDIT_FIELDS_BOUNDARY"
    if m.all_products:
        return "UNIFIED_AREA"
    return ",".join(m.products)


def instant(moment: datetime) -> str:
    """ISO 8601 as Leaf writes it: ``Z`` for UTC."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def contract_doc(c: Contract, m: Meter, as_of: datetime) -> dict[str, Any]:
    """One Leaf contract: the term is the contract period containing ``as_of`` (the one Leaf's
    consumption counts in); before the first period, the first one; after the last, the last."""
    p = period_containing(c, as_of)
    if p is None:
        first = period_at(c, 0)
        p = first if as_of < first.start else _last_period(c, first)
    return {"id": leaf_id(c, m), "product": product(m), "startDate": instant(p.start),
            "endDate": instant(p.end), "region": None}


def _last_period(c: Contract, first: Any) -> Any:
    p = first
    while True:
        try:
            nxt = period_at(c, p.index + 1)
        except NotFoundError:
            return p
        if nxt.start <= p.start:
            return p
        p = nxt


def list_docs(contracts: list[Contract], as_of: datetime) -> list[dict[str, Any]]:
    return [contract_doc(c, m, as_of) for c in contracts for m in area_meters(c)]


def day_of(text: str | None, parameter: str, default: date) -> tuple[date, bool]:
    """A Leaf time parameter as a day of the contract's calendar: the date written in it
    (``2024-01-15`` or ``2024-01-15T00:00:00.000Z`` → 15 January), and whether a time other than
    midnight was written (then an end bound covers that day too)."""
    if text is None:
        return default, False
    try:
        if len(text) == 10:
            return date.fromisoformat(text), False
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(f"{parameter} {text!r} is not a date or an ISO 8601 instant "
                         "(YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS.sssZ)",
                         {"parameter": parameter, "value": text}) from None
    return moment.date(), (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0)


def _area(value: Any) -> float:
    return float(value) if isinstance(value, (int, float, Decimal)) else 0.0


def consumption(con: duckdb.DuckDBPyConnection, window: Window, m: Meter, day: date
                ) -> dict[str, Any]:
    """``…/consumption?timestamp=``: the area processed on one local day — owner-wide unique
    (``report --view consolidated --from D --to D+1``) and per user (``--view users``)."""
    zone = window.contract.zone
    lo, hi = local_midnight(day, zone), local_midnight(day + timedelta(days=1), zone)
    opts = ViewOptions(meters=[m.name], date_from=lo, date_to=hi)
    whole = build_view(con, window, "consolidated", opts)
    total, users = 0.0, []
    if whole["periods"]:
        total = _area(whole["periods"][0]["meters"][0]["owner_total"])
        doc = build_view(con, window, "users", opts)
        users = [{"leafUserId": u["user_id"], "totalArea": u["meters"][m.name]}
                 for u in doc["users"]]
    return {"areaUnit": AREA_UNITS[m.unit_label], "date": instant(lo),
            "totalUniqueArea": total, "leafUsersAreas": users}


def area_per_day(con: duckdb.DuckDBPyConnection, window: Window, m: Meter, start: date,
                 end: date) -> dict[str, Any]:
    """``…/consumption/api-owner`` and ``…/leaf-user/{id}``: per local day in ``[start, end)``
    the new area (``dailyArea``, the daily view's value at the meter's billed level) and the
    cumulative area since the period began (``totalArea``). The period is the one containing
    ``start``; the daily view runs from its first day, so the cumulative counts the days before
    ``start`` too (``report --view daily --from PERIOD_START --to END``)."""
    c = window.contract
    zone = c.zone
    lo, hi = local_midnight(start, zone), local_midnight(end, zone)
    if hi <= lo:
        return {"areaUnit": AREA_UNITS[m.unit_label], "areaPerDay": []}
    p = period_containing(c, lo)
    if p is None:
        raise UsageError(f"startTime {start.isoformat()} is in no period of contract {c.id}",
                         {"parameter": "startTime", "value": start.isoformat()})
    if hi > p.end:
        raise UsageError(f"endTime {end.isoformat()} runs past the end of the contract period "
                         f"that holds startTime ({instant(p.end)}); ask one period at a time",
                         {"parameter": "endTime", "period_end": instant(p.end)})
    window, lo, hi = ranges.clip(replace(window, period=p), lo, hi, False)
    opts = ViewOptions(meters=[m.name], date_from=window.period.start, date_to=hi,
                       period_given=True)
    doc = build_view(con, window, "daily", opts)
    level = "user" if m.billed_on == "user" else "owner"
    days, total = [], 0.0
    for d in doc["days"]:
        daily = _area(d["meters"][m.name][level])
        total = round(total + daily, 6)
        when = date.fromisoformat(d["date"])
        if when >= start:
            days.append({"date": instant(local_midnight(when, zone)), "totalArea": total,
                         "dailyArea": daily})
    return {"areaUnit": AREA_UNITS[m.unit_label], "areaPerDay": days}


def with_user(window: Window, user: str | None) -> Window:
    return window if user is None else replace(window, user=user)
