"""Which events a meter counts: the filters shared by every aggregate (SPEC §4, §5).

All numbers are for one contract, one period, the contract's owner only, successful events only
(unless the meter says ``include_failed``), ``ts`` in ``[period.start, period.end)`` and
``ts <= as_of``; with ``as_ingested_at``, only events ingested by then. Values are always bound
parameters; the only SQL text assembled here comes from fixed column names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from usagectl.contracts import Contract, Meter, Period
from usagectl.contracts.model import REQUIRABLE_FIELDS, SUM_FIELDS
from usagectl.errors import ValidationError

#: Products that carry area (SPEC §2); ``products = "*"`` on a unique_area meter means these and
#: any other product whose events carry a geometry (UNIFIED_AREA).
AREA_PRODUCTS = ("FIELDS_BOUNDARY", "OPERATIONS_FILE", "OPERATIONS_OPERATION",
                 "SATELLITE_PROCESS_PLANET", "SATELLITE_PROCESS_SENTINEL")


@dataclass(frozen=True)
class Window:
    """The moment and period a report is computed for, and optionally the one user it is about."""

    contract: Contract
    period: Period
    as_of: datetime
    as_ingested_at: datetime | None = None
    #: Only this user's events (``--user``): every meter and view is restricted to them.
    user: str | None = None
    #: A ``--from/--to`` range this window was clipped to (``period`` is then the period ∩ the
    #: range: usagectl.reports.ranges); it keys the range's stored area tiles apart.
    range: tuple[datetime, datetime] | None = None

    @property
    def until(self) -> datetime:
        """Events at or before this instant and before the period end count."""
        return min(self.as_of, self.period.end)

    @property
    def last_day(self) -> date:
        """The local day a trend window ends on: as_of's, or the period's last for a closed one.

        A closed period's trend looks at its own last 14 days, not at the days after it
        (SPEC §5.4 ``trending``).
        """
        end = min(self.as_of, self.period.end - timedelta(microseconds=1))
        return end.astimezone(self.contract.zone).date()


def meter_filter(meter: Meter, window: Window, *, in_period: bool = True,
                 alias: str = "") -> tuple[str, list[Any]]:
    """SQL ``WHERE`` conditions (joined by AND) and their parameters for a meter's events."""
    conds, params = window_conditions(window, in_period=in_period, alias=alias)
    more, more_params = meter_conditions(meter, alias=alias)
    return " AND ".join(conds + more), params + more_params


def window_conditions(window: Window, *, in_period: bool = True, alias: str = ""
                      ) -> tuple[list[str], list[Any]]:
    """The conditions every meter of a window shares: the owner, up to as_of, in the period,
    ingested by ``as_ingested_at``, the one user (a report's scan filters on these once)."""
    p = alias + "." if alias else ""
    conds = [f"{p}owner_id = ?", f"{p}ts <= ?"]
    params: list[Any] = [window.contract.owner, window.as_of]
    if in_period:
        conds += [f"{p}ts >= ?", f"{p}ts < ?"]
        params += [window.period.start, window.period.end]
    if window.as_ingested_at is not None:
        conds.append(f"{p}ingested_at <= ?")
        params.append(window.as_ingested_at)
    if window.user is not None:
        conds.append(f"{p}user_id = ?")
        params.append(window.user)
    return conds, params


def meter_conditions(meter: Meter, *, alias: str = "") -> tuple[list[str], list[Any]]:
    """A meter's own conditions (status, products, endpoints, operations, required fields),
    on top of :func:`window_conditions`; an empty list when it takes every event."""
    p = alias + "." if alias else ""
    conds: list[str] = []
    params: list[Any] = []
    if not meter.include_failed:
        conds.append(f"{p}succeeded")
    products = [x for x in meter.products if x != "*"]
    if products and not meter.all_products:
        conds.append(f"list_contains(?, {p}product)")
        params.append(products)
    for column, entries in (("endpoint", meter.endpoints), ("operation", meter.operations)):
        if entries:
            cond, more = _matching(p + column, entries)
            conds.append(cond)
            params += more
    for field in meter.require:
        if field not in REQUIRABLE_FIELDS:  # identifiers only from the allowlist
            raise ValueError(f"cannot require {field!r}")
        # Empty values are stored as NULL; an empty list counts as absent too.
        conds.append(f"({p}{field} IS NOT NULL AND len({p}{field}) > 0)"
                     if field == "indicator_ids" else f"({p}{field} IS NOT NULL)")
    return conds, params


