"""``unique_area`` meters: which geometries count, under each boundary policy (SPEC §5.1).

* ``boundary_policy = "processed"`` (default): every counted ``process`` event in the period
  contributes its geometry; deletes never reduce the period they happen in.
* ``boundary_policy = "active"``: a boundary (``user_id``, ``resource_id`` of a
  ``FIELDS_BOUNDARY`` event) counts in every period in which it existed for any time: each of its
  geometries counts when it was current at some instant of ``[period start, min(end, as_of)]``
  (from its process event until the boundary's next event). A delete ends it for later periods.
  Other products of the meter follow the processed rule.
* ``mode = "audit"``: the boundaries active as of ``as_of``, whatever the contract dates: a
  boundary's latest event at or before ``as_of`` decides; its latest processed geometry counts.
  Events without ``resource_id`` are boundaries of their own.
* ``derive_operations = true``: ``OPERATIONS_OPERATION`` events without a geometry count their
  machine file ∩ the user's boundaries active at the file's time (:mod:`.operations`).

The day of a geometry (for daily values) is the local date, in the contract's zone, from which it
counts in the period: its event's date, or the period's first day for an ``active`` boundary
carried over from an earlier period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import numpy as np
import pyarrow.compute as pc
import shapely

from usagectl.contracts import Meter
from usagectl.meters import area, area_cache, billed_series
from usagectl.meters.select import Window, meter_filter

if TYPE_CHECKING:
    from usagectl.meters.operations import DerivedOperations

BOUNDARY = "FIELDS_BOUNDARY"


@dataclass
class AreaMeterValue:
    """A unique_area meter's figures in the meter's unit."""

    is_area: ClassVar[bool] = True
    unit: str
    owner: float = 0.0
    users: dict[str, float] = field(default_factory=dict)
    exclusive: dict[str, float] = field(default_factory=dict)
    pairs: dict[tuple[str, str], float] = field(default_factory=dict)
    daily_owner: dict[date, float] = field(default_factory=dict)
    daily_users: dict[str, dict[date, float]] = field(default_factory=dict)
    regions: list[tuple[Any, tuple[str, ...]]] = field(default_factory=list)
    events: int = 0
    weeks: tuple[float, float] | None = None  # new area: last 7 local days, the 7 before
    recent: list[float] | None = None  # new area on each of the last 14 local days
    unlinked_operations: int | None = None  # derive_operations: operations that got no area
    derived_event_ids: list[str] = field(default_factory=list)  # operations that got an area
    carried: float | None = None  # stock meters: billed area there before the period started

    @property
    def user_total(self) -> float:
        return sum(self.users.values())

    @property
    def overlap(self) -> float:
        return max(self.user_total - self.owner, 0.0)


def state_timeline_sql(where: str) -> str:
    """Events selected by ``where``, each with ``next_ts``: when its resource's next event is.

    A resource is (``user_id``, ``resource_id``); an event without ``resource_id`` is one of its
    own. Its state at an instant ``t`` is decided by the event with ``ts <= t < next_ts``
    (``next_ts`` NULL: no later event); events of the same instant are ordered by ``event_id``.
    Audit mode reads it at ``as_of`` (SPEC §5.1), derived operations at a file's time.
    """
    return f"""
SELECT *, lead(ts) OVER (PARTITION BY user_id, coalesce(resource_id, 'event:' || event_id)
                         ORDER BY ts, event_id) AS next_ts
FROM events WHERE {where}"""


def _rows(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window) -> tuple[list, list, list]:
    """(WKB, user, local day) of every counted geometry, derived operations included."""
    wkb, users, days = _event_rows(con, meter, window)
    if meter.derive_operations:
        derived = _derive(con, meter, window)
        wkb, users, days = wkb + derived.wkb, users + derived.users, days + derived.days
    return wkb, users, days


def _derive(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window) -> DerivedOperations:
    from usagectl.meters.operations import derive_operations  # it imports this module

    return derive_operations(con, meter, window)


def _event_rows(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window
                ) -> tuple[list, list, list]:
    """(WKB, user, local day) of every counted geometry that its event carries."""
    sql, params = _event_sql(meter, window)
    return _fetch(con, f"SELECT geometry, user_id, day FROM ({sql})", params)


def _event_sql(meter: Meter, window: Window) -> tuple[str, list]:
    """SQL and parameters of the counted geometries events carry, one row per counted event.

    Columns: ``geometry``, ``user_id``, ``day`` (the local date it counts from), ``carried``
    (true when it was there before the period started: an audit-mode boundary processed before
    the period, an ``active`` boundary carried over from an earlier period) and ``event_id``.
    """
    tz = window.contract.timezone
    p = window.period
    if meter.mode == "audit":
        where, params = meter_filter(meter, window, in_period=False)
        # The total ignores the contract dates, so a boundary may date from before the period
        # (it counts from the period's first day, like a carried-over active boundary) or, as
        # of after the period, from after its end (it counts on its last day): so the daily
        # values add up to the total.
        sql = f"""
