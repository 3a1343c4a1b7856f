"""Area figures are bit-identical whatever the order of rows, the storage or the execution.

A report partly from stored tiles, one computed from scratch, one in a process pool and one in
process must print the same numbers to the last bit (issue 10 #22): each tile's rows are put in
a canonical order before any geometry operation, and tiles are added with ``math.fsum``
(docs/area.md, "Sum order"). Every comparison here is ``==`` on floats.
"""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

import usagectl.meters.area as area
from tests.area_fixtures import field_polygon, jitter
from tests.conftest import HECTARE_AREA
from usagectl.meters.area import AreaInput, AreaResult, combine, compute, compute_tiles, recent_news


def figures(r: AreaResult) -> dict:
    """Every figure of a result, keys sorted (dict order is not a figure)."""
    return {"owner": r.owner, "users": sorted(r.users.items()),
            "exclusive": sorted(r.exclusive.items()), "pairs": sorted(r.pairs.items()),
            "daily_owner": sorted(r.daily_owner.items()),
            "daily_users": sorted((u, sorted(d.items())) for u, d in r.daily_users.items())}


def landscape(n: int, seed: int, spread: float = 0.25) -> AreaInput:
    """``n`` irregular fields of 5 users over several tiles: re-uploads (exact, or with 0.1–5 m
    of jitter) and fields with a pond cut out, so that unions meet nearly coincident edges."""
    rng = np.random.default_rng(seed)
    geoms: list[shapely.Geometry] = []
    for _ in range(n):
        r = rng.random()
        earlier = geoms[int(rng.integers(len(geoms)))] if geoms else None
        if earlier is not None and r < 0.25:
            geoms.append(jitter(earlier, float(rng.choice([0.1, 1.0, 5.0])), rng))
        elif earlier is not None and r < 0.35:
            geoms.append(earlier)
        elif earlier is not None and r < 0.45:
            geoms.append(shapely.difference(earlier, shapely.buffer(shapely.centroid(earlier),
                                                                    0.001)))
        else:
            geoms.append(field_polygon(8.0 + rng.uniform(0, spread), 47.0 + rng.uniform(0, spread),
                                       rng.uniform(2e4, 2e6), int(rng.integers(3, 9)), rng))
    users = np.asarray([f"u{k}" for k in rng.integers(0, 5, n)], dtype=object)
    return AreaInput(np.asarray(geoms, dtype=object), users, rng.integers(0, 12, n))


def shuffled(data: AreaInput, seed: int) -> AreaInput:
    p = np.random.default_rng(seed).permutation(len(data.geoms))
    return AreaInput(data.geoms[p], data.users[p], data.days[p])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tile=st.sampled_from([0.02, 0.1]))
@example(seed=879, tile=0.02)  # owner 24842197.523158558 vs .5231478 m² before rows were sorted
def test_the_order_of_rows_changes_no_bit(seed: int, tile: float) -> None:
    data = landscape(60, seed)
    full = compute(data, overlap=True, pairs=True, daily=True, tile_deg=tile, workers=1)
    assert full.tiles > 1 and len(full.pairs) > 0
    for k in range(3):
        other = compute(shuffled(data, seed + k), overlap=True, pairs=True, daily=True,
                        tile_deg=tile, workers=1)
        assert figures(other) == figures(full)
    for level in ("owner", "users"):
        a = recent_news(data, 6, level, tile_deg=tile, workers=1)
        b = recent_news(shuffled(data, seed + 7), 6, level, tile_deg=tile, workers=1)
        assert figures(a) == figures(b)


def test_the_order_tiles_are_added_in_changes_no_bit() -> None:
    """``combine`` is a fixed-order sum: any order of the same tiles gives the same figures."""
    data = landscape(400, 3, spread=0.6)
    tiles = compute_tiles(data, overlap=True, pairs=True, daily=True, workers=1)
    assert len(tiles) > 30
    direct = combine(tiles, overlap=True)
    keys = list(tiles)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(keys))
        again = combine({keys[k]: tiles[keys[k]] for k in order}, overlap=True)
        assert figures(again) == figures(direct)


