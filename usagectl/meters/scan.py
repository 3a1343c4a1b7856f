"""All ``count``, ``sum`` and ``distinct`` meters of a report in as few scans as DuckDB needs.

A report of N scalar meters used to run five to eight queries per meter (owner value, events,
users, per-day owner and per-day user values fetched row by row, late events, fields, requests,
the counted events) and add the per-user days up in Python. Here (docs/meters.md, "Speed"):

* one scan of the window's events computes every count and sum meter's value, every meter's
  events, late events, fields and request summary, and the counted events, each aggregate with
  ``FILTER (WHERE <the meter's own conditions>)`` — grouped by user when the view lists users;
* one query per ``distinct`` meter (DuckDB's grouped ``count(DISTINCT …) FILTER`` does not push
  the filter below the distinct, which was 4× slower than a filtered scan): its ``(user, value,
  first instant)`` groups give the owner's and each user's value and the days values were first
  seen on;
* the trend's 14 days from one grouped query over those days only.

Only aggregates travel to Python. Every number is the one :func:`usagectl.meters.scalar.
compute_scalar_meter` computes meter by meter (the same SQL expressions, the same exact types):
tests/test_meter_scan.py compares the two on generated events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from usagectl.contracts import Meter
from usagectl.contracts.model import DISTINCT_FIELDS, SUM_FIELDS
from usagectl.meters import exact_arithmetic
from usagectl.meters.scalar import ScalarMeterValue, compute_scalar_meter
from usagectl.meters.select import (SUM_TERMS, Window, exact, meter_conditions,
                                    window_conditions)

#: Aggregates of a meter whose sum does not fit DECIMAL(38, 9): the per-meter path names it.
_SUM_ERRORS = (duckdb.OutOfRangeException, duckdb.ConversionException)


@dataclass
class ScalarScan:
    """What one scan found for a report's scalar meters."""

    values: dict[str, ScalarMeterValue] = field(default_factory=dict)
    #: Per meter: events ingested after the period ended (consolidated ``late_events``).
    late: dict[str, int] = field(default_factory=dict)
    #: Per sum meter: the exact total of each field.
    fields: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    #: Per count meter: the request summary (``breakdown.request_summary``).
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Events any meter counted, and their users (consolidated ``events_counted``, ``users``).
    counted_events: int = 0
    counted_users: int = 0
    #: Per user: (org_id, events, first ts, last ts) over the events any meter counted.
    user_stats: dict[str, tuple[Any, int, datetime, datetime]] = field(default_factory=dict)


def is_scalar(meter: Meter) -> bool:
    return meter.aggregate in ("count", "sum", "distinct")


def _cond(meter: Meter) -> tuple[str, list[Any]]:
    conds, params = meter_conditions(meter)
    return (" AND ".join(conds) if conds else "true"), params


class _Select:
    """A select list whose bound parameters are kept in the order they appear."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.params: list[Any] = []

    def add(self, sql: str, params: list[Any] | None = None) -> int:
        self.items.append(sql)
        self.params += params or []
        return len(self.items) - 1


def _sum_value(meter: Meter, cond: str, params: list[Any]) -> tuple[str, list[Any]]:
    """The meter's exact sum under a FILTER: the same expression as ``select.sum_sql``."""
    terms = [f"coalesce(sum({SUM_TERMS[f]}) FILTER (WHERE {cond}), 0)" for f in meter.fields]
    if not terms:
        return "0", []
    return " + ".join(terms), params * len(terms)


