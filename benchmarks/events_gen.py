"""Synthetic token events for the speed benchmarks, written by DuckDB from one SELECT.

The rows are the same in every format: a pure function of the row number (DuckDB ``hash``), so
the CSV, the JSON Lines and the Parquet file hold the same events and a rerun writes the same
bytes. The shape follows ``ingest_memory.py``'s generator (which writes row by row in Python and
is too slow for 10M rows): one owner, 200 users, five products, endpoints, an HTTP status
(93 % 200), input/output tokens on token products, decimal credits, a quoted ``"1,2,3"``
indicator list on 30 % of rows and a free-text ``note`` (an extra column, kept in
``attributes``), with timestamps spread over 2026. Every row is valid.

``ts`` is an ISO string with ``Z`` in the CSV and JSON Lines, and a Parquet timestamp in the
Parquet file (what each format's writers produce in the field).

Polygons for the geometry benchmarks come from ``area_gen.py`` and are written here as
GeoParquet (``geopandas.GeoDataFrame.to_parquet``: WKB with the ``geo`` metadata) and as GeoJSON.

Usage::

    .venv/bin/python benchmarks/events_gen.py 1000000 /tmp/ev  # ev.csv, ev.jsonl, ev.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

OWNER = "terra-tokens"
CONTRACT_ID = "tokens-2026"
PRODUCTS = ("API_TOKENS", "chat", "verify", "describe", "DATASETS")
TOKEN_PRODUCTS = ("API_TOKENS", "chat")
ENDPOINTS = ("/v1/parcels", "/v1/soil", "/v1/chat", "/datasets", "/datasets/search", "/health")
NOTES = ("", "", "", "client=web", "client=cli v2.3", "retry after 429", "batch job, nightly",
         'said "hello"', "sdk=python-1.4.2; region=us-east-1")
FORMATS = ("csv", "jsonl", "parquet")
YEAR_START = "2026-01-01 00:00:00"
SPAN_S = 364 * 86_400
AS_OF = "2026-12-31T23:00:00Z"

#: The contract the report benchmarks price: one meter of each SQL aggregate usagectl has
#: besides unique area (sum, count, distinct), over the whole year, so that every event counts.
CONTRACT = f"""[[contract]]
id = "{CONTRACT_ID}"
owner = "{OWNER}"
start = 2026-01-01
cycle = "annual"
timezone = "UTC"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens"]
  products = ["API_TOKENS", "chat"]
  billed_on = "owner"
  included = 1000000000
  overage_unit = 1000
  overage_cents_per_unit = 4

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  billed_on = "owner"

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
  billed_on = "owner"
"""


def _list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def select_sql(n: int) -> str:
    """The SELECT that makes ``n`` events (typed columns; ``ts`` a TIMESTAMP in UTC).

    ``n`` is an int (formatted with ``%d``), the lists are the constants above: no outside text
    reaches the SQL.
    """
    n = int(n)
    h = "hash(i, {k})"  # one independent pseudo-random 64-bit value per (row, k)

    def r(k: int, m: int) -> str:
        return f"CAST({h.format(k=k)} % {m} AS BIGINT)"

    return f"""
SELECT
  printf('ev-%09d-%08x', i, {r(1, 4294967296)}) AS event_id,
  TIMESTAMP '{YEAR_START}' + to_seconds((i * {SPAN_S} // {max(n, 1)}) + {r(2, 60)}) AS ts,
  '{OWNER}' AS owner_id,
  printf('user-%03d', {r(3, 200)}) AS user_id,
  {_list(PRODUCTS)}[1 + {r(4, len(PRODUCTS))}] AS product,
  {_list(ENDPOINTS)}[1 + {r(5, len(ENDPOINTS))}] AS endpoint,
  CASE WHEN {r(6, 100)} < 93 THEN 200 WHEN {r(6, 100)} < 97 THEN 429 ELSE 500 END AS status,
  CASE WHEN product IN {tuple(TOKEN_PRODUCTS)} THEN 20 + {r(7, 3980)} ELSE 0 END
    AS input_tokens,
  CASE WHEN product IN {tuple(TOKEN_PRODUCTS)} THEN {r(8, 2000)} ELSE 0 END AS output_tokens,
  CAST({r(9, 500000)} * 0.0001 AS DECIMAL(18, 4)) AS credits,
  CASE WHEN {r(10, 10)} < 3
       THEN array_to_string(list_transform(range(1 + CAST({r(11, 5)} AS INTEGER)),
                                           lambda x: CAST(800 + hash(i, x, 12) % 300 AS VARCHAR)), ',')
       ELSE '' END AS indicator_ids,
  {_list(NOTES)}[1 + {r(13, len(NOTES))}] AS note
FROM range({n}) t(i)

"""


def write(n: int, out_base: Path, formats: tuple[str, ...] = FORMATS,
          log=lambda m: None) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """Write ``n`` events as ``out_base``.csv/.jsonl/.parquet; returns format → path."""
    import time

    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    base = select_sql(n)
    text_ts = ("SELECT * REPLACE (strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts) FROM (" + base + ")")
    paths: dict[str, Path] = {}
    for fmt in formats:
        path = Path(f"{out_base}.{fmt}")
        quoted = str(path).replace("'", "''")
        t0 = time.monotonic()
        if fmt == "csv":
            con.execute(f"COPY ({text_ts}) TO '{quoted}' (FORMAT csv, HEADER true)")
        elif fmt == "jsonl":
            con.execute(f"COPY ({text_ts}) TO '{quoted}' (FORMAT json)")
        elif fmt == "parquet":
            con.execute(f"COPY (SELECT * REPLACE (ts AT TIME ZONE 'UTC' AS ts) FROM ({base})) "
                        f"TO '{quoted}' (FORMAT parquet)")
        else:
            raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        log(f"generated {path.name}: {n:,} rows, {path.stat().st_size / 2**20:,.0f} MiB "
            f"in {time.monotonic() - t0:.0f} s")
        paths[fmt] = path
    con.close()
    return paths


def count_rows(path: Path) -> int:
    """Rows in a generated file, read back by DuckDB (for the tests and the fallback)."""
    import duckdb

    reader = {".csv": "read_csv", ".jsonl": "read_json", ".parquet": "read_parquet"}[path.suffix]
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT count(*) FROM {reader}(?)", [str(path)]).fetchone()[0]
    finally:
        con.close()


# --------------------------------------------------------------------------------- polygons


def write_polygons(n: int, path: Path, fmt: str, *, seed: int = 42) -> int:
    """``n`` field-boundary events from ``area_gen.generate`` as GeoParquet or GeoJSON."""
    import geopandas
    import numpy as np
    import shapely

    import area_gen

    table = area_gen.generate(n, seed=seed)
    frame = table.drop_columns(["geometry"]).to_pandas()
    geoms = shapely.from_wkb(np.asarray(table.column("geometry").to_pylist(), dtype=object))
    gdf = geopandas.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")
    if fmt == "geoparquet":
        gdf.to_parquet(path)
    elif fmt == "geojson":
        gdf["ts"] = gdf["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        gdf.to_file(path, driver="GeoJSON")
    else:
        raise ValueError(f"unknown polygon format {fmt!r}: geoparquet or geojson")
    return len(gdf)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out_base", type=Path, help="path without suffix")
    ap.add_argument("--formats", default=",".join(FORMATS))
    args = ap.parse_args(argv)
    write(args.n, args.out_base, tuple(args.formats.split(",")), log=print)
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
