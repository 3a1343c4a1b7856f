"""Spatially unique area: exact unions, partitioned by space (SPEC §5.1).

Area is additive over disjoint pieces of space, so the plane is cut into square lon/lat tiles;
each geometry is assigned to the tile holding it (the few that cross a tile edge are clipped into
every tile they touch); every union, difference and intersection is done within one tile; and the
areas are summed. A tile is a unit of work for a process pool (both cores today, a distributed
engine's partition later) and never holds more than its own geometries.

Areas are ellipsoidal: pyproj's WGS84 ``Geod.geometry_area_perimeter`` on the lon/lat result,
after orienting rings (Geod is signed and winding-sensitive), so a total is the SPEC's reference
formula applied to the union itself. See docs/area.md for the measured error of the tiling.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import shapely
from pyproj import Geod

#: Tile edge in degrees. ~5.5 km of latitude: fields (2–200 ha) rarely cross an edge, and a tile
#: of dense fields holds a few thousand polygons, which GEOS unions quickly.
TILE_DEG = 0.05
_GEOD = Geod(ellps="WGS84")
#: Below this many pieces the process pool costs more than it saves.
PARALLEL_MIN_PIECES = 20_000


def geodesic_area(geom: shapely.Geometry | None) -> float:
    """Ellipsoidal area in m² of a lon/lat (Multi)Polygon; 0 for None or empty."""
    if geom is None or shapely.is_empty(geom):
        return 0.0
    return abs(_GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


@dataclass
class AreaInput:
    """The counted geometries of one owner, meter and period, with who and when."""

    geoms: np.ndarray  # shapely geometries, EPSG:4326 lon/lat
    users: np.ndarray  # user id per geometry
    days: np.ndarray | None = None  # local day (date ordinal) per geometry, for daily values


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
    # (level, axis, x, y, role, other x, other y): vertices a tile clip put on a tile line.
    splits: list[tuple] = field(default_factory=list)

    def merge(self, other: AreaResult) -> None:
        self.owner += other.owner
        for src, dst in ((other.users, self.users), (other.exclusive, self.exclusive),
                         (other.pairs, self.pairs),
                         (other.daily_owner, self.daily_owner)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0.0) + v  # type: ignore[index]
        for u, days in other.daily_users.items():
            mine = self.daily_users.setdefault(u, {})
            for d, v in days.items():
                mine[d] = mine.get(d, 0.0) + v
        self.regions.extend(other.regions)
        self.splits.extend(other.splits)
        self.tiles += other.tiles
        self.pieces += other.pieces


def tile_pieces(geoms: np.ndarray, tile_deg: float = TILE_DEG
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut geometries by the tile grid: (tile keys, pieces, index of the source geometry).

    A geometry inside one tile is kept whole; one that crosses tile edges is intersected with each
    tile box it touches, so that the pieces of all geometries partition space by tile.
    """
    if len(geoms) == 0:
        return np.empty((0, 2), dtype=np.int64), np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
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
    multi = np.flatnonzero(~single)
    if multi.size:
        mk, mp, ms = [], [], []
        for i in multi:
            for tx in range(ix0[i], ix1[i] + 1):
                for ty in range(iy0[i], iy1[i] + 1):
                    mk.append((tx, ty))
                    mp.append(shapely.box(tx * tile_deg, ty * tile_deg,
                                          (tx + 1) * tile_deg, (ty + 1) * tile_deg))
                    ms.append(i)
        ms_arr = np.asarray(ms, dtype=np.int64)
        clipped = shapely.intersection(geoms[ms_arr], np.asarray(mp, dtype=object))
        keep = ~shapely.is_empty(clipped) & (shapely.area(clipped) > 0)
        keys.append(np.asarray(mk, dtype=np.int64)[keep])
        pieces.append(clipped[keep])
        source.append(ms_arr[keep])
    return np.concatenate(keys), np.concatenate(pieces), origin[np.concatenate(source)]


def _on_line(v: np.ndarray, tile_deg: float) -> np.ndarray:
    # Clip boxes are built as k * tile_deg; the same float operation recognises their lines.
    return v == np.round(v / tile_deg) * tile_deg


