"""The requests view (``report --view requests``): the v2 usage API's summary and top endpoints.

Every request of the contract's owner in the window (period, ``--as-of``, ``--as-ingested-at``,
``--user``, ``--from/--to``) counts — failed ones too, whatever a meter's ``include_failed``
says: failures are what this view is about. ``--meter M`` (repeatable) narrows the requests to
those M's filters select (products, endpoints, operations, required fields), again failures
included. Figures, for the whole window (``summary``) and per ``--group-by`` value (``rows``,
most requests first, ties by key, the missing key last):

* ``total``, ``successful``, ``failed`` and ``failed_by_error_code`` (most first, ties by code;
  a failure without a code is ``(none)``);
* ``success_rate`` = successful / total, rounded half-even to :data:`RATE_PLACES` places
  (``null`` when there is no request);
* ``avg_response_time_ms``: the exact DECIMAL sum of the response times divided by
  ``response_times``, the number of requests that have one (a request without a response time
  is left out of the average, not counted as 0), rounded half-even to :data:`MS_PLACES` places;
  ``null`` when no request has one;
* ``credits``: the exact sum (a request without credits adds nothing).

Σ rows = summary for every count and the credits, whatever the grouping (tested).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import duckdb

from usagectl.meters.select import Window, meter_conditions, window_conditions
from usagectl.renderers.numbers import WIDE

#: The ``--group-by`` values of the requests view (identifiers: only from this list).
REQUEST_GROUPS = ("endpoint", "operation", "product", "user_id", "org_id", "error_code")
#: Decimal places of ``success_rate`` (a fraction: 0.5714 is 57.14 %).
RATE_PLACES = 4
#: Decimal places of ``avg_response_time_ms`` (a microsecond).
MS_PLACES = 3
#: The code a failure without an ``error_code`` is listed under.
NO_CODE = "(none)"
#: The keys of the summary and of each row (after ``key``), in order.
FIGURES = ("total", "successful", "failed", "success_rate", "failed_by_error_code",
           "avg_response_time_ms", "response_times", "credits")


def requests_where(window: Window, meter_names: list[str] | None = None
                   ) -> tuple[str, list[Any]]:
    """SQL conditions on ``events`` for the requests the view covers, and their parameters
    (``--from/--to`` arrive as the window's period clipped to the range:
    :func:`usagectl.reports.ranges.range_window`)."""
    conds, params = window_conditions(window)
    if meter_names:
        from dataclasses import replace

        parts = []
        for name in meter_names:
            own, more = meter_conditions(replace(window.contract.meter(name), include_failed=True))
            parts.append("(" + (" AND ".join(own) or "true") + ")")
            params += more
        conds.append("(" + " OR ".join(parts) + ")")
    return " AND ".join(conds), params


def _quotient(num: Decimal | int, den: int, places: int) -> Decimal | None:
    if not den:
        return None
    return WIDE.divide(Decimal(num), Decimal(den)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=WIDE)


def _figures(total: int, ok: int, timed: int, ms: Decimal | None, credits: Decimal | None,
             codes: dict[str, int]) -> dict[str, Any]:
    return {"total": total, "successful": ok, "failed": total - ok,
            "success_rate": _quotient(ok, total, RATE_PLACES),
            "failed_by_error_code": codes,
            "avg_response_time_ms": _quotient(ms or 0, timed, MS_PLACES),
            "response_times": timed, "credits": Decimal(credits or 0)}


def _grouped(con: duckdb.DuckDBPyConnection, where: str, params: list[Any], key: str
             ) -> list[tuple[Any, dict[str, Any]]]:
    """(key, figures) per value of the SQL expression ``key`` (a column from the allowlist, or
    NULL for one group of everything), most requests first, ties by key, NULL last."""
    codes: dict[Any, dict[str, int]] = {}
    for k, code, n in con.execute(
            f"SELECT {key} AS k, coalesce(error_code, ?) AS code, count(*) AS n FROM events "
            f"WHERE {where} AND NOT succeeded GROUP BY k, code ORDER BY n DESC, code",
            [NO_CODE, *params]).fetchall():
        codes.setdefault(k, {})[code] = int(n)
    rows = con.execute(
        f"SELECT {key} AS k, count(*) AS n, count(*) FILTER (WHERE succeeded), "
        "count(response_time_ms), sum(CAST(response_time_ms AS DECIMAL(38, 9))), sum(credits) "
        f"FROM events WHERE {where} GROUP BY k ORDER BY n DESC, k ASC NULLS LAST",
        params).fetchall()
    return [(k, _figures(int(n), int(ok), int(timed), ms, cr, codes.get(k, {})))
            for k, n, ok, timed, ms, cr in rows]


def requests_view(con: duckdb.DuckDBPyConnection, window: Window,
                  meter_names: list[str] | None = None, group_by: str | None = None
                  ) -> dict[str, Any]:
    """The view's document (before paging): header, ``meters``, ``group_by``, ``summary`` and
    ``rows`` (empty without ``group_by``)."""
    from usagectl.reports.views import _header

    if group_by is not None and group_by not in REQUEST_GROUPS:
        raise ValueError(f"cannot group requests by {group_by!r}")
    names = [window.contract.meter(n).name for n in meter_names or []]
    where, params = requests_where(window, names)
    whole = _grouped(con, where, params, "NULL")
    summary = whole[0][1] if whole else _figures(0, 0, 0, None, None, {})
    rows = ([{"key": k, **f} for k, f in _grouped(con, where, params, group_by)]
            if group_by is not None else [])
    return {**_header(window), "meters": names, "group_by": group_by, "summary": summary,
            "rows": rows}
