"""`overlap --geojson` regions: each one is covered by exactly the users in its label (SPEC §5.1).

The checks are against each user's union built independently (one ``union_all`` of the user's
geometries, no tiles): for a region R labelled S, R − U_u is empty for u in S and R ∩ U_v is
empty for every other user v, up to floating-point slivers; and every polygon PART of every
region holds a point farther than the tolerance from its edge (the centre of its largest
inscribed circle) whose covering users are exactly S — a needle a rounding error wide, whose
area hides in any per-region area check, has no such point. Areas here are planar, in the
lon/lat plane where the engine clips and overlays (docs/area.md, "Overlap regions"): the
question is which users cover which points, and Geod's edge definition must not blur it.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.area_fixtures import field_polygon, jitter
from tests.conftest import SAMPLE_DATA
from usagectl.meters.area import REGION_TOLERANCE_DEG, AreaInput, combine, compute, compute_tiles

TOL = REGION_TOLERANCE_DEG


def mislabelled(regions, unions: dict[str, shapely.Geometry]) -> list[str]:  # noqa: ANN001
    """Every region whose label disagrees with the users' unions, and how (planar areas)."""
    problems = []
    for g, label in regions:
        a = shapely.area(g)
        tol = REGION_TOLERANCE_DEG * shapely.length(g)
        for u, union in unions.items():
            wrong = (shapely.area(shapely.difference(g, union)) if u in label
                     else shapely.area(shapely.intersection(g, union)))
            if wrong > tol:
                what = "not covered by" if u in label else "also covered by"
                problems.append(f"{label}: {wrong / a:.3g} of it {what} {u}")
    return problems


def deep_point(part: shapely.Geometry) -> tuple[shapely.Geometry, float]:
    """A point of ``part`` as far from its edge as GEOS finds, and that distance.

    The centre of the largest inscribed circle, searched to a precision that finds a point
    deeper than the tolerance whenever the part's area exceeds tolerance × perimeter: the points
    within r of a polygon's edge cover at most r × perimeter (with at most one hole), so the
    true radius is then at least area / perimeter, and GEOS returns a centre within its
    precision of the true radius.
    """
    x0, y0, x1, y1 = shapely.bounds(part)
    precision = max(x1 - x0, y1 - y0) / 1000  # GEOS's default
    a, p = shapely.area(part), shapely.length(part)
    if a > TOL * p:
        precision = min(precision, (a / p - TOL) / 2)
    centre = shapely.get_point(shapely.maximum_inscribed_circle(part, precision), 0)
    return centre, float(shapely.distance(centre, shapely.boundary(part)))


def wrong_parts(regions, unions: dict[str, shapely.Geometry]) -> list[str]:  # noqa: ANN001
    """Every region part thinner than the tolerance, or whose deepest point's users differ."""
    problems = []
    for g, label in regions:
        for k, part in enumerate(shapely.get_parts(g)):
            centre, depth = deep_point(part)
            where = (f"{label} part {k} ({shapely.area(part):.3g} deg², "
                     f"{shapely.length(part):.3g} deg of edge)")
            if depth <= TOL or not shapely.contains(part, centre):
                problems.append(f"{where}: no point farther than {TOL} from its edge "
                                f"(deepest found {depth:.3g})")
                continue
            covering = tuple(u for u in sorted(unions) if shapely.intersects(unions[u], centre))
            if covering != tuple(label):
                problems.append(f"{where}: its point {centre.wkt} is covered by {covering}")
    return problems


def covered_twice(unions: dict[str, shapely.Geometry]) -> shapely.Geometry:
    names = sorted(unions)
    return shapely.union_all([shapely.intersection(unions[a], unions[b])
                              for k, a in enumerate(names) for b in names[k + 1:]])


