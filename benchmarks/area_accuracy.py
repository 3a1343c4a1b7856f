"""Area accuracy of the unique-area engine against the SPEC §5.1 reference (docs/area-accuracy.md).

The reference is the SPEC's formula applied to the exact union:
``abs(Geod(ellps="WGS84").geometry_area_perimeter(orient_polygons(union_all(valid geoms)))[0])``.
The engine (``usagectl.meters.area.compute``) cuts space into lon/lat tiles, clips the geometries
that cross tile lines, unions per tile, sums Geod areas and corrects the edges its clips cut.
Every total must be within 1e-4 (0.01 %) of the reference. This script measures, and asserts
nothing (tests/test_area_accuracy.py asserts, on the same inputs):

1. real parcels from ``shared/data/fields`` (six national datasets, original projections),
   reprojected to EPSG:4326, repaired with ``make_valid``, given to 10 users, 30 % of them
   re-uploaded by a second user with 0–5 m of vertex jitter, on random days: owner, every user,
   Σ daily, exclusive areas, pairs; engine and naive-union timings; the same parcels' shapes
   packed into a 20,000-parcel block (``--scale``) for timings at a realistic size;
2. synthetic fields (2–200 ha quadrilaterals and hexagons) at 0°, 45°, 70°, 80° N, 85° S,
   89° N, across UTM zone edges and split at the antimeridian, at tile sizes 0.01°, 0.05°, 0.5°;
3. the alternative area method, EPSG:6933 (cylindrical equal-area on WGS84) + planar area,
   against the same reference on the same samples, accuracy and speed;
4. the edge-splitting effect: Geod takes every edge as a geodesic, so a vertex put on the
   straight lon/lat line of an edge (a tile line, a difference's intersection node) moves the
   area: raw, per parcel and per latitude, and what remains after the engine's correction.

Usage::

    .venv/bin/python benchmarks/area_accuracy.py              # ~20 min on 2 cores
    .venv/bin/python benchmarks/area_accuracy.py --scale 0    # without the packed sets: ~1 min

It prints Markdown (the tables of docs/area-accuracy.md) on stdout, progress on stderr."""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity
from pyproj import Geod, Transformer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.area_fixtures import (  # noqa: E402
    clean, field_polygon, jitter, split_antimeridian)
from usagectl.meters.area import AreaInput, compute, tile_pieces  # noqa: E402

FIELDS = ROOT.parent / "shared" / "data" / "fields"
DATASETS = ("nl_brp_2023.gpkg", "nl_reference_parcels.gpkg", "dk_2024.parquet",
            "fi_parcels.gpkg", "jp_fude_2024.parquet", "vn_ai4sf.gpkg")
GEOD = Geod(ellps="WGS84")
TO_6933 = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
TILES = (0.01, 0.05, 0.5)
N_USERS = 10
SECOND_USER_SHARE = 0.30
JITTER_M = 5.0
DAYS = 30
SEED = 20261121


# ---------------------------------------------------------------------------------------------
# Reference and alternative area


def geod_area(g: shapely.Geometry) -> float:
    """The SPEC's reference formula on one lon/lat geometry."""
    if g is None or shapely.is_empty(g):
        return 0.0
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0])


def area_6933(g):  # noqa: ANN001, ANN201 — a geometry or an array of them
    """Planar area after projecting lon/lat to EPSG:6933 (vectorised over arrays)."""
    def project(xy: np.ndarray) -> np.ndarray:
        x, y = TO_6933.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])
    return shapely.area(shapely.transform(g, project))


# ---------------------------------------------------------------------------------------------
# Usage built from parcels: users, re-uploads with jitter, days


@dataclass
class Usage:
    geoms: np.ndarray
    users: np.ndarray
    days: np.ndarray
    parcels: np.ndarray  # the original parcels (before re-uploads)


