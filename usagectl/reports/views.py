"""Report views as plain JSON-ready data (SPEC §7): consolidated, users, daily, overlap.

Each function takes an open connection, a contract, the period and the moment, computes the
meters it needs and returns the dict that ``--format json`` prints; tables and CSV are rendered
from the same dicts, so every format shows the same numbers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb

from usagectl.contracts import Contract, Meter, Period
from usagectl.errors import ValidationError
from usagectl.meters import billed_series
from usagectl.meters.pricing import as_decimal, price, project, week_sums
from usagectl.meters.scalar import ScalarMeterValue, compute_scalar_meter
from usagectl.meters.scan import is_scalar
from usagectl.meters.select import Window
from usagectl.reports.counted import counted_where

if TYPE_CHECKING:  # the area engine (shapely, numpy) loads only when an area meter is computed
    from usagectl.engines import ScalarEngine
    from usagectl.meters.unique_area import AreaMeterValue

AREA_DECIMALS = 6


def num(value: float | Decimal | int | None, area: bool = False) -> Any:
    """A JSON number: areas rounded to 6 decimals, exact values as they are."""
    if value is None:
        return None
    if area or isinstance(value, float):
        return round(float(value), AREA_DECIMALS) + 0.0
    return value


def contract_header(c: Contract) -> dict[str, Any]:
    return {"id": c.id, "owner": c.owner, "cycle": c.cycle, "timezone": c.timezone, "tier": c.tier}


def period_header(window: Window) -> dict[str, Any]:
    return window.period.to_dict(window.as_of)


def _header(window: Window) -> dict[str, Any]:
    """``contract`` and ``period``, and ``user`` when the report is about one user (``--user``)."""
    head = {"contract": contract_header(window.contract), "period": period_header(window)}
    if window.user is not None:
        head["user"] = window.user
    return head


def compute_meter(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window, *,
                  daily: bool | str = False, overlap: bool = False, pairs: bool = False,
                  regions: bool = False, weeks: bool = False) -> AreaMeterValue | ScalarMeterValue:
    """One meter's values, by aggregate; ``weeks`` adds what the projection's trend needs."""
    if meter.aggregate == "unique_area":
        from usagectl.meters.unique_area import compute_area_meter

        return compute_area_meter(con, meter, window, daily=daily, overlap=overlap, pairs=pairs,
                                  regions=regions, weeks=weeks)
    return compute_scalar_meter(con, meter, window, daily=bool(daily) or weeks)


def billed_value(meter: Meter, value: AreaMeterValue | ScalarMeterValue) -> Decimal:
    raw = value.user_total if meter.billed_on == "user" else value.owner
    return as_decimal(raw)


def _daily_billed(meter: Meter, value: AreaMeterValue | ScalarMeterValue) -> dict[date, Decimal]:
    if not value.is_area and value.billed_daily is not None:
        return value.billed_daily  # the days the report asked for, billed level already
    series = billed_series(meter.billed_on, value.daily_owner, value.daily_users)
    return {d: as_decimal(v) for d, v in series.items()}


def meter_block(meter: Meter, value: AreaMeterValue | ScalarMeterValue, window: Window
                ) -> dict[str, Any]:
    """The consolidated view's object for one meter (SPEC §7)."""
    area = value.is_area
    billed = billed_value(meter, value)
    priced = price(meter, billed)
    today = window.last_day  # as_of's local day, or a closed period's last day
    if value.is_area and value.weeks is not None:
        weeks = (as_decimal(value.weeks[0]), as_decimal(value.weeks[1]))
        recent = [num(v, True) for v in value.recent or []]
    else:
        daily = _daily_billed(meter, value)
        weeks = week_sums(daily, today)
        recent = [num(daily.get(today - timedelta(days=13 - i), Decimal(0)), area)
                  for i in range(14)]
    carried = as_decimal(value.carried) if value.is_area and value.carried is not None else Decimal(0)
    proj = project(meter, billed, window.period, window.as_of, weeks, carried)
    projection = {k: (num(v, area) if isinstance(v, Decimal) else v)
                  for k, v in proj.to_dict().items()}
    if meter.is_stock:  # what the stock held before the period: projected = this + new × days
        projection["carried_over"] = num(carried, area)
    block = {
        "name": meter.name, "aggregate": meter.aggregate,
        "unit": meter.unit_label,
        "billed_on": meter.billed_on,
        "owner_total": num(value.owner, area), "user_total": num(value.user_total, area),
        "overlap": num(value.overlap, area), "billed": num(billed, area),
        "limit": num(meter.limit), "included": num(priced.included),
        "remaining": num(priced.remaining, area) if priced.remaining is not None else None,
        "percent_used": (round(float(priced.percent_used), 6)
                         if priced.percent_used is not None else None),
        "overage": num(priced.overage, area), "overage_units": priced.overage_units,
        "overage_amount_cents": priced.overage_amount_cents, "status": priced.status,
        "projection": projection,
        "events": value.events,
        "last_14_days": recent,  # new consumption per local day, oldest first (billed level)
    }
    if value.is_area and value.unlinked_operations is not None:  # derive_operations meters only
        block["unlinked_operations"] = value.unlinked_operations
    return block


