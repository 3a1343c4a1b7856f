"""Spatially unique area: exact unions, partitioned by space (SPEC §5.1).

Area is additive over disjoint pieces of space, so the plane is cut into square lon/lat tiles;
each geometry is assigned to the tile holding it (the few that cross a tile edge are clipped into
every tile they touch); every union, difference and intersection is done within one tile; and the
areas are summed (``math.fsum``, after each batch has put its pieces in a canonical order: the
figures are the same bits whatever the order of rows, tiles or blocks). A tile's result depends
only on the geometries in it, which is what lets ``usagectl.meters.area_cache`` keep results per
tile, and what makes the engine three steps over plain data: ``plan`` (rows → picklable blocks of
whole tiles), ``run_block`` (the pure kernel, on any executor: in process, the local process
pool, Spark's workers) and ``gather``/``combine`` (fixed-order sums and the cut corrections).

Areas are ellipsoidal: pyproj's WGS84 geodesic polygon area of the lon/lat result, after
orienting rings (Geod is signed and winding-sensitive), so a total is the SPEC's reference formula
applied to the union itself. See docs/area.md for the method and its measured error.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import multiprocessing.context
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import shapely
from pyproj import Geod

from usagectl.meters import area_cuts

#: Tile edge in degrees (~11 km north–south). Fields of 2–200 ha seldom cross a line of it, and
#: a tile of dense fields holds a few hundred polygons, which GEOS unions quickly.
TILE_DEG = 0.1
_GEOD = Geod(ellps="WGS84")
#: Below this many pieces the process pool costs more than it saves.
PARALLEL_MIN_PIECES = 20_000
#: Bumped when a tile's figures would come out differently: stored results of another version
#: are not reused (usagectl.meters.area_cache).
ENGINE_VERSION = 4
#: Overlap regions (``regions=True``) are exact up to floating-point slivers along their edges:
#: every point of a region farther than this (degrees, ~0.1 mm) from the region's edge is covered
#: by exactly the users in its label, and every polygon part of a region has such points (thinner
#: parts are overlay noise and left out). Measured as an area: what is covered otherwise than the
#: label says is at most this times the region's perimeter (docs/area.md, "Overlap regions").
REGION_TOLERANCE_DEG = 1e-9


def geodesic_area(geom: shapely.Geometry | None) -> float:
    """Ellipsoidal area in m² of a lon/lat (Multi)Polygon; 0 for None or empty."""
    if geom is None or shapely.is_empty(geom):
        return 0.0
    return abs(_GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


def _ring_table(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Oriented rings of (multi)polygons: (coords, ring starts, ring lengths, ring → geometry).

    Exteriors run counter-clockwise and holes clockwise (rings are reversed where needed), so
    signed ring areas add up to the geometries' areas. Points and lines have no area: dropped.
    """
    geoms = _polygonal(np.array(geoms, dtype=object), strict=True)
    kind, coords, offsets = shapely.to_ragged_array(geoms)
    if kind == shapely.GeometryType.POLYGON:
        ring_off, poly_off = offsets
        poly_geom = np.arange(len(poly_off) - 1)
    else:
        ring_off, poly_off, geom_off = offsets
        poly_geom = np.repeat(np.arange(len(geom_off) - 1), np.diff(geom_off))
    n_rings = len(ring_off) - 1
    ring_poly = np.repeat(np.arange(len(poly_off) - 1), np.diff(poly_off))
    starts = ring_off[:-1].astype(np.int64)
    lengths = np.diff(ring_off).astype(np.int64)
    if n_rings == 0 or len(coords) == 0:
        return coords, starts, lengths, poly_geom[ring_poly]
    # Planar orientation (shoelace on lon/lat) of each closed ring; tiles are small enough for the
    # sign to be the geodesic one.
    # Relative to each ring's first vertex: thin slivers keep their sign in floating point.
    first = np.repeat(starts, lengths)
    x, y = coords[:, 0] - coords[first, 0], coords[:, 1] - coords[first, 1]
    cross = np.zeros(len(coords))
    cross[:-1] = x[:-1] * y[1:] - x[1:] * y[:-1]
    last = starts + lengths - 1
    cross[last] = 0.0  # no edge from a ring's last vertex to the next ring's first
    signed = np.add.reduceat(cross, starts) if len(starts) else np.zeros(0)
    signed[lengths == 0] = 0.0
    exterior = np.zeros(n_rings, dtype=bool)
    exterior[poly_off[:-1][np.diff(poly_off) > 0]] = True
    flip = np.flatnonzero(np.where(exterior, signed < 0, signed > 0))
    if flip.size:
        n = lengths[flip]
        offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        src = np.repeat(starts[flip], n) + offs
        dst = np.repeat(starts[flip] + n - 1, n) - offs
        coords = coords.copy()
        coords[dst] = coords[src].copy()
    return coords, starts, lengths, poly_geom[ring_poly]


def _ring_group_areas(coords: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                      ring_group: np.ndarray, n_groups: int) -> np.ndarray:
    """Area of each group of oriented rings (``_ring_table``), in one Geod call per group.

    The rings of a group are chained into one closed path that returns to the group's first
    vertex between rings: each connecting geodesic is walked once forth and once back, so it
    adds nothing, and the path's signed area is the sum of the rings' signed areas (Karney's
    algorithm, as ``Geod.geometry_area_perimeter`` applies it ring by ring).
    """
    out = np.zeros(n_groups)
    if len(lengths) == 0:
        return out
    order = np.argsort(ring_group, kind="stable")
    rg, n, s = ring_group[order], lengths[order], starts[order]
    first = np.ones(len(rg), dtype=bool)
    first[1:] = rg[1:] != rg[:-1]
    out_len = n + (~first)
    out_start = np.concatenate([[0], np.cumsum(out_len)[:-1]])
    offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    path = np.empty((int(out_len.sum()), 2))
    path[np.repeat(out_start, n) + offs] = coords[np.repeat(s, n) + offs]
    head = np.maximum.accumulate(np.where(first, np.arange(len(rg)), 0))
    back = ~first
    path[(out_start + n)[back]] = coords[s[head[back]]]
    lon, lat = np.ascontiguousarray(path[:, 0]), np.ascontiguousarray(path[:, 1])
    g_start = out_start[first]
    g_end = np.concatenate([g_start[1:], [len(path)]])
    for g, a, b in zip(rg[first], g_start, g_end):
        out[g] = abs(_ring_area(lon[a:b], lat[a:b]))
    return out


def _ring_area(lon: np.ndarray, lat: np.ndarray) -> float:
    """Signed geodesic area of one closed path (pyproj's call without its per-call copying)."""
    return _RAW_AREA(lon, lat, radians=False)[0]


#: ``Geod.polygon_area_perimeter`` copies its inputs on every call; contiguous float arrays can
#: go to the compiled method directly (the public one where a pyproj version lacks it).
_RAW_AREA = getattr(_GEOD, "_polygon_area_perimeter", None) or (
    lambda lon, lat, radians=False: _GEOD.polygon_area_perimeter(lon, lat, radians=radians))


@dataclass
class AreaInput:
    """The counted geometries of one owner, meter and period, with who and when."""

    geoms: np.ndarray  # shapely geometries, EPSG:4326 lon/lat
    users: np.ndarray  # user id per geometry
    days: np.ndarray | None = None  # local day (date ordinal, or any integer bucket) per geometry


