"""Activity by product or operation: ``report --view series --group-by product|operation``.

The v2 dashboards' series (files uploaded and chat messages per day, tokens per product): one
series per value of the group column, over the same buckets as the ungrouped series
(:mod:`usagectl.reports.breakdown`), such that for every bucket and meter the groups add up to
the ungrouped value:

* a ``count`` or ``sum`` meter's bucket value is split by the group of each event;
* a ``distinct`` value counts once, in the bucket where it is first seen (as ungrouped) and in
  the group of its first event in that bucket (time, then event id; a missing group value is a
  group too) — not once per group, which would count a user seen in chat and in upload twice;
* ``unique_area`` meters are not split (their new area per group would not add up to the
  owner's new area, whose overlaps are counted once): pick the other meters with ``--meter``.

Rows list each (bucket, group) that some meter has events in, in bucket order then group order
(the missing value, ``null``, last).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from usagectl.errors import ValidationError
from usagectl.meters.select import Window, exact, fetch, meter_filter

#: The ``--group-by`` values of the series view (identifiers: only from this list).
SERIES_GROUPS = ("product", "operation")


def grouped_series(con: duckdb.DuckDBPyConnection, window: Window,
                   meter_names: list[str] | None, bucket: str, group_by: str) -> dict[str, Any]:
    """The series view's document with one row per (bucket, group value)."""
    from usagectl.reports.breakdown import BUCKETS, _bucket_sql, _distinct_col, _localize, _value_expr
    from usagectl.reports.views import _header, _pick

    if group_by not in SERIES_GROUPS:
        raise ValueError(f"cannot group a series by {group_by!r}")
    if bucket not in BUCKETS:
        raise ValidationError(f"--bucket {bucket!r}: choose one of {', '.join(BUCKETS)}")
    meters = _pick(window.contract, meter_names)
    area = [m.name for m in meters if m.aggregate == "unique_area"]
    if area:
        raise ValidationError(
            f"--group-by {group_by} splits count, sum and distinct meters; the area meters "
            f"({', '.join(area)}) have no per-{group_by} new area that adds up to theirs: pick "
            "the others with --meter", {"meters": area})
    tz = window.contract.timezone
    start, n_tz = _bucket_sql(bucket)
    cells: dict[tuple[datetime, Any], dict[str, Any]] = {}
    local: dict[datetime, datetime] = {}
    for m in meters:
        where, params = meter_filter(m, window)
        if m.aggregate == "distinct":
            sql = (f"SELECT b, g, count(*) FROM ("
                   f"SELECT v, min(b) AS b, arg_min_null(g, (b, ts, event_id)) AS g FROM ("
                   f"SELECT {start} AS b, ts, event_id, {group_by} AS g, "
                   f"CAST({_distinct_col(m)} AS VARCHAR) AS v FROM events WHERE {where}) "
                   "WHERE v IS NOT NULL GROUP BY v) GROUP BY b, g")
        else:
            sql = (f"SELECT {start} AS b, {group_by} AS g, {_value_expr(m)} FROM events "
                   f"WHERE {where} GROUP BY b, g")
        for b, g, v in fetch(con, m, sql, [*[tz] * n_tz, *params]):
            at = _localize(b, window)
            key = at.astimezone(UTC)
            local[key] = at
            cells.setdefault((key, g), {})[m.name] = exact(v)
    rows = []
    for key, g in sorted(cells, key=lambda kg: (kg[0], kg[1] is None, kg[1] or "")):
        values = cells[(key, g)]
        rows.append({"start": local[key].isoformat(), "group": g,
                     "meters": {m.name: values.get(m.name, 0) for m in meters}})
    return {**_header(window), "bucket": bucket, "group_by": group_by, "series": rows}