def test_pool_batches_and_in_process_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    data = landscape(500, 11, spread=0.6)
    serial = compute(data, overlap=True, pairs=True, daily=True, workers=1)
    monkeypatch.setattr(area, "PARALLEL_MIN_PIECES", 50)
    pooled = compute(shuffled(data, 1), overlap=True, pairs=True, daily=True, workers=2)
    assert figures(pooled) == figures(serial)
    # Other batch boundaries in process: one tile at a time, through ``only``.
    one_by_one = {}
    for key in compute_tiles(data, workers=1):
        one_by_one.update(compute_tiles(data, overlap=True, pairs=True, daily=True, workers=1,
                                        only=[key]))
    assert figures(combine(one_by_one, overlap=True)) == figures(serial)


CONTRACT = HECTARE_AREA
AS_OF = datetime(2026, 3, 20, 12, tzinfo=timezone.utc)


def meter_figures(con: duckdb.DuckDBPyConnection, **kw: bool) -> dict:
    """Every float a report shows for the meter (through the per-tile store)."""
    from usagectl.contracts.periods import resolve_period
    from usagectl.meters.unique_area import compute_area_meter
    from usagectl.reports import views
    from usagectl.store import contracts_repo

    contract = contracts_repo.get_contract(con, "c")
    window = views.make_window(contract, resolve_period(contract, None, AS_OF), AS_OF)
    v = compute_area_meter(con, contract.meter("area"), window, weeks=True, **kw)
    return {"owner": v.owner, "users": v.users, "exclusive": v.exclusive,
            "pairs": sorted(v.pairs.items()), "daily_owner": v.daily_owner,
            "daily_users": v.daily_users, "recent": v.recent, "weeks": v.weeks}


def test_figures_from_the_store_equal_figures_from_scratch_to_the_bit(cli, db_path, tmp_path
                                                                       ) -> None:  # noqa: ANN001
    data = landscape(500, 5, spread=0.6)
    lines = ["event_id,ts,owner_id,user_id,product,geometry"]
    for k, (g, u, d) in enumerate(zip(data.geoms, data.users, data.days)):
        lines.append(f'e{k},2026-03-{int(d) + 1:02d}T10:00:00Z,acme,{u},FIELDS_BOUNDARY,'
                     f'"{shapely.to_wkt(g, rounding_precision=-1)}"')
    (tmp_path / "e.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "c.toml").write_text(CONTRACT)
    assert cli("ingest", tmp_path / "e.csv").exit_code == 0
    assert cli("contracts", "load", tmp_path / "c.toml").exit_code == 0
    everything = {"overlap": True, "pairs": True, "daily": True}
    with duckdb.connect(str(db_path)) as con:
        scratch = meter_figures(con, **everything)
        tiles = con.execute("SELECT count(*) FROM area_tiles").fetchone()[0]
        assert tiles > 30 and len(scratch["pairs"]) > 0
        assert meter_figures(con, **everything) == scratch  # every tile from the store
        for keep in (2, 3):  # some tiles from the store, the others computed again
            con.execute("DELETE FROM area_tiles WHERE (tx + ty) % ? = 0", [keep])
            assert meter_figures(con, **everything) == scratch
        # A consolidated report first, then the daily view adds daily values to its tiles.
        con.execute("DELETE FROM area_tiles")
        consolidated = meter_figures(con)
        assert consolidated["owner"] == scratch["owner"]
        assert consolidated["users"] == scratch["users"]
        assert consolidated["recent"] == scratch["recent"]
        con.execute("DELETE FROM area_tiles WHERE (tx + ty) % 3 = 0")
        assert meter_figures(con, **everything) == scratch
        # And the engine without the store.
        direct = compute(data, overlap=True, pairs=True, daily=True, workers=1)
        assert direct.owner / 1e4 == scratch["owner"]