def scan_scalar_meters(con: duckdb.DuckDBPyConnection, meters: tuple[Meter, ...], window: Window,
                       *, by_user: bool = True, days: tuple[date, date] | None = None,
                       extras: bool = False, counted: bool = False) -> ScalarScan:
    """Owner and per-user values (and events) of every scalar meter in ``meters``.

    ``days`` (first, last local day, inclusive) adds each meter's billed new consumption per day
    over that range (``ScalarMeterValue.billed_daily``); ``extras`` adds late events, sum
    fields and request summaries; ``counted`` the events any meter counted (with ``by_user``, per
    user: org, events, first and last seen). ``by_user`` False leaves out the per-user values of
    count and sum meters (their Σ users is the owner value); distinct meters always have them.
    A sum too large for DECIMAL(38, 9) is the per-meter path's validation error naming the meter.
    """
    scalar = tuple(m for m in meters if is_scalar(m))
    out = ScalarScan(values={m.name: ScalarMeterValue() for m in scalar})
    if not scalar:
        return out
    try:
        _main_scan(con, scalar, window, out, by_user=by_user, extras=extras, counted=counted)
        for m in scalar:
            if m.aggregate == "distinct":
                _distinct(con, m, window, out.values[m.name], days)
        if days is not None:
            _flow_days(con, [m for m in scalar if m.aggregate != "distinct"], window, out, days)
    except _SUM_ERRORS:
        for m in scalar:  # raises the ValidationError that names the meter
            compute_scalar_meter(con, m, window, daily=days is not None)
        raise
    return out


#: The columns the main scan's aggregates read (besides the flags).
_SCAN_COLUMNS = ("user_id", "ts", "ingested_at", "succeeded", "org_id", "error_code",
                 *SUM_FIELDS)
#: A sum at or beyond this many units may not fit DECIMAL(38, 9): such a meter is recomputed by
#: the per-meter query, which returns it or raises the error naming the meter.
_SAFE_SUM = Decimal(10) ** 29


def _count(value: int | None) -> int:
    """A ``count_if`` as an int: DuckDB returns NULL for it over no rows at all."""
    return int(value or 0)