def check_regions(regions, unions: dict[str, shapely.Geometry]) -> None:  # noqa: ANN001
    assert mislabelled(regions, unions) == []
    assert wrong_parts(regions, unions) == []
    labels = [label for _, label in regions]
    assert len(set(labels)) == len(labels), "one region per user set"
    assert all(len(label) >= 2 and list(label) == sorted(set(label)) for label in labels)
    # Together the regions are the part covered twice or more, each point once.
    multi = covered_twice(unions)
    total = sum(shapely.area(g) for g, _ in regions)
    edges = sum(shapely.length(g) for g, _ in regions)
    assert abs(total - shapely.area(multi)) <= REGION_TOLERANCE_DEG * edges
    assert abs(shapely.area(shapely.union_all([g for g, _ in regions])) - total) <= \
        REGION_TOLERANCE_DEG * edges


def check_dropped(data: AreaInput, tile: float) -> None:
    """What the engine leaves out of the regions is negligible: per label, at most the tolerance
    times the perimeter of the label's pieces before anything was dropped."""
    tiles = compute_tiles(data, overlap=True, regions=True, tile_deg=tile, workers=1)
    raw: dict[tuple[str, ...], list] = {}
    for g, label in combine(tiles, overlap=True).regions:  # per-tile pieces, nothing dropped
        raw.setdefault(tuple(label), []).append(g)
    kept = {tuple(label): g for g, label in combine(tiles, overlap=True, regions=True).regions}
    for label, pieces in raw.items():
        whole = shapely.union_all(pieces)
        dropped = shapely.area(whole) - (shapely.area(kept[label]) if label in kept else 0.0)
        assert dropped <= TOL * shapely.length(whole), label


def test_slivers_are_dropped_part_by_part() -> None:
    """A needle beside a real part of the same label goes; the real part stays (issue 10, red
    team #13: judged per region, the needle passed along with it)."""
    from usagectl.meters.area import _merge_regions

    square = shapely.box(30.0, 50.0, 30.001, 50.001)
    needle = shapely.Polygon([(30.002, 50.0), (30.007, 50.0), (30.002, 50.0 + 1e-15)])
    strip = shapely.box(30.0, 50.002, 30.005, 50.002 + 3 * TOL)  # deepest point 1.5 tol in
    thin = shapely.box(30.0, 50.003, 30.005, 50.003 + 1.5 * TOL)  # deepest point 0.75 tol in
    pieces = [(square, ("a", "b")), (needle, ("a", "b")), (needle, ("a", "c")),
              (shapely.multipolygons([strip, thin]), ("b", "c"))]
    merged = {users: g for g, users in _merge_regions(pieces)}
    assert set(merged) == {("a", "b"), ("b", "c")}
    assert shapely.equals(merged[("a", "b")], square)
    assert shapely.equals(merged[("b", "c")], strip)
    for g in (needle, thin):
        assert shapely.area(g) <= TOL * shapely.length(g)


# (meter, events it counts): the meter's geometries, selected independently of the engine.
SAMPLE_METERS = {"boundaries": ("AND product = 'FIELDS_BOUNDARY' ", 124), "unified": ("", 258)}


@pytest.mark.parametrize("meter", sorted(SAMPLE_METERS))
def test_sample_overlap_geojson_labels_are_exact(cli, db_path: Path, tmp_path: Path,
                                                 meter: str) -> None:
    """Issue 10 #16: 1.121 acres of acme's boundaries were labelled {hardin, marshall, polk};
    then needles ~1e-15° wide and 600 m long labelled {hardin, story} and {polk, story} lay on
    a line covered by hardin, polk and story (6 of them in unified)."""
    cli("ingest", SAMPLE_DATA, "--format", "json")
    cli("contracts", "load", SAMPLE_DATA / "contracts.toml")
    out = tmp_path / "x.geojson"
    r = cli("overlap", "--contract", "acme-farms-2026", "--meter", meter,
            "--as-of", "2026-11-20T12:00:00Z", "--geojson", out, "--format", "json")
    assert r.exit_code == 0, r.stderr
    regions = [(shapely.geometry.shape(f["geometry"]), tuple(f["properties"]["users"]))
               for f in json.loads(out.read_text())["features"]]
    # Processed (successful) geometries of the period, of the meter's products.
    product, count = SAMPLE_METERS[meter]
    with duckdb.connect(str(db_path), read_only=True) as con:
        rows = con.execute(
            "SELECT user_id, geometry FROM events WHERE owner_id = 'acme-farms' "
            f"{product}AND action = 'process' AND succeeded AND geometry IS NOT NULL "
            "AND ts >= TIMESTAMPTZ '2026-10-01 00:00:00-05' "
            "AND ts <= TIMESTAMPTZ '2026-11-20 12:00:00+00'").fetchall()
    assert len(rows) == count
    users = np.asarray([u for u, _ in rows], dtype=object)
    geoms = shapely.from_wkb([g for _, g in rows])
    unions = {u: shapely.union_all(geoms[users == u]) for u in sorted(set(users))}
    check_regions(regions, unions)
    check_dropped(AreaInput(geoms, users), 0.1)
    doc = r.json()
    assert sum(u["area"] for u in doc["users"]) - doc["owner_total"] > 1700  # real overlap


