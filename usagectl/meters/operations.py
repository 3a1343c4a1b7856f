"""Operation areas derived from machine files and boundaries (SPEC §5.1 ``derive_operations``).

An ``OPERATIONS_OPERATION`` event without a geometry, on a ``unique_area`` meter with
``derive_operations = true``, counts the area of its machine file intersected with the same
user's boundaries active at the file's time, as if the event had carried that geometry:

* **The file.** The operation names it by its ``file_id`` attribute (a source column kept in the
  event's ``attributes``) when it has one, else by its ``resource_id``. The file is an
  ``OPERATIONS_FILE`` ``process`` event with a geometry, of the same owner and user, with that
  ``resource_id``. Processed several times: the latest at or before the operation's ``ts``,
  else the earliest after it.
* **The file's time** is that file event's ``ts``. A boundary (``user_id``, ``resource_id`` of a
  ``FIELDS_BOUNDARY`` event; an event without ``resource_id`` is a boundary of its own) is active
  then when its latest event at or before that time is a ``process``; that event's geometry
  counts. The same rule as audit mode, at the file's time instead of ``as_of``
  (:func:`usagectl.meters.unique_area.state_timeline_sql` is the one definition of both).
* File and boundary events are inputs, not counted events: the meter's product, endpoint,
  operation and ``require`` filters do not apply to them; owner, success (``include_failed``),
  ``ts <= as_of`` and ``--as-ingested-at`` do.
* Which operation events count follows the meter's rule for non-boundary products: those in the
  period (``processed`` and ``active``), or those whose resource's latest event as of ``as_of``
  they are (``mode = "audit"``).

Operations whose file is not found, or whose file lies outside the active boundaries, count no
area; :attr:`DerivedOperations.unlinked` says how many there were.

Work is split so that it stays proportional to the data: DuckDB links operations to files and
files to active boundaries (window functions and joins); Python intersects each linked file once
(however many operations it has) with the boundaries that touch it, vectorised with shapely.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from itertools import chain
from typing import Any

import duckdb
import numpy as np
import shapely

from usagectl.contracts import Meter
from usagectl.meters.select import Window, meter_filter
from usagectl.meters.unique_area import BOUNDARY, state_timeline_sql

OPERATION = "OPERATIONS_OPERATION"
FILE = "OPERATIONS_FILE"
#: The attribute by which an operation names its machine file, when it has one (JSON path).
FILE_ATTRIBUTE = "$.file_id"


@dataclass
class DerivedOperations:
    """The counted geometries of operations without a geometry of their own.

    One row per (linked file, local day of its operations): the same file counted twice on one day
    adds nothing to any union, so it is sent to the area engine once.
    """

    wkb: list[bytes] = field(default_factory=list)
    users: list[Any] = field(default_factory=list)
    days: list[date] = field(default_factory=list)
    counted: int = 0  # operations that got an area
    event_ids: list[str] = field(default_factory=list)  # those operations' event ids, sorted
    unlinked: int = 0  # operations without a file, or whose file is outside the boundaries


def _input_filter(meter: Meter, window: Window) -> tuple[str, list[Any]]:
    """Conditions for file and boundary events: the meter's window, not its selection filters."""
    inputs = replace(meter, products=(), endpoints=(), operations=(), require=())
    return meter_filter(inputs, window, in_period=False)


# The operations to derive: the meter's non-boundary rule, restricted to geometry-less
# OPERATIONS_OPERATION process events. `file_key` is how each one names its machine file.
_OPERATION_COLUMNS = """event_id, user_id, ts, CAST(timezone(?, ts) AS DATE) AS day,
        coalesce(NULLIF(trim(json_extract_string(attributes, ?)), ''), resource_id) AS file_key"""


def _operations_sql(meter: Meter, window: Window) -> tuple[str, list[Any]]:
    tz = window.contract.timezone
    if meter.mode == "audit":
        # As in audit mode for every other event: only the latest event of its resource counts.
        where, params = meter_filter(meter, window, in_period=False)
        sql = f"""
SELECT {_OPERATION_COLUMNS}
FROM ({state_timeline_sql(where)})
WHERE next_ts IS NULL AND product = ? AND action = 'process' AND geometry IS NULL"""
        return sql, [tz, FILE_ATTRIBUTE, *params, OPERATION]
    where, params = meter_filter(meter, window)
    sql = f"""
SELECT {_OPERATION_COLUMNS}
FROM events
WHERE {where} AND product = ? AND action = 'process' AND geometry IS NULL"""
    return sql, [tz, FILE_ATTRIBUTE, *params, OPERATION]


