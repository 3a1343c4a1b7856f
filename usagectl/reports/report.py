"""One entry point for every report view (SPEC §6 ``report --view``, §7).

``build_view`` picks the view function and passes it only the options it uses, so the CLI,
``export`` and the HTML report ask for a view the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from usagectl.meters.select import Window
from usagectl.reports import VIEWS, views

if TYPE_CHECKING:
    from usagectl.engines import ScalarEngine

__all__ = ["VIEWS", "ViewOptions", "build_view", "meter_names", "page"]
#: The views each view-shaping option applies to; given with another view it is refused.
#: ``plan`` is about whole periods (limits, projection and prices apply per period): no range.
RANGE_VIEWS = tuple(v for v in VIEWS if v != "plan")
OPTION_VIEWS = {"--from": RANGE_VIEWS, "--to": RANGE_VIEWS, "--window": ("consolidated",),
                "--bucket": ("series",),
                "--group-by": ("top", "series", "requests"),
                "--limit": ("log", "top", "requests", "users"),
                "--offset": ("log", "top", "requests", "users"), "--detail": ("users",),
                "--operation": ("log",), "--endpoint": ("log",), "--status": ("log",),
                "--order": ("log",), "--alternatives": ("plan",)}
# ``report --view tokens`` (usagectl.reports.tokens): its own options, and the shared ones.
OPTION_VIEWS["--label"] = ("tokens",)
for _option in ("--group-by", "--limit", "--offset"):
    OPTION_VIEWS[_option] = (*OPTION_VIEWS[_option], "tokens")
#: Tables list the first page of the log; JSON and CSV list every event (SPEC §7).
LOG_TABLE_ROWS = 50
#: Rows fetched from DuckDB at a time when a view is streamed (docs/cli.md "Streaming large
#: outputs").
STREAM_BATCH = 10_000


@dataclass(frozen=True)
class ViewOptions:
    """The options of ``report`` that shape a view (each view reads the ones it needs)."""

    meters: list[str] | None = None
    #: ``--from/--to``: the range ``[date_from, date_to)`` as instants (usagectl.reports.ranges).
    date_from: datetime | None = None
    date_to: datetime | None = None
    #: ``--window day|week|month``: the consolidated range split further.
    window: str | None = None
    #: ``--period`` was given: the range is cut to that period (other views than consolidated).
    period_given: bool = False
    bucket: str = "day"
    group_by: str | None = None  # top: user_id when None; series, requests: not grouped
    limit: int | None = None
    offset: int = 0
    #: The log's filters and order (:func:`usagectl.reports.log.consumption_log`).
    operation: str | None = None
    endpoint: str | None = None
    status: str | None = None
    order: str = "asc"
    #: ``--alternatives FILE``: the plan view's other plans (a contracts TOML file).
    alternatives: str | None = None
    #: ``--label KEY``: the tokens view's label, an extra column (attribute) of the events.
    label: str | None = None
    #: ``--detail``: the users view lists each user's values of its distinct meters
    #: (:mod:`usagectl.reports.users_detail`).
    detail: bool = False


def group_by_values(view: str) -> tuple[str, ...]:
    """The ``--group-by`` values of a view that takes the option."""
    from usagectl.reports.activity import SERIES_GROUPS
    from usagectl.reports.breakdown import GROUPS
    from usagectl.reports.requests import REQUEST_GROUPS

    from usagectl.reports.tokens import TOKEN_GROUPS

    return {"top": GROUPS, "series": SERIES_GROUPS, "requests": REQUEST_GROUPS,
            "tokens": TOKEN_GROUPS}[view]


def meter_names(window: Window, names: list[str] | None) -> list[str]:
    """The meters a view covers, in contract order (``--meter`` picks some)."""
    if not names:
        return [m.name for m in window.contract.meters]
    return [window.contract.meter(n).name for n in names]


def build_view(con: duckdb.DuckDBPyConnection, window: Window, view: str,
               opts: ViewOptions = ViewOptions(), *, batch_size: int | None = None,
               scalars: ScalarEngine | None = None, columnar: bool = False) -> dict[str, Any]:
    """The JSON document of one view (the same dict every format is rendered from).

    ``scalars`` computes the count, sum and distinct meters of the consolidated, users and
    daily views (default: the local engine on ``con``; :mod:`usagectl.engines`).

    ``batch_size`` streams the log's events: ``doc["events"]`` is then an iterator fetching that
    many rows at a time, to be written before anything else runs on ``con``; the other views
    are small (one row per meter, user, day or bucket) and stay lists. ``columnar`` (for a
    document written as JSON or CSV) reads them as Arrow record batches, which those writers
    format a column at a time (:class:`usagectl.store.streaming.Batches`).
    """
    if opts.date_from is not None or opts.date_to is not None or opts.window is not None:
        return _ranged(con, window, view, opts, batch_size=batch_size, scalars=scalars,
                       columnar=columnar)
    if view == "consolidated":
        return views.consolidated(con, window, opts.meters, scalars=scalars)
    if view == "users" and opts.detail:
        from usagectl.reports.users_detail import users_detail

        return users_detail(con, window, opts.meters, opts.limit, opts.offset, scalars=scalars)
    if view == "users":
        doc = views.users_view(con, window, opts.meters, scalars=scalars)
        # Paged only when asked: the plain view's JSON stays what it was.
        paged = opts.limit is not None or opts.offset
        return page(doc, "users", opts.limit, opts.offset) if paged else doc
    if view == "daily":
        return views.daily_view(con, window, opts.meters, opts.date_from, opts.date_to,
                                scalars=scalars)
    if view == "log":
        return views.log_view(con, window, opts.meters, opts.limit, opts.offset,
                              date_from=opts.date_from, date_to=opts.date_to,
                              batch_size=batch_size, operation=opts.operation,
                              endpoint=opts.endpoint, status=opts.status, order=opts.order,
                              columnar=columnar)
    if view == "series" and opts.group_by is not None:
        from usagectl.reports.activity import grouped_series

        return grouped_series(con, window, opts.meters, opts.bucket, opts.group_by)
    if view == "series":
        return views.series_view(con, window, opts.meters, opts.bucket)
    if view == "top":
        return page(views.top_view(con, window, opts.meters, opts.group_by or "user_id", None),
                    "rows", opts.limit, opts.offset)
    if view == "requests":
        from usagectl.reports.requests import requests_view

        return page(requests_view(con, window, opts.meters, opts.group_by),
                    "rows", opts.limit, opts.offset)
    if view == "plan":
        from usagectl.reports.plan import load_alternatives, plan_view

        alternatives = (load_alternatives(opts.alternatives, window.contract)
                        if opts.alternatives is not None else None)
        return plan_view(con, window, opts.meters, alternatives, scalars=scalars)
    if view == "tokens":
        from usagectl.reports.tokens import tokens_view

        return tokens_view(con, window, opts.meters, opts.group_by, opts.label, opts.limit,
                           opts.offset, batch_size=batch_size)
    raise ValueError(f"unknown view {view!r}")


def _ranged(con: duckdb.DuckDBPyConnection, window: Window, view: str, opts: ViewOptions, *,
            batch_size: int | None, scalars: ScalarEngine | None,
            columnar: bool = False) -> dict[str, Any]:
    """A view over ``--from/--to`` (usagectl.reports.ranges): the consolidated view per period
    (and ``--window``); another view over the range inside one period, its JSON carrying
    ``range`` after ``period``."""
    from dataclasses import replace

    from usagectl.reports import ranges

    if view == "consolidated":
        return ranges.consolidated_range(con, window, opts.date_from, opts.date_to, opts.meters,
                                         opts.window, scalars=scalars)
    window, lo, hi = ranges.clip(window, opts.date_from, opts.date_to, opts.period_given)
    plain = replace(opts, date_from=None, date_to=None)
    if view == "daily":
        days = ranges.whole_days(lo, hi, window.contract.zone)
        if days is None:
            doc = {**views.daily_view(con, window, opts.meters, window.period.start.date(),
                                      window.period.start.date(), scalars=scalars), "days": []}
        else:
            doc = views.daily_view(con, window, opts.meters, *days, scalars=scalars)
    elif view == "log":
        doc = views.log_view(con, window, opts.meters, opts.limit, opts.offset, date_from=lo,
                             date_to=hi, batch_size=batch_size, operation=opts.operation,
                             endpoint=opts.endpoint, status=opts.status, order=opts.order,
                             columnar=columnar)
    else:  # the figures of the range: the period clipped to it
        doc = build_view(con, ranges.range_window(window, lo, hi), view, plain,
                         batch_size=batch_size, scalars=scalars)
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out[key] = views.period_header(window) if key == "period" else value
        if key == "period":
            out["range"] = {"from": lo.isoformat(), "to": hi.isoformat()}
    return out


def page(doc: dict[str, Any], key: str, limit: int | None, offset: int) -> dict[str, Any]:
    """``doc[key]`` cut to ``limit`` rows from ``offset``, with the log view's paging keys."""
    rows = doc[key]
    shown = rows[offset:] if limit is None else rows[offset:offset + limit]
    return {**doc, key: shown, "total_count": len(rows), "limit": limit, "offset": offset,
            "has_more": offset + len(shown) < len(rows)}