#: Characters that make an ``endpoints``/``operations`` entry a glob pattern (SPEC §4).
GLOB_CHARS = frozenset("*?[")


def is_pattern(entry: str) -> bool:
    """True when a filter entry is a glob pattern: it holds ``*``, ``?`` or ``[``."""
    return not GLOB_CHARS.isdisjoint(entry)


def _matching(column: str, entries: tuple[str, ...]) -> tuple[str, list[Any]]:
    """``column`` equals an entry, or matches an entry that is a glob pattern.

    Every entry matches itself exactly, so a value that happens to hold ``[`` (``/items[0]``)
    still counts when written as is; a pattern also matches what DuckDB's ``GLOB`` matches
    (case-sensitive; ``*`` any run of characters, ``/`` included; ``?`` one character;
    ``[abc]``, ``[a-z]``, ``[!a]`` one character of a class). Patterns are bound parameters.
    """
    sql = [f"list_contains(?, {column})"]
    params: list[Any] = [list(entries)]
    for entry in entries:
        if is_pattern(entry):
            sql.append(f"{column} GLOB ?")
            params.append(entry)
    return "(" + " OR ".join(sql) + ")", params


# ------------------------------------------------------------------------------ exact sums

#: How each ``sum`` field is added up in SQL, exactly (SPEC §5.4): token counts as integers
#: (DuckDB sums BIGINT into a 128-bit HUGEINT: 10 billion events of 2⁶³ − 1 still fit), credits
#: as the DECIMAL(38, 9) they are stored as, and ``response_time_ms`` — stored as a DOUBLE —
#: as each value's decimal rounded to 9 places before adding, so 0.1 + 0.2 is 0.3 and not
#: 0.30000000000000004. Ingest bounds every value so that Σ of 10 billion events fits
#: DECIMAL(38, 9) (``usagectl.store.ingest``).
SUM_TERMS: dict[str, str] = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "thinking_tokens": "thinking_tokens",
    "credits": "credits",
    "response_time_ms": "CAST(response_time_ms AS DECIMAL(38, 9))",
}
SUM_SQL: dict[str, str] = {f: f"sum({term})" for f, term in SUM_TERMS.items()}
assert set(SUM_SQL) == set(SUM_FIELDS)


def sum_field_sql(field: str) -> str:
    """SQL for one field's exact sum, 0 when no event has it (field from the allowlist)."""
    if field not in SUM_SQL:
        raise ValueError(f"cannot sum {field!r}")
    return f"coalesce({SUM_SQL[field]}, 0)"


def sum_sql(meter: Meter) -> str:
    """SQL for a ``sum`` meter's value: the exact sums of its fields added together."""
    return " + ".join(sum_field_sql(f) for f in meter.fields) or "0"


def exact(value: Any) -> Decimal:
    """A value of a meter query as a Decimal (None is 0). Counts arrive as int, sums as int
    (HUGEINT) or Decimal; a float would mean a binary sum slipped in, so it is refused rather
    than turned into ``Decimal(0.30000000000000004)``."""
    if isinstance(value, float):
        raise TypeError(f"a meter query returned a binary float ({value!r}); sums must be exact")
    return Decimal(value or 0)


def fetch(con: duckdb.DuckDBPyConnection, meter: Meter, sql: str, params: list[Any]
          ) -> list[tuple[Any, ...]]:
    """Run one of a meter's aggregate queries.

    A sum that does not fit DECIMAL(38, 9) can only come from a database written before
    ingest bounded the values (credits up to 18 integer digits, response_time_ms up to 1e12
    ms): it is reported as a validation error naming the meter and its fields, never as an
    internal error. Every meter query of ``scalar`` and ``reports.breakdown`` runs here.
    """
    try:
        return con.execute(sql, params).fetchall()
    except (duckdb.OutOfRangeException, duckdb.ConversionException) as exc:
        fields = ", ".join(meter.fields) or meter.field or meter.aggregate
        raise ValidationError(
            f"meter {meter.name!r}: the sum of {fields} is too large to compute exactly "
            "(more than 29 integer digits): the database holds events stored before usagectl "
            "bounded these values at ingest (credits up to 18 integer digits, response_time_ms "
            "up to 1e12 ms). Correct those events at the source and ingest them into a new "
            f"database ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            {"meter": meter.name, "fields": list(meter.fields)}) from None
