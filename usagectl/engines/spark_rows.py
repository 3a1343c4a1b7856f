"""The rows area meters read, for ``--events URI``: selected by Spark, handed to DuckDB.

An area meter's geometries are chosen by DuckDB SQL (boundary policies, audit timelines, derived
operations: :mod:`usagectl.meters.unique_area`, :mod:`usagectl.meters.operations`) and planned
into blocks of tiles on the driver. When the events are a dataset only Spark can read (``s3a://…``,
``abfss://…``, ``file://…``: any URI), the driver cannot open the files with DuckDB. Instead,
Spark reads the dataset, keeps only the rows those queries can look at, and sends them to the
driver as Arrow (``DataFrame.toArrow``); they become the ``events`` table of an in-memory DuckDB
connection, on which the same queries run. So the area figures come from the same rows as with
a local folder, and are bit-identical (docs/spark.md "Area meters from a URI").

Which rows (a superset of what any of the queries selects; each query still applies its own
conditions):

* the owner's (``owner_id``), at or before ``as_of``, ingested by ``--as-ingested-at``; only the
  dataset's ``month`` folders up to as-of's month are listed (earlier periods count for the
  ``active`` and ``audit`` policies and for derived operations, so no lower bound);
* of the products the area meters count, plus ``FIELDS_BOUNDARY``, ``OPERATIONS_FILE`` and
  ``OPERATIONS_OPERATION`` for a ``derive_operations`` meter (every product when a meter has
  no product filter);
* when count, sum or distinct meters are picked too, every event of the period (the events
  and users the report counted are taken over all its meters).

The whole row (every column of the events table) travels: ``attributes`` holds an operation's
``file_id``; ``geometry`` is the stored WKB, byte for byte.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC
from typing import TYPE_CHECKING

import duckdb

from usagectl.contracts import Meter
from usagectl.meters.scan import is_scalar
from usagectl.meters.select import Window

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: Products a ``derive_operations`` meter reads besides its own (files, boundaries, operations).
DERIVE_PRODUCTS = ("FIELDS_BOUNDARY", "OPERATIONS_FILE", "OPERATIONS_OPERATION")


def last_month(window: Window) -> str:
    """``YYYY-MM`` (UTC) of as-of: the last ``month=`` folder an area meter of ``window`` can
    read (audit mode counts boundaries up to as-of, even after the period's end)."""
    last = window.as_of.astimezone(UTC)
    return f"{last.year:04d}-{last.month:02d}"


def products_read(meters: tuple[Meter, ...]) -> list[str] | None:
    """The products the area meters' queries can select, or None for every product."""
    products: set[str] = set()
    for m in meters:
        if is_scalar(m):
            continue
        if m.all_products:
            return None
        products.update(m.products)
        if m.derive_operations:
            products.update(DERIVE_PRODUCTS)
    return sorted(products)


def rows_condition(window: Window, meters: tuple[Meter, ...]) -> Column:
    """The Spark condition of the rows the area meters (and, for a mixed pick, the count, sum
    and distinct meters' counted events) of ``window`` can read."""
    from pyspark.sql import functions as F

    from usagectl.engines.spark_scalars import micros

    cond = ((F.col("owner_id") == F.lit(window.contract.owner))
            & (F.unix_micros(F.col("ts")) <= F.lit(micros(window.as_of))))
    if window.as_ingested_at is not None:
        cond = cond & (F.unix_micros(F.col("ingested_at")) <= F.lit(micros(window.as_ingested_at)))
    products = products_read(meters)
    wanted = F.lit(True) if products is None else F.col("product").isin(products)
    if any(is_scalar(m) for m in meters):
        ts = F.unix_micros(F.col("ts"))
        wanted = wanted | ((ts >= F.lit(micros(window.period.start)))
                           & (ts < F.lit(micros(window.period.end))))
    return cond & F.coalesce(wanted, F.lit(False))


def area_rows(spark: SparkSession, path: str, window: Window, meters: tuple[Meter, ...]
              ) -> DataFrame:
    """The rows of the dataset at ``path`` that ``meters`` can read, with the events table's
    columns in its order."""
    from usagectl.engines.spark_scalars import read_events_dataset
    from usagectl.store.db import EVENT_TYPES

    frame = read_events_dataset(spark, path, window, through=last_month(window))
    return frame.filter(rows_condition(window, meters)).select(*EVENT_TYPES)


@contextlib.contextmanager
def area_connection(spark: SparkSession, path: str, window: Window, meters: tuple[Meter, ...]
                    ) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection whose ``events`` table holds the rows of ``path`` (a URI
    Spark reads) that ``meters`` of ``window`` can read, with the events table's types."""
    from usagectl.engines import EVENTS
    from usagectl.store.db import EVENT_TYPES

    table = area_rows(spark, path, window, meters).toArrow()
    con = duckdb.connect()
    try:
        con.register("spark_rows", table)
        cols = []
        for name, typ in EVENT_TYPES.items():
            field = table.schema.field(name)
            # Spark hands timestamps over as UTC instants; without a zone in the Arrow type
            # they are read as UTC explicitly (never in this machine's zone).
            if typ == "TIMESTAMPTZ" and getattr(field.type, "tz", None) is None:
                cols.append(f"timezone('UTC', {name}) AS {name}")
            else:
                cols.append(f"CAST({name} AS {typ}) AS {name}")
        con.execute(f"CREATE TABLE {EVENTS} AS SELECT {', '.join(cols)} FROM spark_rows")
        con.unregister("spark_rows")
        del table
        yield con
    finally:
        con.close()
