"""Geometry intake: parse, reproject to EPSG:4326, check and repair (SPEC §3.2, §3.3).

Vectorised with shapely 2 over a whole chunk. Each input value ends as either WKB bytes in
EPSG:4326 lon/lat (polygonal, valid, exterior rings counter-clockwise) or a reject reason that
says what to do. Pitfalls this guards against are measured in RELIABILITY.md: projected
coordinates labelled 4326 give NaN areas, a 360°-wide "antimeridian" polygon is 40 000× too big,
a bowtie has area 0 until ``make_valid`` splits it, overlapping MultiPolygon parts double count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer

from usagectl.errors import ValidationError

_HEX = re.compile(r"^(?:0[01])[0-9A-Fa-f]+$")
_POLYGONAL = {3, 6}  # Polygon, MultiPolygon
_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}
WGS84 = CRS.from_epsg(4326)


@dataclass
class GeometryBatch:
    """Result for one chunk: WKB (or None), a reject reason (or None), and a repaired flag."""

    wkb: list[bytes | None]
    reason: list[str | None]
    repaired: np.ndarray


def parse_crs(text: str | None, what: str = "--crs") -> CRS | None:
    """Parse a CRS (``EPSG:28992``, ``28992``, a WKT or PROJJSON string); ``what`` names where
    it came from in the error (the option, or the file that declares it)."""
    if text is None or text == "":
        return None
    try:
        crs = CRS.from_user_input(int(text) if text.isdigit() else text)
    except Exception as exc:  # pyproj raises CRSError; anything else is the same problem
        raise ValidationError(
            f"{what} {text[:200]!r} is not a coordinate reference system pyproj knows: {exc}. "
            "Use a code such as EPSG:28992, EPSG:3857 or EPSG:4326.") from None
    return crs


def crs_label(crs: CRS) -> str:
    auth = crs.to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else crs.name


@lru_cache(maxsize=16)
def _transformer(src_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), WGS84, always_xy=True)


def _is_lonlat_wgs84(crs: CRS) -> bool:
    # EPSG:4326 and OGC:CRS84 differ only in axis order; with always_xy both are lon/lat.
    return crs.equals(WGS84, ignore_axis_order=True)


def _widest_part(geom: shapely.Geometry) -> float:
    """The largest longitude span of any polygonal part."""
    b = shapely.bounds(shapely.get_parts(geom))
    return float((b[:, 2] - b[:, 0]).max()) if len(b) else 0.0


def _parse(values: list) -> tuple[np.ndarray, np.ndarray]:
    """Parse WKT, GeoJSON text, hex WKB or WKB bytes; returns (geoms, present mask)."""
    n = len(values)
    geoms = np.full(n, None, dtype=object)
    present = np.zeros(n, dtype=bool)
    kinds: dict[str, list[int]] = {"wkb": [], "geojson": [], "wkt": []}
    for i, v in enumerate(values):
        if v is None:
            continue
        if isinstance(v, (bytes, bytearray, memoryview)):
            if len(v) == 0:
                continue
            present[i] = True
            kinds["wkb"].append(i)
            continue
        s = str(v).strip()
        if not s:
            continue
        present[i] = True
        if s[0] == "{":
            kinds["geojson"].append(i)
        elif _HEX.match(s):
            kinds["wkb"].append(i)
        else:
            kinds["wkt"].append(i)
    for kind, idx in kinds.items():
        if not idx:
            continue
        arr = np.array([values[i] if kind != "wkb" or not isinstance(values[i], str)
                        else values[i].strip() for i in idx], dtype=object)
        if kind == "wkb":
            arr = np.array([bytes(a) if isinstance(a, memoryview) else a for a in arr], dtype=object)
            parsed = shapely.from_wkb(arr, on_invalid="ignore")
        elif kind == "geojson":
            parsed = shapely.from_geojson(arr, on_invalid="ignore")
        else:
            parsed = shapely.from_wkt(arr, on_invalid="ignore")
        geoms[idx] = parsed
    return geoms, present


def process_geometries(values: list, src_crs: CRS | None, crs_hint: str = "--crs") -> GeometryBatch:
    """Turn raw geometry values into checked EPSG:4326 WKB, or reasons (SPEC §3.3)."""
    n = len(values)
    reasons: list[str | None] = [None] * n
    repaired = np.zeros(n, dtype=bool)
    out: list[bytes | None] = [None] * n
    if n == 0:
        return GeometryBatch(out, reasons, repaired)
    geoms, present = _parse(values)
    for i in np.flatnonzero(present & (geoms == None)):  # noqa: E711 — numpy elementwise
        reasons[i] = ("geometry could not be parsed as WKT, GeoJSON or WKB; "
                      "check the geometry column's encoding")
    ok = present & (geoms != None)  # noqa: E711
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return GeometryBatch(out, reasons, repaired)
    g = shapely.force_2d(geoms[idx])

    if src_crs is not None and not _is_lonlat_wgs84(src_crs):
        tr = _transformer(src_crs.to_wkt())
        with np.errstate(all="ignore"):
            g = shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    empty = shapely.is_empty(g)
    type_id = shapely.get_type_id(g)
    bounds = shapely.bounds(g)
    for j, i in enumerate(idx):
        if empty[j]:
            reasons[i] = "geometry is empty; area products need a Polygon or MultiPolygon"
            continue
        tid = int(type_id[j])
        if tid not in _POLYGONAL and tid != 7:
            reasons[i] = (f"geometry is a {_TYPE_NAMES.get(tid, 'non-areal geometry')}; "
                          "area products need a Polygon or MultiPolygon")
            continue
        xmin, ymin, xmax, ymax = bounds[j]
        if not np.all(np.isfinite(bounds[j])):
            reasons[i] = (f"geometry could not be reprojected from {crs_label(src_crs)} "
                          "(coordinates outside that CRS's area of use); check --crs"
                          if src_crs is not None else
                          "geometry has non-finite coordinates (NaN or infinity)")
        elif xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
            reasons[i] = (
                f"coordinates look projected (x {xmin:.6g}..{xmax:.6g}, y {ymin:.6g}..{ymax:.6g} "
                "are outside lon ±180 / lat ±90); pass --crs with the file's CRS, "
                "e.g. --crs EPSG:28992"
                if src_crs is None or _is_lonlat_wgs84(src_crs) else
                f"coordinates reprojected from {crs_label(src_crs)} fall outside lon ±180 / "
                "lat ±90; check --crs")
        elif xmax - xmin > 180 and _widest_part(g[j]) > 180:
            # A MultiPolygon already split at ±180° (RFC 7946 §3.1.9) spans 360° as a whole but
            # each of its parts is narrow; only a single part that wide is an unsplit crossing.
            reasons[i] = ("polygon spans more than 180° of longitude: an unsplit antimeridian "
                          "crossing; split it at ±180° into a MultiPolygon (RFC 7946 §3.1.9)")
    keep = np.array([reasons[i] is None for i in idx], dtype=bool)
    idx, g = idx[keep], g[keep]
    if idx.size == 0:
        return GeometryBatch(out, reasons, repaired)

    valid = shapely.is_valid(g)
    bad = ~valid
    if bad.any():
        g[bad] = shapely.make_valid(g[bad])
    # GeometryCollections (given, or made by make_valid) keep only their polygonal parts.
    tid = shapely.get_type_id(g)
    gc = tid == 7
    if gc.any():
        parts = []
        for geom in g[gc]:
            polys = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in _POLYGONAL]
            parts.append(shapely.union_all(polys) if polys else shapely.Polygon())
        g[gc] = np.array(parts, dtype=object)
    area = shapely.area(g)
    for j, i in enumerate(idx):
        if area[j] <= 0 or shapely.is_empty(g[j]):
            reasons[i] = ("polygon has no area (degenerate or collapsed after repair); "
                          "area products need a Polygon or MultiPolygon with area")
        else:
            repaired[i] = bool(bad[j])
    g = shapely.orient_polygons(g)
    wkb = shapely.to_wkb(g, output_dimension=2)
    for j, i in enumerate(idx):
        if reasons[i] is None:
            out[i] = wkb[j]
    return GeometryBatch(out, reasons, repaired)


# ------------------------------------------------------------------------- same shape (SPEC §3.3)


def same_shape(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    """Pairwise: are ``a[i]`` and ``b[i]`` the same shape within ``tolerance`` (degrees)?

    The same shape means the same type, the same parts and rings and vertex counts, and every
    vertex within ``tolerance`` (Euclidean) of the matching vertex of the other — whatever
    vertex a ring starts from, which way it is wound, and the order of parts and holes. Two
    Nones are the same; None and a geometry are not.

    Three steps, each only for the pairs the previous one left undecided: ``equals_exact`` as
    the geometries are; ``equals_exact`` of ``shapely.normalize``d copies (rings started at
    their lowest vertex, parts sorted); and a ring-by-ring comparison over every start vertex
    and both windings, because normalising picks its start vertex by exact coordinates, so two
    copies 1e-13° apart whose ring has two vertices with the same lowest x can start at
    different vertices.
    """
    both_none = (a == None) & (b == None)  # noqa: E711 — numpy elementwise
    same = shapely.equals_exact(a, b, tolerance=tolerance) | both_none
    todo = np.flatnonzero(~same & (a != None) & (b != None))  # noqa: E711
    if todo.size:
        same[todo] = shapely.equals_exact(shapely.normalize(a[todo]), shapely.normalize(b[todo]),
                                          tolerance=tolerance)
    for i in np.flatnonzero(~same & (a != None) & (b != None)):  # noqa: E711
        same[i] = _same_parts(a[i], b[i], tolerance)
    return same


def _matched(xs: list, ys: list, same) -> bool:  # type: ignore[no-untyped-def]
    """Every x has its own y for which ``same(x, y)`` (the lists have equal lengths)."""
    if len(xs) != len(ys):
        return False
    left = list(ys)
    for x in xs:
        hit = next((k for k, y in enumerate(left) if same(x, y)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _same_parts(a: shapely.Geometry, b: shapely.Geometry, tolerance: float) -> bool:
    if shapely.get_type_id(a) != shapely.get_type_id(b):
        return False

    def same_polygon(p: shapely.Geometry, q: shapely.Geometry) -> bool:
        return (_same_ring(p.exterior, q.exterior, tolerance)
                and _matched(list(p.interiors), list(q.interiors),
                             lambda r, s: _same_ring(r, s, tolerance)))

    return _matched(list(shapely.get_parts(a)), list(shapely.get_parts(b)), same_polygon)


def _same_ring(r: shapely.Geometry, s: shapely.Geometry, tolerance: float) -> bool:
    """Closed rings equal as cycles of vertices within ``tolerance``, either way round."""
    p = shapely.get_coordinates(r)[:-1]
    q = shapely.get_coordinates(s)[:-1]
    if len(p) != len(q):
        return False
    for cycle in (q, q[::-1]):
        for k in np.flatnonzero(np.hypot(*(cycle - p[0]).T) <= tolerance):
            if np.all(np.hypot(*(np.roll(cycle, -k, axis=0) - p).T) <= tolerance):
                return True
    return False
