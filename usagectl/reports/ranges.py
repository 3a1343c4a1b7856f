"""Any range: ``report --from/--to`` (issue 13 item 1).

A range is half-open, ``[from, to)``. A bound is a date (that day's local midnight in the
contract's zone) or an instant (ISO 8601 with ``Z`` or an offset, taken exactly).

* The consolidated view over a range gives the usage figures of the range — owner, Σ users,
  overlap, sums, distinct counts, events — with one row per contract period the range crosses:
  each row is ``period ∩ range`` computed on its own, so first sightings (distinct values, new
  area) reset at a period boundary as the contract's period does. Limits and pricing apply to a
  whole period, so a range row carries none. ``window`` (day, week, month) splits each row
  further by local day, ISO week (Monday) or calendar month in the contract's zone, each piece
  computed on its own too.
* The other views compute over one window: the range inside one period
  (:func:`clip`).

A range's window is the period clipped to the range (:func:`range_window`): every meter filter
(``ts`` in ``[start, end)``) then selects the range's events, an ``active`` boundary counts when
it existed at some instant of the range, an audit-mode meter reads the stock as of the range's
end (or ``--as-of`` when earlier), and the area engine keeps the range's tiles under their own
key (:func:`usagectl.meters.unique_area.area_scope`), never a period's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from usagectl.contracts import Contract, Period
from usagectl.contracts.periods import local_midnight, period_at, period_containing
from usagectl.errors import NotFoundError, UsageError
from usagectl.meters.select import Window

#: ``--window`` values: the v2 API's ``period`` parameter.
WINDOWS = ("day", "week", "month")
#: The consolidated keys a range row keeps: usage figures, not a period's limits and pricing.
RANGE_METER_KEYS = ("name", "aggregate", "unit", "billed_on", "owner_total", "user_total",
                    "overlap", "billed", "events", "fields", "requests", "unlinked_operations")
NOTE = ("limits, included units, pricing, status and projection apply to a whole contract "
        "period; a range shows its usage only")
#: The instants a ``--from``/``--to`` bound may name (UTC): wide enough for any usage log, and
#: far enough from Python's years 1 and 9999 that a zone's offset or a period's end never
#: leaves the calendar.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
#: The most rows (periods, and windows of them) a range report computes, each a query of its
#: own: ten years of days. A wider request is a usage error that says how to narrow it.
MAX_RANGE_ROWS = 3660


def parse_bound(text: str | None, contract: Contract, option: str) -> datetime | None:
    """A ``--from``/``--to`` bound: a date's local midnight in the contract's zone, or an
    instant with its offset; anything else (a time without an offset) is a usage error."""
    if text is None:
        return None
    forms = "write a date (YYYY-MM-DD, local midnight in the contract's zone) or an instant " \
            "with its offset (2026-03-01T06:00:00Z, 2026-03-01T00:00:00-06:00)"
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = (local_midnight(day, contract.zone)
                      if EARLIEST.year <= day.year <= LATEST.year
                      else datetime(day.year, 1, 1, tzinfo=UTC))  # out of range, below
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date or an instant: {forms}",
                         {"option": option, "value": text}) from None
    if moment.tzinfo is None:
        raise UsageError(f"{option} {text!r} has no offset: {forms}",
                         {"option": option, "value": text})
    try:
        inside = EARLIEST <= moment <= LATEST
    except OverflowError:  # an offset that takes year 1 or 9999 out of the calendar
        inside = False
    if not inside:
        raise UsageError(f"{option} {text!r} is out of range: a bound lies between "
                         f"{EARLIEST.date()} and {LATEST.date()} (UTC)",
                         {"option": option, "value": text, "earliest": EARLIEST.isoformat(),
                          "latest": LATEST.isoformat()})
    return moment.astimezone(contract.zone)


def check_order(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start > end:
        raise UsageError(f"--from {start.isoformat()} is after --to {end.isoformat()}",
                         {"option": "--from"})


def range_window(window: Window, start: datetime, end: datetime) -> Window:
    """``window``'s period clipped to ``[start, end)`` (the range must meet the period).

    The period keeps its index; as-of is capped at the clipped end, so an audit meter reads the
    stock as of the range's end and nothing after it counts.
    """
    p = window.period
    lo, hi = max(p.start, start), min(p.end, end)
    as_of = min(window.as_of, hi - timedelta(microseconds=1)) if hi > lo else window.as_of
    return replace(window, period=Period(p.index, lo, max(lo, hi)), as_of=as_of,
                   range=(start, end))


def periods_of(contract: Contract, start: datetime, end: datetime,
               limit: int = MAX_RANGE_ROWS) -> list[Period]:
    """The contract periods that meet ``[start, end)``, in order (none: the range lies outside
    the contract); more than ``limit`` of them is a usage error (:func:`check_rows`)."""
    out: list[Period] = []
    first = period_containing(contract, start)
    if first is None:
        # Before the contract starts: its first period, if the range reaches it.
        try:
            first = period_at(contract, 0)
        except NotFoundError:
            return out
        if first.start >= end:
            return out
    p: Period | None = first
    while p is not None and p.start < end:
        if p.end > start and p.end > p.start:
            out.append(p)
            check_rows(contract, len(out), limit)
        try:
            p = period_at(contract, p.index + 1)
        except NotFoundError:
            p = None
        if contract.cycle == "once":
            break
    return out


def check_rows(contract: Contract, rows: int, limit: int = MAX_RANGE_ROWS) -> None:
    """A range report computes each period (and window) on its own: refuse more than ``limit``
    rows before computing any."""
    if rows > limit:
        raise UsageError(f"the range asks for more than {limit:,} rows of contract "
                         f"{contract.id} (each period, and each --window piece of it, is "
                         "computed on its own): narrow --from/--to or use a wider --window",
                         {"option": "--from", "max_rows": limit})


def window_starts(kind: str, start: datetime, end: datetime,
                  limit: int = MAX_RANGE_ROWS) -> list[datetime]:
    """The local-midnight boundaries of days, ISO weeks (Mondays) or calendar months strictly
    inside ``(start, end)``, in the zone of ``start``; the list stops after ``limit + 1``
    entries (more than a report may compute: :func:`check_rows`)."""
    zone = start.tzinfo
    assert zone is not None
    d = start.astimezone(zone).date()
    if kind == "day":
        d += timedelta(days=1)
    elif kind == "week":
        d += timedelta(days=7 - d.weekday())
    else:
        d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    out = []
    while True:
        t = local_midnight(d, zone)
        if t >= end:
            return out
        if t > start:
            out.append(t)
            if len(out) > limit:
                return out
        if kind == "day":
            d += timedelta(days=1)
        elif kind == "week":
            d += timedelta(days=7)
        else:
            d = date(d.year + d.month // 12, d.month % 12 + 1, 1)


def _row(con: duckdb.DuckDBPyConnection, window: Window, meters: list[str] | None,
         scalars: Any) -> dict[str, Any]:
    """The usage figures of one clipped window: the consolidated view without pricing."""
    from usagectl.reports import views

    p = window.period
    doc = views.consolidated(con, window, meters, scalars=scalars)
    return {"from": p.start.isoformat(), "to": p.end.isoformat(),
            "meters": [{k: m[k] for k in RANGE_METER_KEYS if k in m} for m in doc["meters"]],
            "users": doc["users"], "events_counted": doc["events_counted"]}


def range_plan(window: Window, start: datetime, end: datetime, window_kind: str | None
               ) -> list[tuple[Period, Window, list[Window]]]:
    """The pieces a range report computes: each period ``[start, end)`` meets, as ``window``
    clipped to the range, and its ``window_kind`` pieces (day, week, month; none without a
    kind), each clipped to its piece. Every piece is counted (:func:`check_rows`) before the
    first is computed."""
    c = window.contract
    plan: list[tuple[Period, Window, list[Window]]] = []
    count = 0
    for p in periods_of(c, start, end) if end > start else []:
        in_period = replace(window, period=p)
        whole = range_window(in_period, start, end)
        lo, hi = whole.period.start, whole.period.end
        cuts = [] if window_kind is None else [lo, *window_starts(window_kind, lo, hi), hi]
        count += 1 + max(0, len(cuts) - 1)
        check_rows(c, count)
        plan.append((p, whole, [range_window(in_period, a, b) for a, b in zip(cuts, cuts[1:])]))
    return plan


def consolidated_range(con: duckdb.DuckDBPyConnection, window: Window, start: datetime | None,
                       end: datetime | None, meters: list[str] | None = None,
                       window_kind: str | None = None, *, scalars: Any = None
                       ) -> dict[str, Any]:
    """The consolidated view of ``[start, end)``: one row per period the range meets, and per
    ``window_kind`` piece of each when asked (module docstring)."""
    from usagectl.reports import views

    c = window.contract
    start = start if start is not None else window.period.start
    end = end if end is not None else window.period.end
    check_order(start, end)
    rows, pieces = [], []
    for p, whole, parts in range_plan(window, start, end, window_kind):
        rows.append({"period": {"index": p.index, "start": p.start.isoformat(),
                                "end": p.end.isoformat()},
                     **_row(con, whole, meters, scalars)})
        pieces += [{"period_index": p.index, **_row(con, piece, meters, scalars)}
                   for piece in parts]
    doc: dict[str, Any] = {"contract": views.contract_header(c),
                           "range": {"from": start.isoformat(), "to": end.isoformat()},
                           "as_of": window.as_of.astimezone(c.zone).isoformat()}
    if window.user is not None:
        doc["user"] = window.user
    doc["note"] = NOTE
    doc["periods"] = rows
    if window_kind is not None:
        doc["window"] = window_kind
        doc["windows"] = pieces
    return doc


def clip(window: Window, start: datetime | None, end: datetime | None, period_given: bool
         ) -> tuple[Window, datetime, datetime]:
    """The one-period window of a view other than consolidated, and the range inside it.

    Without ``--period`` the period is the one containing ``--from``; a range that runs past
    that period's end is a usage error (the consolidated view gives a row per period). With
    ``--period`` the range is cut to that period.
    """
    c = window.contract
    check_order(start, end)
    if start is not None and not period_given:
        p = period_containing(c, start)
        if p is None:
            raise UsageError(f"--from {start.isoformat()} is in no period of contract {c.id}; "
                             "--view consolidated lists the periods a range meets",
                             {"option": "--from"})
        window = replace(window, period=p)
    p = window.period
    lo = max(start, p.start) if start is not None else p.start
    hi = min(end, p.end) if end is not None else p.end
    if end is not None and end > p.end and not period_given:
        raise UsageError(f"the range runs past the end of period {p.index} "
                         f"({p.end.isoformat()}); this view covers one period: end the range "
                         "there, or use --view consolidated for one row per period",
                         {"option": "--to", "period_end": p.end.isoformat()})
    return window, lo, max(lo, hi)


def whole_days(start: datetime, end: datetime, zone: Any) -> tuple[date, date] | None:
    """The daily view's days of ``[start, end)``: first and last local day; both bounds must be
    local midnights (the view lists whole days). None when the range holds no day."""
    for t, option in ((start, "--from"), (end, "--to")):
        if local_midnight(t.astimezone(zone).date(), zone) != t:
            raise UsageError(f"{option} {t.isoformat()} is not a local midnight: the daily view "
                             "lists whole days; give dates", {"option": option})
    first = start.astimezone(zone).date()
    last = end.astimezone(zone).date() - timedelta(days=1)
    return (first, last) if first <= last else None