def _main_scan(con: duckdb.DuckDBPyConnection, meters: tuple[Meter, ...], window: Window,
               out: ScalarScan, *, by_user: bool, extras: bool, counted: bool) -> None:
    """One scan: per user (``by_user``) or for the owner, every meter's events and count or sum.

    A sum meter's value is the exact Σ of its fields' sums (each the SQL of ``select.sum_sql``),
    so each field is summed once however many outputs need it. Per user, the owner's figures are
    the Σ of the users' (every event has exactly one user).
    """
    assert not (by_user and extras), "extras are owner-level figures"
    # Each distinct condition is evaluated once per event into a flag column (f0, f1, …) that the
    # aggregates test; counts are count_if(flag) and the average takes CASE WHEN flag: a FILTER clause per aggregate cost DuckDB a selection per aggregate (the scan of six
    # meters at 10M events went from 7–9 s to 2.5 s). Sums keep FILTER, the meters' own SQL.
    flags: dict[tuple[str, str], str] = {}
    flag_sql: list[str] = []
    flag_params: list[Any] = []

    def flag(meter: Meter) -> str:
        cond, cp = _cond(meter)
        key = (cond, repr(cp))
        if key not in flags:
            flags[key] = f"f{len(flags)}"
            flag_sql.append(f"({cond}) AS {flags[key]}")
            flag_params.extend(cp)
        return flags[key]

    sel = _Select()
    cols: dict[str, dict[str, int]] = {}
    meter_flags: list[str] = []
    for m in meters:
        f = flag(m)
        meter_flags.append(f)
        c = cols[m.name] = {"events": sel.add(f"count_if({f})")}
        if m.aggregate == "sum":
            for fld in m.fields:
                c["f:" + fld] = sel.add(f"coalesce(sum({SUM_TERMS[fld]}) FILTER (WHERE {f}), 0)")
        if extras:
            c["late"] = sel.add(f"count_if({f} AND ingested_at >= ?)",
                                [window.period.end])
            if m.aggregate == "count":
                e = flag(replace(m, include_failed=True))
                c["total"] = sel.add(f"count_if({e})")
                c["ok"] = sel.add(f"count_if({e} AND succeeded)")
                c["avg"] = sel.add(f"avg(CASE WHEN {e} THEN response_time_ms END)")
    anyone = " OR ".join(dict.fromkeys(meter_flags))
    if counted:
        n_any = sel.add(f"count_if({anyone})")
        if by_user:
            org = sel.add(f"arg_max(org_id, ts) FILTER (WHERE org_id IS NOT NULL AND ({anyone}))")
            first = sel.add(f"min(ts) FILTER (WHERE {anyone})")
            last = sel.add(f"max(ts) FILTER (WHERE {anyone})")
    where, wp = window_conditions(window)
    source = (f"(SELECT {', '.join(_SCAN_COLUMNS)}, {', '.join(flag_sql)} FROM events "
              f"WHERE {' AND '.join(where)})")
    select = ", ".join(sel.items)
    if by_user:
        sql = f"SELECT user_id, {select} FROM {source} GROUP BY user_id ORDER BY user_id"
    else:
        sql = f"SELECT NULL, {select} FROM {source}"
    rows = con.execute(sql, sel.params + flag_params + wp).fetchall()
    unsafe: set[str] = set()
    for m in meters:
        c = cols[m.name]
        v = out.values[m.name]
        total = Decimal(0)
        for row in rows:
            vals = row[1:]
            n = _count(vals[c["events"]])
            v.events += n
            if m.aggregate == "distinct":
                continue
            if m.aggregate == "count":
                value = Decimal(n)
            else:
                sums = [exact(vals[c["f:" + f]]) for f in m.fields]
                with exact_arithmetic():
                    value = sum(sums, Decimal(0))
                if any(abs(x) >= _SAFE_SUM for x in [*sums, value]):
                    unsafe.add(m.name)
                if extras:
                    out.fields[m.name] = dict(zip(m.fields, sums))
            if by_user and n:
                v.users[row[0]] = value
            with exact_arithmetic():
                total += value
        if m.aggregate != "distinct":
            v.owner = total
            if not by_user:  # Σ users of a count or sum is the owner's value (one user per event)
                v.users_total = total
        if extras:
            vals = rows[0][1:]
            out.late[m.name] = _count(vals[c["late"]])
            if m.aggregate == "count":
                n_all, ok, avg = _count(vals[c["total"]]), _count(vals[c["ok"]]), vals[c["avg"]]
                out.requests[m.name] = {
                    "total": int(n_all), "successful": int(ok), "failed": int(n_all - ok),
                    "failed_by_error_code": {},
                    "avg_response_time_ms": round(float(avg), 6) if avg is not None else None}
    for name in unsafe:  # beyond DECIMAL(38, 9): as the per-meter query computes it, or its error
        m = next(x for x in meters if x.name == name)
        ref = compute_scalar_meter(con, m, window)
        v = out.values[name]
        v.owner, v.users = ref.owner, ref.users if by_user else {}
        v.users_total = None if by_user else ref.user_total
        if extras:
            from usagectl.reports.breakdown import sum_fields

            out.fields[name] = sum_fields(con, m, window)
    if extras:
        _failures_by_code(con, [m for m in meters if m.aggregate == "count"], window, out)
    if counted:
        out.counted_events = sum(_count(r[1 + n_any]) for r in rows)
        if by_user:
            for r in rows:
                if r[1 + n_any]:
                    out.user_stats[r[0]] = (r[1 + org], int(r[1 + n_any]), r[1 + first],
                                            r[1 + last])
            out.counted_users = len(out.user_stats)
        else:
            ((users,),) = con.execute(
                f"SELECT count(DISTINCT user_id) FROM {source} WHERE {anyone}",
                flag_params + wp).fetchall()
            out.counted_users = int(users)


