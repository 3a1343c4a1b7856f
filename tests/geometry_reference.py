"""The per-geometry intake of usagectl 0.x before issue 11, kept verbatim as a reference.

``usagectl.sources.geometry.process_geometries`` is now vectorised; the property tests in
tests/test_geometry_vectorised.py check that it gives the same WKB, reasons and repaired flags
as this code on hostile generated geometries. Not used by the product.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS

from usagectl.sources.geometry import (
    _HEX,
    _POLYGONAL,
    _TYPE_NAMES,
    GeometryBatch,
    _is_lonlat_wgs84,
    _transformer,
    crs_label,
)


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


def reference_process_geometries(values: list, src_crs: CRS | None,
                                 crs_hint: str = "--crs") -> GeometryBatch:
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
