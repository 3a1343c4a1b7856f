"""Notes a report prints on stderr: a silent zero hides a mapping mistake (SPEC §4, §6).

* A meter whose filters match no event while its period has events: what it filters on and what
  the period's events have (the few most frequent values of each filtered column, with counts).
* A ``products`` entry that no stored event of the owner has ever had (a typo bills 0).
* A report about one user (``--user``): that limits and prices are the whole owner's, and when
  the user has no events in the period, that it has none (zeros, not an error).

The notes are data for the caller to print on stderr (never stdout, so JSON stays clean); the
same figures are computed whether or not anyone reads them.
"""

from __future__ import annotations

from typing import Any

import duckdb

from usagectl.contracts import Meter
from usagectl.contracts.model import ALL_PRODUCTS
from usagectl.meters.select import Window, meter_filter

#: How many of a column's values a note shows (the most frequent first).
TOP_VALUES = 5


def report_notes(con: duckdb.DuckDBPyConnection, window: Window,
                 meters: tuple[Meter, ...]) -> list[str]:
    """Every note for a report of ``meters`` over ``window``: the user notes, then the filters'."""
    return user_notes(con, window) + filter_notes(con, window, meters)


def contract_notes(con: duckdb.DuckDBPyConnection, windows: list[Window]) -> list[str]:
    """The filter notes of several contracts (``usage``, ``alerts``, ``export``), each prefixed
    with its contract id."""
    return [f"{w.contract.id}: {n}" for w in windows
            for n in filter_notes(con, w, w.contract.meters)]


def user_notes(con: duckdb.DuckDBPyConnection, window: Window) -> list[str]:
    """With ``--user``: the owner's terms apply, and whether the user has events at all."""
    if window.user is None:
        return []
    notes = [f"figures are for user {window.user} only; limits, included allotments and prices are "
             f"the whole owner's, so status, overage and amount price this user's usage alone"]
    if _period_count(con, window, in_period=True) == 0:
        notes.append(f"no events for user {window.user} in this period")
    return notes


def filter_notes(con: duckdb.DuckDBPyConnection, window: Window,
                 meters: tuple[Meter, ...]) -> list[str]:
    """Notes on meters that count nothing while the period has events, and on products that no
    stored event of the owner has ever had."""
    notes: list[str] = []
    period_events: dict[bool, int] = {}
    for m in meters:
        in_period = m.mode != "audit"  # audit mode looks at every event up to as_of
        if _counts_something(con, window, m, in_period):
            continue
        if in_period not in period_events:
            period_events[in_period] = _period_count(con, window, in_period)
        if period_events[in_period]:
            notes.append(_zero_note(con, m, window, in_period))
    notes += _unknown_products(con, window, meters)
    return notes


def _counts_something(con: duckdb.DuckDBPyConnection, window: Window, meter: Meter,
                      in_period: bool) -> bool:
    """Whether the meter's filters select any event: the query stops at the first one found
    (counting them all read every filtered column of the period for each meter)."""
    where, params = meter_filter(meter, window, in_period=in_period)
    return bool(con.execute(f"SELECT 1 FROM events WHERE {where} LIMIT 1", params).fetchall())


def _count(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> int:
    row = con.execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def _everything(window: Window, in_period: bool) -> tuple[str, list[Any]]:
    """The period's events (failed ones too): the owner's, up to as_of, and the user's if any."""
    anything = Meter(name="", aggregate="count", include_failed=True)
    return meter_filter(anything, window, in_period=in_period)


def _period_count(con: duckdb.DuckDBPyConnection, window: Window, in_period: bool) -> int:
    return _count(con, *_everything(window, in_period))


def _top(con: duckdb.DuckDBPyConnection, column: str, where: str, params: list[Any]) -> str:
    """``value (count), …`` for a column's most frequent values (``column`` from a fixed list)."""
    rows = con.execute(
        f"SELECT {column}, count(*) AS n FROM events WHERE {where} GROUP BY {column} "
        f"ORDER BY n DESC, {column} NULLS LAST LIMIT ?", [*params, TOP_VALUES + 1]).fetchall()
    shown = [f"{'(none)' if v is None else v} ({n:,})" for v, n in rows[:TOP_VALUES]]
    if len(rows) > TOP_VALUES:
        row = con.execute(f"SELECT count(DISTINCT {column}) + (count(*) FILTER "
                          f"(WHERE {column} IS NULL) > 0)::INTEGER FROM events WHERE {where}",
                          params).fetchone()
        shown.append(f"and {int(row[0]) - TOP_VALUES:,} more")
    return ", ".join(shown)


def _zero_note(con: duckdb.DuckDBPyConnection, m: Meter, window: Window, in_period: bool) -> str:
    """``meter M counts 0: it filters …; the period's events have …``."""
    where, params = _everything(window, in_period)
    filters, seen = [], []
    products = [p for p in m.products if p != ALL_PRODUCTS]
    for column, entries in (("product", products), ("endpoint", m.endpoints),
                            ("operation", m.operations)):
        if entries:
            filters.append(f"{column}s {list(entries)!r}")
            seen.append(f"{column}s {_top(con, column, where, params)}")
    for field in m.require:
        filters.append(f"requires {field}")
        only = Meter(name="", aggregate="count", include_failed=True, require=(field,))
        seen.append(f"{_count(con, *meter_filter(only, window, in_period=in_period)):,} have {field}")
    if not m.include_failed:
        filters.append("successful events only")
        ok = Meter(name="", aggregate="count")
        seen.append(f"{_count(con, *meter_filter(ok, window, in_period=in_period)):,} succeeded")
    total = _count(con, where, params)
    what = "events up to as_of" if not in_period else "period's events"
    return (f"meter {m.name} counts 0: it filters {', '.join(filters)}; the {what} "
            f"({total:,}) have {'; '.join(seen)}")


def _unknown_products(con: duckdb.DuckDBPyConnection, window: Window,
                      meters: tuple[Meter, ...]) -> list[str]:
    """A note per meter ``products`` entry that no stored event of the owner has ever had."""
    wanted = {p for m in meters for p in m.products if p != ALL_PRODUCTS}
    if not wanted:
        return []
    # Whether a product was ever seen stops at its first event (LIMIT 1; a correlated EXISTS
    # read the whole table); the owner's product counts are read only when a note is due.
    if all(con.execute("SELECT 1 FROM events WHERE owner_id = ? AND product = ? LIMIT 1",
                       [window.contract.owner, p]).fetchall() for p in sorted(wanted)):
        return []
    stored = dict(con.execute("SELECT product, count(*) FROM events WHERE owner_id = ? "
                              "GROUP BY product", [window.contract.owner]).fetchall())
    if not stored:  # an owner without events yet: nothing to compare with
        return []
    known = ", ".join(f"{'(none)' if p is None else p} ({n:,})" for p, n in
                      sorted(stored.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_VALUES])
    notes = []
    for m in meters:
        for p in m.products:
            if p != ALL_PRODUCTS and p not in stored:
                notes.append(f"meter {m.name}: product {p!r} appears in no stored event of owner "
                             f"{window.contract.owner}; its products are {known}")
    return notes