# Several users' irregular fields (no axis-aligned edges: their crossings are rounded points, not
# copies of input coordinates) around a corner of 0.01° tiles, so that regions cross tile lines;
# some are the previous field re-uploaded with metres of jitter (nearly coincident edges).
fields_strategy = st.lists(
    st.tuples(st.floats(-0.012, 0.012), st.floats(-0.012, 0.012), st.floats(2e4, 8e5),
              st.integers(3, 7), st.sampled_from("abcde"), st.integers(0, 2**32 - 1),
              st.sampled_from([0.0, 0.0, 0.5, 3.0])),
    min_size=2, max_size=14)


def _fields(items) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    geoms: list[shapely.Geometry] = []
    for x, y, a, k, _, seed, jitter_m in items:
        rng = np.random.default_rng(seed)
        if jitter_m and geoms:
            geoms.append(jitter(geoms[-1], jitter_m, rng))
        else:
            geoms.append(field_polygon(30.005 + x, 50.005 + y, a, k, rng))
    return np.asarray(geoms, dtype=object), np.asarray([it[4] for it in items], dtype=object)


@settings(max_examples=40, deadline=None)
@given(items=fields_strategy, tile=st.sampled_from([0.01, 0.1]))
# Found by Hypothesis against the polygonize labelling: 39 % of the region named (a, b, c) was
# not covered by b.
@example(items=[(0.0, 0.0, 2e4, 3, "a", 0, 0.0), (0.0, 0.0, 2e4, 3, "b", 27, 0.0),
                (0.0, 0.0, 2e4, 4, "c", 1, 0.0), (0.0, 0.0, 131467.0, 3, "a", 0, 0.0)], tile=0.01)
# Found by Hypothesis against per-region sliver dropping: a part of (a, b) 6.9e-18 deg² in area
# and 2.4e-7° long (deepest point 5.7e-11° from its edge).
@example(items=[(0.0, -0.0027477172359001885, 639001.0, 5, "a", 3042248803, 0.0),
                (0.0, 0.0, 20000.0, 3, "a", 0, 0.5), (0.0, 0.0, 20000.0, 3, "a", 11322373, 0.5),
                (0.0, 0.0, 20000.0, 3, "a", 8734, 3.0),
                (0.0, -0.005047905646413379, 395317.0, 5, "b", 17271307, 0.0),
                (0.0, -0.0027477172359001885, 639001.0, 5, "a", 3042248803, 0.0),
                (0.0, 0.0, 20000.0, 3, "c", 1077955, 3.0)], tile=0.01)
def test_regions_are_covered_by_exactly_their_users(items, tile: float) -> None:  # noqa: ANN001
    geoms, users = _fields(items)
    r = compute(AreaInput(geoms, users), regions=True, tile_deg=tile, workers=1)
    unions = {u: shapely.union_all(geoms[users == u]) for u in sorted(set(users))}
    check_regions(r.regions, unions)
    check_dropped(AreaInput(geoms, users), tile)