def _failures_by_code(con: duckdb.DuckDBPyConnection, meters: list[Meter], window: Window,
                      out: ScalarScan) -> None:
    """Each count meter's failed events by error_code, from one grouped query over the failed
    events only (a histogram in the main scan read every event's code: slower)."""
    if not meters:
        return
    sel = _Select()
    for m in meters:
        everything, ep = _cond(replace(m, include_failed=True))
        sel.add(f"count_if({everything})", ep)
    where, wp = window_conditions(window)
    rows = con.execute(
        f"SELECT coalesce(error_code, '(none)') AS code, {', '.join(sel.items)} FROM events "
        f"WHERE {' AND '.join(where)} AND NOT succeeded GROUP BY code", sel.params + wp).fetchall()
    for k, m in enumerate(meters):
        # The order request_summary gives: most failures first, then by code.
        counts = sorted(((r[0], int(r[k + 1])) for r in rows if r[k + 1]),
                        key=lambda kv: (-kv[1], kv[0]))
        out.requests[m.name]["failed_by_error_code"] = dict(counts)


def _day_bounds(days: tuple[date, date]) -> tuple[datetime, datetime]:
    """Instants surely before the first local day's start and after the last's end, in any zone
    (UTC offsets stay within ±26 hours), so the scan reads only those days' row groups."""
    lo = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC) - timedelta(days=2)
    hi = datetime(days[1].year, days[1].month, days[1].day, tzinfo=UTC) + timedelta(days=3)
    return lo, hi


def _flow_days(con: duckdb.DuckDBPyConnection, meters: list[Meter], window: Window,
               out: ScalarScan, days: tuple[date, date]) -> None:
    """Count and sum meters per local day in ``days``: owner and Σ users are the same number
    for them (every event has one user), so the billed series is the per-day value."""
    if not meters:
        return
    sel = _Select()
    for m in meters:
        cond, cp = _cond(m)
        sel.add(f"count(*) FILTER (WHERE {cond})", cp)
        sel.add(*(_sum_value(m, cond, cp) if m.aggregate == "sum" else ("0", [])))
    where, wp = window_conditions(window)
    lo, hi = _day_bounds(days)
    sql = (f"SELECT * FROM (SELECT CAST(timezone(?, ts) AS DATE) AS d, {', '.join(sel.items)} "
           f"FROM events WHERE {' AND '.join(where)} AND ts >= ? AND ts < ? GROUP BY d) "
           "WHERE d BETWEEN ? AND ?")
    rows = con.execute(sql, [window.contract.timezone, *sel.params, *wp, lo, hi, *days]).fetchall()
    for k, m in enumerate(meters):
        series: dict[date, Decimal] = {}
        for r in rows:
            n = r[1 + 2 * k]
            if n:
                series[r[0]] = exact(n if m.aggregate == "count" else r[2 + 2 * k])
        out.values[m.name].billed_daily = series


def _distinct(con: duckdb.DuckDBPyConnection, m: Meter, window: Window, v: ScalarMeterValue,
              days: tuple[date, date] | None) -> None:
    """A distinct meter's owner value, per-user values (their Σ is billed on ``user``) and,
    with ``days``, its billed series of first sightings, from one query over its
    ``(user, value)`` groups."""
    source, sp = distinct_values_sql(m, window)
    tz = window.contract.timezone
    by_instant = days is not None and local_order_kept(
        tz, window.period.start, min(window.as_of, window.period.end), "day")
    # A value's first local day: the day of its first instant when local days never go back in
    # this period (cheap: one zone conversion per group), else the least day of its events.
    first_day = "" if by_instant or days is None else ", min(CAST(timezone(?, ts) AS DATE)) AS fd"
    day_expr = ("CAST(timezone(?, min(t)) AS DATE)" if by_instant else "min(fd)")
    user_day_expr = ("CAST(timezone(?, t) AS DATE)" if by_instant else "fd")
    parts = ["SELECT 1 AS k, NULL AS u, NULL::DATE AS d, count(DISTINCT v) AS n FROM uv",
             "SELECT 0, user_id, NULL, count(*) FROM uv GROUP BY user_id"]
    params: list[Any] = []
    if days is not None:
        if m.billed_on == "user":
            parts.append(f"SELECT 2, NULL, d, count(*) FROM (SELECT {user_day_expr} AS d FROM uv) "
                         "WHERE d BETWEEN ? AND ? GROUP BY d")
        else:
            parts.append(f"SELECT 2, NULL, d, count(*) FROM (SELECT {day_expr} AS d FROM uv "
                         "GROUP BY v) WHERE d BETWEEN ? AND ? GROUP BY d")
        params += ([tz] if by_instant else []) + list(days)
    sql = (f"WITH uv AS (SELECT user_id, v, min(ts) AS t{first_day} FROM "
           f"{source} WHERE v IS NOT NULL GROUP BY user_id, v) "
           + " UNION ALL ".join(parts))
    head = [tz] if first_day else []
    rows = con.execute(sql, head + sp + params).fetchall()
    series: dict[date, Decimal] = {}
    for k, u, d, n in sorted(rows, key=lambda r: (r[0], str(r[1]), r[2] or date.min)):
        if k == 1:
            v.owner = exact(n)
        elif k == 0:
            v.users[u] = exact(n)
        else:
            series[d] = exact(n)
    if days is not None:
        v.billed_daily = series


