"""Area accuracy of the engine against the SPEC §5.1 reference, on real parcels and synthetic fields.

Reference: ``abs(Geod(ellps="WGS84").geometry_area_perimeter(orient_polygons(union_all(g)))[0])``
on the exact union of the valid lon/lat geometries (for exclusive areas and pairs: on U_u − ∪ others
and U_a ∩ U_b). The SPEC allows 1e-4 (0.01 %) on every total. Where the error measured with these
exact inputs is far below that, the bound here is ~10× the measured worst (quoted beside it), so a
regression shows long before the SPEC is broken. Method and numbers: docs/area-accuracy.md
(benchmarks/area_accuracy.py builds the same inputs: same seeds, same recipe)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod

from tests.area_fixtures import clean, field_polygon, jitter, split_antimeridian
from usagectl.meters.area import AreaInput, compute, tile_pieces

FIELDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fields"
GEOD = Geod(ellps="WGS84")
SPEC = 1e-4
SEED = 20261121
N_USERS = 10
R_MEAN = 6_371_008.8


def ref(g: shapely.Geometry) -> float:
    """The SPEC's reference formula on one lon/lat geometry."""
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0])


def rel(x: float, reference: float) -> float:
    return (x - reference) / reference


def usage(parcels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """10 users; 30 % of parcels re-uploaded by another user with 0–5 m vertex jitter; days."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, len(parcels))
    again = np.flatnonzero(rng.random(len(parcels)) < 0.30)
    extra, extra_users = [], []
    for i in again:
        j = jitter(parcels[i], rng.uniform(0.0, 5.0), rng)
        if j is not None:
            extra.append(j)
            extra_users.append((users[i] + rng.integers(1, N_USERS)) % N_USERS)
    geoms = np.concatenate([parcels, np.asarray(extra, dtype=object)])
    names = np.asarray([f"user{u:02d}" for u in np.concatenate([users, extra_users])],
                       dtype=object)
    return geoms, names, rng.integers(0, 30, len(geoms))


def references(geoms: np.ndarray, users: np.ndarray) -> tuple[float, dict[str, float]]:
    return ref(shapely.union_all(geoms)), {u: ref(shapely.union_all(geoms[users == u]))
                                           for u in sorted(set(users))}


# ---------------------------------------------------------------------------------------------
# Real parcels (shared/data/fields: six national datasets in their original projections)

DATASETS = ("nl_brp_2023.gpkg", "nl_reference_parcels.gpkg", "dk_2024.parquet",
            "fi_parcels.gpkg", "jp_fude_2024.parquet", "vn_ai4sf.gpkg")
SAMPLE = 3000
# Measured worst over the six datasets (engine sha256 478db94c7eec…, GEOS 3.14.1):
TOTALS_TOL = 3e-8     # owner and every user at tiles 0.01/0.05/0.5°: 2.6e-9 (users: 3e-16)
DAILY_TOL = 2e-5      # Σ daily owner 1.9e-6 (nl_reference_parcels), Σ daily user 8.6e-8
EXCLUSIVE_TOL = 2e-5  # exclusive areas, relative to the user's area: 1.4e-6
PAIRS_TOL = 1e-7      # pair areas: 1.0e-8


def load_parcels(name: str) -> np.ndarray:
    """The parcels nearest the centre of the file's extent (all of them when it holds fewer than
    SAMPLE), reprojected to EPSG:4326 and repaired."""
    path = FIELDS / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    gpd = pytest.importorskip("geopandas")
    gdf = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    metric = gdf.to_crs(gdf.estimate_utm_crs()) if gdf.crs.is_geographic else gdf
    b = metric.total_bounds
    centre = shapely.Point((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    dist = metric.geometry.representative_point().distance(centre).to_numpy()
    take = np.sort(np.lexsort((np.arange(len(gdf)), dist))[:SAMPLE])
    return clean(gdf.iloc[take].to_crs(4326).geometry.to_numpy())


@pytest.mark.parametrize("name", DATASETS)
def test_real_parcels_owner_users_and_daily_match_the_reference(name: str) -> None:
    if not FIELDS.is_dir():
        pytest.skip(f"{FIELDS} not present")
    parcels = load_parcels(name)
    assert len(parcels) >= 50
    geoms, users, days = usage(parcels, SEED)
    owner, per_user = references(geoms, users)
    assert sum(per_user.values()) > owner  # the re-uploads do overlap

    r = compute(AreaInput(geoms, users, days), daily=True, workers=1)
    assert set(r.users) == set(per_user)
    assert abs(rel(r.owner, owner)) <= TOTALS_TOL
    for u, a in per_user.items():
        assert abs(rel(r.users[u], a)) <= TOTALS_TOL, u
        assert abs(rel(sum(r.daily_users[u].values()), a)) <= DAILY_TOL, u
    assert abs(rel(sum(r.daily_owner.values()), owner)) <= DAILY_TOL
    for tile in (0.01, 0.5):
        other = compute(AreaInput(geoms, users), tile_deg=tile, workers=1)
        assert abs(rel(other.owner, owner)) <= TOTALS_TOL, tile
        assert max(abs(rel(other.users[u], a)) for u, a in per_user.items()) <= TOTALS_TOL, tile
    exclusive, pairs = overlap_errors(geoms, users)
    assert abs(exclusive) <= EXCLUSIVE_TOL
    assert abs(pairs) <= PAIRS_TOL


def overlap_errors(geoms: np.ndarray, users: np.ndarray) -> tuple[float, float]:
    """Worst exclusive-area error (relative to the user's area) and pair error (relative to the
    pair's area) of the engine at the default tile, against Geod on whole unions."""
    r = compute(AreaInput(geoms, users), pairs=True, workers=1)
    unions = {u: shapely.union_all(geoms[users == u]) for u in sorted(set(users))}
    ex = []
    for u, g in unions.items():
        others = shapely.union_all(np.asarray([h for v, h in unions.items() if v != u],
                                              dtype=object))
        ex.append((r.exclusive[u] - ref(shapely.difference(g, others))) / ref(g))
    pe = [rel(a, ref(shapely.intersection(unions[x], unions[y]))) for (x, y), a in r.pairs.items()]
    assert pe, "the re-uploads make pairs"
    return max(ex, key=abs), max(pe, key=abs)


# ---------------------------------------------------------------------------------------------
# Synthetic fields: 2–200 ha quadrilaterals and hexagons within 4 km of a point


def synthetic(lon: float, lat: float, n: int, seed: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360), 4000.0 * math.sqrt(rng.uniform()))
        x = lon + ((x - lon + 180) % 360 - 180)
        area = math.exp(rng.uniform(math.log(2e4), math.log(2e6)))
        out.append(field_polygon(x, y, area, int(rng.choice([4, 6])), rng))
    geoms, users, days = usage(clean(np.asarray(out, dtype=object)), seed)
    if lon == 180.0:
        geoms = np.asarray([split_antimeridian(g) for g in geoms], dtype=object)
        assert shapely.is_valid(geoms).all()
        assert shapely.bounds(geoms)[:, 2].max() <= 180 and shapely.bounds(geoms)[:, 0].min() >= -180
        assert any(shapely.get_type_id(g) == 6 for g in geoms)  # some fields really are split
    return geoms, users, days


