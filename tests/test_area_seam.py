"""The area engine's execution seam (plan → run_block → gather/combine) gives the local bits.

A distributed engine runs ``run_block`` wherever its scheduler puts a block and hands the results
back in whatever order they finish. Spark's ``groupBy(block).applyInPandas(...)`` is simulated
here with pandas, without a JVM: the input rows shuffled, the plan's pieces flattened to one row
per piece (``Block.columns``) and shuffled, blocks dealt to a number of "partitions" that run in
a random order, each block rebuilt from its rows alone (``Block.from_columns``), the per-tile
result rows (``BlockResult.rows``, JSON text) concatenated and shuffled, then gathered and
combined on the "driver". Every figure — owner, users, exclusive areas, pairs, daily values at
both levels, the cut corrections and the overlap regions — must be ``==`` to the local engine's,
for every block size and partition count (docs/area.md, "Execution: plan, run, combine").
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st

import usagectl.meters.area as area
from tests.area_fixtures import field_polygon, jitter
from usagectl.meters import area_cuts
from usagectl.meters.area import AreaInput, AreaResult, Block, BlockResult

FLAGS = {"overlap": True, "pairs": True, "daily": True}


def owner_fields(n: int, seed: int, tile: float = 0.1) -> AreaInput:
    """An owner whose ``n`` fields of 6 users straddle tile lines and overlap each other.

    Fields sit around a tile corner (lines at every ``tile`` degrees) at 47° N; some are
    re-uploads of another field by another user (exact, or with metres of jitter), some have a
    pond cut out, some are long strips across several tile lines (the cut corrections' chains),
    and a few are two-part fields.
    """
    rng = np.random.default_rng(seed)
    x0, y0 = 8.0 + tile * 2, 47.0 + tile * 2  # a tile corner
    geoms: list[shapely.Geometry] = []
    for _ in range(n):
        r = rng.random()
        earlier = geoms[int(rng.integers(len(geoms)))] if geoms else None
        if earlier is not None and r < 0.25:
            geoms.append(jitter(earlier, float(rng.choice([0.5, 3.0])), rng))
        elif earlier is not None and r < 0.35:
            geoms.append(earlier)
        elif earlier is not None and r < 0.42:
            geoms.append(shapely.difference(earlier, shapely.buffer(shapely.centroid(earlier),
                                                                    0.0008)))
        elif r < 0.52:
            x, y = x0 + rng.uniform(-2.5, 1.0) * tile, y0 + rng.uniform(-0.5, 0.5) * tile
            geoms.append(shapely.Polygon([(x, y), (x + 2.2 * tile, y + 0.01),
                                          (x + 2.2 * tile, y + 0.025), (x, y + 0.012)]))
        elif r < 0.57:
            a = field_polygon(x0 + rng.uniform(-0.6, 0.6) * tile, y0 + rng.uniform(-0.6, 0.6) * tile,
                              rng.uniform(2e4, 5e5), 5, rng)
            b = shapely.affinity.translate(a, 0.02, -0.01)
            geoms.append(shapely.MultiPolygon([a, b]) if not a.intersects(b) else a)
        else:
            geoms.append(field_polygon(x0 + rng.uniform(-1, 1) * tile,
                                       y0 + rng.uniform(-1, 1) * tile,
                                       rng.uniform(2e4, 2e6), int(rng.integers(3, 9)), rng))
    users = np.asarray([f"u{k}" for k in rng.integers(0, 6, n)], dtype=object)
    return AreaInput(np.asarray(geoms, dtype=object), users, rng.integers(20_000, 20_012, n))


def shuffled(data: AreaInput, rng: np.random.Generator) -> AreaInput:
    p = rng.permutation(len(data.geoms))
    return AreaInput(data.geoms[p], data.users[p], data.days[p])


def spark_like(data: AreaInput, *, block_pieces: int, partitions: int, seed: int,
               tile: float = area.TILE_DEG, regions: bool = False, **flags: bool
               ) -> tuple[area.Plan, dict, AreaResult]:
    """The seam driven as Spark's group-by would drive it, simulated with pandas."""
    rng = np.random.default_rng(seed)
    opts = area.options(tile_deg=tile, regions=regions, **flags)
    p = area.plan(shuffled(data, rng), opts, block_pieces=block_pieces)
    # The plan and its options go to the executors by pickle (Spark's closure serialiser).
    p = pickle.loads(pickle.dumps(p))
    rows = pd.concat([pd.DataFrame(b.columns()).assign(block=k) for k, b in enumerate(p.blocks)],
                     ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    home = rng.integers(0, partitions, len(p.blocks))  # which partition holds each block
    rows["partition"] = home[rows["block"].to_numpy()]
    out: list[tuple[int, int, str]] = []
    for part in rng.permutation(partitions):  # partitions finish in any order
        held = rows[rows["partition"] == part]
        for _, group in held.groupby("block", sort=False):  # applyInPandas: one group per key
            block = Block.from_columns(group.drop(columns=["block", "partition"]), p.options)
            out.extend(area.run_block(block).rows())
    order = rng.permutation(len(out))  # the result rows come back in any order
    tiles = area.gather(p, [BlockResult.from_rows([out[k]]) for k in order])
    return p, tiles, area.combine(tiles, overlap=opts.overlap, regions=regions)


def figures(r: AreaResult) -> dict:
    """Every figure of a result, keys sorted (dict order is not a figure)."""
    return {"owner": r.owner, "users": sorted(r.users.items()),
            "exclusive": sorted(r.exclusive.items()), "pairs": sorted(r.pairs.items()),
            "daily_owner": sorted(r.daily_owner.items()),
            "daily_users": sorted((u, sorted(d.items())) for u, d in r.daily_users.items())}


def corrections(tiles: dict) -> list:
    """The cut corrections ``combine`` subtracts, per figure."""
    return sorted(area_cuts.corrections(area_cuts.concat(tiles[k].cuts for k in sorted(tiles)))
                  .items())


def tile_figures(tiles: dict) -> dict:
    return {k: (figures(r), r.pieces) for k, r in tiles.items()}


@pytest.fixture(scope="module")
def owner() -> tuple[AreaInput, dict, AreaResult]:
    data = owner_fields(260, 1)
    tiles = area.compute_tiles(data, workers=1, **FLAGS)
    return data, tiles, area.combine(tiles, overlap=True)


def test_the_generated_owner_has_what_the_seam_must_carry(owner) -> None:  # noqa: ANN001
    data, tiles, local = owner
    assert len(tiles) >= 12 and len(local.users) == 6 and len(local.pairs) >= 10
    assert sum(local.users.values()) > local.owner * 1.1  # users overlap
    assert len(local.daily_owner) == 12 and all(len(d) > 3 for d in local.daily_users.values())
    fixes = corrections(tiles)
    assert len(fixes) > 20 and any(v != 0 for _, v in fixes)  # cut corrections at stake


@pytest.mark.parametrize("block_pieces", [1, 37, 400, 100_000])
@pytest.mark.parametrize("partitions", [1, 3, 16])
def test_blocks_partitions_and_orders_change_no_bit(owner, block_pieces: int,  # noqa: ANN001
                                                    partitions: int) -> None:
    data, tiles, local = owner
    p, got, combined = spark_like(data, block_pieces=block_pieces, partitions=partitions,
                                  seed=block_pieces * 31 + partitions, **FLAGS)
    if block_pieces == 1:
        assert len(p.blocks) == len(tiles)  # a block never splits a tile
    assert tile_figures(got) == tile_figures(tiles)
    assert corrections(got) == corrections(tiles)
    assert figures(combined) == figures(local)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 90),
       tile=st.sampled_from([0.02, 0.05, 0.1]), block_pieces=st.integers(1, 300),
       partitions=st.integers(1, 9),
       daily=st.sampled_from([True, "owner", "users", False]))