def _scalars(con: duckdb.DuckDBPyConnection, scalars: ScalarEngine | None) -> ScalarEngine:
    """The engine computing count, sum and distinct meters: the local one unless given."""
    from usagectl.engines import LocalScalars

    return scalars if scalars is not None else LocalScalars(con)


def consolidated(con: duckdb.DuckDBPyConnection, window: Window,
                 meter_names: list[str] | None = None, *,
                 scalars: ScalarEngine | None = None) -> dict[str, Any]:
    """Every meter's totals, limits, overage, status and projection (SPEC §7 consolidated).

    The count, sum and distinct meters come from one scan (:mod:`usagectl.meters.scan`, or
    ``scalars``: the Spark engine); an area meter from its own engine.
    """
    c = window.contract
    meters = _pick(c, meter_names)
    today = window.last_day
    only_scalar = all(is_scalar(m) for m in meters)
    scan = _scalars(con, scalars).scan(meters, window, days=(today - timedelta(days=13), today),
                                       extras=True, counted=only_scalar, by_user=False)
    blocks = []
    values: dict[str, AreaMeterValue | ScalarMeterValue] = {}
    for m in meters:
        if is_scalar(m):
            values[m.name] = value = scan.values[m.name]
        else:
            values[m.name] = value = compute_meter(con, m, window, weeks=True)
        block = meter_block(m, value, window)
        block["late_events"] = (scan.late[m.name] if is_scalar(m)
                                else late_events(con, m, window, value))
        if m.aggregate == "sum":
            block["fields"] = scan.fields[m.name]
        if m.aggregate == "count":
            block["requests"] = scan.requests[m.name]
        blocks.append(block)
    users = events = 0
    if meters and only_scalar:
        users, events = scan.counted_users, scan.counted_events
    elif meters:
        # The events the meters counted (audit and active carry-overs, derived operations
        # included; deletes and operations without area not): the log lists the same ones.
        where, params = counted_where(con, meters, window, values)
        row = con.execute(f"SELECT count(DISTINCT e.user_id), count(*) FROM events e WHERE {where}",
                          params).fetchone()
        users, events = int(row[0]), int(row[1])
    return {**_header(window), "meters": blocks,
            "users": users, "events_counted": events}


def _pick(c: Contract, names: list[str] | None) -> tuple[Meter, ...]:
    if not names:
        return c.meters
    return tuple(c.meter(n) for n in names)


