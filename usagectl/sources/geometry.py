"""Geometry intake: parse, reproject to EPSG:4326, check and repair (SPEC §3.2, §3.3).

Vectorised with shapely 2 over a whole chunk. Each input value ends as either WKB bytes in
EPSG:4326 lon/lat (polygonal, valid, exterior rings counter-clockwise) or a reject reason that
says what to do. Pitfalls this guards against are measured in RELIABILITY.md: projected
coordinates labelled 4326 give NaN areas, a 360°-wide "antimeridian" polygon is 40 000× too big,
a bowtie has area 0 until ``make_valid`` splits it, overlapping MultiPolygon parts double count.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
    """Result for one chunk, aligned with its rows: WKB (or None), a reject reason (or None),
    and a repaired flag. ``wkb`` and ``reason`` are numpy object arrays, which ``pa.array``
    takes as they are."""

    wkb: np.ndarray
    reason: np.ndarray
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


def _transformer(src_wkt: str) -> Transformer:
    # pyproj objects are not to be shared between threads, and ingest prepares chunks on a
    # worker thread (usagectl.sources.prepare): one transformer per CRS and thread.
    return _thread_transformer(src_wkt, threading.get_ident())


@lru_cache(maxsize=16)
def _thread_transformer(src_wkt: str, thread: int) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), WGS84, always_xy=True)


def _is_lonlat_wgs84(crs: CRS) -> bool:
    # EPSG:4326 and OGC:CRS84 differ only in axis order; with always_xy both are lon/lat.
    return crs.equals(WGS84, ignore_axis_order=True)


def _widest_part(geom: shapely.Geometry) -> float:
    """The largest longitude span of any polygonal part."""
    b = shapely.bounds(shapely.get_parts(geom))
    return float((b[:, 2] - b[:, 0]).max()) if len(b) else 0.0


_UNPARSED = ("geometry could not be parsed as WKT, GeoJSON or WKB; "
             "check the geometry column's encoding")
_EMPTY = "geometry is empty; area products need a Polygon or MultiPolygon"
_ANTIMERIDIAN = ("polygon spans more than 180° of longitude: an unsplit antimeridian "
                 "crossing; split it at ±180° into a MultiPolygon (RFC 7946 §3.1.9)")
_NO_AREA = ("polygon has no area (degenerate or collapsed after repair); "
            "area products need a Polygon or MultiPolygon with area")

GeometryValues = list | pa.Array | pa.ChunkedArray


def _parse(values: GeometryValues) -> tuple[np.ndarray, np.ndarray]:
    """Parse WKT, GeoJSON text, hex WKB or WKB bytes; returns (geoms, present mask).

    A NaN coordinate makes shapely's parsers raise numpy's "invalid value" warning; the row is
    rejected later with a reason, so the warning is silenced (it would reach stderr under -q).
    """
    with np.errstate(invalid="ignore"):
        return _parse_values(values)


def _parse_values(values: GeometryValues) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_parse` without the numpy error state.

    A binary Arrow column (Parquet, GeoParquet) goes to ``shapely.from_wkb`` as one array with
    no Python loop; text is sorted by kind value by value (its first character decides) and
    each kind parsed as one array.
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
            arr = values.to_numpy(zero_copy_only=False)
            present = pc.fill_null(pc.binary_length(values), 0).to_numpy() > 0
            geoms = np.full(len(arr), None, dtype=object)
            if present.any():
                geoms[present] = shapely.from_wkb(arr[present], on_invalid="ignore")
            return geoms, present
        values = values.to_pylist()
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


def _all_null(values: GeometryValues) -> bool:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.null_count == len(values)
    return False


def process_geometries(values: GeometryValues, src_crs: CRS | None,
                       crs_hint: str = "--crs") -> GeometryBatch:
    """Turn raw geometry values into checked EPSG:4326 WKB, or reasons (SPEC §3.3).

    Every step is one shapely 2 call over the whole chunk (parse, reproject, bounds, type,
    validity, repair of the invalid ones only, area, orientation, WKB); Python loops run only
    over rejected rows (to word their reason), the rare rows wider than 180° (to look at their
    parts) and GeometryCollections (to keep their polygonal parts). The order of the checks,
    and so the reason a row gets, is that of the per-geometry code it replaced (kept in
    tests/geometry_reference.py and compared by property tests).
    """
    n = len(values)
    reasons = np.full(n, None, dtype=object)
    repaired = np.zeros(n, dtype=bool)
    out = np.full(n, None, dtype=object)
    if n == 0 or _all_null(values):
        return GeometryBatch(out, reasons, repaired)
    geoms, present = _parse(values)
    parsed = np.not_equal(geoms, None)
    reasons[present & ~parsed] = _UNPARSED
    idx = np.flatnonzero(present & parsed)
    if idx.size == 0:
        return GeometryBatch(out, reasons, repaired)
    g = geoms[idx]
    if (shapely.has_z(g) | shapely.has_m(g)).any():
        g = shapely.force_2d(g)

    if src_crs is not None and not _is_lonlat_wgs84(src_crs):
        tr = _transformer(src_crs.to_wkt())
        with np.errstate(all="ignore"):
            g = shapely.transform(g, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))

    # The checks in the order they apply; a row gets the first reason that fits.
    why = np.full(idx.size, None, dtype=object)
    open_ = np.ones(idx.size, dtype=bool)  # no reason yet
    empty = shapely.is_empty(g)
    why[empty] = _EMPTY
    open_ &= ~empty
    type_id = shapely.get_type_id(g)
    nonareal = open_ & ~np.isin(type_id, (3, 6, 7))
    for j in np.flatnonzero(nonareal):
        why[j] = (f"geometry is a {_TYPE_NAMES.get(int(type_id[j]), 'non-areal geometry')}; "
                  "area products need a Polygon or MultiPolygon")
    open_ &= ~nonareal
    bounds = shapely.bounds(g)
    nonfinite = open_ & ~np.isfinite(bounds).all(axis=1)
    nonfinite_reason = (f"geometry could not be reprojected from {crs_label(src_crs)} "
                      "(coordinates outside that CRS's area of use); check --crs"
                      if src_crs is not None else
                      "geometry has non-finite coordinates (NaN or infinity)")
    why[nonfinite] = nonfinite_reason
    open_ &= ~nonfinite
    xmin, ymin, xmax, ymax = bounds.T
    with np.errstate(invalid="ignore"):
        outside = open_ & ((xmin < -180) | (xmax > 180) | (ymin < -90) | (ymax > 90))
        wide = open_ & ~outside & (xmax - xmin > 180)
    for j in np.flatnonzero(outside):
        why[j] = (
            f"coordinates look projected (x {xmin[j]:.6g}..{xmax[j]:.6g}, y {ymin[j]:.6g}.."
            f"{ymax[j]:.6g} are outside lon ±180 / lat ±90); pass --crs with the file's CRS, "
            "e.g. --crs EPSG:28992"
            if src_crs is None or _is_lonlat_wgs84(src_crs) else
            f"coordinates reprojected from {crs_label(src_crs)} fall outside lon ±180 / "
            "lat ±90; check --crs")
    open_ &= ~outside
    for j in np.flatnonzero(wide):
        # A MultiPolygon already split at ±180° (RFC 7946 §3.1.9) spans 360° as a whole but
        # each of its parts is narrow; only a single part that wide is an unsplit crossing.
        if _widest_part(g[j]) > 180:
            why[j] = _ANTIMERIDIAN
            open_[j] = False
    # GEOS envelopes skip NaN ordinates, so finite bounds do not prove finite coordinates: a
    # NaN vertex that passed the checks above made make_valid raise and failed the whole file.
    look = np.flatnonzero(open_)
    coords, at = shapely.get_coordinates(g[look], return_index=True)
    nan_rows = look[np.unique(at[~np.isfinite(coords).all(axis=1)])]
    why[nan_rows] = nonfinite_reason
    open_[nan_rows] = False
    reasons[idx] = why
    idx, g = idx[open_], g[open_]
    if idx.size == 0:
        return GeometryBatch(out, reasons, repaired)

    bad = ~shapely.is_valid(g)
    if bad.any():
        g[bad] = shapely.make_valid(g[bad])
    # GeometryCollections (given, or made by make_valid) keep only their polygonal parts.
    gc = shapely.get_type_id(g) == 7
    if gc.any():
        parts = []
        for geom in g[gc]:
            polys = [p for p in shapely.get_parts(geom) if shapely.get_type_id(p) in _POLYGONAL]
            parts.append(shapely.union_all(polys) if polys else shapely.Polygon())
        g[gc] = np.array(parts, dtype=object)
    with np.errstate(invalid="ignore"):
        no_area = (shapely.area(g) <= 0) | shapely.is_empty(g)
    reasons[idx[no_area]] = _NO_AREA
    ok = ~no_area
    repaired[idx[ok]] = bad[ok]
    out[idx[ok]] = shapely.to_wkb(shapely.orient_polygons(g[ok]), output_dimension=2)
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