def make_usage(parcels: np.ndarray, seed: int = SEED) -> Usage:
    """~10 users; 30 % of parcels re-uploaded by another user with 0–5 m vertex jitter."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, len(parcels))
    again = np.flatnonzero(rng.random(len(parcels)) < SECOND_USER_SHARE)
    extra, extra_users = [], []
    for i in again:
        j = jitter(parcels[i], rng.uniform(0.0, JITTER_M), rng)
        if j is not None:
            extra.append(j)
            extra_users.append((users[i] + rng.integers(1, N_USERS)) % N_USERS)
    geoms = np.concatenate([parcels, np.asarray(extra, dtype=object)])
    all_users = np.asarray([f"user{u:02d}" for u in np.concatenate([users, extra_users])],
                           dtype=object)
    days = rng.integers(0, DAYS, len(geoms))
    return Usage(geoms, all_users, days, parcels)


# ---------------------------------------------------------------------------------------------
# Real parcels


def load_parcels(name: str, n: int) -> tuple[np.ndarray, int]:
    """The ``n`` parcels nearest to the centre of the dataset's extent, in lon/lat, repaired.

    Returns (parcels, number of parcels in the file). Distances are taken in the file's own CRS,
    so the sample is deterministic and contiguous when the file holds more than ``n``.
    """
    import geopandas as gpd

    path = FIELDS / name
    gdf = gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)
    total = len(gdf)
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    metric = gdf.to_crs(gdf.estimate_utm_crs()) if gdf.crs.is_geographic else gdf
    b = metric.total_bounds
    centre = shapely.Point((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    dist = metric.geometry.representative_point().distance(centre).to_numpy()
    take = np.lexsort((np.arange(len(gdf)), dist))[:n]
    sample = gdf.iloc[np.sort(take)].to_crs(4326)
    return clean(sample.geometry.to_numpy()), total


def pack(parcels: np.ndarray, copies: int) -> np.ndarray:
    """Real parcel shapes laid side by side (shelf packing, bounding boxes touching).

    Fields are cycled to ``copies`` polygons, moved in the local UTM zone so their shapes and
    latitude stay real, and packed into rows of a square block: a dense, contiguous set at the
    size where tiling matters. The placement is synthetic; the shapes are not.
    """
    import geopandas as gpd

    gs = gpd.GeoSeries(parcels, crs=4326)
    utm = gs.estimate_utm_crs()
    local = gs.to_crs(utm).to_numpy()
    b = shapely.bounds(local)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    idx = np.arange(copies) % len(local)
    row_width = math.sqrt(float(np.sum(w[idx] * h[idx])))
    c0 = shapely.centroid(shapely.union_all(local))
    x0, y0 = c0.x - row_width / 2, c0.y - row_width / 2
    x = y = row_h = 0.0
    out = []
    for i in idx:
        if x + w[i] > row_width and x > 0:
            x, y, row_h = 0.0, y + row_h, 0.0
        out.append(shapely.affinity.translate(local[i], x0 + x - b[i, 0], y0 + y - b[i, 1]))
        x += w[i]
        row_h = max(row_h, h[i])
    return clean(gpd.GeoSeries(out, crs=utm).to_crs(4326).to_numpy())


@dataclass
class Row:
    name: str
    lat: tuple[float, float]
    parcels: int
    geoms: int
    tiles: int = 0
    pieces: int = 0
    ref_owner: float = 0.0
    owner_err: float = 0.0
    users_err: float = 0.0  # worst |relative| over all users, signed
    daily_err: float | None = None  # Σ daily owner vs reference owner
    daily_users_err: float | None = None
    exclusive_err: float | None = None  # worst, relative to the user's area
    pairs_err: float | None = None  # worst, relative to the pair's area
    t_engine: float = 0.0
    t_engine_daily: float = 0.0
    t_naive: float = 0.0
    tile_errs: dict[float, float] = field(default_factory=dict)  # tile size → owner rel error
    tile_users_errs: dict[float, float] = field(default_factory=dict)  # → worst user error
    e6933_owner: float = 0.0
    e6933_users: float = 0.0
    e6933_parcel_max: float = 0.0
    e6933_parcels_sum: float = 0.0
    e6933_dense_owner: float = 0.0
    t_geod_parcels: float = 0.0
    t_6933_parcels: float = 0.0
    t_geod_union: float = 0.0
    t_6933_union: float = 0.0
    split: dict[float, tuple[float, float, int]] = field(default_factory=dict)
    dense_parcel_max: float = 0.0
    dense_union: float = 0.0
    union_vs_sum: float | None = None
    partition: float | None = None  # see overlap_errors


def overlap_errors(g: np.ndarray, u: np.ndarray, user_unions: dict, tile_deg: float = 0.05
                   ) -> tuple[float, float, float]:
    """Worst error of exclusive areas (relative to the user's area) and of pair areas (relative
    to the pair's), against Geod of U_u − ∪ others and of U_a ∩ U_b on whole unions; and, with
    no engine involved, the worst Geod(U_u − O) + Geod(U_u ∩ O) − Geod(U_u) relative to
    Geod(U_u): what cutting a union into disjoint pieces does to Geod's sum."""
    r = compute(AreaInput(g, u, None), pairs=True, tile_deg=tile_deg, workers=1)
    names = sorted(user_unions)
    ref_u = {k: geod_area(v) for k, v in user_unions.items()}
    ex, parts = [], []
    for k in names:
        others = shapely.union_all(np.asarray([user_unions[j] for j in names if j != k],
                                              dtype=object))
        alone = geod_area(shapely.difference(user_unions[k], others))
        ex.append((r.exclusive[k] - alone) / ref_u[k])
        shared = geod_area(shapely.intersection(user_unions[k], others))
        parts.append(rel(alone + shared, ref_u[k]))
    pe = [rel(v, geod_area(shapely.intersection(user_unions[a], user_unions[b])))
          for (a, b), v in r.pairs.items()]
    return worst(ex), worst(pe), worst(parts)


def worst(errors: list[float]) -> float:
    return max(errors, key=abs) if errors else 0.0


def rel(x: float, ref: float) -> float:
    return (x - ref) / ref if ref else 0.0


def measure(name: str, usage: Usage, *, all_tiles: bool = True, daily: bool = True,
            log=print) -> Row:  # noqa: ANN001
    g, u = usage.geoms, usage.users
    lat = shapely.bounds(g)
    row = Row(name, (float(lat[:, 1].min()), float(lat[:, 3].max())), len(usage.parcels), len(g))

    t = time.perf_counter()
    owner_union = shapely.union_all(g)
    user_unions = {k: shapely.union_all(g[u == k]) for k in sorted(set(u))}
    ref_users = {k: geod_area(v) for k, v in user_unions.items()}
    row.ref_owner = geod_area(owner_union)
    row.t_naive = time.perf_counter() - t

    t = time.perf_counter()
    r = compute(AreaInput(g, u, None), workers=1)
    row.t_engine = time.perf_counter() - t
    row.tiles, row.pieces = r.tiles, r.pieces
    row.owner_err = rel(r.owner, row.ref_owner)
    row.users_err = worst([rel(r.users[k], ref_users[k]) for k in ref_users])
    row.tile_errs[0.05] = row.owner_err
    log(f"  {name}: engine {row.t_engine:.2f} s, naive {row.t_naive:.2f} s, "
        f"owner {row.owner_err:+.2e}")
    if all_tiles:  # the small samples: overlap figures too (their references cost a union each)
        row.exclusive_err, row.pairs_err, row.partition = overlap_errors(g, u, user_unions)
        for td in TILES:
            if td != 0.05:
                rt = compute(AreaInput(g, u, None), tile_deg=td, workers=1)
                row.tile_errs[td] = rel(rt.owner, row.ref_owner)
                row.tile_users_errs[td] = worst([rel(rt.users[k], ref_users[k])
                                                 for k in ref_users])
    if daily:
        t = time.perf_counter()
        rd = compute(AreaInput(g, u, usage.days), daily=True, workers=1)
        row.t_engine_daily = time.perf_counter() - t
        row.daily_err = rel(sum(rd.daily_owner.values()), row.ref_owner)
        row.daily_users_err = worst([rel(sum(rd.daily_users[k].values()), ref_users[k])
                                     for k in ref_users])

    # The alternative: EPSG:6933 + planar area, on the same unions and parcels.
    p = usage.parcels
    t = time.perf_counter()
    a_geod = np.asarray([geod_area(x) for x in p])
    row.t_geod_parcels = time.perf_counter() - t
    t = time.perf_counter()
    a_6933 = area_6933(p)
    row.t_6933_parcels = time.perf_counter() - t
    pe = (a_6933 - a_geod) / a_geod
    row.e6933_parcel_max = float(pe[np.argmax(np.abs(pe))])
    row.e6933_parcels_sum = rel(float(a_6933.sum()), float(a_geod.sum()))
    t = time.perf_counter()
    geod_area(owner_union)
    row.t_geod_union = time.perf_counter() - t
    t = time.perf_counter()
    o6933 = float(area_6933(owner_union))
    row.t_6933_union = time.perf_counter() - t
    row.e6933_owner = rel(o6933, row.ref_owner)
    row.e6933_users = worst([rel(float(area_6933(user_unions[k])), ref_users[k])
                             for k in ref_users])

    # Edge splitting: tile clipping of single parcels, densified edges, union of disjoint parcels.
    for td in TILES:
        _, pieces, src = tile_pieces(p, td)
        crossing = np.flatnonzero(np.bincount(src, minlength=len(p)) > 1)
        if not crossing.size:
            row.split[td] = (0.0, 0.0, 0)
            continue
        piece_area = np.asarray([geod_area(x) for x in pieces])
        summed = np.bincount(src, weights=piece_area, minlength=len(p))
        e = (summed[crossing] - a_geod[crossing]) / a_geod[crossing]
        row.split[td] = (float(e[np.argmax(np.abs(e))]),
                         float((summed[crossing] - a_geod[crossing]).sum() / a_geod.sum()),
                         int(crossing.size))
    dense = np.asarray([geod_area(x) for x in shapely.segmentize(p, 1e-4)])
    de = (dense - a_geod) / a_geod
    row.dense_parcel_max = float(de[np.argmax(np.abs(de))])
    dense_union = shapely.segmentize(owner_union, 1e-4)
    row.dense_union = rel(geod_area(dense_union), row.ref_owner)
    row.e6933_dense_owner = rel(float(area_6933(dense_union)), geod_area(dense_union))
    # Disjoint parcels only (planar lon/lat area is additive): union minus sum is pure splitting.
    up = shapely.union_all(p)
    if abs(shapely.area(up) - shapely.area(p).sum()) <= 1e-9 * shapely.area(p).sum():
        row.union_vs_sum = rel(geod_area(up), float(a_geod.sum()))
    return row


# ---------------------------------------------------------------------------------------------
# Synthetic fields


@dataclass
class Case:
    name: str
    lon: float
    lat: float
    spread_m: float = 4000.0  # fields are placed within this square (metres)


CASES = (
    Case("equator", 30.0, 0.0),
    Case("45° N", 10.0, 45.0),
    Case("70° N", 25.0, 70.0),
    Case("80° N", 15.0, 80.0),
    Case("85° S", -60.0, -85.0),
    Case("89° N", 100.0, 89.0),
    Case("UTM edge 6° E", 6.0, 50.0),
    Case("UTM edge 12° E", 12.0, 48.0),
    Case("UTM edge 177° E", 177.0, -17.0),
    Case("antimeridian 17° S", 180.0, -17.0),
    Case("antimeridian 66° N", 180.0, 66.0),
)


def synthetic_usage(case: Case, n: int, seed: int) -> Usage:
    """``n`` fields of 2–200 ha (log-uniform; 4 or 6 corners) around the case's point."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        az, d = rng.uniform(0, 360), case.spread_m * math.sqrt(rng.uniform())
        x, y, _ = GEOD.fwd(case.lon, case.lat, az, d)
        x = case.lon + ((x - case.lon + 180) % 360 - 180)
        area = math.exp(rng.uniform(math.log(2e4), math.log(2e6)))
        out.append(field_polygon(x, y, area, int(rng.choice([4, 6])), rng))
    # Re-uploads are jittered in unwrapped longitude, then everything is split at ±180.
    usage = make_usage(clean(np.asarray(out, dtype=object)), seed)
    if case.lon == 180.0:
        usage.geoms = np.asarray([split_antimeridian(g) for g in usage.geoms], dtype=object)
        usage.parcels = np.asarray([split_antimeridian(g) for g in usage.parcels], dtype=object)
        assert shapely.is_valid(usage.geoms).all() and shapely.bounds(usage.geoms)[:, 2].max() <= 180
    return usage


@dataclass
class SynthRow:
    name: str
    fields: int
    geoms: int
    owner: dict[float, float] = field(default_factory=dict)
    users: dict[float, float] = field(default_factory=dict)
    pieces: dict[float, int] = field(default_factory=dict)
    seconds: dict[float, float] = field(default_factory=dict)
    exclusive: float = 0.0  # at 0.05°, worst, relative to the user's area
    pairs: float = 0.0  # at 0.05°, worst, relative to the pair's area
    daily_owner: float = 0.0  # Σ daily owner vs reference owner, at 0.05°
    daily_users: float = 0.0
    partition: float = 0.0  # see overlap_errors


def measure_synthetic(case: Case, n: int, seed: int, tiles=TILES) -> SynthRow:  # noqa: ANN001
    usage = synthetic_usage(case, n, seed)
    g, u = usage.geoms, usage.users
    ref_owner = geod_area(shapely.union_all(g))
    ref_users = {k: geod_area(shapely.union_all(g[u == k])) for k in sorted(set(u))}
    row = SynthRow(case.name, len(usage.parcels), len(g))
    for td in tiles:
        t = time.perf_counter()
        r = compute(AreaInput(g, u, None), tile_deg=td, workers=1)
        row.seconds[td] = time.perf_counter() - t
        row.owner[td] = rel(r.owner, ref_owner)
        row.users[td] = worst([rel(r.users[k], ref_users[k]) for k in ref_users])
        row.pieces[td] = r.pieces
    unions = {k: shapely.union_all(g[u == k]) for k in ref_users}
    row.exclusive, row.pairs, row.partition = overlap_errors(g, u, unions)
    rd = compute(AreaInput(g, u, usage.days), daily=True, workers=1)
    row.daily_owner = rel(sum(rd.daily_owner.values()), ref_owner)
    row.daily_users = worst([rel(sum(rd.daily_users[k].values()), ref_users[k])
                             for k in ref_users])
    return row


# ---------------------------------------------------------------------------------------------
# Single fields across a tile meridian, by latitude

R_MEAN = 6_371_008.8
SWEEP_LATS = (0.0, 45.0, 55.0, 60.0, 65.0, 70.0, 80.0, 85.0, 89.0)


def one(g: shapely.Geometry, tile_deg: float = 0.05) -> float:
    return compute(AreaInput(np.asarray([g], dtype=object), np.asarray(["u"], dtype=object)),
                   tile_deg=tile_deg, workers=1).owner


def triangle(lat: float, edge_m: float, lon: float = 10.0) -> shapely.Polygon:
    """Worst case: an east–west edge of ``edge_m`` cut in its middle by the meridian ``lon``."""
    half = edge_m / 2 / (111_320.0 * math.cos(math.radians(lat)))
    return shapely.Polygon([(lon - half, lat), (lon, lat - edge_m / 110_574.0),
                            (lon + half, lat)])


@dataclass
class SweepRow:
    lat: float
    raw_worst: float
    raw_median: float
    engine_worst: float
    tri_raw: float
    tri_engine: float
    tri_formula: float | None  # None when the triangle is cut more than once


def raw_cut(g: shapely.Geometry, tile_deg: float = 0.05) -> float:
    """Σ Geod(clipped pieces): the area before the engine corrects its cut edges."""
    _, pieces, _ = tile_pieces(np.asarray([g], dtype=object), tile_deg)
    return float(sum(geod_area(x) for x in pieces))


def latitude_sweep(n: int = 100, seed: int = SEED) -> list[SweepRow]:
    """Single fields straddling the meridian 10° E (a line of every tile size)."""
    rng = np.random.default_rng(seed)
    rows = []
    for lat in SWEEP_LATS:
        raw, eng = [], []
        for k in range(n):
            area = 2e6 if k % 2 == 0 else math.exp(rng.uniform(math.log(2e4), math.log(2e6)))
            dlon = rng.uniform(-0.5, 0.5) * math.sqrt(area) / (111_320 * math.cos(math.radians(lat)))
            f = field_polygon(10.0 + dlon, lat + 0.025, area, int(rng.choice([4, 6])), rng)
            ref = geod_area(f)
            raw.append(rel(raw_cut(f), ref))
            eng.append(rel(one(f), ref))
        tri = triangle(lat + 0.04, 1000.0)  # 50 ha, inside one row of 0.05° tiles
        ref = geod_area(tri)
        one_cut = len(tile_pieces(np.asarray([tri], dtype=object), 0.05)[1]) == 2
        formula = -1000.0**3 * math.tan(math.radians(lat + 0.04)) / (16 * R_MEAN) / ref
        rows.append(SweepRow(lat, worst(raw), float(np.median(np.abs(raw))), worst(eng),
                             rel(raw_cut(tri), ref), rel(one(tri), ref),
                             formula if one_cut else None))
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def e(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1e}"


def machine() -> str:
    import geopandas
    import pyproj

    cores = len(__import__("os").sched_getaffinity(0))
    try:
        load = open("/proc/loadavg").read().split()[:3]  # noqa: SIM115
    except OSError:
        load = ["?"]
    import hashlib

    import usagectl.meters.area as engine

    digest = hashlib.sha256(Path(engine.__file__).read_bytes()).hexdigest()[:12]
    return (f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {cores} cores, load average at start "
            f"{' '.join(load)}; Python {platform.python_version()}, shapely {shapely.__version__} "
            f"(GEOS {shapely.geos_version_string}), pyproj {pyproj.__version__} "
            f"(PROJ {pyproj.proj_version_str}), geopandas {geopandas.__version__}; engine "
            f"`usagectl/meters/area.py` sha256 {digest}…, run with `workers=1`")


def report(real: list[Row], scale: list[Row], synth: list[SynthRow], sweep: list[SweepRow],
           notes: list[str], run: str) -> str:
    out = [f"Run: {run}; took {notes.pop()}.", ""]
    for n in notes:
        out.append(f"- {n}")
    out.append("")
    rows = real + scale
    out += ["### Real parcels: engine against the reference (tile 0.05°)", "",
            "| dataset | lat ° | parcels | geometries (incl. re-uploads) | tiles / pieces "
            "| owner ha | owner err | worst user err | Σ daily owner err | worst Σ daily user err "
            "| worst exclusive err | worst pair err | owner / worst user err at 0.01° | at 0.5° |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: |"]
    for r in rows:
        other = " | ".join(f"{e(r.tile_errs.get(t))} / {e(r.tile_users_errs.get(t))}"
                           for t in (0.01, 0.5))
        out.append(f"| {r.name} | {r.lat[0]:.2f}–{r.lat[1]:.2f} | {r.parcels:,} | {r.geoms:,} "
                   f"| {r.tiles:,} / {r.pieces:,} | {r.ref_owner / 1e4:,.1f} | {e(r.owner_err)} "
                   f"| {e(r.users_err)} | {e(r.daily_err)} | {e(r.daily_users_err)} "
                   f"| {e(r.exclusive_err)} | {e(r.pairs_err)} | {other} |")
    out += ["", "### Speed: engine against a naive union (same output: owner + every user)", "",
            "| dataset | geometries | engine s | engine + daily s | naive `union_all` + Geod s "
            "| naive / engine |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        daily = f"{r.t_engine_daily:.2f}" if r.t_engine_daily else "—"
        out.append(f"| {r.name} | {r.geoms:,} | {r.t_engine:.2f} | {daily} "
                   f"| {r.t_naive:.2f} | {r.t_naive / r.t_engine:.1f}× |")
    out += ["", "### Alternative: EPSG:6933 + planar area, against the same reference", "",
            "| dataset | owner err | worst user err | worst parcel err | Σ parcels err "
            "| owner err, both densified to 1e-4° | area of parcels: Geod s / 6933 s "
            "| area of owner union: Geod s / 6933 s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r.name} | {e(r.e6933_owner)} | {e(r.e6933_users)} "
                   f"| {e(r.e6933_parcel_max)} | {e(r.e6933_parcels_sum)} "
                   f"| {e(r.e6933_dense_owner)} "
                   f"| {r.t_geod_parcels:.3f} / {r.t_6933_parcels:.3f} "
                   f"| {r.t_geod_union:.3f} / {r.t_6933_union:.3f} |")
    out += ["", "### Edge splitting (Geod takes every edge as a geodesic)", "",
            "Per parcel crossing a tile line: Σ Geod(clipped pieces) − Geod(parcel), worst "
            "relative to the parcel and summed relative to all parcels (crossing count in "
            "brackets); densified: every edge cut to ≤ 1e-4° (~11 m); union of disjoint "
            "parcels against the sum of their areas (datasets whose parcels do not overlap); "
            "partition: Geod(U − O) + Geod(U ∩ O) − Geod(U) for each user's union U and the "
            "union O of the others, worst relative to Geod(U) (no engine involved).", "",
            "| dataset | tile 0.01°: worst / total | tile 0.05° | tile 0.5° "
            "| densified: worst parcel | densified: owner union | union − Σ (disjoint) "
            "| partition |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cells = [f"{e(w)} / {e(s)} ({c:,})" for w, s, c in (r.split[t] for t in TILES)]
        out.append(f"| {r.name} | {' | '.join(cells)} | {e(r.dense_parcel_max)} "
                   f"| {e(r.dense_union)} | {e(r.union_vs_sum)} | {e(r.partition)} |")
    out += ["", "### Synthetic fields: engine against the reference", "",
            "2–200 ha quadrilaterals and hexagons, log-uniform sizes, within 4 km of the point; "
            "10 users, 30 % re-uploaded by another user with 0–5 m jitter. Owner error / worst "
            "user error per tile size; at 0.05°: worst exclusive area error (relative to the "
            "user's area), worst pair error, the partition effect (as in the edge-splitting table), "
            "Σ daily (30 random days) against owner and users.",
            "",
            "| case | fields | geometries | tile 0.01° | tile 0.05° | tile 0.5° "
            "| exclusive / pairs | partition (no engine) | Σ daily owner / users "
            "| pieces at 0.01 / 0.05 / 0.5 "
            "| engine s at 0.01 / 0.05 / 0.5 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in synth:
        cells = [f"{e(s.owner[t])} / {e(s.users[t])}" for t in TILES]
        out.append(f"| {s.name} | {s.fields} | {s.geoms} | {' | '.join(cells)} "
                   f"| {e(s.exclusive)} / {e(s.pairs)} | {e(s.partition)} "
                   f"| {e(s.daily_owner)} / {e(s.daily_users)} "
                   f"| {' / '.join(f'{s.pieces[t]:,}' for t in TILES)} "
                   f"| {' / '.join(f'{s.seconds[t]:.2f}' for t in TILES)} |")
    out += ["", "### Single fields across a tile meridian, by latitude (tile 0.05°)", "",
            "100 fields per latitude (half 200 ha, half 2–200 ha), each straddling the meridian "
            "10° E. *Raw*: Σ Geod of the clipped pieces against Geod of the field (the effect of "
            "cutting east–west edges at a point of the straight lon/lat line); *engine*: the "
            "engine's total, which corrects cut edges. Triangle: 50 ha, its 1 km east–west edge "
            "cut in the middle (the worst case), against −L³·tan φ/(16R)/A.", "",
            "| latitude | raw: worst | raw: median abs. | engine: worst | triangle raw "
            "| triangle formula | triangle engine |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for w in sweep:
        out.append(f"| {w.lat:.0f}° | {e(w.raw_worst)} | {w.raw_median:.1e} "
                   f"| {e(w.engine_worst)} | {e(w.tri_raw)} | {e(w.tri_formula)} "
                   f"| {e(w.tri_engine)} |")
    worst_real = max((abs(x) for r in rows for x in
                      (r.owner_err, r.users_err, r.daily_err, r.daily_users_err, r.exclusive_err,
                       r.pairs_err, *r.tile_errs.values(), *r.tile_users_errs.values())
                      if x is not None), default=0.0)
    worst_synth = {t: max(abs(x) for s in synth for x in (s.owner[t], s.users[t])) for t in TILES}
    worst_other = max(abs(x) for s in synth
                      for x in (s.exclusive, s.pairs, s.daily_owner, s.daily_users))
    out += ["", f"Worst |relative error| of an owner or user total: real parcels "
            f"{worst_real:.1e} (incl. Σ daily, exclusive, pairs); synthetic "
            + ", ".join(f"{worst_synth[t]:.1e} at {t}°" for t in TILES)
            + f"; synthetic exclusive, pairs and Σ daily: {worst_other:.1e}."]
    return "\n".join(out)


ANTIMERIDIAN_CHILD = """
import sys, time, numpy as np, shapely
from usagectl.meters.area import AreaInput, compute
n = int(sys.argv[1])
g = [shapely.MultiPolygon([shapely.box(179.995, -17 + i * 1e-3, 180, -16.995 + i * 1e-3),
                           shapely.box(-180, -17 + i * 1e-3, -179.995, -16.995 + i * 1e-3)])
     for i in range(n)]
t = time.perf_counter()
compute(AreaInput(np.asarray(g, dtype=object), np.asarray(["u"] * n, dtype=object)), workers=1)
# VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the parent's peak across fork + exec.
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")][0].split()[1]
print(time.perf_counter() - t, hwm)
"""


def antimeridian_clip_cost() -> list[str]:
    """Cost of fields split at ±180: their bounding box spans the globe, so tile_pieces makes
    a box for every tile of that band before intersecting."""
    import subprocess

    west = shapely.box(179.995, -17.01, 180.0, -17.0)
    east = shapely.box(-180.0, -17.01, -179.995, -17.0)
    g = np.asarray([shapely.MultiPolygon([west, east])], dtype=object)
    out = []
    for td in TILES:
        t = time.perf_counter()
        _, pieces, _ = tile_pieces(g, td)
        out.append(f"one field at {td}°: {time.perf_counter() - t:.3f} s ({len(pieces)} pieces "
                   "kept)")
    peaks = []
    for n in (1, 100):
        res = subprocess.run([sys.executable, "-c", ANTIMERIDIAN_CHILD, str(n)], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        sec, rss = res.stdout.split()
        peaks.append(f"{n} field{'s' if n > 1 else ''} at 0.05° in a fresh process: "
                     f"{float(sec):.2f} s, peak RSS {int(rss) / 1024:,.0f} MiB")
    return out + peaks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000,
                    help="parcels per dataset, nearest to the centre of its extent")
    ap.add_argument("--scale", type=int, default=20_000,
                    help="packed real shapes per dataset for the timing at size (0: skip)")
    ap.add_argument("--daily-at-scale", nargs="*", default=["dk_2024", "nl_brp_2023"],
                    help="datasets whose packed set also gets the daily computation (slow)")
    ap.add_argument("--synthetic", type=int, default=60, help="fields per synthetic case")
    args = ap.parse_args(argv)
    started = time.monotonic()
    run = machine()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:5.0f} s] {msg}", file=sys.stderr, flush=True)

    notes = []
    real, scale = [], []
    for name in DATASETS:
        if not (FIELDS / name).exists():
            log(f"missing {FIELDS / name}: skipped")
            notes.append(f"{name}: not found, skipped")
            continue
        parcels, total = load_parcels(name, args.n)
        if total < args.n:
            notes.append(f"{name}: the file holds {total} parcels, fewer than the {args.n:,} "
                         "asked for; all were used")
        label = name.split(".")[0]
        log(f"{label}: {len(parcels)} parcels")
        real.append(measure(label, make_usage(parcels), log=log))
        if args.scale:
            packed = pack(parcels, args.scale)
            log(f"{label} packed: {len(packed)} parcels")
            scale.append(measure(f"{label} ×{args.scale // max(len(parcels), 1)} packed",
                                 make_usage(packed), all_tiles=False,
                                 daily=label in args.daily_at_scale, log=log))
    synth = []
    for k, case in enumerate(CASES):
        log(f"synthetic {case.name}")
        synth.append(measure_synthetic(case, args.synthetic, SEED + k))
    log("latitude sweep")
    sweep = latitude_sweep()
    notes.append("tile_pieces on one antimeridian-split field (bounding box −180…180): "
                 + "; ".join(antimeridian_clip_cost()))
    notes.append(f"{(time.monotonic() - started) / 60:.0f} min")
    print(report(real, scale, synth, sweep, notes, run))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