def _linked_files_sql(meter: Meter, window: Window) -> tuple[str, list[Any]]:
    """One row per linked file event (``NULL`` for operations without a file).

    Columns: file event_id, user_id, file WKB, the distinct local days of its operations, how
    many operations it serves, and their event ids.
    """
    ops_sql, ops_params = _operations_sql(meter, window)
    in_where, in_params = _input_filter(meter, window)
    sql = f"""
WITH ops AS ({ops_sql}
),
files AS (
    SELECT event_id, user_id, resource_id, ts FROM events
    WHERE {in_where} AND product = ? AND action = 'process' AND geometry IS NOT NULL
      AND resource_id IS NOT NULL
),
-- Per operation, its file's versions: the latest at or before the operation first, else the
-- earliest after it; (ts, event_id) orders events of the same instant, as everywhere else.
ranked AS (
    SELECT o.event_id AS op_id, f.event_id AS file_event,
        row_number() OVER (
            PARTITION BY o.event_id
            ORDER BY f.ts > o.ts,
                     CASE WHEN f.ts <= o.ts THEN f.ts END DESC,
                     CASE WHEN f.ts <= o.ts THEN f.event_id END DESC,
                     f.ts, f.event_id) AS rn
    FROM ops o JOIN files f ON f.user_id = o.user_id AND f.resource_id = o.file_key
),
linked AS (
    SELECT o.user_id, o.day, r.file_event, o.event_id AS op_id
    FROM ops o LEFT JOIN ranked r ON r.op_id = o.event_id AND r.rn = 1
)
SELECT l.file_event, any_value(l.user_id), any_value(e.geometry),
    list(DISTINCT l.day ORDER BY l.day), count(*), list(l.op_id)
FROM linked l LEFT JOIN events e ON e.owner_id = ? AND e.event_id = l.file_event
GROUP BY l.file_event"""
    return sql, [*ops_params, *in_params, FILE, window.contract.owner]


def _active_boundaries_sql(meter: Meter, window: Window, file_ids: list[str]
                           ) -> tuple[str, list[Any]]:
    """Each boundary geometry active at the time of some of the given file events, with the
    positions of those files in ``file_ids``.

    A boundary's process event is active on ``[ts, next_ts)`` of its state timeline.
    """
    in_where, in_params = _input_filter(meter, window)
    sql = f"""
WITH ids AS (SELECT unnest(?) AS event_id, generate_subscripts(?, 1) - 1 AS i),
used AS (
    SELECT ids.i, e.user_id, e.ts
    FROM ids JOIN events e ON e.owner_id = ? AND e.event_id = ids.event_id
),
timeline AS ({state_timeline_sql(f"{in_where} AND product = ?")}
)
SELECT any_value(b.geometry), list(u.i)
FROM used u JOIN timeline b
  ON b.user_id = u.user_id AND b.ts <= u.ts AND coalesce(b.next_ts, 'infinity') > u.ts
WHERE b.action = 'process' AND b.geometry IS NOT NULL
GROUP BY b.event_id"""
    return sql, [file_ids, file_ids, window.contract.owner, *in_params, BOUNDARY]


def _polygonal(geoms: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """Per group ``0..n-1``, the union of the polygonal parts of its geometries (None if none).

    An intersection can add lines and points where shapes only touch; they have no area.
    """
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == 3  # Polygon (get_parts splits MultiPolygons)
    parts, group = parts[keep], index[part_of[keep]]
    out = np.full(n, None, dtype=object)
    if not len(parts):
        return out
    order = np.argsort(group, kind="stable")
    parts, group = parts[order], group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(group)]):  # one union per file, not per event
        out[group[s]] = parts[s] if e - s == 1 else shapely.union_all(parts[s:e])
    return out


def derive_operations(con: duckdb.DuckDBPyConnection, meter: Meter, window: Window
                      ) -> DerivedOperations:
    """The derived (WKB, user, local day) rows of a meter's geometry-less operations (SPEC §5.1)."""
    result = DerivedOperations()
    sql, params = _linked_files_sql(meter, window)
    rows = con.execute(sql, params).fetchall()
    files = [r for r in rows if r[0] is not None]
    result.unlinked = sum(int(r[4]) for r in rows if r[0] is None)
    if not files:
        return result
    file_ids = [r[0] for r in files]
    file_geoms = shapely.from_wkb(np.asarray([bytes(r[2]) for r in files], dtype=object))

    sql, params = _active_boundaries_sql(meter, window, file_ids)
    bounds = con.execute(sql, params).fetchall()
    derived = np.full(len(files), None, dtype=object)
    if bounds:
        b_geoms = shapely.from_wkb(np.asarray([bytes(r[0]) for r in bounds], dtype=object))
        # (file, boundary) pairs where the boundary was active at the file's time.
        served = np.fromiter((len(r[1]) for r in bounds), np.int64, len(bounds))
        pair_file = np.fromiter(chain.from_iterable(r[1] for r in bounds), np.int64,
                                int(served.sum()))
        pair_b = np.repeat(np.arange(len(bounds)), served)
        touching = shapely.intersects(file_geoms[pair_file], b_geoms[pair_b])
        pair_file, pair_b = pair_file[touching], pair_b[touching]
        # file ∩ ⋃ boundaries = ⋃ (file ∩ boundary): intersect pairwise, then union per file.
        pieces = shapely.intersection(file_geoms[pair_file], b_geoms[pair_b])
        derived = _polygonal(pieces, pair_file, len(files))
    for (_, user, _, days, n_ops, op_ids), geom in zip(files, derived):
        if geom is None or shapely.is_empty(geom):
            result.unlinked += int(n_ops)
            continue
        result.counted += int(n_ops)
        result.event_ids.extend(op_ids)
        wkb = shapely.to_wkb(geom)
        for day in days:
            result.wkb.append(wkb)
            result.users.append(user)
            result.days.append(day)
    result.event_ids.sort()
    return result
