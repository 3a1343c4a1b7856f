"""Series by time bucket, top-N breakdowns and request summaries (SPEC §5.3, §7).

* ``series``: a meter's new consumption per hour, day or month in the contract's time zone; the
  buckets add up to the period value (a distinct value counts in the bucket where it is first
  seen, an area where it is first covered).
* ``top``: a meter's value per ``endpoint``, ``operation``, ``resource_id``, ``session_id``,
  ``user_id`` or ``org_id``, largest first. Distinct and area values are per group (a dataset
  used from two endpoints counts in both rows).
* request summary: total, successful and failed requests, failures by ``error_code`` and average
  response time, over the meter's events whatever their status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from usagectl.contracts import Meter
from usagectl.contracts.model import DISTINCT_FIELDS
from usagectl.errors import ValidationError
from usagectl.meters import billed_series
from usagectl.meters.select import (Window, exact, fetch, meter_filter, sum_field_sql, sum_sql,
                                    window_conditions)

BUCKETS = ("hour", "day", "month")
GROUPS = ("endpoint", "operation", "resource_id", "session_id", "user_id", "org_id")


def _value_expr(meter: Meter) -> str:
    if meter.aggregate == "count":
        return "count(*)"
    if meter.aggregate == "sum":
        return sum_sql(meter)  # exact, as the meter's own value (meters/select.py)
    raise ValueError(meter.aggregate)


def _distinct_col(meter: Meter) -> str:
    if meter.field not in DISTINCT_FIELDS:
        raise ValueError(f"cannot count distinct {meter.field!r}")
    return "unnest(indicator_ids)" if meter.field == "indicator_ids" else meter.field


def _bucket_sql(bucket: str, col: str = "ts") -> tuple[str, int]:
    """SQL for an event's bucket start, and how many ``?`` (the contract's zone) it takes.

    Day and month: the naive local start (a local day or month is one bucket however long).
    Hour: the *instant* the local hour began, ``ts − (local ts − its local hour)``, so that the
    hour repeated when clocks fall back is two buckets (01:00-05:00 and 01:00-06:00 in
    America/Chicago) and a half-hour zone's buckets start at its own :00 (Asia/Kolkata).
    """
    if bucket == "hour":
        return f"{col} - (timezone(?, {col}) - date_trunc('hour', timezone(?, {col})))", 2
    # bucket from the fixed list BUCKETS; col a fixed column name
    return f"date_trunc('{bucket}', timezone(?, {col}))", 1


def series(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window, bucket: str
           ) -> list[tuple[datetime, Any]]:
    """(bucket start in the contract's zone, new value) pairs, in order of the start instant."""
    if bucket not in BUCKETS:
        raise ValidationError(f"--bucket {bucket!r}: choose one of {', '.join(BUCKETS)}")
    tz = window.contract.timezone
    where, params = meter_filter(meter, window)
    start, n_tz = _bucket_sql(bucket)
    if meter.aggregate == "unique_area":
        return _area_series(con, meter, window, bucket)
    if meter.aggregate == "distinct":
        sql = (f"SELECT b, count(*) FROM (SELECT v, min(b) AS b FROM (SELECT {start} AS b, "
               f"CAST({_distinct_col(meter)} AS VARCHAR) AS v FROM events WHERE {where}) "
               "WHERE v IS NOT NULL GROUP BY v) GROUP BY b ORDER BY b")
    else:
        sql = (f"SELECT {start} AS b, {_value_expr(meter)} FROM events WHERE {where} "
               "GROUP BY b ORDER BY b")
    rows = fetch(con, meter, sql, [*[tz] * n_tz, *params])
    return [(_localize(b, window), exact(v)) for b, v in rows]


def series_of_meters(con: duckdb.DuckDBPyConnection, meters: tuple[Meter, ...], window: Window,
                     bucket: str) -> dict[str, list[tuple[datetime, Any]]]:
    """:func:`series` of several meters, each the same list, in fewer scans.

    Count and sum meters share one grouped scan (each meter's value under a FILTER of its own
    conditions), so the zone conversion of each event's time runs once. A distinct value is
    first seen in the bucket of its first instant when buckets never go back in time in this
    period (:func:`usagectl.meters.scan.local_order_kept`): the conversion then runs once per
    value instead of once per event. Area meters are computed by :func:`series`.
    """
    from usagectl.meters.scan import _cond, _sum_value, local_order_kept

    if bucket not in BUCKETS:
        raise ValidationError(f"--bucket {bucket!r}: choose one of {', '.join(BUCKETS)}")
    tz = window.contract.timezone
    out: dict[str, list[tuple[datetime, Any]]] = {}
    flows = [m for m in meters if m.aggregate in ("count", "sum")]
    kept = local_order_kept(tz, window.period.start, min(window.as_of, window.period.end),
                            "hour" if bucket == "hour" else "day")
    if flows:
        items: list[str] = []
        params: list[Any] = []
        for m in flows:
            cond, cp = _cond(m)
            items.append(f"count(*) FILTER (WHERE {cond})")
            params += cp
            value, vp = _sum_value(m, cond, cp) if m.aggregate == "sum" else ("0", [])
            items.append(value)
            params += vp
        start, n_tz = _bucket_sql(bucket)
        where, wp = window_conditions(window)
        sql = (f"SELECT {start} AS b, {', '.join(items)} FROM events WHERE {' AND '.join(where)} "
               "GROUP BY b ORDER BY b")
        try:
            rows = con.execute(sql, [*[tz] * n_tz, *params, *wp]).fetchall()
        except (duckdb.OutOfRangeException, duckdb.ConversionException):
            rows = None  # the per-meter query names the meter whose sum does not fit
        for k, m in enumerate(flows):
            if rows is None:
                out[m.name] = series(con, m, window, bucket)
                continue
            out[m.name] = [(_localize(r[0], window),
                            exact(r[1 + 2 * k] if m.aggregate == "count" else r[2 + 2 * k]))
                           for r in rows if r[1 + 2 * k]]
    for m in meters:
        if m.aggregate == "distinct" and kept:
            where, params = meter_filter(m, window)
            start, n_tz = _bucket_sql(bucket, "t")
            sql = (f"SELECT {start} AS b, count(*) FROM (SELECT v, min(ts) AS t FROM "
                   f"(SELECT ts, CAST({_distinct_col(m)} AS VARCHAR) AS v FROM events "
                   f"WHERE {where}) WHERE v IS NOT NULL GROUP BY v) GROUP BY b ORDER BY b")
            out[m.name] = [(_localize(b, window), exact(v))
                           for b, v in fetch(con, m, sql, [*[tz] * n_tz, *params])]
        elif m.name not in out:
            out[m.name] = series(con, m, window, bucket)
    return out


def _localize(start: datetime, window: Window) -> datetime:
    """A bucket start in the contract's zone: an instant (hour buckets) keeps its own offset,
    a naive local start (day, month) takes the zone's offset at that wall time."""
    if start.tzinfo is not None:
        return start.astimezone(window.contract.zone)
    return start.replace(tzinfo=window.contract.zone)


def _area_series(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window, bucket: str
                 ) -> list[tuple[datetime, Any]]:
    """New area per bucket at the billed level (owner, or Σ users)."""
    import numpy as np  # the area engine loads only for an area meter
    import shapely

    from usagectl.meters import area
    from usagectl.meters.unique_area import _rows as area_rows

    if bucket == "hour":
        # Geometry and its hour must come from one query so that they stay paired.
        if meter.mode == "audit" or meter.boundary_policy == "active" or meter.derive_operations:
            raise ValidationError("hour buckets of area need boundary_policy = processed and no "
                                  "derive_operations; use --bucket day or month")
        where, params = meter_filter(meter, window)
        start, n_tz = _bucket_sql("hour")
        rows = con.execute(
            f"SELECT geometry, user_id, epoch({start}) FROM events "
            f"WHERE {where} AND action = 'process' AND geometry IS NOT NULL",
            [*[window.contract.timezone] * n_tz, *params]).fetchall()
        wkb = [r[0] for r in rows]
        users = [r[1] for r in rows]
        # Seconds since 1970 of the instant the local hour began (two for a repeated hour).
        keys = [int(r[2]) for r in rows]
        starts = [datetime.fromtimestamp(k, UTC) for k in keys]
    else:
        wkb, users, days = area_rows(con, meter, window)
        starts = [datetime(d.year, d.month, 1 if bucket == "month" else d.day) for d in days]
        # Seconds since 1970 of the naive local start: no machine time zone involved.
        keys = [int((s - datetime(1970, 1, 1)).total_seconds()) for s in starts]
    if not wkb:
        return []
    key_to_start = dict(zip(keys, starts))
    geoms = shapely.from_wkb(np.asarray([bytes(w) for w in wkb], dtype=object))
    level = "users" if meter.billed_on == "user" else "owner"
    result = area.compute(area.AreaInput(geoms, np.asarray(users, dtype=object),
                                         np.asarray(keys, dtype=np.int64)), daily=level)
    per = float(meter.unit_m2)
    totals = billed_series(meter.billed_on, result.daily_owner, result.daily_users)
    return [(_localize(key_to_start[k], window), v / per) for k, v in sorted(totals.items())]


def top(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window, group_by: str,
        limit: int | None) -> list[dict[str, Any]]:
    """The meter's value per group, largest first (ties by key)."""
    if group_by not in GROUPS:
        raise ValidationError(f"--group-by {group_by!r}: choose one of {', '.join(GROUPS)}")
    where, params = meter_filter(meter, window)
    if meter.aggregate == "unique_area":
        if group_by not in ("user_id", "org_id"):
            raise ValidationError("area meters group by user_id or org_id only")
        from usagectl.meters.unique_area import compute_area_meter

        value = compute_area_meter(con, meter, window)
        if group_by == "user_id":
            rows = [{"key": u, "value": round(a, 6)} for u, a in value.users.items()]
        else:
            return _area_by_org(con, meter, window, limit)
    else:
        expr = ("count(DISTINCT CAST(v AS VARCHAR))" if meter.aggregate == "distinct"
                else _value_expr(meter))
        source = (f"(SELECT *, {_distinct_col(meter)} AS v FROM events WHERE {where})"
                  if meter.aggregate == "distinct" else f"(SELECT * FROM events WHERE {where})")
        rows = [{"key": k, "value": exact(v), "events": int(n)} for k, v, n in fetch(
            con, meter, f"SELECT {group_by}, {expr}, count(*) FROM {source} GROUP BY {group_by}",
            params)]
    # Largest first, ties by key; two sorts compare the exact values (no float, no rounding).
    rows.sort(key=lambda r: str(r["key"]))
    rows.sort(key=lambda r: r["value"], reverse=True)
    return rows[:limit] if limit else rows


def _area_by_org(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window,
                 limit: int | None) -> list[dict[str, Any]]:
    import numpy as np  # the area engine loads only for an area meter
    import shapely

    from usagectl.meters import area
    from usagectl.meters.unique_area import _rows as area_rows

    wkb, users, _ = area_rows(con, meter, window)
    orgs = dict(con.execute(
        "SELECT user_id, arg_max(org_id, ts) FROM events WHERE owner_id = ? AND org_id IS NOT NULL "
        "GROUP BY user_id", [window.contract.owner]).fetchall())
    groups = np.asarray([orgs.get(u) or "(no org)" for u in users], dtype=object)
    geoms = shapely.from_wkb(np.asarray([bytes(w) for w in wkb], dtype=object))
    result = area.compute(area.AreaInput(geoms, groups)) if len(geoms) else area.AreaResult()
    per = float(meter.unit_m2)
    rows = [{"key": k, "value": round(v / per, 6)} for k, v in result.users.items()]
    rows.sort(key=lambda r: (-r["value"], r["key"]))
    return rows[:limit] if limit else rows


def request_summary(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window
                    ) -> dict[str, Any]:
    """Total, successful, failed, failures by error_code, average response time."""
    from dataclasses import replace

    everything = replace(meter, include_failed=True)
    where, params = meter_filter(everything, window)
    total, ok, avg = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE succeeded), avg(response_time_ms) "
        f"FROM events WHERE {where}", params).fetchone()
    by_code = dict(con.execute(
        f"SELECT coalesce(error_code, '(none)'), count(*) FROM events WHERE {where} "
        "AND NOT succeeded GROUP BY 1 ORDER BY 2 DESC, 1", params).fetchall())
    return {"total": int(total), "successful": int(ok), "failed": int(total - ok),
            "failed_by_error_code": {k: int(v) for k, v in by_code.items()},
            "avg_response_time_ms": round(float(avg), 6) if avg is not None else None}


def sum_fields(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window) -> dict[str, Any]:
    """A sum meter's total per field (tokens split into input, output, thinking)."""
    where, params = meter_filter(meter, window)
    fields = list(meter.fields)
    (row,) = fetch(con, meter, f"SELECT {', '.join(sum_field_sql(f) for f in fields)} "
                   f"FROM events WHERE {where}", params)
    return {f: exact(v) for f, v in zip(fields, row)}
