"""The count, sum and distinct meters as Spark SQL: the local engine's figures, to the last digit.

:class:`SparkScalars` answers what :mod:`usagectl.meters.scan` and
:func:`usagectl.meters.scalar.compute_scalar_meter` answer from DuckDB — owner and per-user
values, events, late events, sum fields, request summaries, the counted events and users, and
the per-local-day series — from a Spark DataFrame of events (docs/spark.md "What runs where").
Only aggregates travel to the driver; the Python code after each ``collect`` is the same
bookkeeping as the local engine's.

How each figure stays identical to DuckDB's:

* **Filters** are Column expressions with literal values (never SQL text). An ``endpoints`` /
  ``operations`` glob pattern is matched by DuckDB's own ``GLOB`` on the driver, over the
  column's distinct values (a few hundred at most), and Spark keeps the values that matched;
  Java regular expressions are never asked to imitate GLOB.
* **Sums are exact**: token counts are summed as DECIMAL(38, 0) (DuckDB sums BIGINT into a
  128-bit integer), credits as the DECIMAL(38, 9) they are stored as, and ``response_time_ms``
  — a DOUBLE — as DuckDB casts it to DECIMAL(38, 9): the double ``v × 1e9`` rounded half away
  from zero (measured on 80,000 values, docs/spark.md). Spark sums that integer count of
  nanoseconds exactly; the driver scales it by 10⁻⁹.
* **Distinct counts are exact** (``count(DISTINCT)`` over ``(user, value)`` groups, never an
  approximate sketch); ``indicator_ids`` are exploded as DuckDB unnests them.
* **Local days** are ``to_date(from_utc_timestamp(ts, zone))`` under a UTC session: the day in
  the contract's zone whatever the offset, across DST changes. A distinct value counts on the
  least local day it was seen on, which is the local engine's "first sighting".
* **Instants** travel as integer microseconds (``unix_micros``), compared with bound integers
  and turned back into aware UTC datetimes on the driver.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from usagectl.contracts import Meter
from usagectl.contracts.model import DISTINCT_FIELDS, REQUIRABLE_FIELDS, TOKEN_FIELDS
from usagectl.errors import ValidationError
from usagectl.meters import exact_arithmetic
from usagectl.meters.scalar import ScalarMeterValue
from usagectl.meters.scan import ScalarScan, is_scalar
from usagectl.meters.select import Window, _matching, is_pattern, window_conditions

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: ``response_time_ms`` is summed as whole nanoseconds (10⁻⁹ ms): this many places.
_NANO_PLACES = 9
#: Columns of the events table a scalar meter never reads: left out of the exported events.
_NOT_EXPORTED = ("geometry", "attributes")


def micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact, no float)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


def _F():  # noqa: ANN202 — pyspark.sql.functions, imported with the engine
    from pyspark.sql import functions

    return functions


def _and(conds: list[Column]) -> Column:
    F = _F()
    return functools.reduce(operator.and_, conds) if conds else F.lit(True)


def _flag(cond: Column) -> Column:
    """A condition as a flag that is never NULL: NULL counts as false, as in a WHERE clause."""
    return _F().coalesce(cond, _F().lit(False))


def _count_if(cond: Column) -> Column:
    """Rows where ``cond`` holds: 0 over no rows (DuckDB's ``count_if`` gives NULL there)."""
    F = _F()
    return F.count(F.when(cond, F.lit(1)))


def _sum_term(field: str) -> tuple[Column, int]:
    """(column to sum exactly, places to scale its sum by) for one ``sum`` field
    (:data:`usagectl.meters.select.SUM_TERMS` in DuckDB)."""
    F = _F()
    if field in TOKEN_FIELDS:
        return F.col(field).cast("decimal(38,0)"), 0
    if field == "credits":
        return F.col("credits").cast("decimal(38,9)"), 0
    if field == "response_time_ms":
        # DuckDB's CAST(DOUBLE AS DECIMAL(38, 9)): the double v × 1e9, rounded half away from
        # zero (Spark's round on a double does the same). The whole double is split at 2³² so
        # that each part converts to an integer exactly (a cast of a double above 2⁵³ to
        # DECIMAL goes through its shortest decimal text, which is not its value).
        nanos = F.round(F.col("response_time_ms") * F.lit(1e9))
        hi = F.floor(nanos / F.lit(2.0 ** 32))
        lo = nanos - hi * F.lit(2.0 ** 32)
        exact_nanos = (hi.cast("bigint").cast("decimal(38,0)") * F.lit(2 ** 32).cast("decimal(38,0)")
                       + lo.cast("bigint").cast("decimal(38,0)"))
        return exact_nanos.cast("decimal(38,0)"), _NANO_PLACES
    raise ValueError(f"cannot sum {field!r}")


def _exact(value: Any, places: int = 0) -> Decimal:
    """A sum or count from Spark as the Decimal DuckDB gives (None is 0)."""
    if isinstance(value, float):
        raise TypeError(f"a meter query returned a binary float ({value!r}); sums must be exact")
    out = Decimal(value or 0)
    return out.scaleb(-places) if places else out


def _overflow() -> type[Exception]:
    """The exception Spark (ANSI mode, its default) raises when an exact sum overflows."""
    from pyspark.errors import ArithmeticException

    return ArithmeticException


def _too_large(meter: Meter, exc: Exception) -> ValidationError:
    """The local engine's error for a sum beyond DECIMAL(38, 9) (:func:`select.fetch`)."""
    fields = ", ".join(meter.fields) or meter.field or meter.aggregate
    return ValidationError(
        f"meter {meter.name!r}: the sum of {fields} is too large to compute exactly "
        "(more than 29 integer digits): the database holds events stored before usagectl "
        "bounded these values at ingest (credits up to 18 integer digits, response_time_ms "
        "up to 1e12 ms). Correct those events at the source and ingest them into a new "
        f"database ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})",
        {"meter": meter.name, "fields": list(meter.fields)})


class SparkScalars:
    """The scalar meters of a report over ``events`` (a DataFrame with the events table's
    columns); the same results as :class:`usagectl.engines.LocalScalars`."""

    def __init__(self, spark: SparkSession, events: DataFrame) -> None:
        self.spark = spark
        self.events = events
        self._values: dict[tuple[str, Window], list[str]] = {}

    # ---------------------------------------------------------------- filters

    def _window(self, window: Window) -> DataFrame:
        """The events every meter of ``window`` looks at (:func:`select.window_conditions`)."""
        F = _F()
        ts = F.unix_micros(F.col("ts"))
        conds = [F.col("owner_id") == F.lit(window.contract.owner),
                 ts <= F.lit(micros(window.as_of)),
                 ts >= F.lit(micros(window.period.start)),
                 ts < F.lit(micros(window.period.end))]
        if window.as_ingested_at is not None:
            conds.append(F.unix_micros(F.col("ingested_at")) <= F.lit(micros(window.as_ingested_at)))
        if window.user is not None:
            conds.append(F.col("user_id") == F.lit(window.user))
        return (self.events.filter(_and(conds))
                .withColumn("_ts", ts)
                .withColumn("_day", F.to_date(F.from_utc_timestamp(
                    F.col("ts"), window.contract.timezone))))

    def _matching_values(self, column: str, entries: tuple[str, ...], window: Window
                         ) -> list[str]:
        """The values of ``column`` in the window that an ``endpoints``/``operations`` list
        matches, by DuckDB's own test (:func:`usagectl.meters.select._matching`)."""
        key = (column, window)
        if key not in self._values:
            rows = self._window(window).select(column).distinct().collect()
            self._values[key] = [r[0] for r in rows if r[0] is not None]
        values = self._values[key]
        if not values:
            return []
        cond, params = _matching("v", entries)
        with duckdb.connect() as con:
            return [r[0] for r in con.execute(
                f"SELECT v FROM (SELECT unnest(?::VARCHAR[]) AS v) WHERE {cond}",
                [values, *params]).fetchall()]

    def _cond(self, meter: Meter, window: Window) -> Column:
        """A meter's own conditions (:func:`select.meter_conditions`) as a never-NULL flag."""
        F = _F()
        conds: list[Column] = []
        if not meter.include_failed:
            conds.append(F.col("succeeded"))
        products = [x for x in meter.products if x != "*"]
        if products and not meter.all_products:
            conds.append(F.col("product").isin(products))
        for column, entries in (("endpoint", meter.endpoints), ("operation", meter.operations)):
            if entries:
                allowed = (self._matching_values(column, entries, window)
                           if any(is_pattern(e) for e in entries) else list(entries))
                conds.append(F.col(column).isin(allowed))
        for field in meter.require:
            if field not in REQUIRABLE_FIELDS:
                raise ValueError(f"cannot require {field!r}")
            present = F.col(field).isNotNull()
            if field == "indicator_ids":
                present = present & (F.size(F.col(field)) > 0)
            conds.append(present)
        return _flag(_and(conds))

    # ---------------------------------------------------------------- scan

    def scan(self, meters: tuple[Meter, ...], window: Window, *, by_user: bool = True,
             days: tuple[date, date] | None = None, extras: bool = False,
             counted: bool = False) -> ScalarScan:
        """As :func:`usagectl.meters.scan.scan_scalar_meters`, from Spark."""
        scalar = tuple(m for m in meters if is_scalar(m))
        out = ScalarScan(values={m.name: ScalarMeterValue() for m in scalar})
        if not scalar:
            return out
        try:
            self._main(scalar, window, out, by_user=by_user, extras=extras, counted=counted)
            for m in scalar:
                if m.aggregate == "distinct":
                    self._distinct(m, window, out.values[m.name], days)
            if days is not None:
                self._flow_days([m for m in scalar if m.aggregate != "distinct"], window, out,
                                days)
        except _overflow():
            for m in scalar:  # raises the ValidationError that names the meter
                if m.aggregate == "sum":
                    self.meter(m, window)
            raise
        return out

    def _main(self, meters: tuple[Meter, ...], window: Window, out: ScalarScan, *,
              by_user: bool, extras: bool, counted: bool) -> None:
        """Every meter's events and count or sum, per user or for the owner, in one job
        (the local engine's ``_main_scan``)."""
        F = _F()
        base = self._window(window)
        aggs: list[Column] = []

        def add(col: Column) -> int:
            aggs.append(col.alias(f"a{len(aggs)}"))
            return len(aggs) - 1

        cols: dict[str, dict[str, int]] = {}
        places: dict[str, int] = {}
        flags: list[Column] = []
        for m in meters:
            f = self._cond(m, window)
            flags.append(f)
            c = cols[m.name] = {"events": add(_count_if(f))}
            if m.aggregate == "sum":
                for fld in m.fields:
                    term, places[fld] = _sum_term(fld)
                    c["f:" + fld] = add(F.sum(F.when(f, term)))
            if extras:
                c["late"] = add(_count_if(f & (F.unix_micros(F.col("ingested_at"))
                                               >= F.lit(micros(window.period.end)))))
                if m.aggregate == "count":
                    e = self._cond(replace(m, include_failed=True), window)
                    c["total"] = add(_count_if(e))
                    c["ok"] = add(_count_if(e & F.col("succeeded")))
                    c["avg"] = add(F.avg(F.when(e, F.col("response_time_ms"))))
        anyone = functools.reduce(operator.or_, flags)
        if counted:
            n_any = add(_count_if(anyone))
            if by_user:
                has_org = anyone & F.col("org_id").isNotNull()
                org = add(F.max_by(F.when(has_org, F.col("org_id")), F.when(has_org, F.col("_ts"))))
                first = add(F.min(F.when(anyone, F.col("_ts"))))
                last = add(F.max(F.when(anyone, F.col("_ts"))))
            else:
                users = add(F.count_distinct(F.when(anyone, F.col("user_id"))))
        if by_user:
            rows = [(r["user_id"], [r[f"a{i}"] for i in range(len(aggs))])
                    for r in base.groupBy("user_id").agg(*aggs).collect()]
            rows.sort(key=lambda r: r[0])
        else:
            (row,) = base.agg(*aggs).collect()
            rows = [(None, [row[f"a{i}"] for i in range(len(aggs))])]
        for m in meters:
            c = cols[m.name]
            v = out.values[m.name]
            total = Decimal(0)
            for user, vals in rows:
                n = int(vals[c["events"]] or 0)
                v.events += n
                if m.aggregate == "distinct":
                    continue
                if m.aggregate == "count":
                    value = Decimal(n)
                else:
                    sums = [_exact(vals[c["f:" + f]], places[f]) for f in m.fields]
                    with exact_arithmetic():
                        value = sum(sums, Decimal(0))
                    if extras:
                        out.fields[m.name] = dict(zip(m.fields, sums))
                if by_user and n:
                    v.users[user] = value
                with exact_arithmetic():
                    total += value
            if m.aggregate != "distinct":
                v.owner = total
                if not by_user:
                    v.users_total = total
            if extras:
                vals = rows[0][1]
                out.late[m.name] = int(vals[c["late"]] or 0)
                if m.aggregate == "count":
                    n_all, ok, avg = (int(vals[c["total"]] or 0), int(vals[c["ok"]] or 0),
                                      vals[c["avg"]])
                    out.requests[m.name] = {
                        "total": n_all, "successful": ok, "failed": n_all - ok,
                        "failed_by_error_code": {},
                        "avg_response_time_ms": round(float(avg), 6) if avg is not None else None}
        if extras:
            self._failures_by_code([m for m in meters if m.aggregate == "count"], window, out)
        if counted:
            out.counted_events = sum(int(vals[n_any] or 0) for _, vals in rows)
            if by_user:
                for user, vals in rows:
                    if vals[n_any]:
                        out.user_stats[user] = (vals[org], int(vals[n_any]),
                                                from_micros(vals[first]), from_micros(vals[last]))
                out.counted_users = len(out.user_stats)
            else:
                out.counted_users = int(rows[0][1][users] or 0)

    def _failures_by_code(self, meters: list[Meter], window: Window, out: ScalarScan) -> None:
        """Each count meter's failed events by error_code (most first, then by code)."""
        if not meters:
            return
        F = _F()
        aggs = [_count_if(self._cond(replace(m, include_failed=True), window)).alias(f"n{k}")
                for k, m in enumerate(meters)]
        rows = (self._window(window).filter(~F.col("succeeded"))
                .groupBy(F.coalesce(F.col("error_code"), F.lit("(none)")).alias("code"))
                .agg(*aggs).collect())
        for k, m in enumerate(meters):
            counts = sorted(((r["code"], int(r[f"n{k}"])) for r in rows if r[f"n{k}"]),
                            key=lambda kv: (-kv[1], kv[0]))
            out.requests[m.name]["failed_by_error_code"] = dict(counts)

    def _flow_days(self, meters: list[Meter], window: Window, out: ScalarScan,
                   days: tuple[date, date]) -> None:
        """Count and sum meters per local day in ``days`` (owner = Σ users for them)."""
        if not meters:
            return
        F = _F()
        base = self._window(window).filter(F.col("_day").between(F.lit(days[0]), F.lit(days[1])))
        aggs: list[Column] = []
        terms: list[list[tuple[str, int]]] = []
        for k, m in enumerate(meters):
            f = self._cond(m, window)
            aggs.append(_count_if(f).alias(f"n{k}"))
            parts = []
            if m.aggregate == "sum":
                for fld in m.fields:
                    term, places = _sum_term(fld)
                    name = f"s{len(aggs)}"
                    aggs.append(F.sum(F.when(f, term)).alias(name))
                    parts.append((name, places))
            terms.append(parts)
        rows = base.groupBy("_day").agg(*aggs).collect()
        for k, m in enumerate(meters):
            series: dict[date, Decimal] = {}
            for r in rows:
                n = int(r[f"n{k}"] or 0)
                if not n:
                    continue
                if m.aggregate == "count":
                    series[r["_day"]] = Decimal(n)
                else:
                    with exact_arithmetic():
                        series[r["_day"]] = sum((_exact(r[i], p) for i, p in terms[k]),
                                                Decimal(0))
            out.values[m.name].billed_daily = dict(sorted(series.items()))

    def _values_of(self, m: Meter, window: Window) -> DataFrame:
        """A distinct meter's ``(user_id, _day, v)`` rows: one per value an event carries."""
        F = _F()
        if m.field not in DISTINCT_FIELDS:
            raise ValueError(f"cannot count distinct {m.field!r}")
        counted = self._window(window).filter(self._cond(m, window))
        value = (F.explode(F.col("indicator_ids")) if m.field == "indicator_ids"
                 else F.col(m.field))
        return (counted.select("user_id", "_day", value.alias("v"))
                .select("user_id", "_day", F.col("v").cast("string").alias("v"))
                .filter(F.col("v").isNotNull()))

    def _distinct(self, m: Meter, window: Window, v: ScalarMeterValue,
                  days: tuple[date, date] | None) -> None:
        """Owner value, per-user values and the billed series of first sightings, from the
        meter's ``(user, value)`` groups in one job (the local engine's ``_distinct``)."""
        F = _F()
        uv = self._values_of(m, window).groupBy("user_id", "v").agg(F.min("_day").alias("fd"))
        parts = [uv.agg(F.lit(1).alias("k"), F.lit(None).cast("string").alias("u"),
                        F.lit(None).cast("date").alias("d"),
                        F.count_distinct("v").alias("n")),
                 uv.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"))
                 .select(F.lit(0).alias("k"), F.col("user_id").alias("u"),
                         F.lit(None).cast("date").alias("d"), "n")]
        if days is not None:
            firsts = (uv.select(F.col("fd").alias("d")) if m.billed_on == "user"
                      else uv.groupBy("v").agg(F.min("fd").alias("d")))
            parts.append(firsts.filter(F.col("d").between(F.lit(days[0]), F.lit(days[1])))
                         .groupBy("d").agg(F.count(F.lit(1)).alias("n"))
                         .select(F.lit(2).alias("k"), F.lit(None).cast("string").alias("u"),
                                 "d", "n"))
        rows = functools.reduce(lambda a, b: a.unionByName(b), parts).collect()
        series: dict[date, Decimal] = {}
        for r in sorted(rows, key=lambda r: (r["k"], str(r["u"]), r["d"] or date.min)):
            if r["k"] == 1:
                v.owner = Decimal(r["n"])
            elif r["k"] == 0:
                v.users[r["u"]] = Decimal(r["n"])
            else:
                series[r["d"]] = Decimal(r["n"])
        if days is not None:
            v.billed_daily = series

    # ---------------------------------------------------------------- one meter

    def meter(self, meter: Meter, window: Window, *, daily: bool = False) -> ScalarMeterValue:
        """As :func:`usagectl.meters.scalar.compute_scalar_meter`, from Spark."""
        if meter.aggregate == "distinct":
            return self._distinct_meter(meter, window, daily)
        F = _F()
        counted = self._window(window).filter(self._cond(meter, window))
        keys = ["user_id", "_day"] if daily else ["user_id"]
        aggs = [F.count(F.lit(1)).alias("n")]
        places: list[int] = []
        if meter.aggregate == "sum":
            for k, fld in enumerate(meter.fields):
                term, p = _sum_term(fld)
                aggs.append(F.sum(term).alias(f"s{k}"))
                places.append(p)
        out = ScalarMeterValue()
        users: dict[str, Decimal] = {}
        owner_days: dict[date, Decimal] = {}
        try:
            rows = counted.groupBy(*keys).agg(*aggs).collect()
        except _overflow() as exc:
            raise _too_large(meter, exc) from None
        with exact_arithmetic():
            for r in rows:
                n = int(r["n"])
                value = (Decimal(n) if meter.aggregate == "count" else
                         sum((_exact(r[f"s{k}"], p) for k, p in enumerate(places)), Decimal(0)))
                out.events += n
                out.owner += value
                users[r["user_id"]] = users.get(r["user_id"], Decimal(0)) + value
                if daily:
                    d = r["_day"]
                    owner_days[d] = owner_days.get(d, Decimal(0)) + value
                    out.daily_users.setdefault(r["user_id"], {})[d] = value
        out.users = dict(sorted(users.items()))
        if daily:
            out.daily_owner = dict(sorted(owner_days.items()))
            out.daily_users = {u: dict(sorted(ds.items()))
                               for u, ds in sorted(out.daily_users.items())}
        return out

    def _distinct_meter(self, m: Meter, window: Window, daily: bool) -> ScalarMeterValue:
        F = _F()
        uv = self._values_of(m, window).groupBy("user_id", "v").agg(F.min("_day").alias("fd"))
        none_u, none_d = F.lit(None).cast("string"), F.lit(None).cast("date")
        parts = [uv.agg(F.lit(1).alias("k"), none_u.alias("u"), none_d.alias("d"),
                        F.count_distinct("v").alias("n")),
                 uv.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"))
                 .select(F.lit(0).alias("k"), F.col("user_id").alias("u"), none_d.alias("d"), "n"),
                 self._window(window).filter(self._cond(m, window))
                 .agg(F.lit(4).alias("k"), none_u.alias("u"), none_d.alias("d"),
                      F.count(F.lit(1)).alias("n"))]
        if daily:
            parts.append(uv.groupBy("v").agg(F.min("fd").alias("d")).groupBy("d")
                         .agg(F.count(F.lit(1)).alias("n"))
                         .select(F.lit(2).alias("k"), none_u.alias("u"), "d", "n"))
            parts.append(uv.groupBy("user_id", "fd").agg(F.count(F.lit(1)).alias("n"))
                         .select(F.lit(3).alias("k"), F.col("user_id").alias("u"),
                                 F.col("fd").alias("d"), "n"))
        rows = functools.reduce(lambda a, b: a.unionByName(b), parts).collect()
        out = ScalarMeterValue()
        for r in sorted(rows, key=lambda r: (r["k"], str(r["u"]), r["d"] or date.min)):
            k, n = r["k"], Decimal(r["n"])
            if k == 1:
                out.owner = n
            elif k == 0:
                out.users[r["u"]] = n
            elif k == 4:
                out.events = int(n)
            elif k == 2:
                out.daily_owner[r["d"]] = n
            else:
                out.daily_users.setdefault(r["u"], {})[r["d"]] = n
        return out


# -------------------------------------------------------------------- where the events come from

def export_window_events(con: duckdb.DuckDBPyConnection, window: Window, folder: Path) -> Path:
    """The events a report of ``window`` reads, written from the database to a Parquet file in
    ``folder`` for Spark to read (the owner's events of the period up to as-of; the columns a
    scalar meter can read). Streams in Arrow batches: memory does not grow with the events."""
    import pyarrow.parquet as pq

    from usagectl.store.db import EVENT_TYPES

    required = {f for m in window.contract.meters for f in m.require}
    # Identifiers from the table's fixed column list; a geometry or attributes column only
    # when a meter requires it (its presence is all a scalar meter reads of it).
    columns = ", ".join(c if c not in _NOT_EXPORTED else
                        ("CAST(attributes AS VARCHAR) AS attributes" if c == "attributes" else c)
                        for c in EVENT_TYPES if c not in _NOT_EXPORTED or c in required)
    where, params = window_conditions(window)
    path = folder / "events.parquet"
    # Its own cursor: a streamed result must not stay open on the caller's connection.
    with con.cursor() as cur:
        reader = cur.sql(f"SELECT {columns} FROM events WHERE {' AND '.join(where)}",
                         params=params).to_arrow_reader(100_000)
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    return path


def window_months(window: Window) -> list[str]:
    """The ``month=`` folders (``YYYY-MM`` of ``ts`` in UTC) that hold the events a scalar meter
    of ``window`` can read: the period's months up to as-of."""
    first = window.period.start.astimezone(UTC)
    last = min(window.period.end - timedelta(microseconds=1), window.as_of).astimezone(UTC)
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month) or not months:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def read_events_dataset(spark: SparkSession, path: str, window: Window,
                        through: str | None = None) -> DataFrame:
    """The events of ``window``'s owner in the dataset ``export --events`` wrote at ``path`` (a
    folder or a URI), pruned to the owner's folder and the window's months (docs/spark.md
    "Events from a dataset"); with ``through`` (``YYYY-MM``), to every month up to that one
    instead (what area meters read: earlier periods count under some policies).

    Spark reads the owner's folder with ``basePath`` at the dataset's root, so ``owner`` and
    ``month`` stay columns, with partition type inference off for the read (an owner ``007``
    stays the string ``007``); the months are a filter on the ``month`` column, which Spark
    prunes before listing files. The meters still filter on ``owner_id``, read from the files.
    An owner without a folder reads the whole dataset filtered to nothing of it: the schema
    still comes from the files.
    """
    from pyspark.errors import AnalysisException

    from usagectl.engines import is_uri
    from usagectl.errors import IOFailure
    from usagectl.store.events_dataset import dataset_files, owner_folder

    F = _F()
    owner = window.contract.owner
    root = path.rstrip("/") or path
    folder = f"{root}/{owner_folder(owner)}"
    if not is_uri(path):
        dataset_files(path)  # a clear error for a missing folder, a newer layout, no files
        if not Path(folder).is_dir():
            folder = root
    key = "spark.sql.sources.partitionColumnTypeInference.enabled"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "false")
    try:
        try:
            frame = spark.read.option("basePath", root).parquet(folder)
        except AnalysisException as exc:
            if folder == root or "PATH_NOT_FOUND" not in str(exc):
                raise
            frame = spark.read.option("basePath", root).parquet(root)  # no folder for the owner
    except AnalysisException as exc:
        raise IOFailure(f"cannot read the events dataset {path}: "
                        f"{str(exc).strip().splitlines()[0][:300]}", {"path": path}) from None
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
    if "owner" not in frame.columns:  # a dataset without events: one file, no folders
        return frame
    months = (F.col("month") <= F.lit(through) if through is not None
              else F.col("month").isin(window_months(window)))
    return frame.filter((F.col("owner") == F.lit(owner)) & months)


@contextlib.contextmanager
def spark_scalars(con: duckdb.DuckDBPyConnection, window: Window, master: str | None = None,
                  events: str | None = None) -> Iterator[SparkScalars]:
    """The Spark engine for one report: a session (:func:`usagectl.engines.spark.spark_session`)
    over ``events`` (a dataset ``export --events`` wrote: a folder or a URI Spark reads), or
    else over the window's events exported from ``con`` to a temporary Parquet folder that is
    removed afterwards."""
    from usagectl.engines.spark import spark_session

    with spark_session(master) as spark:
        if events is not None:
            yield SparkScalars(spark, read_events_dataset(spark, events, window))
            return
        with tempfile.TemporaryDirectory(prefix="usagectl-spark-") as tmp:
            path = export_window_events(con, window, Path(tmp))
            yield SparkScalars(spark, spark.read.parquet(str(path)))
