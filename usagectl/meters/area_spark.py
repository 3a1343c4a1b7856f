"""The area engine's blocks on Apache Spark: an executor for the seam of ``usagectl.meters.area``.

Imported only when Spark is asked for (pyspark is the optional ``spark`` extra). Nothing here
starts a session: ``spark_executor`` takes one and returns an executor, called like ``map``::

    with area.executing(spark_executor(spark)):
        ...  # every area figure computed inside runs its blocks on Spark

What runs where (docs/spark.md, "Geometry on Spark"): ``area.plan`` on the driver (it cuts every
geometry by the tile grid and groups whole tiles into blocks); each block's rows
(``Block.columns``, WKB pieces) go to Spark as one DataFrame with a block id, are grouped by block
(``groupBy(block).applyInPandas``) and each group runs ``area.run_block`` in a Python worker on
``Block.from_columns``; the per-tile results come back as JSON rows (``BlockResult.rows``) and
are collected on the driver, where ``area.gather``/``area.combine`` add them up in a fixed tile
order. Since a tile's figures depend only on its own pieces, which are sorted canonically inside
the kernel, and the rows carry every coordinate's bits (WKB) and every float's (JSON), the
figures are the local engine's to the last bit for any partition count and block size.

Workers import ``usagectl`` (and shapely, pyproj, numpy, pandas, pyarrow): on ``local[*]`` set
``PYSPARK_PYTHON`` to the interpreter that has usagectl installed; on a cluster ship the same
environment to the executors (a packed virtual environment, docs/spark.md).
"""

from __future__ import annotations

import contextlib

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from usagectl.meters import area
from usagectl.meters.area import Block, BlockResult, Executor

#: The result rows' schema: the block, the tile key and the tile's figures (``AreaResult`` JSON).
RESULT_SCHEMA = "block long, tx long, ty long, result string"


def block_table(blocks: Sequence[Block]) -> pa.Table:
    """Every piece of ``blocks`` as one Arrow table: ``block`` (its index) and ``Block.columns``.

    Exact: int64 tile keys and days, WKB bytes, user strings (what ``Block.from_columns`` reads).
    """
    parts = []
    for i, block in enumerate(blocks):
        cols = block.columns()
        n = len(block)
        parts.append(pa.table({
            "block": pa.array(np.full(n, i, dtype=np.int64)),
            "tx": pa.array(np.asarray(cols["tx"], dtype=np.int64)),
            "ty": pa.array(np.asarray(cols["ty"], dtype=np.int64)),
            "wkb": pa.array(list(cols["wkb"]), type=pa.binary()),
            "user": pa.array([str(u) for u in cols["user"]], type=pa.string()),
            **({"day": pa.array(np.asarray(cols["day"], dtype=np.int64))} if "day" in cols else {}),
            "clipped": pa.array(np.asarray(cols["clipped"], dtype=bool)),
        }))
    return pa.concat_tables(parts)


def _block_rows(fn: Callable[[Block], BlockResult], options: area.Options
                ) -> Callable[[Any], Any]:
    """The function each Spark group runs: rows of one block → its per-tile result rows."""
    def run(pdf: Any) -> Any:
        # Worker side: imports here, so the closure pickles small and the worker's own
        # environment provides the packages.
        import pandas as pd

        from usagectl.meters.area import Block as _Block

        if len(pdf) == 0:
            return pd.DataFrame({"block": [], "tx": [], "ty": [], "result": []})
        block = _Block.from_columns(pdf, options)
        rows = fn(block).rows()
        return pd.DataFrame({"block": [int(pdf["block"].iloc[0])] * len(rows),
                             "tx": [r[0] for r in rows], "ty": [r[1] for r in rows],
                             "result": [r[2] for r in rows]})
    return run


def spark_executor(spark: Any, partitions: int | None = None) -> Executor:
    """An executor for ``area`` that runs the blocks on ``spark`` (a SparkSession, classic or
    Connect), in ``partitions`` Spark partitions (default: one per block up to the session's
    default parallelism). Block results come back from one Spark job, in any order."""
    def execute(fn: Callable[[Block], BlockResult], blocks: Sequence[Block]
                ) -> Iterator[BlockResult]:
        if not blocks:
            return iter(())
        options = blocks[0].options
        if any(b.options != options for b in blocks):
            raise ValueError("area: the blocks of one Spark job must share their options")
        n = partitions or min(len(blocks), _default_parallelism(spark))
        df = spark.createDataFrame(block_table(blocks))
        out = (df.repartition(max(1, n), "block").groupBy("block")
               .applyInPandas(_block_rows(fn, options), schema=RESULT_SCHEMA))
        by_block: dict[int, list[tuple[int, int, str]]] = {}
        with _job_group(spark, f"usagectl area: {len(blocks)} blocks of tiles"):
            rows = out.collect()
        for row in rows:
            by_block.setdefault(int(row["block"]), []).append(
                (int(row["tx"]), int(row["ty"]), row["result"]))
        return (BlockResult.from_rows(rows) for rows in by_block.values())
    return execute


#: The Spark job group of the area jobs (Spark's UI and status tracker list them under it).
JOB_GROUP = "usagectl-area"


@contextlib.contextmanager
def _job_group(spark: Any, description: str) -> Iterator[None]:
    """Name the jobs started inside (classic Spark; Spark Connect has no SparkContext here)."""
    try:
        sc = spark.sparkContext
        sc.setJobGroup(JOB_GROUP, description)
    except Exception:  # noqa: BLE001 — Connect: no job groups from the client
        yield
        return
    try:
        yield
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def _default_parallelism(spark: Any) -> int:
    try:
        return max(1, int(spark.sparkContext.defaultParallelism))
    except Exception:  # Spark Connect has no SparkContext on the client
        return max(1, int(spark.conf.get("spark.sql.shuffle.partitions", "200")))
