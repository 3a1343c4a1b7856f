"""Area blocks on a real local Spark gives the local engine's figures to the last bit.

One ``local[2]`` session (one JVM: ~1 GB and 10–20 s to start), the ``spark`` fixture of
tests/conftest.py shared with tests/test_spark_engine.py, started offline (driver bound to
127.0.0.1, no UI) with the workers running this interpreter, which has usagectl installed.
Skipped only when pyspark or Java is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import usagectl.meters.area as area
from tests.conftest import SAMPLE_DATA
from tests.test_area_seam import FLAGS, figures, owner_fields, shuffled, tile_figures

pytest.importorskip("pyspark")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Java is not installed (Debian: openjdk-17-jre-headless)", allow_module_level=True)

from usagectl.meters.area_spark import block_table, spark_executor  # noqa: E402

pytestmark = pytest.mark.xdist_group("spark")


@pytest.fixture(scope="module")
def owner() -> tuple[area.AreaInput, dict, area.AreaResult]:
    data = owner_fields(260, 1)
    tiles = area.compute_tiles(data, workers=1, **FLAGS)
    return data, tiles, area.combine(tiles, overlap=True)


class Counting:
    """An executor that counts the blocks it hands to another one (Spark's)."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.blocks = inner, 0

    def __call__(self, fn, blocks):  # noqa: ANN001, ANN204
        self.blocks += len(blocks)
        return self.inner(fn, blocks)


@pytest.mark.parametrize(("block_pieces", "partitions"), [(100_000, 1), (37, 1), (37, 3),
                                                          (120, 2), (1, 5)])
def test_spark_gives_the_local_bits(spark, owner, block_pieces: int,  # noqa: ANN001
                                    partitions: int) -> None:
    data, tiles, local = owner
    run = Counting(spark_executor(spark, partitions))
    got_tiles = area.compute_tiles(shuffled(data, __import__("numpy").random.default_rng(
        block_pieces)), executor=run, block_pieces=block_pieces, **FLAGS)
    got = area.combine(got_tiles, overlap=True)
    assert run.blocks >= (1 if block_pieces == 100_000 else 3)
    assert tile_figures(got_tiles) == tile_figures(tiles)
    assert figures(got) == figures(local)
    assert len(local.pairs) >= 10 and len(local.daily_owner) == 12  # overlap, pairs, daily at stake


def test_overlap_regions_come_back_the_same_from_spark(spark, owner) -> None:  # noqa: ANN001
    data, _, _ = owner
    local = area.compute(data, regions=True, workers=1)
    got = area.compute(data, regions=True, executor=spark_executor(spark, 2), block_pieces=60)
    assert figures(got) == figures(local)
    assert [(g.wkb, u) for g, u in got.regions] == [(g.wkb, u) for g, u in local.regions]


def test_the_rows_sent_to_spark_rebuild_each_block(owner) -> None:  # noqa: ANN001
    """``block_table`` carries every piece of every block with its block id, and nothing else."""
    p = area.plan(owner[0], area.options(**FLAGS), block_pieces=50)
    table = block_table(p.blocks)
    assert table.num_rows == p.pieces
    assert table.column_names == ["block", "tx", "ty", "wkb", "user", "day", "clipped"]
    blocks = table.column("block").to_numpy()
    for k, block in enumerate(p.blocks):
        rows = table.filter(blocks == k).to_pandas()
        again = area.Block.from_columns(rows, p.options)
        assert [figures(r) for r in area.run_block(again).results] == \
            [figures(r) for r in area.run_block(block).results]


def test_no_blocks_start_no_job(spark) -> None:  # noqa: ANN001
    assert list(spark_executor(spark)(area.run_block, [])) == []
    assert area.compute(area.AreaInput(__import__("numpy").empty(0, dtype=object),
                                       __import__("numpy").empty(0, dtype=object)),
                        executor=spark_executor(spark)).owner == 0.0


def _sample_db(cli, db: Path) -> None:  # noqa: ANN001
    for f in sorted(SAMPLE_DATA.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            assert cli("ingest", f, *owner, "--quiet", db=db).exit_code == 0, f
    assert cli("contracts", "load", SAMPLE_DATA / "contracts.toml", db=db).exit_code == 0


@pytest.mark.parametrize("command", [("report", "--view", "consolidated"),
                                     ("report", "--view", "users"),
                                     ("report", "--view", "daily"), ("overlap",)])
def test_a_whole_area_report_on_spark_is_the_local_json(spark, cli, tmp_path: Path,  # noqa: ANN001
                                                        command: tuple[str, ...]) -> None:
    """``report``/``overlap --format json`` on the sample, their area blocks run on Spark, print
    the local engine's bytes (each on its own database: no tile result is shared through the
    cache)."""
    on_spark, local = tmp_path / "spark.duckdb", tmp_path / "local.duckdb"
    _sample_db(cli, on_spark)
    _sample_db(cli, local)
    args = (*command, "--contract", "acme-farms-2026", "--as-of", "2026-11-20T12:00:00Z",
            "--format", "json")
    run = Counting(spark_executor(spark, 2))
    with area.executing(run, block_pieces=5):
        got = cli(*args, db=on_spark)
    want = cli(*args, db=local)
    assert got.exit_code == 0 and want.exit_code == 0, got.stderr + want.stderr
    assert run.blocks > 1  # the area figures did run on Spark
    assert got.stdout == want.stdout