def _split_records(geom: shapely.Geometry, level: tuple, tile_deg: float) -> list[tuple]:
    """Vertices of a tile's result that lie on a tile line where an edge was cut.

    Such a vertex S has one neighbour along the tile line (the clip edge) and one off it: P
    before it ("in": P→S, then along the line) or Q after it ("out"). Matched across the two
    tiles, P→S→Q is the cut edge P→Q, and Geod took it as two geodesics instead of one.
    """
    if geom is None or shapely.is_empty(geom):
        return []
    out: list[tuple] = []
    for poly in shapely.get_parts(shapely.orient_polygons(geom)):
        if shapely.get_type_id(poly) != 3:
            continue
        for ring in (poly.exterior, *poly.interiors):
            c = np.asarray(ring.coords)[:-1]
            n = len(c)
            if n < 3:
                continue
            on_x, on_y = _on_line(c[:, 0], tile_deg), _on_line(c[:, 1], tile_deg)
            for i in np.flatnonzero(on_x | on_y):
                prev, nxt, here = c[i - 1], c[(i + 1) % n], c[i]
                for axis, on in ((0, on_x), (1, on_y)):  # a tile corner is on both lines
                    if not on[i]:
                        continue
                    prev_on, next_on = prev[axis] == here[axis], nxt[axis] == here[axis]
                    if prev_on == next_on:
                        continue
                    other = prev if next_on else nxt
                    out.append((level, axis, here[0], here[1], "in" if next_on else "out",
                                other[0], other[1]))
    return out


