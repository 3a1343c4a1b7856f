"""The vectorised geometry intake gives exactly what the per-geometry code gave (issue 11).

``process_geometries`` runs each step as one shapely call over a whole chunk and takes an
Arrow column as it is (no ``to_pylist``). These tests feed it hostile generated geometries —
bowties, holes wound like their shell, projected coordinates, antimeridian spans, empties,
points and lines, NaN and infinite coordinates, 3D and measured coordinates, collections, huge
multipolygons, text that does not parse — in every encoding a file may carry (WKB bytes, hex
WKB, WKT, GeoJSON text), and compare the WKB, the reject reasons and the repaired flags with
the code it replaced (tests/geometry_reference.py).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.geometry_reference import reference_process_geometries
from usagectl.sources.geometry import crs_label, parse_crs, process_geometries

coord = st.floats(min_value=-200, max_value=200, allow_nan=False, allow_infinity=False)
small = st.floats(min_value=1e-6, max_value=30, allow_nan=False)


def _ring(x: float, y: float, w: float, h: float) -> list[tuple[float, float]]:
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]


@st.composite
def hostile(draw: st.DrawFn) -> shapely.Geometry | str:
    """One geometry (or a broken text) from a family that has caught intake bugs before."""
    x, y, w, h = draw(coord), draw(st.floats(-95, 95)), draw(small), draw(small)
    kind = draw(st.sampled_from([
        "box", "bowtie", "hole_same_winding", "hole_outside", "clockwise", "projected",
        "antimeridian", "split_antimeridian", "empty", "point", "line", "nan", "inf", "3d",
        "measured", "collection", "collection_points", "huge_multi", "overlapping_multi",
        "degenerate", "spike", "garbage", "multipoint"]))
    if kind == "box":
        return shapely.box(x, y, x + w, y + h)
    if kind == "bowtie":
        return shapely.Polygon([(x, y), (x + w, y + h), (x + w, y), (x, y + h), (x, y)])
    if kind == "hole_same_winding":
        return shapely.Polygon(_ring(x, y, w, h), [_ring(x + w / 4, y + h / 4, w / 2, h / 2)])
    if kind == "hole_outside":
        return shapely.Polygon(_ring(x, y, w, h), [_ring(x + 2 * w, y, w, h)])
    if kind == "clockwise":
        return shapely.Polygon(_ring(x, y, w, h)[::-1])
    if kind == "projected":
        return shapely.box(x * 1e4, y * 1e4, x * 1e4 + w * 100, y * 1e4 + h * 100)
    if kind == "antimeridian":
        return shapely.box(-179.9, y, 179.9, y + h)
    if kind == "split_antimeridian":
        return shapely.MultiPolygon([shapely.box(-180, y, -179.9, y + 0.1),
                                     shapely.box(179.9, y, 180, y + 0.1)])
    if kind == "empty":
        return draw(st.sampled_from(["POLYGON EMPTY", "MULTIPOLYGON EMPTY",
                                     "GEOMETRYCOLLECTION EMPTY", "POINT EMPTY"]))
    if kind == "point":
        return shapely.Point(x, y)
    if kind == "multipoint":
        return shapely.MultiPoint([(x, y), (x + w, y)])
    if kind == "line":
        return shapely.LineString([(x, y), (x + w, y + h)])
    if kind == "nan":
        return f"POLYGON (({x} {y}, NaN {y}, {x + w} {y + h}, {x} {y}))"
    if kind == "inf":
        return shapely.Polygon([(x, y), (math.inf, y), (x, y + h), (x, y)])
    if kind == "3d":
        z = draw(st.floats(-1e4, 1e4))
        return shapely.Polygon([(x, y, z), (x + w, y, z), (x + w, y + h, z + 1), (x, y, z)])
    if kind == "measured":
        return f"POLYGON M (({x} {y} 1, {x + w} {y} 2, {x + w} {y + h} 3, {x} {y} 1))"
    if kind == "collection":
        return shapely.GeometryCollection([shapely.box(x, y, x + w, y + h),
                                           shapely.LineString([(x, y), (x - w, y - h)])])
    if kind == "collection_points":
        return shapely.GeometryCollection([shapely.Point(x, y)])
    if kind == "huge_multi":
        k = draw(st.integers(50, 400))
        return shapely.MultiPolygon([shapely.box(x + i * w / k, y, x + (i + 0.5) * w / k, y + h)
                                     for i in range(k)])
    if kind == "overlapping_multi":
        return shapely.MultiPolygon([shapely.box(x, y, x + w, y + h),
                                     shapely.box(x + w / 2, y, x + 1.5 * w, y + h)])
    if kind == "degenerate":
        return shapely.Polygon([(x, y), (x + w, y), (x + 2 * w, y), (x, y)])
    if kind == "spike":
        return shapely.Polygon([(x, y), (x + w, y), (x + w, y + h), (x + w, y + 2 * h),
                                (x + w, y + h), (x, y + h), (x, y)])
    return draw(st.sampled_from(["POLYGON ((0 0, 1 1", "{\"type\": \"Polygon\"}", "0102",
                                 "not a geometry", "  ", ""]))


@st.composite
def encoded(draw: st.DrawFn, binary_only: bool = False) -> bytes | str | None:
    g = draw(hostile())
    if draw(st.integers(0, 12)) == 0:
        return None
    if isinstance(g, str):
        if binary_only:
            return shapely.to_wkb(shapely.from_wkt(g)) if _parses(g) else b"\x01\x03garbage"
        return g
    encodings = ["wkb"] if binary_only else ["wkb", "hex", "wkt", "geojson"]
    enc = draw(st.sampled_from(encodings))
    dim = 3 if shapely.has_z(g) else 2
    if enc == "wkb":
        return shapely.to_wkb(g, output_dimension=dim)
    if enc == "hex":
        return (" " if draw(st.booleans()) else "") + shapely.to_wkb(g, hex=True,
                                                                      output_dimension=dim)
    if enc == "wkt":
        return shapely.to_wkt(g, rounding_precision=-1, output_dimension=dim)
    try:
        return shapely.to_geojson(g)
    except Exception:  # NaN / infinity have no GeoJSON form
        return shapely.to_wkt(g, rounding_precision=-1)


def _parses(text: str) -> bool:
    try:
        return shapely.from_wkt(text) is not None
    except Exception:
        return False


CRSES = [None, "EPSG:4326", "OGC:CRS84", "EPSG:3857", "EPSG:28992"]


def _crashes(value: object, crs: object) -> bool:
    """Whether the per-geometry code raised on this value alone (a NaN coordinate that
    ``bounds`` did not see reached ``make_valid``, and the whole file failed)."""
    try:
        reference_process_geometries([value], crs)
    except shapely.errors.GEOSException:
        return True
    return False


def _same(values: list, crs_text: str | None, arrow_type: pa.DataType | None = None) -> None:
    """Same WKB, reasons and repaired flags as the per-geometry code; where that code raised
    (NaN coordinates), the row is rejected as non-finite instead."""
    crs = parse_crs(crs_text)
    crashed = [i for i, v in enumerate(values) if _crashes(v, crs)]
    want = reference_process_geometries([None if i in crashed else v
                                         for i, v in enumerate(values)], crs)
    for i in crashed:
        want.reason[i] = (f"geometry could not be reprojected from {crs_label(crs)} "
                          "(coordinates outside that CRS's area of use); check --crs"
                          if crs is not None else
                          "geometry has non-finite coordinates (NaN or infinity)")
    given_values = pa.chunked_array([pa.array(values, arrow_type)]) if arrow_type else values
    got = process_geometries(given_values, crs)
    assert list(got.reason) == list(want.reason)
    assert list(got.wkb) == list(want.wkb)
    assert got.repaired.tolist() == want.repaired.tolist()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(encoded(), min_size=1, max_size=30), crs=st.sampled_from(CRSES))
def test_vectorised_matches_per_geometry_on_hostile_values(values: list, crs: str | None) -> None:
    _same(values, crs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(encoded(binary_only=True), min_size=1, max_size=30),
       crs=st.sampled_from(CRSES))
def test_arrow_binary_column_matches_per_geometry(values: list, crs: str | None) -> None:
    """A GeoParquet WKB column, given as Arrow, gives what its Python list gave."""
    _same(values, crs, pa.binary())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(encoded(), min_size=1, max_size=20))
def test_arrow_text_column_matches_per_geometry(values: list) -> None:
    values = [v.hex() if isinstance(v, bytes) else v for v in values]
    _same(values, None, pa.string())


def test_arrow_binary_column_is_parsed_as_wkb() -> None:
    """The chunk's column goes in as Arrow (no ``to_pylist``): a bowtie is repaired, an empty
    WKB value is absent, a null is absent, a point is rejected."""
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    column = pa.chunked_array([pa.array([shapely.to_wkb(bowtie), b"", None,
                                         shapely.to_wkb(shapely.Point(1, 2))], pa.binary())])
    got = process_geometries(column, None)
    assert got.repaired.tolist() == [True, False, False, False]
    assert got.reason[0] is None and got.wkb[0] is not None
    assert shapely.get_type_id(shapely.from_wkb(got.wkb[0])) == 6  # both lobes kept
    assert list(got.reason[1:3]) == [None, None] and list(got.wkb[1:]) == [None] * 3
    assert got.reason[3].startswith("geometry is a Point")


def test_all_null_column_has_no_reasons() -> None:
    got = process_geometries(pa.chunked_array([pa.nulls(5, pa.string())]), None)
    assert list(got.reason) == [None] * 5 and list(got.wkb) == [None] * 5
    assert not got.repaired.any()


@pytest.mark.parametrize("crs", CRSES)
def test_a_large_mixed_chunk_matches(crs: str | None) -> None:
    """Thousands of rows in one chunk, every family mixed, in both input forms."""
    rng = np.random.default_rng(7)
    values: list = []
    for i in range(3000):
        x, y = rng.uniform(-179, 170), rng.uniform(-89, 80)
        w, h = rng.uniform(1e-4, 5), rng.uniform(1e-4, 5)
        pick = i % 6
        if pick == 0:
            g = shapely.box(x, y, x + w, y + h)
        elif pick == 1:
            g = shapely.Polygon([(x, y), (x + w, y + h), (x + w, y), (x, y + h), (x, y)])
        elif pick == 2:
            g = shapely.box(x * 5e3, y * 5e3, x * 5e3 + 300, y * 5e3 + 300)
        elif pick == 3:
            g = shapely.Polygon(_ring(x, y, w, h), [_ring(x + w / 4, y + h / 4, w / 2, h / 2)])
        elif pick == 4:
            g = shapely.box(-179.5, y, 179.5, y + h)
        else:
            g = shapely.LineString([(x, y), (x + w, y)])
        values.append(shapely.to_wkb(g))
    _same(values, crs)
    _same(values, crs, pa.binary())


def test_a_nan_vertex_rejects_its_row_instead_of_failing_the_file(cli, tmp_path) -> None:  # noqa: ANN001
    """GEOS bounds skip NaN, so a polygon with one NaN vertex passed the range checks and made
    ``make_valid`` raise: the whole file failed as an internal error. It is a rejected row."""
    from tests.conftest import reasons

    f = tmp_path / "nan.csv"
    f.write_text("event_id,ts,owner_id,user_id,product,geometry\n"
                 "e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"
                 "\"POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42))\"\n"
                 "e2,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"
                 "\"POLYGON((-93 42,NaN 42,-92.99 42.01,-93 42))\"\n")
    run = cli("ingest", f, "--format", "json")
    out = run.json()["files"][0]
    assert (out["status"], out["accepted"], out["rejected"]) == ("ok", 1, 1), run.stdout
    assert reasons(cli)[3] == "geometry has non-finite coordinates (NaN or infinity)"


def test_unparsable_geometries_print_no_warning_under_quiet(tmp_path):
    """A bad WKT/WKB value is a reject, not a RuntimeWarning from numpy on stderr (-q is silent)."""
    import subprocess
    import sys

    src = tmp_path / "bad.csv"
    src.write_text(
        "event_id,timestamp,owner_id,user_id,product,geometry\n"
        'e1,2026-01-01T00:00:00Z,o,u,FIELDS_BOUNDARY,"POLYGON((0 0, 1 0, 1 1, 0 0"\n'
        "e2,2026-01-01T00:00:00Z,o,u,FIELDS_BOUNDARY,0103000000010000000400\n"
        'e3,2026-01-01T00:00:00Z,o,u,FIELDS_BOUNDARY,"{""type"": ""Polygon""}"\n'
        'e4,2026-01-01T00:00:00Z,o,u,FIELDS_BOUNDARY,"POLYGON((0 0, nan 0, 1 1, 0 0))"\n',
        encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "usagectl", "--db", str(tmp_path / "u.duckdb"),
                           "ingest", str(src), "-q"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