#: Columns of the events table :func:`distinct_values_sql` may add to its rows (an allowlist).
VALUE_ROW_COLUMNS = ("org_id", "event_id")


def distinct_values_sql(m: Meter, window: Window, columns: tuple[str, ...] = ()
                        ) -> tuple[str, list[Any]]:
    """``(SELECT user_id, ts, v[, columns] FROM events WHERE …)`` and its parameters: one row
    per value of a distinct meter's field in each event it counts (``v`` as text, NULL when the
    event has none; a list field gives a row per element).

    The one selection behind a distinct meter's owner and user values (:func:`_distinct`) and
    the values the users view lists with ``--detail`` (:mod:`usagectl.reports.users_detail`),
    so a user's list and count cannot disagree. ``columns`` come from VALUE_ROW_COLUMNS.
    """
    if m.field not in DISTINCT_FIELDS:
        raise ValueError(f"cannot count distinct {m.field!r}")
    if not set(columns) <= set(VALUE_ROW_COLUMNS):
        raise ValueError(f"cannot select {columns!r}")
    col = "unnest(indicator_ids)" if m.field == "indicator_ids" else m.field
    where, wp = window_conditions(window)
    cond, cp = _cond(m)
    extra = "".join(f", {c}" for c in columns)
    return (f"(SELECT user_id, ts, CAST({col} AS VARCHAR) AS v{extra} FROM events "
            f"WHERE {' AND '.join(where)} AND {cond})"), wp + cp


@lru_cache(maxsize=64)
def local_order_kept(tz: str, start: datetime, end: datetime, bucket: str) -> bool:
    """True when, from ``start`` to ``end``, a later instant never falls in an earlier local
    ``bucket`` (day, month, or the hour bucket's local-hour start) in zone ``tz``.

    Then the bucket a value is first seen in is the bucket of its first instant, which DuckDB
    finds per group instead of converting every event's time. It fails only for a clock set
    back across midnight (day, month) or by other than whole hours (hour); the zone's offsets
    are sampled hourly and each change is located to the microsecond.
    """
    zone = ZoneInfo(tz)
    t, stop = start.astimezone(UTC), end.astimezone(UTC)
    prev = t.astimezone(zone).utcoffset()
    step = timedelta(hours=1)
    while t < stop:
        n = min(t + step, stop)
        off = n.astimezone(zone).utcoffset()
        if off != prev:
            assert off is not None and prev is not None
            lo, hi = t, n
            while hi - lo > timedelta(microseconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            if bucket == "hour":
                if (off - prev) % timedelta(hours=1):
                    return False
            elif off < prev and (hi + off).date() < (lo + prev).date():
                return False
            prev = off
        t = n
    return True