# 20 fields, 10 users: a user total is a few fields, so a per-field error is barely diluted.
# Measured with engine sha256 478db94c7eec…. Owner and user totals at tiles 0.01/0.05/0.5°: worst
# 2.2e-11 (89° N), most ~1e-12 (before the engine corrected tile cuts: 2.1e-4 at 85° S and 4.1e-4
# at 89° N). Pairs at 0.05°: worst 2.6e-9.
SYNTH_TOTALS_TOL = 3e-10
SYNTH_PAIRS_TOL = 3e-8
# Exclusive areas and Σ daily are partitions of a union: their pieces are cut where other users'
# (or earlier days') edges cross, and Geod's sum over pieces differs from Geod of the whole.
# (name, lon, lat, seed, bound on exclusive areas and Σ daily at the default tile): ~10× the
# measured worst (in the comment), capped at the SPEC's 1e-4.
CASES = [
    ("equator", 30.0, 0.0, SEED, 1e-8),              # 6.0e-10 (exclusive)
    ("45N", 10.0, 45.0, SEED + 1, 4e-5),             # 3.8e-6 (exclusive)
    ("70N", 25.0, 70.0, SEED + 2, SPEC),             # 3.7e-5 (exclusive)
    ("80N", 15.0, 80.0, SEED + 3, SPEC),             # 6.6e-5 (exclusive)
    ("85S", -60.0, -85.0, SEED + 4, SPEC),           # 5.8e-5 (exclusive)
    pytest.param("89N", 100.0, 89.0, SEED + 5, SPEC, marks=pytest.mark.xfail(
        strict=True, reason="measured 2.7e-4 on a user's Σ daily: each day's new area is cut "
                            "where earlier days' edges cross it (docs/area-accuracy.md)")),
    ("utm-6E", 6.0, 50.0, SEED + 6, 3e-5),           # 2.3e-6 (exclusive)
    ("utm-12E", 12.0, 48.0, SEED + 7, 3e-5),         # 2.7e-6 (exclusive)
    ("utm-177E", 177.0, -17.0, SEED + 8, 2e-5),      # 2.0e-6 (exclusive)
    ("antimeridian-17S", 180.0, -17.0, SEED + 9, 5e-5),   # 4.5e-6 (exclusive)
    ("antimeridian-66N", 180.0, 66.0, SEED + 10, SPEC),   # 2.5e-5 (exclusive)
]
TOTAL_CASES = [c.values[:4] if hasattr(c, "values") else c[:4] for c in CASES]


