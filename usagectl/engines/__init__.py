"""Where a report's meters are computed: the local engine (DuckDB on this machine) or Spark.

``--engine local`` (the default) reads the DuckDB file; ``--engine spark`` computes the count,
sum and distinct meters as Spark SQL over a DataFrame of events, and the area meters' blocks
of tiles in Spark's Python workers (:mod:`usagectl.meters.area_spark`; docs/spark.md). Both answer
the same two questions — every scalar meter of a report in one pass (:meth:`ScalarEngine.scan`)
and one meter with its per-day series (:meth:`ScalarEngine.meter`) — with the same dataclasses,
so the report views build the same JSON from either. Nothing here imports pyspark: it loads only
when the Spark engine is asked for.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import duckdb

    from usagectl.contracts import Meter
    from usagectl.meters.scalar import ScalarMeterValue
    from usagectl.meters.scan import ScalarScan
    from usagectl.meters.select import Window

#: The values of ``--engine``; the first is the default.
ENGINES = ("local", "spark")
#: The report views ``--engine spark`` computes (the others read the database directly).
SPARK_VIEWS = ("consolidated", "users", "daily")
#: A path with a scheme (``s3a://``, ``abfss://``, ``hdfs://``, ``file://``): read by Spark only.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: The name the report views read events under (the database's table, or a dataset's view).
EVENTS = "events"


class ScalarEngine(Protocol):
    """What the report views ask an engine for: count, sum and distinct meter figures."""

    def scan(self, meters: tuple[Meter, ...], window: Window, *, by_user: bool = True,
             days: tuple[date, date] | None = None, extras: bool = False,
             counted: bool = False) -> ScalarScan:
        """As :func:`usagectl.meters.scan.scan_scalar_meters`."""
        ...

    def meter(self, meter: Meter, window: Window, *, daily: bool = False) -> ScalarMeterValue:
        """As :func:`usagectl.meters.scalar.compute_scalar_meter`."""
        ...


class LocalScalars:
    """The local engine: DuckDB queries on the open database."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def scan(self, meters: tuple[Meter, ...], window: Window, *, by_user: bool = True,
             days: tuple[date, date] | None = None, extras: bool = False,
             counted: bool = False) -> ScalarScan:
        from usagectl.meters.scan import scan_scalar_meters

        return scan_scalar_meters(self.con, meters, window, by_user=by_user, days=days,
                                  extras=extras, counted=counted)

    def meter(self, meter: Meter, window: Window, *, daily: bool = False) -> ScalarMeterValue:
        from usagectl.meters.scalar import compute_scalar_meter

        return compute_scalar_meter(self.con, meter, window, daily=daily)


@contextlib.contextmanager
def open_engine(engine: str, con: duckdb.DuckDBPyConnection, window: Window,
                spark_master: str | None = None, events: str | None = None
                ) -> Iterator[ScalarEngine]:
    """The scalar engine a report runs on: ``local``, or ``spark`` over ``events`` (a Parquet
    path or URI) or else the window's events exported from ``con``
    (:func:`usagectl.engines.spark_scalars.spark_scalars`)."""
    if engine == "local":
        yield LocalScalars(con)
        return
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}")
    from usagectl.engines.spark_scalars import spark_scalars
    from usagectl.meters import area
    from usagectl.meters.area_spark import spark_executor

    with spark_scalars(con, window, spark_master, events) as scalars:
        # Area meters: the tiles no cache holds run as blocks in Spark's Python workers.
        with area.executing(spark_executor(scalars.spark)):
            yield scalars


@contextlib.contextmanager
def area_engine(engine: str, spark_master: str | None = None) -> Iterator[object | None]:
    """Where area meters' blocks of tiles run, for a command without scalar meters
    (``overlap``): ``local`` yields None (the local engine chooses in process or its pool);
    ``spark`` starts a session (:func:`usagectl.engines.spark.spark_session`), runs every
    block computed inside on it (:func:`usagectl.meters.area_spark.spark_executor`) and
    yields the session."""
    if engine == "local":
        yield None
        return
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}")
    from usagectl.engines.spark import spark_session
    from usagectl.meters import area
    from usagectl.meters.area_spark import spark_executor

    with spark_session(spark_master) as spark, area.executing(spark_executor(spark)):
        yield spark


def is_uri(path: str) -> bool:
    """True for a URI Spark reads (``s3a://bucket/events``), False for a local folder."""
    return bool(_URI.match(path))


@contextlib.contextmanager
def dataset_connection(path: str, owner: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection whose ``events`` are ``owner``'s events in the dataset
    ``export --events`` wrote to the local folder ``path``: what ``report --engine spark --events
    DIR`` computes an area meter, the events a mixed contract counted, and the notes from, so
    that every figure comes from the same events as Spark's (docs/spark.md "Events from a
    dataset"). A lazy view: DuckDB reads the files as the queries need them."""
    import duckdb

    from usagectl.store.events_dataset import read_events_dataset

    con = duckdb.connect()
    try:
        read_events_dataset(con, path, owner).create_view(EVENTS)
        yield con
    finally:
        con.close()