def _apply_split_corrections(result: AreaResult, original: set[tuple[float, float]]) -> None:
    """Replace every cut edge P→S1…Sk→Q by the geodesic P→Q in owner, user and daily totals.

    Each cut vertex S, seen from the two tiles it joins (per tile line: a tile corner is on two),
    knows its neighbour before (P) and after (Q). An edge crossing several tile lines forms a
    chain whose inner vertices are cut vertices too; the whole chain is corrected at once (the
    sliver grows as the cube of the length, so pairwise corrections would not add up). Vertices
    of the input itself are not cuts: the reference has them too.
    """
    halves: dict[tuple, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for level, axis, x, y, role, ox, oy in result.splits:
        if (x, y) not in original:
            halves[(level, axis, x, y)][role].append((ox, oy))
    links: dict[tuple, dict[tuple[float, float], list[tuple]]] = defaultdict(lambda: defaultdict(list))
    for (level, _axis, x, y), roles in halves.items():
        if len(roles["in"]) == 1 and len(roles["out"]) == 1:
            links[level][(x, y)].append((roles["in"][0], roles["out"][0]))
    for level, nodes in links.items():
        def step(node: tuple[float, float], came_from: tuple[float, float]) -> tuple | None:
            return next((pair for pair in nodes.get(node, ()) if pair[0] == came_from), None)

        for node, pairs in nodes.items():
            for p_in, p_out in pairs:
                if any(pr[1] == node for pr in nodes.get(p_in, ())):
                    continue  # an inner vertex of a longer chain: counted from its start
                chain = [p_in, node]
                cur, nxt = node, p_out
                for _ in range(10_000):
                    pair = step(nxt, cur)
                    if pair is None:
                        break
                    chain.append(nxt)
                    cur, nxt = nxt, pair[1]
                chain.append(nxt)
                if len(set(chain)) < 3:
                    continue  # degenerate: nothing between the geodesic and the path
                sliver = _GEOD.polygon_area_perimeter([c[0] for c in chain], [c[1] for c in chain])[0]
                kind = level[0]
                if kind == "o":
                    result.owner -= sliver
                elif kind == "u":
                    result.users[level[1]] = result.users.get(level[1], 0.0) - sliver
                elif kind == "od":
                    result.daily_owner[level[1]] = result.daily_owner.get(level[1], 0.0) - sliver
                elif kind == "ud":
                    days = result.daily_users.setdefault(level[1], {})
                    days[level[2]] = days.get(level[2], 0.0) - sliver
                elif kind == "x":
                    result.exclusive[level[1]] = result.exclusive.get(level[1], 0.0) - sliver
                elif kind == "p":
                    key = (level[1], level[2])
                    result.pairs[key] = result.pairs.get(key, 0.0) - sliver
    result.splits = []


def _union(geoms: Sequence[shapely.Geometry]) -> shapely.Geometry:
    if len(geoms) == 1:
        return geoms[0]
    return shapely.union_all(np.asarray(geoms, dtype=object))


@dataclass
class _Options:
    tile_deg: float = TILE_DEG
    overlap: bool = False
    pairs: bool = False
    daily_owner: bool = False
    daily_users: bool = False
    regions: bool = False


def _daily_new(geoms: list, days: list[int], record: tuple | None = None,
               tile_deg: float = TILE_DEG, splits: list | None = None) -> dict[int, float]:
    """Newly covered area per day within one tile (SPEC §5.1 daily consumption).

    A day's new area is its union minus what earlier days covered. Earlier coverage is kept as
    the disjoint pieces each day added, and only the pieces whose bounding boxes meet the day's
    union take part in the difference, so a day costs what is near it, not the whole history.
    The daily values add up to the area of the union of all days.
    """
    by_day: dict[int, list] = defaultdict(list)
    for g, d in zip(geoms, days):
        by_day[d].append(g)
    out: dict[int, float] = {}
    earlier: list = []
    earlier_bounds = np.empty((0, 4))
    for day in sorted(by_day):
        today = _union(by_day[day])
        xmin, ymin, xmax, ymax = shapely.bounds(today)
        near = np.flatnonzero((earlier_bounds[:, 0] <= xmax) & (earlier_bounds[:, 2] >= xmin)
                              & (earlier_bounds[:, 1] <= ymax) & (earlier_bounds[:, 3] >= ymin))
        new = shapely.difference(today, _union([earlier[i] for i in near])) if near.size else today
        out[day] = geodesic_area(new)
        if splits is not None and record is not None:
            splits.extend(_split_records(new, (*record, day), tile_deg))
        parts = [p for p in shapely.get_parts(new) if not shapely.is_empty(p)]
        if parts:
            earlier.extend(parts)
            earlier_bounds = np.vstack([earlier_bounds, shapely.bounds(np.asarray(parts, dtype=object))])
    return out


def _work_tile(geoms: list, users: list[str], days: list[int] | None, opts: _Options) -> AreaResult:
    """All area figures of one tile (geometries already clipped to it)."""
    res = AreaResult(tiles=1, pieces=len(geoms))
    by_user: dict[str, list] = defaultdict(list)
    for g, u in zip(geoms, users):
        by_user[u].append(g)
    unions = {u: _union(gs) for u, gs in by_user.items()}
    t = opts.tile_deg
    for u, g in unions.items():
        res.users[u] = geodesic_area(g)
        res.splits.extend(_split_records(g, ("u", u), t))
    # From every piece at once, as the reference does: a union of the user unions can keep, on the
    # final boundary, intersection vertices that a single union never makes (Geod counts them).
    owner_union = _union(geoms) if len(unions) > 1 else next(iter(unions.values()))
    res.owner = geodesic_area(owner_union) if len(unions) > 1 else next(iter(res.users.values()))
    res.splits.extend(_split_records(owner_union, ("o",), t))
    if opts.overlap:
        names = sorted(unions)
        if len(names) == 1:
            res.exclusive[names[0]] = res.users[names[0]]
            res.splits.extend(_split_records(unions[names[0]], ("x", names[0]), t))
        else:
            # One sweep builds the region covered by two users or more; a user's exclusive area
            # is its area minus what of its union lies inside that region.
            covered = multi = None
            for u in names:
                g = unions[u]
                if covered is None:
                    covered = g
                    continue
                both = shapely.intersection(g, covered)
                if not shapely.is_empty(both):
                    multi = both if multi is None else shapely.union(multi, both)
                covered = shapely.union(covered, g)
            for u in names:
                # Directly A(U_u − multi), as the reference defines it: A(U_u) − A(U_u ∩ multi)
                # would count U_u's edges unsplit where the intersection splits them.
                alone = unions[u] if multi is None else shapely.difference(unions[u], multi)
                res.exclusive[u] = geodesic_area(alone)
                res.splits.extend(_split_records(alone, ("x", u), t))
            if opts.pairs:
                boxes = {u: shapely.bounds(unions[u]) for u in names}
                for a, b in combinations(names, 2):
                    ba, bb = boxes[a], boxes[b]
                    if ba[0] > bb[2] or bb[0] > ba[2] or ba[1] > bb[3] or bb[1] > ba[3]:
                        continue
                    common = shapely.intersection(unions[a], unions[b])
                    shared = geodesic_area(common)
                    if shared > 0:
                        res.pairs[(a, b)] = shared
                        res.splits.extend(_split_records(common, ("p", a, b), t))
            if opts.regions and multi is not None:
                res.regions.extend(_overlap_regions(unions, multi))
    if opts.daily_owner and days is not None:
        res.daily_owner = _daily_new(geoms, days, ("od",), t, res.splits)
    if opts.daily_users and days is not None:
        by_user_days: dict[str, list[int]] = defaultdict(list)
        for u, d in zip(users, days):
            by_user_days[u].append(d)
        for u, gs in by_user.items():
            res.daily_users[u] = _daily_new(gs, by_user_days[u], ("ud", u), t, res.splits)
    return res


def _overlap_regions(unions: dict[str, shapely.Geometry], multi: shapely.Geometry
                     ) -> list[tuple[shapely.Geometry, tuple[str, ...]]]:
    """Regions covered by two users or more, each with the exact set of users covering it.

    The users' boundaries inside the multi-covered region cut it into faces; each face is
    covered by the same users throughout, found with a point inside it.
    """
    names = [u for u in sorted(unions) if shapely.intersects(unions[u], multi)]
    edges = shapely.union_all(np.asarray(
        [shapely.boundary(multi)] + [shapely.intersection(shapely.boundary(unions[u]), multi)
                                     for u in names], dtype=object))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    grouped: dict[tuple[str, ...], list] = defaultdict(list)
    for face in faces:
        p = shapely.point_on_surface(face)
        if not shapely.contains(multi, p):
            continue
        covering = tuple(u for u in names if shapely.contains(unions[u], p))
        if len(covering) >= 2:
            grouped[covering].append(face)
    return [(_union(fs), covering) for covering, fs in grouped.items()]


def _work_batch(batch: list[tuple[list[bytes], list[str], list[int] | None]], opts: _Options
                ) -> AreaResult:
    total = AreaResult()
    for wkbs, users, days in batch:
        geoms = list(shapely.from_wkb(np.asarray(wkbs, dtype=object)))
        total.merge(_work_tile(geoms, users, days, opts))
    if opts.regions:
        total.regions = [(shapely.to_wkb(g), users) for g, users in total.regions]  # type: ignore[misc]
    return total


def compute(data: AreaInput, *, overlap: bool = False, pairs: bool = False,
            daily: bool | str = False, regions: bool = False, tile_deg: float = TILE_DEG,
            workers: int | None = None) -> AreaResult:
    """Owner and user areas (m²); on request exclusive areas, pairs, regions, daily new area.

    ``daily`` is True (owner and users), ``"owner"`` or ``"users"``: a report that only needs
    the billed level's series (for its trend) does not pay for the other.
    """
    opts = _Options(tile_deg=tile_deg, overlap=overlap or pairs or regions, pairs=pairs,
                    daily_owner=daily is True or daily == "owner",
                    daily_users=daily is True or daily == "users", regions=regions)
    result = AreaResult()
    if len(data.geoms) == 0:
        return result
    keys, pieces, source = tile_pieces(data.geoms, tile_deg)
    users = data.users[source]
    days = data.days[source] if data.days is not None else None
    # Group pieces by tile.
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    keys, pieces, users = keys[order], pieces[order], users[order]
    if days is not None:
        days = days[order]
    boundaries = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(keys)]])
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers > 1 and len(pieces) >= PARALLEL_MIN_PIECES:
        result = _parallel(pieces, users, days, starts, ends, opts, workers)
    else:
        for s, e in zip(starts, ends):
            result.merge(_work_tile(list(pieces[s:e]), list(users[s:e]),
                                    list(days[s:e]) if days is not None else None, opts))
    if result.splits:
        coords = shapely.get_coordinates(data.geoms)
        on = _on_line(coords[:, 0], tile_deg) | _on_line(coords[:, 1], tile_deg)
        original = {(float(x), float(y)) for x, y in coords[on]}
        _apply_split_corrections(result, original)
    if opts.overlap:
        result.exclusive = {u: min(max(result.exclusive.get(u, 0.0), 0.0), a)
                            for u, a in result.users.items()}
    if regions:
        result.regions = _merge_regions(result.regions)
    return result


