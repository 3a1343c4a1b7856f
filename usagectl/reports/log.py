"""The consumption log: every counted event and what it consumed first (SPEC §5.2, §7 log).

An event is in the log when at least one meter of the contract counts it
(:mod:`usagectl.reports.counted`: for an area meter, when the meter counts its geometry; never a
delete or an operation that got no area). Marks are owner-level
first sightings, in event order (``ts``, then ``event_id``): ``new_user`` when the event is the
first counted one of its user, ``new_dataset`` likewise for its dataset, ``new_indicators`` the
indicator ids no earlier counted event requested. When the contract has a ``distinct`` meter on
that field, "counted" means counted by that meter, so summing the marks reproduces that meter's
owner value exactly.

With ``batch_size`` the events are not a list but an iterator that fetches them from DuckDB
``batch_size`` rows at a time (docs/cli.md "Streaming large outputs"), so the log of 10M events
is written with flat memory. The stream reads the connection's pending result: nothing else may
run on the connection until it is consumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import duckdb

from usagectl.contracts import Meter
from usagectl.meters.select import Window
from usagectl.reports.counted import counted_where
from usagectl.store.streaming import Columns, run_streamed

LOG_FIELDS = ("event_id", "user_id", "org_id", "product", "action", "resource_id", "status",
              "error_code", "endpoint", "method", "operation", "dataset_id", "indicator_ids",
              "input_tokens", "output_tokens", "thinking_tokens", "credits", "response_time_ms",
              "session_id", "request_id")
MARKS = (("user_id", "new_user"), ("dataset_id", "new_dataset"), ("indicator_ids", "new_indicators"))
#: The keys of one event of the log, in order (the JSON keys and the CSV columns).
LOG_KEYS = ("ts", *LOG_FIELDS, "new_user", "new_dataset", "new_indicators")
#: ``--status``: the events listed (``ok``: succeeded, ``failed``: not), on top of the meters'.
STATUSES = ("ok", "failed")
#: ``--order``: oldest first (``asc``, the default) or newest first; ties by event id the same way.
ORDERS = ("asc", "desc")


def _scope(meters: tuple[Meter, ...], field: str) -> tuple[Meter, ...]:
    """The meters whose events define first sightings of ``field``."""
    distinct = tuple(m for m in meters if m.aggregate == "distinct" and m.field == field)
    return distinct or meters


def consumption_log(con: duckdb.DuckDBPyConnection, window: Window, meters: tuple[Meter, ...],
                    limit: int | None = None, offset: int = 0,
                    values: Mapping[str, Any] | None = None, *, date_from: datetime | None = None,
                    date_to: datetime | None = None, batch_size: int | None = None,
                    operation: str | None = None,
                    endpoint: str | None = None, status: str | None = None,
                    order: str = "asc", columnar: bool = False) -> dict[str, Any]:
    """The log view's document: events with marks, paged with ``limit``/``offset``.

    ``operation``, ``endpoint`` (exact values) and ``status`` (``ok``/``failed``) narrow the
    listed events like ``date_from``/``date_to`` (bound parameters; the marks stay the period's;
    ``--user`` is the window's, :attr:`Window.user`); ``order`` ``desc`` lists the newest first.

    ``values`` (meter name → computed value) spares deriving operations again.
    ``date_from``/``date_to`` (instants, the range ``[from, to)``) narrow the listed events
    only; the first-sighting marks stay the period's. ``batch_size`` makes ``events`` an iterator that
    fetches that many rows at a time (the keys and values are the same as the list's);
    ``columnar`` reads them as Arrow record batches (:class:`usagectl.store.streaming.Batches`).
    """
    values = dict(values or {})
    for m in meters:  # derive the operations once, for the log and each mark's scope
        if m.derive_operations and m.name not in values:
            from usagectl.meters.operations import derive_operations

            values[m.name] = SimpleNamespace(
                derived_event_ids=derive_operations(con, m, window).event_ids)
    where, params = counted_where(con, meters, window, values, alias="e")
    tz = window.contract.zone
    if date_from is not None:
        where, params = f"({where}) AND e.ts >= ?", [*params, date_from]
    if date_to is not None:
        where, params = f"({where}) AND e.ts < ?", [*params, date_to]
    if (status is not None and status not in STATUSES) or order not in ORDERS:
        raise ValueError(f"status {status!r}, order {order!r}")
    for column, value in (("operation", operation), ("endpoint", endpoint)):
        if value is not None:  # column from this fixed list, value bound
            where, params = f"({where}) AND e.{column} = ?", [*params, value]
    if status is not None:
        where = f"({where}) AND {'' if status == 'ok' else 'NOT '}e.succeeded"
    direction = "DESC" if order == "desc" else "ASC"
    mark_sql, mark_params = [], []
    for field, mark in MARKS:
        scope_where, scope_params = counted_where(con, _scope(meters, field), window, values,
                                                  alias="s")
        mark_params += scope_params
        if field == "indicator_ids":
            mark_sql.append(f"""
{mark} AS (
    SELECT event_id, list_sort(list(ind)) AS ids FROM (
        SELECT ind, arg_min(event_id, (ts, event_id)) AS event_id
        FROM (SELECT s.event_id, s.ts, unnest(s.indicator_ids) AS ind FROM events s
              WHERE {scope_where})
        GROUP BY ind)
    GROUP BY event_id)""")
        else:
            mark_sql.append(f"""
{mark} AS (
    SELECT arg_min(s.event_id, (s.ts, s.event_id)) AS event_id FROM events s
    WHERE {scope_where} AND s.{field} IS NOT NULL
    GROUP BY s.{field})""")
    cols = ", ".join(f"e.{f}" for f in LOG_FIELDS)
    sql = f"""
WITH counted AS (SELECT * FROM events e WHERE {where}),
{",".join(mark_sql)}
SELECT e.ts, {cols},
    nu.event_id IS NOT NULL AS new_user,
    nd.event_id IS NOT NULL AS new_dataset,
    coalesce(ni.ids, []) AS new_indicators
FROM counted e
LEFT JOIN new_user nu ON nu.event_id = e.event_id
LEFT JOIN new_dataset nd ON nd.event_id = e.event_id
LEFT JOIN new_indicators ni ON ni.event_id = e.event_id
ORDER BY e.ts {direction}, e.event_id {direction}
LIMIT ? OFFSET ?"""
    total_row = con.execute(f"SELECT count(*) FROM events e WHERE {where}", params).fetchone()
    total = int(total_row[0]) if total_row else 0
    page = limit if limit is not None else total
    shown = max(0, min(page, total - offset))
    events: Iterator[dict[str, Any]] | list[dict[str, Any]]
    if batch_size is None:
        rows = con.execute(sql, [*params, *mark_params, page, offset]).fetchall()
        events = [_event(r, tz) for r in rows]
    else:
        events = run_streamed(con, sql, [*params, *mark_params, page, offset],
                              lambda r: _event(r, tz), batch_size,
                              columns=Columns(LOG_KEYS, tz) if columnar else None)
    return {"events": events, "total_count": total, "limit": limit, "offset": offset,
            "has_more": offset + shown < total}


def _event(row: tuple[Any, ...], tz: Any) -> dict[str, Any]:
    d = dict(zip(LOG_KEYS, row))
    d["ts"] = d["ts"].astimezone(tz).isoformat()
    return d