def users_view(con: duckdb.DuckDBPyConnection, window: Window,
               meter_names: list[str] | None = None, *,
               scalars: ScalarEngine | None = None) -> dict[str, Any]:
    """Per-user values of every meter, with events and first/last seen (SPEC §7 users)."""
    c = window.contract
    meters = _pick(c, meter_names)
    only_scalar = all(is_scalar(m) for m in meters)
    scan = _scalars(con, scalars).scan(meters, window, counted=only_scalar, by_user=True)
    values = {m.name: scan.values[m.name] if is_scalar(m) else compute_meter(con, m, window)
              for m in meters}
    rows: dict[str, dict[str, Any]] = {}
    if meters and only_scalar:
        stats = sorted(scan.user_stats.items())
    elif meters:
        where, params = counted_where(con, meters, window, values)
        stats = [(user, (org, n, first, last)) for user, org, n, first, last in con.execute(
            f"SELECT user_id, arg_max(org_id, ts) FILTER (WHERE org_id IS NOT NULL), count(*), "
            f"min(ts), max(ts) FROM events e WHERE {where} GROUP BY user_id ORDER BY user_id",
            params).fetchall()]
    else:
        stats = []
    for user, (org, n, first, last) in stats:
        rows[user] = {"user_id": user, "org_id": org, "meters": {}, "events": int(n),
                      "first_seen": first.astimezone(c.zone).isoformat(),
                      "last_seen": last.astimezone(c.zone).isoformat()}
    for m in meters:
        v = values[m.name]
        area = v.is_area
        for user, val in v.users.items():
            rows.setdefault(user, {"user_id": user, "org_id": None, "meters": {}, "events": 0,
                                   "first_seen": None, "last_seen": None})
            rows[user]["meters"][m.name] = num(val, area)
    for r in rows.values():
        for m in meters:
            r["meters"].setdefault(m.name, 0.0 if m.aggregate == "unique_area" else 0)
        r["meters"] = {m.name: r["meters"][m.name] for m in meters}
    return {**_header(window),
            "users": [rows[u] for u in sorted(rows)]}


def daily_view(con: duckdb.DuckDBPyConnection, window: Window, meter_names: list[str] | None = None,
               date_from: date | None = None, date_to: date | None = None, *,
               scalars: ScalarEngine | None = None) -> dict[str, Any]:
    """New consumption per local day, owner and Σ users, for each meter (SPEC §5.1, §7 daily).

    Days run from the period's first local day to the last one before min(end, as_of); with
    ``--from/--to`` (inclusive, inside the period) only that range is listed.
    """
    c = window.contract
    meters = _pick(c, meter_names)
    engine = _scalars(con, scalars)
    values = {m.name: engine.meter(m, window, daily=True) if is_scalar(m)
              else compute_meter(con, m, window, daily=True) for m in meters}
    first = window.period.start.astimezone(c.zone).date()
    last_instant = min(window.as_of, window.period.end - timedelta(microseconds=1))
    last = last_instant.astimezone(c.zone).date()
    lo, hi = date_from or first, date_to or last
    if lo > hi:
        raise ValidationError(f"--from {lo} is after --to {hi}")
    lo, hi = max(lo, first), min(hi, last)
    users_daily = {n: billed_series("user", {}, v.daily_users) for n, v in values.items()}
    days = []
    d = lo
    while d <= hi:
        entry: dict[str, Any] = {"date": d.isoformat(), "meters": {}}
        for m in meters:
            v = values[m.name]
            zero = 0.0 if v.is_area else Decimal(0)
            owner = v.daily_owner.get(d, zero)
            user = users_daily[m.name].get(d, zero)
            entry["meters"][m.name] = {"owner": num(owner, v.is_area), "user": num(user, v.is_area)}
        days.append(entry)
        d += timedelta(days=1)
    return {**_header(window), "days": days}


def overlap_meter(c: Contract, meter_name: str | None) -> Meter:
    """The unique_area meter ``overlap`` reports on: the one named, else the contract's first."""
    area_meters = [m for m in c.meters if m.aggregate == "unique_area"]
    if meter_name:
        meter = c.meter(meter_name)
        if meter.aggregate != "unique_area":
            raise ValidationError(f"meter {meter.name!r} is a {meter.aggregate} meter; overlap "
                                  "needs a unique_area meter")
        return meter
    if area_meters:
        return area_meters[0]
    raise ValidationError(f"contract {c.id!r} has no unique_area meter")


def overlap_view(con: duckdb.DuckDBPyConnection, window: Window, meter_name: str | None,
                 top_pairs: int = 10, regions: bool = False) -> tuple[dict[str, Any], list]:
    """Owner vs Σ users, per-user exclusive/shared area and the most overlapping pairs."""
    meter = overlap_meter(window.contract, meter_name)
    from usagectl.meters.unique_area import compute_area_meter

    v = compute_area_meter(con, meter, window, overlap=True, pairs=True, regions=regions)
    assert v.is_area
    users = [{"user_id": u, "area": num(a, True), "exclusive_area": num(v.exclusive.get(u, a), True),
              "shared_area": num(a - v.exclusive.get(u, a), True)}
             for u, a in sorted(v.users.items(), key=lambda kv: (-kv[1], kv[0]))]
    pairs = sorted(v.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_pairs]
    doc = {**_header(window), "meter": meter.name,
           "unit": meter.unit_label,
           "owner_total": num(v.owner, True), "user_total": num(v.user_total, True),
           "overlap": num(v.overlap, True), "users": users,
           "pairs": [{"a": a, "b": b, "area": num(x, True)} for (a, b), x in pairs]}
    return doc, v.regions