def test_any_grouping_of_any_owner_gives_the_local_bits(seed: int, n: int, tile: float,
                                                        block_pieces: int, partitions: int,
                                                        daily: bool | str) -> None:
    data = owner_fields(n, seed, tile)
    local = area.compute_tiles(data, tile_deg=tile, workers=1, overlap=True, pairs=True,
                               daily=daily)
    _, got, combined = spark_like(data, block_pieces=block_pieces, partitions=partitions,
                                  seed=seed, tile=tile, overlap=True, pairs=True, daily=daily)
    assert corrections(got) == corrections(local)
    assert figures(combined) == figures(area.combine(local, overlap=True))


def test_overlap_regions_come_back_the_same(owner) -> None:  # noqa: ANN001
    data = owner[0]
    local = area.compute(data, regions=True, workers=1)
    for block_pieces, partitions in ((5, 4), (120, 2)):
        _, _, got = spark_like(data, block_pieces=block_pieces, partitions=partitions, seed=7,
                               regions=True)
        assert len(got.regions) > 5
        assert ([(u, shapely.to_wkb(g)) for g, u in got.regions]
                == [(u, shapely.to_wkb(g)) for g, u in local.regions])
        assert figures(got) == figures(local)


def test_a_block_travels_as_wkb_and_runs_the_same_anywhere(owner) -> None:  # noqa: ANN001
    data = owner[0]
    p = area.plan(data, area.options(**FLAGS), block_pieces=200)
    block = p.blocks[1]
    state = block.__getstate__()
    assert state["pieces"].dtype == object and isinstance(state["pieces"][0], bytes)
    again = pickle.loads(pickle.dumps(block))
    a, b = area.run_block(block), pickle.loads(pickle.dumps(area.run_block(again)))
    assert np.array_equal(a.keys, b.keys)
    assert [figures(r) for r in a.results] == [figures(r) for r in b.results]


def test_the_engine_runs_on_the_executor_it_is_given(owner) -> None:  # noqa: ANN001
    """``compute(executor=...)`` and ``executing(...)`` send every block through that executor."""
    data, _, local = owner
    seen: list[int] = []

    def reversed_executor(fn, blocks):  # noqa: ANN001, ANN202 — an executor is map-like
        seen.append(len(blocks))
        return [fn(b) for b in reversed(blocks)]

    direct = area.compute(data, executor=reversed_executor, block_pieces=50, **FLAGS)
    with area.executing(reversed_executor, block_pieces=80):
        ambient = area.compute(data, **FLAGS)
        news = area.recent_news(data, 20_006, "owner")
    assert seen[0] > seen[1] > 2 and len(seen) == 3
    assert figures(direct) == figures(local) and figures(ambient) == figures(local)
    assert news.daily_owner == area.recent_news(data, 20_006, "owner", workers=1).daily_owner


def test_a_lost_or_repeated_block_is_an_error_not_a_smaller_total(owner) -> None:  # noqa: ANN001
    data = owner[0]
    p = area.plan(data, area.options(), block_pieces=100)
    results = [area.run_block(b) for b in p.blocks]
    with pytest.raises(ValueError, match="returned"):
        area.gather(p, results[1:])
    with pytest.raises(ValueError, match="twice"):
        area.gather(p, results + results[:1])