WITH timeline AS ({state_timeline_sql(where)})
SELECT geometry, user_id, CAST(timezone(?, least(greatest(ts, ?), ?)) AS DATE) AS day,
    ts < ? AS carried, event_id
FROM timeline WHERE next_ts IS NULL AND action = 'process' AND geometry IS NOT NULL"""
        return sql, [*params, tz, p.start, p.end - timedelta(microseconds=1), p.start]
    in_where, in_params = meter_filter(meter, window)
    if meter.boundary_policy != "active":
        sql = f"""
SELECT geometry, user_id, CAST(timezone(?, ts) AS DATE) AS day, false AS carried, event_id
FROM events
WHERE {in_where} AND action = 'process' AND geometry IS NOT NULL"""
        return sql, [tz, *in_params]
    all_where, all_params = meter_filter(meter, window, in_period=False)
    sql = f"""
WITH timeline AS (
    SELECT geometry, user_id, action, ts, event_id,
        lead(ts) OVER (PARTITION BY user_id, resource_id ORDER BY ts, event_id) AS next_ts
    FROM events
    WHERE {all_where} AND product = ? AND resource_id IS NOT NULL
)
SELECT geometry, user_id, CAST(timezone(?, greatest(ts, ?)) AS DATE) AS day, ts < ? AS carried,
    event_id
FROM timeline
WHERE action = 'process' AND geometry IS NOT NULL AND ts < ? AND ts <= ?
  AND (next_ts IS NULL OR next_ts > ?)
UNION ALL
SELECT geometry, user_id, CAST(timezone(?, ts) AS DATE), false, event_id FROM events
WHERE {in_where} AND action = 'process' AND geometry IS NOT NULL
  AND NOT (product = ? AND resource_id IS NOT NULL)"""
    return sql, [*all_params, BOUNDARY, tz, p.start, p.start, p.end, window.as_of, p.start, tz,
                 *in_params, BOUNDARY]


def _event_arrays(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(geometries, users, day ordinals, row hashes, carried flags) of ``_event_rows``, as arrays.

    Streamed in Arrow batches: each batch's WKB is parsed and dropped, so a million rows never
    exist as Python tuples or as WKB and geometry at once. The row hash that fingerprints tiles
    (usagectl.meters.area_cache) is DuckDB's ``hash`` of (geometry, user, day), computed with the
    rows; another DuckDB version may hash differently, which costs one recomputation, never a
    number.
    """
    sql, params = _event_sql(meter, window)
    query = f"""
SELECT geometry, user_id, (day - DATE '0001-01-01') + 1 AS day, hash(geometry, user_id, day) AS h,
    carried
FROM ({sql}) AS counted"""
    geoms, users, days, hashes, carried = [], [], [], [], []
    # Its own cursor: a streamed result must not stay open on the caller's connection.
    with con.cursor() as cur:
        for batch in cur.sql(query, params=params).to_arrow_reader(BATCH_ROWS):
            geoms.append(shapely.from_wkb(batch.column(0).to_numpy(zero_copy_only=False)))
            who = pc.dictionary_encode(batch.column(1))
            users.append(who.dictionary.to_numpy(zero_copy_only=False)[who.indices.to_numpy()])
            days.append(batch.column(2).to_numpy().astype(np.int64))
            hashes.append(batch.column(3).to_numpy().astype(np.uint64))
            carried.append(batch.column(4).to_numpy(zero_copy_only=False).astype(bool))
    if not geoms:
        return (np.empty(0, dtype=object), np.empty(0, dtype=object),
                np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64),
                np.empty(0, dtype=bool))
    return (np.concatenate(geoms), np.concatenate(users), np.concatenate(days),
            np.concatenate(hashes), np.concatenate(carried))


#: Rows per Arrow batch when streaming counted geometries.
BATCH_ROWS = 100_000


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> tuple[list, list, list]:
    rows = con.execute(sql, params).fetchall()
    if not rows:
        return [], [], []
    wkb, users, days = zip(*rows)
    return list(wkb), list(users), list(days)