@dataclass
class AreaResult:
    """Everything a report needs, in m²."""

    owner: float = 0.0
    users: dict[str, float] = field(default_factory=dict)
    exclusive: dict[str, float] = field(default_factory=dict)
    pairs: dict[tuple[str, str], float] = field(default_factory=dict)
    daily_owner: dict[int, float] = field(default_factory=dict)
    daily_users: dict[str, dict[int, float]] = field(default_factory=dict)
    regions: list[tuple[shapely.Geometry, tuple[str, ...]]] = field(default_factory=list)
    tiles: int = 0
    pieces: int = 0
    # Vertices a tile clip put on a tile line, for the corrections of usagectl.meters.area_cuts.
    cuts: area_cuts.Cuts = field(default_factory=area_cuts.Cuts)

    def to_json(self) -> dict[str, Any]:
        """A tile's figures as JSON-ready data (floats round-trip exactly through ``json``)."""
        return {"owner": self.owner, "users": self.users, "exclusive": self.exclusive,
                "pairs": [[a, b, v] for (a, b), v in self.pairs.items()],
                "daily_owner": [[d, v] for d, v in self.daily_owner.items()],
                "daily_users": {u: [[d, v] for d, v in ds.items()]
                                for u, ds in self.daily_users.items()},
                "pieces": self.pieces,
                "cuts": self.cuts.to_json(),
                # Only when asked for (the per-tile store never holds regions: same bytes).
                **({"regions": [[shapely.to_wkb(g, hex=True), list(u)] for g, u in self.regions]}
                   if self.regions else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AreaResult:
        return cls(owner=data["owner"], users=dict(data["users"]),
                   exclusive=dict(data["exclusive"]),
                   pairs={(a, b): v for a, b, v in data["pairs"]},
                   daily_owner={d: v for d, v in data["daily_owner"]},
                   daily_users={u: {d: v for d, v in ds} for u, ds in data["daily_users"].items()},
                   regions=[(shapely.from_wkb(g), tuple(u)) for g, u in data.get("regions", ())],
                   tiles=1, pieces=data["pieces"],
                   cuts=area_cuts.Cuts.from_json(data["cuts"]))


def _polygonal(geoms: np.ndarray, strict: bool = False) -> np.ndarray:
    """Drop the points and lines a clip can leave beside polygons (they have no area).

    ``strict`` also turns a lone point or line into an empty polygon. Changes ``geoms`` in place.
    """
    types = shapely.get_type_id(geoms)
    for k in np.flatnonzero(types == 7):
        # Empty parts too: a union of slivers can collapse to
        # GEOMETRYCOLLECTION (POLYGON EMPTY, GEOMETRYCOLLECTION EMPTY).
        parts = shapely.get_parts(geoms[k])
        parts = parts[np.isin(shapely.get_type_id(parts), (3, 6)) & ~shapely.is_empty(parts)]
        g = shapely.union_all(parts) if len(parts) else shapely.Polygon()
        geoms[k] = g if shapely.get_type_id(g) in (3, 6) else shapely.Polygon()
    if strict:
        geoms[~np.isin(types, (3, 6, 7))] = shapely.Polygon()
    return geoms


def tile_pieces(geoms: np.ndarray, tile_deg: float = TILE_DEG
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut geometries by the tile grid: (tile keys, pieces, index of the source geometry).

    A geometry inside one tile is kept whole; one that crosses tile edges is intersected with each
    tile box it touches, so that the pieces of all geometries partition space by tile.
    """
    keys, pieces, source, _ = _tile_pieces(geoms, tile_deg)
    return keys, pieces, source


def _tile_pieces(geoms: np.ndarray, tile_deg: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``tile_pieces`` and, per piece, whether a clip made it.

    A geometry inside one tile is kept whole; one that crosses tile edges is intersected with each
    tile box it touches, so that the pieces of all geometries partition space by tile.
    """
    if len(geoms) == 0:
        return (np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=object),
                np.empty(0, dtype=np.int64), np.empty(0, dtype=bool))
    origin = np.arange(len(geoms))
    b = shapely.bounds(geoms)
    wide = np.flatnonzero(b[:, 2] - b[:, 0] > 180)
    if wide.size:
        # A field split at the antimeridian spans 360° as a whole: tile its parts one by one
        # instead of every tile of the band between them.
        parts, index = shapely.get_parts(geoms[wide], return_index=True)
        keep = np.setdiff1d(origin, wide)
        geoms = np.concatenate([geoms[keep], parts])
        origin = np.concatenate([keep, wide[index]])
        b = shapely.bounds(geoms)
    ix0 = np.floor(b[:, 0] / tile_deg).astype(np.int64)
    iy0 = np.floor(b[:, 1] / tile_deg).astype(np.int64)
    ix1 = np.floor(b[:, 2] / tile_deg).astype(np.int64)
    iy1 = np.floor(b[:, 3] / tile_deg).astype(np.int64)
    single = (ix0 == ix1) & (iy0 == iy1)
    keys = [np.column_stack([ix0[single], iy0[single]])]
    pieces = [geoms[single]]
    source = [np.flatnonzero(single)]
    clipped = [np.zeros(int(single.sum()), dtype=bool)]
    multi = np.flatnonzero(~single)
    if multi.size:
        ny = iy1[multi] - iy0[multi] + 1
        count = (ix1[multi] - ix0[multi] + 1) * ny
        rep = np.repeat(np.arange(len(multi)), count)
        local = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        tx = ix0[multi][rep] + local // ny[rep]
        ty = iy0[multi][rep] + local % ny[rep]
        # Boxes from k * tile_deg: area_cuts.on_line recognises their lines by the same float operation.
        boxes = shapely.box(tx * tile_deg, ty * tile_deg, (tx + 1) * tile_deg, (ty + 1) * tile_deg)
        cut = shapely.intersection(geoms[multi][rep], boxes)
        keep = shapely.area(cut) > 0
        keys.append(np.column_stack([tx, ty])[keep])
        pieces.append(_polygonal(cut[keep]))
        source.append(multi[rep][keep])
        clipped.append(np.ones(int(keep.sum()), dtype=bool))
    return (np.concatenate(keys), np.concatenate(pieces), origin[np.concatenate(source)],
            np.concatenate(clipped))


def tile_spans(geoms: np.ndarray, tile_deg: float = TILE_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Every (tile key, geometry index) where a geometry's bounding box touches a tile.

    A superset of the tiles ``tile_pieces`` gives a geometry pieces in, found without clipping.
    """
    if len(geoms) == 0:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=np.int64)
    origin = np.arange(len(geoms))
    b = shapely.bounds(geoms)
    wide = np.flatnonzero(b[:, 2] - b[:, 0] > 180)
    if wide.size:  # split at the antimeridian: its parts, as tile_pieces does
        parts, index = shapely.get_parts(geoms[wide], return_index=True)
        keep = np.setdiff1d(origin, wide)
        b = np.concatenate([b[keep], shapely.bounds(parts)])
        origin = np.concatenate([keep, wide[index]])
    ix0 = np.floor(b[:, 0] / tile_deg).astype(np.int64)
    iy0 = np.floor(b[:, 1] / tile_deg).astype(np.int64)
    nx = np.floor(b[:, 2] / tile_deg).astype(np.int64) - ix0 + 1
    ny = np.floor(b[:, 3] / tile_deg).astype(np.int64) - iy0 + 1
    count = nx * ny
    rep = np.repeat(np.arange(len(b)), count)
    local = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    keys = np.column_stack([ix0[rep] + local // ny[rep], iy0[rep] + local % ny[rep]])
    return keys, origin[rep]


@dataclass(frozen=True)
class Options:
    """What the kernel computes for each tile (``options`` builds it from the public flags)."""

    tile_deg: float = TILE_DEG
    overlap: bool = False
    pairs: bool = False
    daily_owner: bool = False
    daily_users: bool = False
    daily_since: int | None = None  # daily values only for days from this one
    base: bool = True  # owner and user areas (off when only recent daily values are wanted)
    regions: bool = False


def _union(geoms: np.ndarray | list) -> shapely.Geometry:
    if len(geoms) == 1:
        return geoms[0]
    # Pieces that touch nothing else pass through untouched; only connected subsets are overlaid.
    return shapely.disjoint_subset_union_all(np.asarray(geoms, dtype=object))


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of the runs of equal values in a sorted array."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    heads = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return heads, np.r_[heads[1:], len(keys)]


def _minus_earlier(g: np.ndarray, i: np.ndarray, j: np.ndarray,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Each ``g[i]`` minus the union of every ``g[j]`` paired with it; other ``g`` as they are.

    Written into ``out`` (whose other entries are kept) when given, else into a copy of ``g``.
    """
    new = g.copy() if out is None else out
    if i.size == 0:
        return new
    o = np.lexsort((j, i))
    i, j = i[o], j[o]
    heads, ends = _runs(i)
    covers = np.empty(len(heads), dtype=object)
    for k, (s, e) in enumerate(zip(heads, ends)):
        covers[k] = g[j[s]] if e - s == 1 else shapely.union_all(g[j[s:e]])
    targets = i[heads]
    new[targets] = shapely.difference(g[targets], covers)
    return new


def _news(new: np.ndarray, group: np.ndarray, wanted: np.ndarray, li: np.ndarray,
          lj: np.ndarray, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each day's newly covered region, as (geometries, group of each).

    ``new``: each piece minus the earlier days' pieces it meets; ``(li, lj)``: pieces of the same
    day whose interiors meet. Those are united per group (tile, day and, at user level, user), so
    that the result does not depend on the order of events within a day; the other pieces count
    as they are. Only pieces in ``wanted`` (whose day is asked for) count, and solo pieces in
    ``skip`` are left out (measured elsewhere).
    """
    linked = np.zeros(len(new), dtype=bool)
    linked[li] = True
    linked[lj] = True  # same day as a wanted piece: wanted too
    solo = np.flatnonzero(~linked & wanted & ~skip)
    if not linked.any():
        return new[solo], group[solo]
    joined = np.flatnonzero(linked)
    order = joined[np.argsort(group[joined], kind="stable")]
    heads, ends = _runs(group[order])
    merged = np.empty(len(heads), dtype=object)
    for k, (s, e) in enumerate(zip(heads, ends)):
        merged[k] = _union(new[order[s:e]])
    return (np.concatenate([new[solo], merged]),
            np.concatenate([group[solo], group[order[heads]]]))


class _Measures:
    """Geometries to measure, each labelled with its tile and the figure it adds to."""

    def __init__(self) -> None:
        self.geoms: list[np.ndarray] = []
        self.groups: list[np.ndarray] = []
        self.labels: list[tuple[int, tuple]] = []

    def add(self, tile: int, label: tuple, geom: shapely.Geometry) -> None:
        self.geoms.append(np.asarray([geom], dtype=object))
        self.groups.append(np.asarray([len(self.labels)]))
        self.labels.append((tile, label))

    def add_many(self, geoms: np.ndarray, tiles: np.ndarray, labels: list[tuple],
                 label_of: np.ndarray) -> None:
        """``geoms[k]`` adds to ``labels[label_of[k]]`` of tile ``tiles[k]``."""
        key = tiles.astype(np.int64) * len(labels) + label_of
        uniq, inv = np.unique(key, return_inverse=True)
        base = len(self.labels)
        self.labels.extend((int(u // len(labels)), labels[int(u % len(labels))]) for u in uniq)
        self.geoms.append(geoms)
        self.groups.append(base + inv)

    def measure(self) -> tuple[np.ndarray, np.ndarray, list[tuple[int, tuple]]]:
        if not self.geoms:
            return np.empty(0, dtype=object), np.empty(0, dtype=np.int64), []
        geoms = np.concatenate(self.geoms)
        groups = np.concatenate(self.groups)
        return geoms, groups, self.labels


def _work_batch(pieces: np.ndarray, users: np.ndarray, days: np.ndarray | None,
                tiles: np.ndarray, clipped: np.ndarray, opts: Options) -> list[AreaResult]:
    """All area figures of a batch of tiles (pieces sorted by tile; ``tiles`` 0..n-1)."""
    n_tiles = int(tiles.max()) + 1 if len(tiles) else 0
    results = [AreaResult(tiles=1) for _ in range(n_tiles)]
    m = _Measures()
    names, uinv = np.unique(users, return_inverse=True)
    order = _canonical_order(pieces, uinv, days, tiles)
    pieces, uinv, tiles, clipped = pieces[order], uinv[order], tiles[order], clipped[order]
    if days is not None:
        days = days[order]
    if opts.base:
        _unions(m, results, pieces, uinv, names, tiles, opts)
    for t, count in enumerate(np.bincount(tiles, minlength=n_tiles)):
        results[t].pieces = int(count)
    if days is not None and (opts.daily_owner or opts.daily_users):
        _daily(m, pieces, uinv, names, days, tiles, opts)
    geoms, groups, labels = m.measure()
    coords, starts, lengths, ring_geom = _ring_table(geoms)
    ring_group = groups[ring_geom]
    areas = _ring_group_areas(coords, starts, lengths, ring_group, len(labels))
    for (tile, label), a in zip(labels, areas):
        _assign(results[tile], label, float(a))
    tile_clipped = np.zeros(n_tiles, dtype=bool)
    tile_clipped[tiles[clipped]] = True
    if labels and tile_clipped.any():
        _attach_cuts(results, labels, tile_clipped,
                     area_cuts.records(coords, starts, lengths, ring_group, opts.tile_deg))
    return results


def _canonical_order(pieces: np.ndarray, uinv: np.ndarray, days: np.ndarray | None,
                     tiles: np.ndarray) -> np.ndarray:
    """An order of a batch's pieces that depends on their content only, not on arrival.

    GEOS's unions and differences, and so the last bits of an area, can depend on the order of
    their inputs (measured: 1e-5 m² on a 2,500 ha owner union of re-uploaded fields). Pieces are
    sorted by tile, user, day and bounding box; pieces equal in all of those (re-uploads) by
    their WKB bytes, so that a tile's figures are a function of its rows as a set.
    """
    b = shapely.bounds(pieces)
    d = np.zeros(len(pieces), dtype=np.int64) if days is None else days
    keys = (b[:, 3], b[:, 2], b[:, 1], b[:, 0], d, uinv, tiles)
    order = np.lexsort(keys)
    srt = np.column_stack([k[order] for k in keys[::-1]])
    tied = np.flatnonzero(np.all(srt[1:] == srt[:-1], axis=1))
    if tied.size:
        # Runs of equal keys: each ordered by WKB (identical rows can stay in any order).
        same = np.zeros(len(order), dtype=bool)
        same[tied] = same[tied + 1] = True
        run = np.cumsum(np.r_[True, ~np.all(srt[1:] == srt[:-1], axis=1)])
        members = np.flatnonzero(same)
        wkb = shapely.to_wkb(pieces[order[members]])
        ranked = sorted(range(len(members)), key=lambda k: (run[members[k]], wkb[k]))
        order[members] = order[members[ranked]]
    return order


def _unions(m: _Measures, results: list[AreaResult], pieces: np.ndarray, uinv: np.ndarray,
            names: np.ndarray, tiles: np.ndarray, opts: Options) -> None:
    """Each tile's user unions and owner union (and on request overlap figures and regions)."""
    order = np.lexsort((uinv, tiles))
    t_sorted, u_sorted = tiles[order], uinv[order]
    heads, ends = _runs(t_sorted * len(names) + u_sorted)
    unions = np.empty(len(heads), dtype=object)
    for k, (s, e) in enumerate(zip(heads, ends)):
        unions[k] = _union(pieces[order[s:e]])
    union_tile, union_user = t_sorted[heads], u_sorted[heads]
    for k in range(len(heads)):
        m.add(int(union_tile[k]), ("u", names[union_user[k]]), unions[k])
    t_heads, t_ends = _runs(union_tile)
    for s, e in zip(t_heads, t_ends):
        tile = int(union_tile[s])
        owner = unions[s] if e - s == 1 else _union(unions[s:e])
        m.add(tile, ("o",), owner)
    if opts.regions:
        _regions(results, unions, union_tile, union_user, names)
    if opts.overlap:
        _overlap(m, unions, union_tile, union_user, names, opts)


def _attach_cuts(results: list[AreaResult], labels: list[tuple[int, tuple]],
                 tile_clipped: np.ndarray, recs: tuple[np.ndarray, ...]) -> None:
    """Give each tile the cut records of its figures (only tiles with clipped pieces have any).

    A cut is matched with the record of the same figure in the neighbouring tile, so records are
    kept per figure: those of a shared daily piece ("sd") count for the owner's day and for the
    user's day, whatever the neighbour's piece was measured as.
    """
    pool: dict[tuple, int] = {}
    first = np.empty(len(labels), dtype=np.int64)
    second = np.full(len(labels), -1, dtype=np.int64)
    for k, (_, label) in enumerate(labels):
        if label[0] == "sd":
            first[k] = pool.setdefault(("od", label[2]), len(pool))
            second[k] = pool.setdefault(("ud", label[1], label[2]), len(pool))
        else:
            first[k] = pool.setdefault(label, len(pool))
    names = list(pool)
    group, axis, inbound, pts = recs
    label_tile = np.asarray([t for t, _ in labels], dtype=np.int64)
    keep = tile_clipped[label_tile[group]]
    group, axis, inbound, pts = group[keep], axis[keep], inbound[keep], pts[keep]
    twice = second[group] >= 0
    tile = np.concatenate([label_tile[group], label_tile[group[twice]]])
    lab = np.concatenate([first[group], second[group[twice]]])
    axis, inbound = np.concatenate([axis, axis[twice]]), np.concatenate([inbound, inbound[twice]])
    pts = np.concatenate([pts, pts[twice]])
    order = np.argsort(tile, kind="stable")
    tile, lab, axis, inbound, pts = tile[order], lab[order], axis[order], inbound[order], pts[order]
    heads, ends = _runs(tile)
    for s, e in zip(heads, ends):
        used, idx = np.unique(lab[s:e], return_inverse=True)
        results[int(tile[s])].cuts = area_cuts.Cuts(
            [names[x] for x in used], idx.astype(np.int64), axis[s:e], inbound[s:e], pts[s:e])


def _assign(res: AreaResult, label: tuple, a: float) -> None:
    kind = label[0]
    if kind == "o":
        res.owner += a
    elif kind == "u":
        res.users[label[1]] = res.users.get(label[1], 0.0) + a
    elif kind == "x":
        res.exclusive[label[1]] = res.exclusive.get(label[1], 0.0) + a
    elif kind == "p":
        res.pairs[(label[1], label[2])] = res.pairs.get((label[1], label[2]), 0.0) + a
    elif kind == "od":
        res.daily_owner[label[1]] = res.daily_owner.get(label[1], 0.0) + a
    elif kind == "ud":
        days = res.daily_users.setdefault(label[1], {})
        days[label[2]] = days.get(label[2], 0.0) + a
    elif kind == "sd":  # a user's new area that is new for the owner too
        res.daily_owner[label[2]] = res.daily_owner.get(label[2], 0.0) + a
        days = res.daily_users.setdefault(label[1], {})
        days[label[2]] = days.get(label[2], 0.0) + a


def _overlap(m: _Measures, unions: np.ndarray, union_tile: np.ndarray, union_user: np.ndarray,
             names: np.ndarray, opts: Options) -> None:
    """Exclusive areas and pairs, from the parts of the users' unions in each tile.

    The parts of one user's union are disjoint, so a part's exclusive area is the part minus
    the other users' parts whose interiors meet it, and ``A(U_a ∩ U_b)`` is the sum of its
    parts' pairwise intersections, found with a spatial index: no union of everything.
    """
    parts, idx = shapely.get_parts(unions, return_index=True)
    tile, user = union_tile[idx], union_user[idx]
    i, j = shapely.STRtree(parts).query(parts, predicate="intersects")
    keep = (tile[i] == tile[j]) & (user[i] != user[j])
    i, j = i[keep], j[keep]
    o = np.lexsort((j, i))  # the tree's order depends on the whole batch: not a figure's
    i, j = i[o], j[o]
    if i.size:
        solid = shapely.relate_pattern(parts[i], parts[j], "2********")
        i, j = i[solid], j[solid]
    labels = [("x", u) for u in names]
    m.add_many(_minus_earlier(parts, i, j), tile, labels, user)
    if not opts.pairs:
        return
    once = user[i] < user[j]
    i, j = i[once], j[once]
    if i.size == 0:
        return
    key = user[i].astype(np.int64) * len(names) + user[j]
    uk, kinv = np.unique(key, return_inverse=True)
    pair_labels = [("p", names[k // len(names)], names[k % len(names)]) for k in uk]
    m.add_many(shapely.intersection(parts[i], parts[j]), tile[i], pair_labels, kinv)


def _regions(results: list[AreaResult], unions: np.ndarray, union_tile: np.ndarray,
             union_user: np.ndarray, names: np.ndarray) -> None:
    """Each tile's regions covered by two users or more (for ``overlap --geojson``).

    Only the parts of the user unions whose interiors meet another user's part can be in such a
    region; they are grouped into clusters of parts linked by such overlaps (a region lies in
    one cluster, with every part covering it), and each cluster is split by ``_tile_regions``.
    """
    parts, idx = shapely.get_parts(unions, return_index=True)
    tile, user = union_tile[idx], union_user[idx]
    i, j = shapely.STRtree(parts).query(parts, predicate="intersects")
    keep = (i < j) & (tile[i] == tile[j]) & (user[i] != user[j])
    i, j = i[keep], j[keep]
    if i.size == 0:
        return
    solid = shapely.relate_pattern(parts[i], parts[j], "2********")
    i, j = i[solid], j[solid]
    root = list(range(len(parts)))

    def find(k: int) -> int:
        while root[k] != k:
            root[k] = root[root[k]]
            k = root[k]
        return k

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            root[max(ra, rb)] = min(ra, rb)
    clusters: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for k in sorted(set(i.tolist()) | set(j.tolist())):
        clusters[find(k)][names[user[k]]].append(parts[k])
    for head, by_user in sorted(clusters.items()):
        # The parts of one user's union are disjoint: together they are a valid MultiPolygon.
        cluster = {u: ps[0] if len(ps) == 1 else shapely.multipolygons(ps)
                   for u, ps in by_user.items()}
        results[int(tile[head])].regions.extend(_tile_regions(cluster))


def _tile_regions(unions: dict[str, shapely.Geometry]
                  ) -> list[tuple[shapely.Geometry, tuple[str, ...]]]:
    """The regions covered by two users or more of these unions, each with exactly its users.

    Built by set algebra, not by labelling faces with a sample point: users are added one at a
    time (in name order); every region so far is split into its part inside the new user's
    union (the user joins its label) and its part outside (label unchanged), and what the user
    covers that no earlier user did becomes a region of its own. So the region labelled S is
    ``∩ U_u (u in S) − ∪ U_v (v not in S)`` by construction, and labels are distinct. (Faces
    from ``polygonize`` of the users' clipped boundaries, used before, lost any boundary piece
    whose clipped ends missed the other lines by a rounding error: polygonize drops it as a
    dangle, and the face around it took the label of its sample point — 1.1 acres of the
    sample's overlap named a user who did not cover them.)
    """
    geoms = np.empty(0, dtype=object)
    labels: list[tuple[str, ...]] = []
    covered = None
    for u in sorted(unions):
        g = unions[u]
        meet = np.zeros(len(geoms), dtype=bool)
        if len(geoms):
            meet = shapely.intersects(geoms, g)
        inside = _solid(shapely.intersection(geoms[meet], g))
        outside = _solid(shapely.difference(geoms[meet], g))
        fresh = _solid(np.asarray([g if covered is None else shapely.difference(g, covered)],
                                  dtype=object))
        was = [labels[k] for k in np.flatnonzero(meet)]
        labels = ([labels[k] for k in np.flatnonzero(~meet)]
                  + [lab + (u,) for lab, ok in zip(was, inside) if ok is not None]
                  + [lab for lab, ok in zip(was, outside) if ok is not None]
                  + [(u,) for ok in fresh if ok is not None])
        parts = np.concatenate([geoms[~meet], inside, outside, fresh])
        geoms = parts[~shapely.is_missing(parts)]
        covered = g if covered is None else shapely.union(covered, g)
    return [(g, label) for g, label in zip(geoms, labels) if len(label) >= 2]


def _solid(geoms: np.ndarray) -> np.ndarray:
    """The polygonal part of each overlay result; None where nothing with area is left."""
    out = _polygonal(geoms.copy(), strict=True)
    if len(out):
        out[shapely.is_empty(out) | (shapely.area(out) <= 0)] = None
    return out


def _daily(m: _Measures, pieces: np.ndarray, uinv: np.ndarray, names: np.ndarray,
           days: np.ndarray, tiles: np.ndarray, opts: Options) -> None:
    """Newly covered area per day, at owner and user level (SPEC §5.1 daily consumption).

    Pieces are taken in time order; each adds what of it no earlier piece of its tile covered:
    itself minus the union of the earlier pieces whose interiors meet it, found with a spatial
    index. Summed per day these are A(U through d) − A(U through d − 1), and they add up to the
    area of the union; a piece that overlaps nothing earlier costs no geometry operation.
    """
    n = len(pieces)
    order = np.lexsort((np.arange(n), days))
    g, u, d, t = pieces[order], uinv[order], days[order], tiles[order]
    # Only the days asked for are measured (all of them, or the last few for a trend); every
    # earlier piece still covers them.
    wanted = np.ones(n, dtype=bool) if opts.daily_since is None else d >= opts.daily_since
    targets = np.flatnonzero(wanted)
    i, j = shapely.STRtree(g).query(g[targets], predicate="intersects")
    i = targets[i]
    keep = (j < i) & (t[i] == t[j])
    i, j = i[keep], j[keep]
    if i.size:
        solid = shapely.relate_pattern(g[i], g[j], "2********")
        i, j = i[solid], j[solid]
    before = d[j] < d[i]
    same_day, same_user = ~before, u[i] == u[j]
    day_names, dinv = np.unique(d, return_inverse=True)
    nd = len(day_names)
    uk, kinv = np.unique(u.astype(np.int64) * nd + dinv, return_inverse=True)

    def user_labels(kind: str) -> list[tuple]:
        return [(kind, names[k // nd], int(day_names[k % nd])) for k in uk]

    skip = np.zeros(n, dtype=bool)
    if opts.daily_owner:
        new_o = _minus_earlier(g, i[before], j[before])
    if opts.daily_users and opts.daily_owner:
        # A piece whose earlier partners are all its own user's has the same new region at both
        # levels: computed once, and measured once (label "sd" adds to both) unless same-day
        # pieces meet it. Only pieces with another user's earlier piece are differenced again.
        mixed = np.zeros(n, dtype=bool)
        mixed[i[before & ~same_user]] = True
        new_u = new_o.copy()
        new_u[mixed] = g[mixed]
        sel = before & same_user & mixed[i]
        _minus_earlier(g, i[sel], j[sel], out=new_u)
        linked = np.zeros(n, dtype=bool)
        linked[i[same_day]] = True
        linked[j[same_day]] = True
        skip = wanted & ~mixed & ~linked
        shared = np.flatnonzero(skip)
        m.add_many(new_o[shared], t[shared], user_labels("sd"), kinv[shared])
    elif opts.daily_users:
        new_u = _minus_earlier(g, i[before & same_user], j[before & same_user])
    if opts.daily_owner:
        geoms, grp = _news(new_o, t.astype(np.int64) * nd + dinv, wanted, i[same_day],
                           j[same_day], skip)
        m.add_many(geoms, grp // nd, [("od", int(x)) for x in day_names], grp % nd)
    if opts.daily_users:
        both = same_day & same_user
        geoms, grp = _news(new_u, t.astype(np.int64) * len(uk) + kinv, wanted, i[both], j[both],
                           skip)
        m.add_many(geoms, grp // len(uk), user_labels("ud"), grp % len(uk))


# ---------------------------------------------------------------------------------------------
# The execution seam: plan → run_block (on any executor) → gather + combine (docs/area.md,
# "Execution: plan, run, combine"). The local engine and a distributed one call the same three.
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Block:
    """A unit of work: every piece of some whole tiles, with what the kernel needs of each row.

    Only plain data: NumPy arrays, strings, an ``Options`` dataclass. Pickled (a process pool, a
    Spark task), the geometries travel as WKB (``__getstate__``), which keeps every coordinate's
    bits; ``columns``/``from_columns`` give the same block as flat columns, one row per piece
    (what Spark's ``applyInPandas`` hands a worker), in any row order.
    """

    keys: np.ndarray  # (n_tiles, 2) int64: the block's tiles, ascending
    tile: np.ndarray  # int64 per piece: index into ``keys``
    pieces: np.ndarray  # shapely geometry per piece (lon/lat), WKB when pickled
    users: np.ndarray  # user id per piece (object array of str)
    days: np.ndarray | None  # int64 local day per piece, or None without daily figures
    clipped: np.ndarray  # bool per piece: a tile clip made it (its cut records are kept)
    options: Options

    def __len__(self) -> int:
        return len(self.pieces)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["pieces"] = shapely.to_wkb(self.pieces)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["pieces"] = shapely.from_wkb(state["pieces"])
        self.__dict__.update(state)

    def columns(self) -> dict[str, np.ndarray]:
        """One row per piece: ``tx, ty`` (tile key), ``wkb``, ``user``, ``day`` (absent without
        daily figures), ``clipped``."""
        cols = {"tx": self.keys[self.tile, 0], "ty": self.keys[self.tile, 1],
                "wkb": shapely.to_wkb(self.pieces), "user": self.users, "clipped": self.clipped}
        if self.days is not None:
            cols["day"] = self.days
        return cols

    @classmethod
    def from_columns(cls, cols: Mapping[str, Any], options: Options) -> Block:
        """The block of ``columns`` rows (any order, any sequence type: arrays, lists, Series)."""
        tx = np.asarray(cols["tx"], dtype=np.int64)
        ty = np.asarray(cols["ty"], dtype=np.int64)
        order = np.lexsort((ty, tx))
        key = np.column_stack([tx[order], ty[order]])
        new_tile = np.r_[True, np.any(key[1:] != key[:-1], axis=1)][:len(key)]
        days = cols.get("day")
        return cls(keys=key[new_tile], tile=np.cumsum(new_tile).astype(np.int64) - 1,
                   pieces=shapely.from_wkb(np.asarray(cols["wkb"], dtype=object)[order]),
                   users=np.asarray(cols["user"], dtype=object)[order],
                   days=None if days is None else np.asarray(days, dtype=np.int64)[order],
                   clipped=np.asarray(cols["clipped"], dtype=bool)[order], options=options)


@dataclass(eq=False)
class BlockResult:
    """What ``run_block`` returns: each of the block's tiles with its figures (before cuts).

    Picklable (regions travel as WKB); ``rows``/``from_rows`` give one JSON text per tile for an
    engine that moves rows, not objects (floats round-trip exactly through ``json``).
    """

    keys: np.ndarray  # (n_tiles, 2) int64
    results: list[AreaResult]

    def __getstate__(self) -> dict[str, Any]:
        return {"keys": self.keys,
                "results": [replace(r, regions=[(shapely.to_wkb(g), u) for g, u in r.regions])
                            if r.regions else r for r in self.results]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for r in state["results"]:
            r.regions = [(shapely.from_wkb(g), u) for g, u in r.regions]
        self.__dict__.update(state)

    def rows(self) -> list[tuple[int, int, str]]:
        """``(tx, ty, json)`` per tile (``AreaResult.to_json``, regions included)."""
        return [(int(x), int(y), json.dumps(r.to_json(), separators=(",", ":")))
                for (x, y), r in zip(self.keys.tolist(), self.results)]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, int, str]]) -> BlockResult:
        rows = list(rows)
        keys = np.asarray([(x, y) for x, y, _ in rows], dtype=np.int64).reshape(-1, 2)
        return cls(keys, [AreaResult.from_json(json.loads(text)) for _, _, text in rows])


@dataclass(eq=False)
class Plan:
    """The blocks of one computation and what combining them needs (pure, picklable data)."""

    options: Options
    blocks: list[Block]
    keys: np.ndarray  # (n_tiles, 2) every tile of every block, ascending
    pieces: int
    #: Input vertices lying on a tile line, with their user (``names[user]``), for the cut
    #: records of ``gather``; None when no piece was clipped.
    line_xy: np.ndarray | None = None
    line_user: np.ndarray | None = None
    line_names: np.ndarray | None = None


#: ``executor(run_block, blocks)`` → the block results, in any order (``map`` is one: in
#: process). The local pool (``pool_executor``) and a Spark engine are others.
Executor = Callable[[Callable[[Block], BlockResult], Sequence[Block]], Iterable[BlockResult]]

#: The executor and block size the engine uses when a call names none (``executing``).
_EXECUTION: ContextVar[tuple[Executor | None, int | None]] = ContextVar(
    "usagectl_area_execution", default=(None, None))


@contextmanager
def executing(executor: Executor | None, block_pieces: int | None = None) -> Iterator[None]:
    """Run every area computation inside the ``with`` on ``executor`` (blocks of about
    ``block_pieces`` pieces), without passing it through every caller (a report, the cache)."""
    token = _EXECUTION.set((executor, block_pieces))
    try:
        yield
    finally:
        _EXECUTION.reset(token)


def options(*, overlap: bool = False, pairs: bool = False, daily: bool | str = False,
            regions: bool = False, tile_deg: float = TILE_DEG, daily_since: int | None = None,
            base: bool = True) -> Options:
    """The kernel's options from the public flags (``daily``: True, ``"owner"`` or ``"users"``)."""
    return Options(tile_deg=tile_deg, overlap=overlap or pairs or regions, pairs=pairs,
                   daily_owner=daily is True or daily == "owner",
                   daily_users=daily is True or daily == "users", daily_since=daily_since,
                   base=base, regions=regions)


def plan(data: AreaInput, opts: Options, *, only: Iterable[tuple[int, int]] | None = None,
         block_pieces: int | None = None, workers: int | None = None) -> Plan:
    """Cut the rows into tile pieces and group whole tiles into blocks of about equal size.

    Blocks hold about ``block_pieces`` pieces each (never splitting a tile); by default the
    local engine's choice: ``8 × workers`` blocks when the pool pays (``PARALLEL_MIN_PIECES``),
    else one per 50,000 pieces. ``only``: just these tiles. How tiles are grouped changes no
    figure: a tile's figures depend on its own pieces only (``run_block``).
    """
    tile_deg = opts.tile_deg
    if len(data.geoms) == 0:
        return Plan(opts, [], np.empty((0, 2), dtype=np.int64), 0)
    keys, pieces, source, clipped = _tile_pieces(data.geoms, tile_deg)
    if only is not None:
        wanted = np.asarray(sorted(set(only)), dtype=np.int64).reshape(-1, 2)
        sel = np.isin(keys[:, 0] * (1 << 32) + keys[:, 1], wanted[:, 0] * (1 << 32) + wanted[:, 1])
        keys, pieces, source, clipped = keys[sel], pieces[sel], source[sel], clipped[sel]
    users = np.asarray(data.users, dtype=object)[source]
    days = np.asarray(data.days, dtype=np.int64)[source] if data.days is not None else None
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    keys, pieces, users, clipped = keys[order], pieces[order], users[order], clipped[order]
    if days is not None:
        days = days[order]
    heads, _ = _runs(keys[:, 0] * (1 << 32) + keys[:, 1])
    tile_of_piece = np.repeat(np.arange(len(heads)), np.diff(np.r_[heads, len(keys)]))
    tile_keys = keys[heads]
    if block_pieces is None:
        workers = workers if workers is not None else (os.cpu_count() or 1)
        n_blocks = (workers * 8 if _parallel(workers, len(pieces))
                    else max(1, len(pieces) // 50_000))
        block_pieces = max(1, math.ceil(len(pieces) / n_blocks))
    blocks = []
    for s, e in _block_ranges(heads, len(pieces), max(1, block_pieces)):
        first, last = int(tile_of_piece[s]), int(tile_of_piece[e - 1])
        blocks.append(Block(keys=tile_keys[first:last + 1], tile=tile_of_piece[s:e] - first,
                            pieces=pieces[s:e], users=users[s:e],
                            days=None if days is None else days[s:e], clipped=clipped[s:e],
                            options=opts))
    out = Plan(opts, blocks, tile_keys, len(pieces))
    if clipped.any():
        coords, which = shapely.get_coordinates(data.geoms, return_index=True)
        on = area_cuts.on_line(coords[:, 0], tile_deg) | area_cuts.on_line(coords[:, 1], tile_deg)
        if on.any():
            out.line_names, out.line_user = np.unique(
                np.asarray(data.users, dtype=object)[which[on]], return_inverse=True)
            out.line_xy = coords[on]
    return out


def _parallel(workers: int, pieces: int) -> bool:
    return workers > 1 and pieces >= PARALLEL_MIN_PIECES


def _block_ranges(heads: np.ndarray, n: int, per: int) -> list[tuple[int, int]]:
    """Piece ranges of about ``per`` pieces that never split a tile (``heads``: tile starts)."""
    if len(heads) == 0:
        return []
    cuts = [0]
    for h in heads[1:]:
        if h - cuts[-1] >= per:
            cuts.append(int(h))
    cuts.append(n)
    return list(zip(cuts[:-1], cuts[1:]))


def run_block(block: Block) -> BlockResult:
    """All area figures of each tile of ``block`` (m², before cut corrections): the pure kernel.

    Depends on nothing but the block: no globals, no I/O, no order of rows (they are sorted
    canonically first), and a tile's figures do not depend on the other tiles in the block. So
    any executor may run it anywhere — in process, in the local pool, in a Spark worker.
    """
    if len(block) == 0:
        return BlockResult(np.empty((0, 2), dtype=np.int64), [])
    results = _work_batch(block.pieces, block.users, block.days, block.tile, block.clipped,
                          block.options)
    return BlockResult(block.keys, results)


def gather(p: Plan, results: Iterable[BlockResult]) -> dict[tuple[int, int], AreaResult]:
    """Block results keyed by tile, in the plan's tile order, cut records checked per tile.

    Blocks may come back in any order; every planned tile must come back exactly once (a lost or
    repeated block would change a total silently). A cut record whose vertex is a vertex of the
    figure's own input geometries is dropped (``_without_input_vertices``).
    """
    got: dict[tuple[int, int], AreaResult] = {}
    for br in results:
        for (x, y), res in zip(br.keys.tolist(), br.results):
            if (x, y) in got:
                raise ValueError(f"area: tile ({x}, {y}) came back twice from the executor")
            got[(x, y)] = res
    planned = [(int(x), int(y)) for x, y in p.keys]
    if len(got) != len(planned) or any(k not in got for k in planned):
        missing = [k for k in planned if k not in got]
        raise ValueError(f"area: the executor returned {len(got)} of {len(planned)} tiles "
                         f"(missing e.g. {missing[:3]})")
    out = {k: got[k] for k in planned}
    if p.line_xy is not None:
        for res in out.values():
            if len(res.cuts):
                res.cuts = _without_input_vertices(res.cuts, p.line_xy, p.line_user, p.line_names)
    return out


def pool_executor(workers: int) -> Executor:
    """The local process pool: blocks run in ``workers`` processes, results as they are taken.

    A few blocks in flight per worker: the WKB sent and the results not yet taken stay a small
    multiple of one block, not the whole input.
    """
    def execute(fn: Callable[[Block], BlockResult], blocks: Sequence[Block]
                ) -> Iterator[BlockResult]:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            pending: deque[Future] = deque()
            for block in blocks:
                pending.append(pool.submit(fn, block))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    return execute


def compute_tiles(data: AreaInput, *, overlap: bool = False, pairs: bool = False,
                  daily: bool | str = False, regions: bool = False, tile_deg: float = TILE_DEG,
                  workers: int | None = None, only: Iterable[tuple[int, int]] | None = None,
                  daily_since: int | None = None, base: bool = True,
                  executor: Executor | None = None, block_pieces: int | None = None
                  ) -> dict[tuple[int, int], AreaResult]:
    """Each tile's figures (m², before cut corrections), for every tile or those in ``only``.

    ``plan`` → ``run_block`` on ``executor`` → ``gather``. Without an executor: the one set by
    ``executing``, else the local pool when it pays, else in process. ``combine`` adds tiles up.
    """
    opts = options(overlap=overlap, pairs=pairs, daily=daily, regions=regions, tile_deg=tile_deg,
                   daily_since=daily_since, base=base)
    chosen, chosen_block = _EXECUTION.get()
    executor = executor or chosen
    block_pieces = block_pieces or (chosen_block if executor is chosen else None)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    p = plan(data, opts, only=only, block_pieces=block_pieces, workers=workers)
    if executor is None:
        executor = pool_executor(workers) if _parallel(workers, p.pieces) else map
    return gather(p, executor(run_block, p.blocks))


def _without_input_vertices(cuts: area_cuts.Cuts, xy: np.ndarray, user: np.ndarray,
                            names: np.ndarray) -> area_cuts.Cuts:
    """The cut records whose vertex is not a vertex of the figure's own input geometries.

    A vertex of a geometry the figure counts is in its reference polygon too: nothing to
    correct there. Owner figures count every user's geometries; a user's figures (area,
    exclusive area, daily values) only that user's; a pair's, its two users'. (A vertex of
    another user's geometry used to cancel the correction of a user's figure: 21.5 m² left on a
    1.5 km edge at 48° cut where another user's corner lay.)
    """
    code_of = {u: k for k, u in enumerate(names)}
    n = len(cuts.labels)
    owner = np.zeros(n, dtype=bool)
    first = np.full(n, -1, dtype=np.int64)  # -1: no user; -2: a user with no vertex on a line
    second = np.full(n, -1, dtype=np.int64)
    for k, label in enumerate(cuts.labels):
        if label[0] in ("o", "od"):
            owner[k] = True
            continue
        first[k] = code_of.get(label[1], -2)
        if label[0] == "p":
            second[k] = code_of.get(label[2], -2)
    at = (xy + 0.0).view(np.int64)  # -0.0 and 0.0 are the same point
    s = (cuts.pts[:, :2] + 0.0).view(np.int64)
    with_user = np.column_stack([user, at])
    lab = cuts.lab
    own = (area_cuts.member(with_user, np.column_stack([first[lab], s]))
           | area_cuts.member(with_user, np.column_stack([second[lab], s])))
    drop = np.where(owner[lab], area_cuts.member(at, s), own)
    return cuts.subset(np.flatnonzero(~drop))


def _pool_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a small server process that has imported only this module.

    Forked from the report process itself, each worker would share (and, as Python touches
    objects, copy) every geometry the report holds; from the server they hold their batch only.
    Where the platform has no fork server, the default start method.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def combine(tiles: Mapping[tuple[int, int], AreaResult], *, overlap: bool = False,
            regions: bool = False) -> AreaResult:
    """Tiles added up, with every cut edge's sliver taken back (usagectl.meters.area_cuts).

    A fixed-order function of the tiles, whatever order they come in (from the store, computed
    afresh, from a pool): each figure is the ``math.fsum`` of its tiles' values and its cut
    correction, which is exactly rounded and so independent of the order of its terms; cut
    records and regions are taken in tile-key order.
    """
    keys = sorted(tiles)
    terms: dict[tuple, list[float]] = defaultdict(list)
    result = AreaResult()
    for key in keys:
        res = tiles[key]
        terms[("o",)].append(res.owner)
        for kind, figures in (("u", res.users), ("x", res.exclusive)):
            for u, v in figures.items():
                terms[(kind, u)].append(v)
        for (a, b), v in res.pairs.items():
            terms[("p", a, b)].append(v)
        for d, v in res.daily_owner.items():
            terms[("od", d)].append(v)
        for u, days in res.daily_users.items():
            for d, v in days.items():
                terms[("ud", u, d)].append(v)
        result.regions.extend(res.regions)
        result.tiles += res.tiles
        result.pieces += res.pieces
    cuts = area_cuts.concat(tiles[key].cuts for key in keys)
    for label, sliver in area_cuts.corrections(cuts).items():
        terms[label].append(-sliver)
    for label in sorted(terms):
        _assign(result, label, math.fsum(terms[label]))
    if overlap:
        result.exclusive = {u: min(max(result.exclusive.get(u, 0.0), 0.0), a)
                            for u, a in result.users.items()}
    if regions:
        result.regions = _merge_regions(result.regions)
    return result


def rows_touching(data: AreaInput, keys: np.ndarray, rows: np.ndarray,
                  tiles: Iterable[tuple[int, int]]) -> AreaInput:
    """The rows whose bounding boxes touch any of ``tiles`` (``keys, rows`` from tile_spans)."""
    code = keys[:, 0] * (1 << 32) + keys[:, 1]
    wanted = np.asarray([x * (1 << 32) + y for x, y in tiles], dtype=np.int64)
    touching = np.unique(rows[np.isin(code, wanted)])
    return AreaInput(data.geoms[touching], np.asarray(data.users, dtype=object)[touching],
                     None if data.days is None else np.asarray(data.days)[touching])


def recent_news(data: AreaInput, since: int, level: str, *, tile_deg: float = TILE_DEG,
                workers: int | None = None, executor: Executor | None = None) -> AreaResult:
    """Daily new area (m²) of the days from ``since`` on, at one level ("owner" or "users").

    What a trend needs, at a cost proportional to the recent rows: only tiles that a recent
    geometry touches are cut and indexed, only recent pieces are differenced, and no union is
    built. The figures are those of ``compute(..., daily=level)`` for the same days.
    """
    days = np.asarray(data.days, dtype=np.int64)
    recent = np.flatnonzero(days >= since)
    if recent.size == 0:
        return AreaResult()
    keys, rows = tile_spans(data.geoms, tile_deg)
    only = {(int(x), int(y)) for x, y in keys[np.isin(rows, recent)]}
    tiles = compute_tiles(rows_touching(data, keys, rows, only), daily=level, daily_since=since,
                          base=False, tile_deg=tile_deg,
                          workers=workers, only=only, executor=executor)
    return combine(tiles)


def compute(data: AreaInput, *, overlap: bool = False, pairs: bool = False,
            daily: bool | str = False, regions: bool = False, tile_deg: float = TILE_DEG,
            workers: int | None = None, executor: Executor | None = None,
            block_pieces: int | None = None) -> AreaResult:
    """Owner and user areas (m²); on request exclusive areas, pairs, regions, daily new area.

    ``daily`` is True (owner and users), ``"owner"`` or ``"users"``: a report that only needs
    the billed level's series does not pay for the other. ``executor``: where the blocks run
    (``compute_tiles``); the figures are the same bits on every executor.
    """
    tiles = compute_tiles(data, overlap=overlap, pairs=pairs, daily=daily, regions=regions,
                          tile_deg=tile_deg, workers=workers, executor=executor,
                          block_pieces=block_pieces)
    return combine(tiles, overlap=overlap or pairs or regions, regions=regions)


def _merge_regions(regions: Iterable[tuple[shapely.Geometry, tuple[str, ...]]]
                   ) -> list[tuple[shapely.Geometry, tuple[str, ...]]]:
    """Join the per-tile pieces of each user set into one geometry per set, without slivers.

    Each polygon part of the result is kept only if it is thick (``_thick``); a region with no
    part left is left out. Judged per part, not per region: a needle a rounding error wide
    beside a real part of the same set used to pass along with it.
    """
    grouped: dict[tuple[str, ...], list] = defaultdict(list)
    for g, users in regions:
        grouped[tuple(users)].append(g)
    labels = sorted(grouped)
    merged = np.empty(len(labels), dtype=object)
    merged[:] = [_union(grouped[users]) for users in labels]
    parts, owner = shapely.get_parts(merged, return_index=True)  # each region's parts in a run
    keep = _thick(parts)
    n_parts = np.bincount(owner, minlength=len(labels))
    n_kept = np.bincount(owner[keep], minlength=len(labels))
    first = np.cumsum(n_parts) - n_parts
    out = []
    for k, users in enumerate(labels):
        if n_kept[k] == 0:
            continue
        g = merged[k]
        if n_kept[k] < n_parts[k]:
            run = slice(first[k], first[k] + n_parts[k])
            mine = parts[run][keep[run]]
            g = mine[0] if len(mine) == 1 else shapely.multipolygons(mine)
        out.append((g, users))
    return out


def _thick(parts: np.ndarray) -> np.ndarray:
    """Which polygons have a point farther than ``REGION_TOLERANCE_DEG`` from their edge, proven.

    The points of a polygon within ``r`` of its edge cover at most ``r × perimeter +
    π r² × (holes − 1)`` (the inner parallel set's edge is never longer than the polygon's,
    plus ``2π r`` per hole beyond the first). So a polygon whose area exceeds that for
    ``r = REGION_TOLERANCE_DEG`` holds a disc of that radius; one that does not is at most that
    much area — a rounding sliver of an overlay, not coverage. Two vectorised measures per part;
    no search for the largest inscribed circle.
    """
    tol = REGION_TOLERANCE_DEG
    extra_holes = np.maximum(shapely.get_num_interior_rings(parts) - 1, 0)
    return shapely.area(parts) > tol * (shapely.length(parts) + math.pi * tol * extra_holes)
