"""Per-block costs of the area engine on Spark (docs/spark.md, "Geometry on Spark").

Measures, on ``N`` generated fields (benchmarks/area_gen.py; overlap, pairs and daily figures):
the driver's plan (reads and tiles every geometry), ``run_block`` in process (CPU seconds per
1,000 pieces), turning the blocks into rows for Spark, one Spark job on ``local[2]`` per block
size (wall time against the in-process kernel time shared by 2 cores: the rest is Spark's
overhead), tiny jobs (overhead per job and per block) and gather/combine on the driver::

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python benchmarks/area_spark_costs.py 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import shapely

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.area_gen import generate  # noqa: E402
from usagectl.meters import area  # noqa: E402
from usagectl.meters.area_spark import block_table, spark_executor  # noqa: E402

FLAGS = {"overlap": True, "pairs": True, "daily": True}


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(t: tuple[float, float]) -> tuple[float, float]:
    w, c = clock()
    return w - t[0], c - t[1]


def _stat(pid: int) -> tuple[int, float] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(parts[1]), (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> tuple[float, float]:
    """CPU seconds of ``root`` (the JVM) and of all its descendants (Spark's Python workers)."""
    stats = {int(p): _stat(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        if st:
            children.setdefault(st[0], []).append(pid)
    own = stats.get(root)
    below, todo = 0.0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        below += stats[pid][1] if stats.get(pid) else 0.0
        todo.extend(children.get(pid, []))
    return (own[1] if own else 0.0), below


def jvm_pid() -> int:
    kids = [int(p) for p in os.listdir("/proc") if p.isdigit()
            and (_stat(int(p)) or (0,))[0] == os.getpid()]
    return next(p for p in kids if "java" in open(f"/proc/{p}/cmdline").read())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=100_000)
    ap.add_argument("--blocks", type=int, nargs="*", default=[2_000, 10_000, 50_000])
    a = ap.parse_args()
    t = generate(a.n)
    s = clock()
    geoms = shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
    print(f"read WKB (driver): {since(s)[1]:.2f} s CPU")
    users = np.asarray(t.column("user_id").to_pylist(), dtype=object)
    ts = t.column("ts").cast("timestamp[us]").to_numpy()
    days = ts.astype("datetime64[D]").astype(np.int64)
    data = area.AreaInput(geoms, users, days)
    opts = area.options(**FLAGS)
    print(f"fields {a.n:,}")

    s = clock()
    p = area.plan(data, opts, block_pieces=10_000)
    w, c = since(s)
    print(f"plan (driver): {w:.2f} s wall, {c:.2f} s CPU, {p.pieces:,} pieces, "
          f"{len(p.keys):,} tiles -> {1e3 * c / a.n:.3f} s CPU per 1,000 geometries")

    s = clock()
    local = [area.run_block(b) for b in p.blocks]
    w, c = since(s)
    print(f"run_block in process: {c:.2f} s CPU -> {1e3 * c / p.pieces:.3f} s CPU per 1,000 pieces")
    kernel = c

    s = clock()
    tiles = area.gather(p, local)
    res = area.combine(tiles, overlap=True)
    w, c = since(s)
    print(f"gather+combine (driver): {c:.2f} s CPU")

    s = clock()
    table = block_table(p.blocks)
    w, c = since(s)
    print(f"block_table (driver): {c:.2f} s CPU, {table.nbytes / 1e6:.1f} MB of rows")

    from pyspark.sql import SparkSession
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    s = clock()
    spark = (SparkSession.builder.master("local[2]").appName("usagectl-area-costs")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
             .config("spark.driver.memory", "2g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    print(f"session start: {since(s)[0]:.1f} s")
    try:
        tiny = [b for b in area.plan(area.AreaInput(geoms[:200], users[:200], days[:200]), opts,
                                     block_pieces=1).blocks]
        jvm = jvm_pid()
        for label, blocks in [("warm-up, 1 tiny block", tiny[:1]), ("1 tiny block", tiny[:1]),
                              ("1 tiny block", tiny[:1]),
                              (f"{len(tiny[:64])} tiny blocks", tiny[:64])]:
            s = clock()
            j0, p0 = tree_cpu(jvm)
            list(spark_executor(spark, 2)(area.run_block, blocks))
            w, c = since(s)
            j1, p1 = tree_cpu(jvm)
            print(f"job, {label}: {w:.2f} s wall; CPU: JVM {j1 - j0:.2f} s, "
                  f"Python workers {p1 - p0:.2f} s, driver {c:.2f} s")
        jvm = jvm_pid()
        for bp in a.blocks:
            pb = area.plan(data, opts, block_pieces=bp)
            j0, p0 = tree_cpu(jvm)
            s = clock()
            tiles = area.gather(pb, spark_executor(spark, 2)(area.run_block, pb.blocks))
            w, c = since(s)
            j1, p1 = tree_cpu(jvm)
            print(f"  CPU: JVM {j1 - j0:.1f} s, Python workers {p1 - p0:.1f} s "
                  f"(kernel in process {kernel:.1f} s), driver {c:.1f} s")
            got = area.combine(tiles, overlap=True)
            same = got.owner == res.owner and got.users == res.users and got.pairs == res.pairs
            print(f"spark, block {bp:,}: {len(pb.blocks)} blocks, {w:.1f} s wall "
                  f"(kernel alone on 2 cores: {kernel / 2:.1f} s; overhead {w - kernel / 2:.1f} s, "
                  f"{(w - kernel / 2) / len(pb.blocks):.3f} s per block), driver CPU {c:.1f} s, "
                  f"identical={same}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