def compute_area_meter(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window, *,
                       overlap: bool = False, pairs: bool = False, daily: bool | str = False,
                       regions: bool = False, weeks: bool = False) -> AreaMeterValue:
    """Owner, user and (on request) overlap, pair, region and daily figures of one meter.

    ``weeks`` adds what the projection needs: the billed level's new area on each of the last 14
    local days of the trend window and, for a stock meter, the billed area of what was there
    before the period started (:attr:`AreaMeterValue.carried`).
    """
    geoms, users, ordinals, hashes, carried = _event_arrays(con, meter, window)
    unit = meter.unit_label
    value = AreaMeterValue(unit=unit, events=len(geoms))
    first = window.period.start.astimezone(window.contract.zone).date().toordinal()
    if meter.derive_operations:  # as _rows does, keeping the operations' counts
        derived = _derive(con, meter, window)
        value.events += derived.counted
        value.unlinked_operations = derived.unlinked
        value.derived_event_ids = derived.event_ids
        if derived.wkb:
            more = np.asarray([d.toordinal() for d in derived.days], dtype=np.int64)
            # Audit mode counts operations of earlier periods too; they were there before.
            before = (more < first) if meter.mode == "audit" else np.zeros(len(more), dtype=bool)
            if meter.mode == "audit":  # dated inside the period, as _event_sql dates boundaries
                more = np.clip(more, first, window.last_day.toordinal())
            geoms = np.concatenate([geoms, shapely.from_wkb(np.asarray(derived.wkb, dtype=object))])
            users = np.concatenate([users, np.asarray(derived.users, dtype=object)])
            hashes = np.concatenate([hashes, area_cache.row_hashes(derived.wkb, derived.users,
                                                                   more)])
            ordinals = np.concatenate([ordinals, more])
            carried = np.concatenate([carried, before])
    if meter.is_stock:
        value.carried = 0.0
    if len(geoms) == 0:
        return value
    data = area.AreaInput(geoms, users, ordinals)
    scope = area_scope(meter, window)
    if regions:  # the overlap regions are geometry, not figures: never stored
        result = area.compute(data, overlap=True, pairs=pairs, daily=daily, regions=True)
    else:
        # Through the per-tile store: only tiles whose rows changed since the last report are
        # computed.
        flags = ((area_cache.DAILY if daily else 0)
                 | (area_cache.OVERLAP if overlap or pairs else 0))
        result = area_cache.compute(con, data, hashes, scope, flags)
        if not (overlap or pairs):
            result.exclusive, result.pairs = {}, {}
    per = float(meter.unit_m2)
    if weeks:
        today = window.last_day.toordinal()  # as_of's local day, or a closed period's last
        level = "owner" if meter.billed_on == "owner" else "users"
        series = result
        if carried.any():
            # A stock's standing part: the billed area of what was there before the period,
            # measured on its own (stored under its own scope).
            stock = area_cache.compute(con, area.AreaInput(geoms[carried], users[carried],
                                                           ordinals[carried]),
                                       hashes[carried], scope + "|carried", 0)
            value.carried = (stock.owner if level == "owner"
                             else sum(a for _, a in sorted(stock.users.items()))) / per
            # For the trend, what was there before is dated before the period's first day (an
            # active boundary carried over counts from that day in the daily view), so the
            # first day's new area is only what came on it.
            trend_days = np.where(carried, np.minimum(ordinals, first - 1), ordinals)
            series = area.recent_news(area.AreaInput(geoms, users, trend_days), today - 13, level)
        elif not (daily is True or daily == level):
            # The trend needs the billed level's last 14 days only: the recent pieces minus what
            # covered them before, at a cost proportional to the recent rows.
            series = area.recent_news(data, today - 13, level)
        steps = billed_series(meter.billed_on, series.daily_owner, series.daily_users)
        # Only what is new in the period is consumption: days before its first count nothing.
        value.recent = [steps.get(d, 0.0) / per if d >= first else 0.0
                        for d in range(today - 13, today + 1)]
        value.weeks = (sum(value.recent[7:]), sum(value.recent[:7]))
    if not daily:
        result.daily_owner, result.daily_users = {}, {}
    value.owner = result.owner / per
    value.users = {u: a / per for u, a in sorted(result.users.items())}
    value.exclusive = {u: a / per for u, a in sorted(result.exclusive.items())}
    value.pairs = {k: a / per for k, a in result.pairs.items()}
    value.daily_owner = {date.fromordinal(d): a / per for d, a in sorted(result.daily_owner.items())}
    value.daily_users = {u: {date.fromordinal(d): a / per for d, a in sorted(ds.items())}
                         for u, ds in sorted(result.daily_users.items())}
    value.regions = result.regions
    return value


def area_scope(meter: Meter, window: Window) -> str:
    """The key a meter's stored tiles are kept under: contract, meter, period, for a range
    (``--from/--to``) the range's clipped bounds and, for a report about one user (``--user``),
    that user, so that each keeps its own."""
    scope = f"{window.contract.id}|{meter.name}|{window.period.start.isoformat()}"
    if window.range is not None:  # a range's tiles are its own: never a period's figures
        scope += f"|range={window.period.start.isoformat()}/{window.period.end.isoformat()}"
    return scope if window.user is None else f"{scope}|user={window.user}"
