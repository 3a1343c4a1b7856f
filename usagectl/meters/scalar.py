"""``count``, ``sum`` and ``distinct`` meters: one DuckDB aggregation each (SPEC §5.2, §5.3).

Owner value, per-user values and per-day values come from grouped queries over the meter's
events; nothing loops over rows in Python. Daily values add up to the period value: for
``distinct`` a value counts on the day it was first seen (per owner, or per user for user values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import ClassVar

import duckdb

from usagectl.contracts import Meter
from usagectl.contracts.model import DISTINCT_FIELDS
from usagectl.meters import exact_arithmetic
from usagectl.meters.select import Window, exact, fetch, meter_filter, sum_sql


@dataclass
class ScalarMeterValue:
    """A count/sum/distinct meter's figures (exact: int or Decimal)."""

    is_area: ClassVar[bool] = False
    owner: Decimal = Decimal(0)
    users: dict[str, Decimal] = field(default_factory=dict)
    daily_owner: dict[date, Decimal] = field(default_factory=dict)
    daily_users: dict[str, dict[date, Decimal]] = field(default_factory=dict)
    events: int = 0
    #: The billed level's new consumption per local day over the days a report asked for
    #: (:func:`usagectl.meters.scan.scan_scalar_meters`); None when ``daily_*`` hold it instead.
    billed_daily: dict[date, Decimal] | None = None
    #: Σ of the users' values when they were not listed (a count or sum meter's owner value).
    users_total: Decimal | None = None

    @property
    def user_total(self) -> Decimal:
        if self.users_total is not None:
            return self.users_total
        with exact_arithmetic():
            return sum(self.users.values(), Decimal(0))

    @property
    def overlap(self) -> Decimal:
        with exact_arithmetic():
            return max(self.user_total - self.owner, Decimal(0))


def _value_sql(meter: Meter) -> tuple[str, str]:
    """(FROM-clause source, value expression) for the meter's aggregate; fields from allowlists."""
    if meter.aggregate == "count":
        return "counted", "count(*)"
    if meter.aggregate == "sum":
        return "counted", sum_sql(meter)
    if meter.field not in DISTINCT_FIELDS:
        raise ValueError(f"cannot count distinct {meter.field!r}")
    return "vals", "count(DISTINCT v)"


def compute_scalar_meter(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window, *,
                         daily: bool = False) -> ScalarMeterValue:
    """Owner, per-user and (on request) per-day values of one count/sum/distinct meter.

    Every value is exact (:func:`usagectl.meters.select.sum_sql`); a sum too large for
    DECIMAL(38, 9) is a validation error naming the meter (:func:`~usagectl.meters.select.fetch`).
    """
    where, params = meter_filter(meter, window)
    tz = window.contract.timezone
    source, expr = _value_sql(meter)
    if meter.aggregate == "distinct":
        col = meter.field
        value_col = "unnest(indicator_ids)" if col == "indicator_ids" else col
        cte = (f"WITH counted AS (SELECT * FROM events WHERE {where}), "
               f"vals AS (SELECT user_id, ts, CAST({value_col} AS VARCHAR) AS v FROM counted) ")
        vals_filter = "WHERE v IS NOT NULL"
    else:
        cte = f"WITH counted AS (SELECT * FROM events WHERE {where}) "
        vals_filter = ""
    out = ScalarMeterValue()
    ((owner,),) = fetch(con, meter, cte + f"SELECT {expr} FROM {source} {vals_filter}", params)
    out.owner = exact(owner)
    ((events,),) = fetch(con, meter, cte + "SELECT count(*) FROM counted", params)
    out.events = int(events)
    for user, value in fetch(
            con, meter, cte + f"SELECT user_id, {expr} FROM {source} {vals_filter} "
            "GROUP BY user_id ORDER BY user_id", params):
        out.users[user] = exact(value)
    if daily:
        if meter.aggregate == "distinct":
            # A value counts on the day it is first seen: by the owner, or by each user.
            owner_sql = (cte + "SELECT d, count(*) FROM (SELECT v, min(CAST(timezone(?, ts) AS DATE)) "
                         "AS d FROM vals WHERE v IS NOT NULL GROUP BY v) GROUP BY d ORDER BY d")
            user_sql = (cte + "SELECT user_id, d, count(*) FROM (SELECT user_id, v, "
                        "min(CAST(timezone(?, ts) AS DATE)) AS d FROM vals WHERE v IS NOT NULL "
                        "GROUP BY user_id, v) GROUP BY user_id, d ORDER BY user_id, d")
        else:
            owner_sql = (cte + f"SELECT CAST(timezone(?, ts) AS DATE) AS d, {expr} FROM counted "
                         "GROUP BY d ORDER BY d")
            user_sql = (cte + f"SELECT user_id, CAST(timezone(?, ts) AS DATE) AS d, {expr} "
                        "FROM counted GROUP BY user_id, d ORDER BY user_id, d")
        for d, v in fetch(con, meter, owner_sql, [*params, tz]):
            out.daily_owner[d] = exact(v)
        for u, d, v in fetch(con, meter, user_sql, [*params, tz]):
            out.daily_users.setdefault(u, {})[d] = exact(v)
    return out