def parse_day(text: str | None, what: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def make_window(contract: Contract, period: Period, as_of: datetime,
                as_ingested_at: datetime | None = None, user: str | None = None) -> Window:
    return Window(contract, period, as_of, as_ingested_at, user)


def log_view(con: duckdb.DuckDBPyConnection, window: Window, meter_names: list[str] | None,
             limit: int | None, offset: int, *, date_from: datetime | None = None,
             date_to: datetime | None = None, batch_size: int | None = None,
             **filters: Any) -> dict[str, Any]:
    """Every counted event with its first-sighting marks (SPEC §5.2, §7 log).

    ``date_from``/``date_to`` (instants, ``[from, to)``) list only those events; the marks
    stay the period's first sightings. ``batch_size``: the events as an iterator fetching that
    many at a time (:func:`usagectl.reports.log.consumption_log`, which takes ``filters``:
    ``operation``, ``endpoint``, ``status``, ``order``).
    """
    from usagectl.reports.log import consumption_log

    if limit is not None and limit < 0 or offset < 0:
        raise ValidationError("--limit and --offset must not be negative")
    c = window.contract
    body = consumption_log(con, window, _pick(c, meter_names), limit, offset,
                           date_from=date_from, date_to=date_to, batch_size=batch_size,
                           **filters)
    return {**_header(window), **body}


def late_events(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window,
                value: AreaMeterValue | ScalarMeterValue | None = None) -> int:
    """Counted events ingested after their period had ended (SPEC §5.4)."""
    where, params = counted_where(con, (meter,), window,
                                  {meter.name: value} if value is not None else None)
    row = con.execute(f"SELECT count(*) FROM events e WHERE {where} AND e.ingested_at >= ?",
                      [*params, window.period.end]).fetchone()
    return int(row[0]) if row else 0


def series_view(con: duckdb.DuckDBPyConnection, window: Window, meter_names: list[str] | None,
                bucket: str) -> dict[str, Any]:
    """New consumption per hour/day/month bucket for each meter; buckets add up to the total."""
    from usagectl.reports import breakdown

    c = window.contract
    meters = _pick(c, meter_names)
    # Keyed by the UTC instant: the two 01:00 buckets of a fall-back day are equal as local
    # datetimes (Python ignores ``fold`` when comparing), not as instants.
    by_start: dict[datetime, tuple[datetime, dict[str, Any]]] = {}
    by_meter = breakdown.series_of_meters(con, meters, window, bucket)
    for m in meters:
        for start, value in by_meter[m.name]:
            entry = by_start.setdefault(start.astimezone(UTC), (start, {}))
            entry[1][m.name] = num(value, m.aggregate == "unique_area")
    rows = []
    for key in sorted(by_start):
        start, values = by_start[key]
        rows.append({"start": start.isoformat(),
                     "meters": {m.name: values.get(m.name, 0.0 if m.aggregate == "unique_area" else 0)
                                for m in meters}})
    return {**_header(window), "bucket": bucket,
            "series": rows}


def top_view(con: duckdb.DuckDBPyConnection, window: Window, meter_names: list[str] | None,
             group_by: str, limit: int | None) -> dict[str, Any]:
    """One meter's value per group, largest first."""
    c = window.contract
    meters = _pick(c, meter_names)
    if not meters:
        raise ValidationError(f"contract {c.id!r} has no meters")
    from usagectl.reports import breakdown

    meter = meters[0]
    rows = breakdown.top(con, meter, window, group_by, limit)
    return {**_header(window), "meter": meter.name,
            "group_by": group_by, "rows": [{**r, "value": num(r["value"], meter.aggregate == "unique_area")}
                                           for r in rows]}
