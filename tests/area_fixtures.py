"""Field geometry for the area accuracy tests and benchmarks/area_accuracy.py (one copy).

What ingest does to a parcel (``clean``), re-uploads with metres of jitter, synthetic fields of a
given size anywhere on the globe, and fields split at the antimeridian as RFC 7946 asks.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
import shapely.affinity
from pyproj import Geod

GEOD = Geod(ellps="WGS84")


def polygonal(g: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal part of a geometry (what ingest keeps after make_valid)."""
    if g is None or shapely.is_empty(g):
        return None
    if shapely.get_type_id(g) in (3, 6):
        return g
    parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in (3, 6)]
    polys = [q for p in parts for q in shapely.get_parts(p)]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def clean(geoms: np.ndarray) -> np.ndarray:
    out = [polygonal(g) for g in shapely.make_valid(geoms)]
    return np.asarray([g for g in out if g is not None and shapely.area(g) > 0], dtype=object)


def jitter(g: shapely.Geometry, max_m: float, rng: np.random.Generator) -> shapely.Geometry:
    """Move every vertex by up to ``max_m`` metres in a random direction (rings stay closed)."""
    def ring(coords: np.ndarray) -> np.ndarray:
        pts = coords[:-1].copy()
        d = rng.uniform(0.0, max_m, len(pts))
        az = rng.uniform(0.0, 2 * math.pi, len(pts))
        lat = np.radians(pts[:, 1])
        pts[:, 0] += d * np.sin(az) / (111_320.0 * np.cos(lat))
        pts[:, 1] += d * np.cos(az) / 110_574.0
        return np.vstack([pts, pts[:1]])

    polys = []
    for p in shapely.get_parts(g):
        shell = ring(shapely.get_coordinates(p.exterior))
        holes = [ring(shapely.get_coordinates(h)) for h in p.interiors]
        polys.append(shapely.Polygon(shell, holes))
    return polygonal(shapely.make_valid(shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0]))


def field_polygon(lon: float, lat: float, area_m2: float, corners: int,
                  rng: np.random.Generator) -> shapely.Polygon:
    """An irregular convex-ish field of about ``area_m2`` around (lon, lat), unwrapped lon."""
    r = math.sqrt(2 * area_m2 / (corners * math.sin(2 * math.pi / corners)))
    az = np.sort((np.arange(corners) + rng.uniform(-0.3, 0.3, corners)) * 360 / corners
                 + rng.uniform(0, 360))
    dist = r * rng.uniform(0.75, 1.25, corners)
    x, y, _ = GEOD.fwd(np.full(corners, lon), np.full(corners, lat), az, dist)
    x = np.asarray(x)
    x = lon + ((x - lon + 180) % 360 - 180)  # unwrapped around lon (may pass 180)
    return shapely.orient_polygons(shapely.Polygon(np.column_stack([x, y])))


def split_antimeridian(g: shapely.Geometry) -> shapely.Geometry:
    """RFC 7946 §3.1.9: a polygon given in unwrapped lon (beyond 180) as parts on both sides."""
    b = shapely.bounds(g)
    if b[2] <= 180:
        return g
    if b[0] >= 180:
        return shapely.affinity.translate(g, -360)
    west = shapely.intersection(g, shapely.box(b[0] - 1, -90, 180, 90))
    east = shapely.affinity.translate(
        shapely.intersection(g, shapely.box(180, -90, b[2] + 1, 90)), -360)
    parts = [q for x in (west, east) for q in shapely.get_parts(polygonal(x))]
    return shapely.MultiPolygon(parts)