def _parallel(pieces: np.ndarray, users: np.ndarray, days: np.ndarray | None,
              starts: np.ndarray, ends: np.ndarray, opts: _Options, workers: int) -> AreaResult:
    wkb = shapely.to_wkb(pieces)
    n_batches = workers * 8
    per = max(1, math.ceil(len(starts) / n_batches))
    batches = []
    for b in range(0, len(starts), per):
        batch = []
        for s, e in zip(starts[b:b + per], ends[b:b + per]):
            batch.append((list(wkb[s:e]), list(users[s:e]),
                          [int(d) for d in days[s:e]] if days is not None else None))
        batches.append(batch)
    result = AreaResult()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for part in pool.map(_work_batch, batches, [opts] * len(batches)):
            if opts.regions:
                part.regions = [(shapely.from_wkb(g), u) for g, u in part.regions]
            result.merge(part)
    return result


def _merge_regions(regions: Iterable[tuple[shapely.Geometry, tuple[str, ...]]]
                   ) -> list[tuple[shapely.Geometry, tuple[str, ...]]]:
    """Join the per-tile pieces of each user set into one geometry per set."""
    grouped: dict[tuple[str, ...], list] = defaultdict(list)
    for g, users in regions:
        grouped[tuple(users)].append(g)
    return [(_union(gs), users) for users, gs in sorted(grouped.items(), key=lambda kv: kv[0])]