@pytest.mark.parametrize(("name", "lon", "lat", "seed"), TOTAL_CASES)
def test_synthetic_owner_and_user_totals_match_the_reference_at_every_tile_size(
        name: str, lon: float, lat: float, seed: int) -> None:
    geoms, users, _ = synthetic(lon, lat, 20, seed)
    owner, per_user = references(geoms, users)
    assert 1e5 < owner < 1e9
    for tile in (0.01, 0.05, 0.5):
        r = compute(AreaInput(geoms, users), tile_deg=tile, workers=1)
        assert r.tiles > 1
        assert abs(rel(r.owner, owner)) <= SYNTH_TOTALS_TOL, (tile, rel(r.owner, owner))
        errs = {u: rel(r.users[u], a) for u, a in per_user.items()}
        u = max(errs, key=lambda k: abs(errs[k]))
        assert abs(errs[u]) <= SYNTH_TOTALS_TOL, (tile, u, errs[u])


@pytest.mark.parametrize(("name", "lon", "lat", "seed", "bound"), CASES)
def test_synthetic_exclusive_pairs_and_daily_match_the_reference(
        name: str, lon: float, lat: float, seed: int, bound: float) -> None:
    geoms, users, days = synthetic(lon, lat, 20, seed)
    owner, per_user = references(geoms, users)
    exclusive, pairs = overlap_errors(geoms, users)
    assert abs(exclusive) <= bound
    assert abs(pairs) <= SYNTH_PAIRS_TOL
    r = compute(AreaInput(geoms, users, days), daily=True, workers=1)
    assert abs(rel(sum(r.daily_owner.values()), owner)) <= bound
    for u, a in per_user.items():
        assert abs(rel(sum(r.daily_users[u].values()), a)) <= bound, u


# ---------------------------------------------------------------------------------------------
# The known effect: a tile meridian cuts an east–west edge at a point of the straight lon/lat
# line, which lies equatorward of the geodesic Geod draws; the field loses ½·L·s, s being the
# sagitta L²·tan φ/(8R): ΔA = −L³·tan φ/(16R).


def triangle(lat: float, edge_m: float, lon: float = 10.0) -> shapely.Polygon:
    half = edge_m / 2 / (111_320.0 * math.cos(math.radians(lat)))
    return shapely.Polygon([(lon - half, lat), (lon, lat - edge_m / 110_574.0),
                            (lon + half, lat)])


def engine_error(g: shapely.Geometry, tile: float = 0.05) -> float:
    r = compute(AreaInput(np.asarray([g], dtype=object), np.asarray(["u"], dtype=object)),
                tile_deg=tile, workers=1)
    return rel(r.owner, ref(g))


@pytest.mark.parametrize("lat", [45.04, 60.04, 70.04])
def test_a_cut_east_west_edge_no_longer_loses_the_sliver(lat: float) -> None:
    """Uncorrected, the cut loses −L³·tan φ/(16R) (measured within 0.7 % of that); the engine
    matches the cut vertices across tiles and restores the geodesic P→Q."""
    tri = triangle(lat, 1000.0)  # 50 ha; the meridian 10° E cuts its northern edge in the middle
    predicted = -1000.0**3 * math.tan(math.radians(lat)) / (16 * R_MEAN) / ref(tri)
    _, pieces, _ = tile_pieces(np.asarray([tri], dtype=object), 0.05)
    assert len(pieces) == 2
    assert rel(sum(ref(p) for p in pieces), ref(tri)) == pytest.approx(predicted, rel=0.03)
    assert engine_error(tri) == pytest.approx(0.0, abs=1e-12)
    assert engine_error(triangle(lat, 1000.0, lon=10.025)) == pytest.approx(0.0, abs=1e-9)


def test_a_200_ha_triangle_at_70n_across_a_tile_meridian_meets_the_spec() -> None:
    # Measured −1.07e-4 before the correction: past the SPEC's 1e-4.
    assert abs(engine_error(triangle(70.04, 2000.0))) <= 1e-12
