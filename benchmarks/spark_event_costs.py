"""Per-stage costs of the scalar meters on Spark (docs/spark.md, "A model on paper: 100M events").

Writes ``N`` generated token events (benchmarks/events_gen.py's rows, in the events table's
columns and types) to one Parquet file with DuckDB, then times, on a ``local[2]`` session, the
stages a report's scalar meters are made of, each as its own Spark job over that file:

* ``scan``: read one column of every row (``count(user_id)``);
* ``filter``: the window's and a count meter's conditions, then count the rows left;
* ``aggregate``: a sum meter per user (exact DECIMAL(38, 0) token sums);
* ``distinct``: a distinct meter (``user_id``) per user and owner;
* ``scan all``: the consolidated view's one pass over every meter (``SparkScalars.scan``).

Each stage runs ``--repeat`` times after one warm-up; the median wall time and the CPU seconds
of the JVM (executors' work: ``local[2]`` runs them inside the driver's JVM) are printed.
Run it at two sizes back to back and take differences: what grows with the rows is the
per-row cost, the rest is fixed (scheduling, planning, the driver's collect)::

    .venv/bin/python benchmarks/spark_event_costs.py 1000000 5000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.area_spark_costs import jvm_pid, tree_cpu  # noqa: E402
from benchmarks.events_gen import AS_OF, CONTRACT, CONTRACT_ID, select_sql  # noqa: E402


def write_events(n: int, path: Path) -> None:
    """``n`` events with the events table's columns the scalar meters read, as Parquet."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"""
COPY (SELECT owner_id, event_id, CAST(ts AS TIMESTAMPTZ) AS ts, user_id, NULL::VARCHAR AS org_id,
        product, 'process' AS action, status = 200 AS succeeded,
        CASE WHEN status = 200 THEN NULL ELSE CAST(status AS VARCHAR) END AS error_code,
        endpoint, NULL::VARCHAR AS operation, NULL::VARCHAR AS dataset_id,
        CASE WHEN indicator_ids = '' THEN NULL ELSE string_split(indicator_ids, ',') END
          AS indicator_ids,
        input_tokens, output_tokens, NULL::BIGINT AS thinking_tokens,
        CAST(credits AS DECIMAL(38, 9)) AS credits, NULL::DOUBLE AS response_time_ms,
        CAST(ts AS TIMESTAMPTZ) AS ingested_at
      FROM ({select_sql(n)}))
TO '{path}' (FORMAT parquet)""")


def measure(label: str, job, repeat: int, jvm: int) -> tuple[float, float]:  # noqa: ANN001
    job()  # warm-up: code generation, the Python worker, the file's footer
    walls, cpus = [], []
    for _ in range(repeat):
        j0 = sum(tree_cpu(jvm))
        t = time.perf_counter()
        job()
        walls.append(time.perf_counter() - t)
        cpus.append(sum(tree_cpu(jvm)) - j0)
    w, c = statistics.median(walls), statistics.median(cpus)
    print(f"  {label:<10} wall {w:6.2f} s   JVM CPU {c:6.2f} s", flush=True)
    return w, c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from usagectl.contracts import load_contracts_file, parse_as_of, resolve_period
    from usagectl.engines.spark import spark_session
    from usagectl.engines.spark_scalars import SparkScalars
    from usagectl.meters.select import Window

    with tempfile.TemporaryDirectory(prefix="spark-costs-") as tmp:
        toml = Path(tmp, "c.toml")
        toml.write_text(CONTRACT)
        contract = next(c for c in load_contracts_file(str(toml)) if c.id == CONTRACT_ID)
        now = parse_as_of(AS_OF)
        window = Window(contract, resolve_period(contract, None, now), now)
        meters = {m.aggregate: m for m in contract.meters}
        today = window.last_day
        t = time.perf_counter()
        with spark_session(args.master) as spark:
            print(f"session start: {time.perf_counter() - t:.1f} s", flush=True)
            jvm = jvm_pid()
            results = {}
            for n in args.sizes:
                path = Path(tmp, f"events-{n}.parquet")
                write_events(n, path)
                print(f"{n:,} events ({path.stat().st_size / 1e6:.0f} MB Parquet)", flush=True)
                s = SparkScalars(spark, spark.read.parquet(str(path)))
                stages = {
                    "scan": lambda s=s: s.events.agg(F.count("user_id")).collect(),
                    "filter": lambda s=s: s._window(window).filter(
                        s._cond(meters["count"], window)).agg(F.count(F.lit(1))).collect(),
                    "aggregate": lambda s=s: s.meter(meters["sum"], window),
                    "distinct": lambda s=s: s.meter(meters["distinct"], window),
                    "scan all": lambda s=s: s.scan(
                        contract.meters, window, by_user=False, extras=True,
                        days=(today - timedelta(days=13), today)),
                }
                results[n] = {k: measure(k, job, args.repeat, jvm) for k, job in stages.items()}
                path.unlink()
            if len(args.sizes) >= 2:
                a, b = args.sizes[0], args.sizes[-1]
                print(f"per-row (from {a:,} to {b:,}) and fixed cost, JVM CPU:")
                for k in results[a]:
                    per = (results[b][k][1] - results[a][k][1]) / (b - a)
                    fixed = results[a][k][1] - per * a
                    wper = (results[b][k][0] - results[a][k][0]) / (b - a)
                    print(f"  {k:<10} {per * 1e9:8.0f} ns CPU/row, fixed {fixed:6.2f} s CPU; "
                          f"wall {wper * 1e9:6.0f} ns/row, fixed "
                          f"{results[a][k][0] - wper * a:5.2f} s")


if __name__ == "__main__":
    main()
