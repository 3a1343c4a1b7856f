"""The unique-area engine against hand-checkable geometry and invariants (SPEC §5.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyproj import Geod

from usagectl.meters.area import AreaInput, compute, geodesic_area

GEOD = Geod(ellps="WGS84")


def ref(g) -> float:  # noqa: ANN001 — the SPEC's reference formula
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0])


def run(boxes, users, days=None, **kw):  # noqa: ANN001, ANN201
    geoms = np.asarray(boxes, dtype=object)
    return compute(AreaInput(geoms, np.asarray(users, dtype=object),
                             None if days is None else np.asarray(days)), workers=1, **kw)


BOX = shapely.box(10.0, 45.0, 10.01, 45.01)


def test_the_same_field_twice_counts_once_for_a_user_and_twice_for_two_users() -> None:
    a = ref(BOX)
    r = run([BOX, BOX, BOX], ["u1", "u1", "u2"], overlap=True, pairs=True)
    assert r.users["u1"] == pytest.approx(a, rel=1e-12)
    assert r.users["u2"] == pytest.approx(a, rel=1e-12)
    assert r.owner == pytest.approx(a, rel=1e-12)
    assert r.exclusive == {"u1": 0.0, "u2": 0.0}
    assert r.pairs[("u1", "u2")] == pytest.approx(a, rel=1e-12)


def test_two_users_sharing_half_a_field() -> None:
    # Geod treats each edge as a geodesic: the union's 0.015°-long edge along a parallel is not
    # the two boxes' shorter edges end to end, so figures agree to ~1e-8, not to the last bit.
    other = shapely.box(10.005, 45.0, 10.015, 45.01)
    r = run([BOX, other], ["a", "b"], overlap=True, pairs=True)
    half = ref(shapely.box(10.005, 45.0, 10.01, 45.01))
    assert r.owner == pytest.approx(ref(shapely.union(BOX, other)), rel=1e-12)
    assert sum(r.users.values()) - r.owner == pytest.approx(half, rel=1e-7)
    assert r.exclusive["a"] == pytest.approx(ref(BOX) - half, rel=1e-7)
    assert r.pairs[("a", "b")] == pytest.approx(half, rel=1e-7)


@pytest.mark.parametrize("lat", [0.0, 45.0, 70.0, -60.0, 85.0])
def test_fields_across_tile_edges_match_the_untiled_union(lat: float) -> None:
    # Fields straddling many 0.05° tile lines, overlapping each other.
    boxes = [shapely.box(0.04 + i * 0.013, lat + 0.045, 0.07 + i * 0.013, lat + 0.072)
             for i in range(8)]
    r = run(boxes, [f"u{i % 3}" for i in range(8)])
    assert r.tiles > 1
    assert r.owner == pytest.approx(ref(shapely.union_all(boxes)), rel=1e-9)


def test_a_cut_on_another_users_corner_is_still_corrected_for_the_user() -> None:
    # a's 1.5 km southern edge is cut by the 12° tile meridian exactly at b's corner (12, 48).
    # That vertex is b's, not a's: a's reference polygon has no vertex there, so a's figure still
    # needs the cut's sliver taken back (21.5 m² was left, 2.6e-5 of a; the owner's union does
    # have the vertex, and is right either way).
    a = shapely.box(11.984375, 48.0, 12.00390625, 48.001953125)
    b = shapely.box(12.0, 48.0, 12.015625, 48.015625)
    r = run([a, b], ["a", "b"], days=[1, 1], overlap=True, pairs=True, daily=True)
    assert r.users["a"] == pytest.approx(ref(a), rel=1e-12)
    assert r.users["b"] == pytest.approx(ref(b), rel=1e-12)
    assert r.owner == pytest.approx(ref(shapely.union(a, b)), rel=1e-12)
    assert r.daily_users["a"][1] == pytest.approx(ref(a), rel=1e-12)
    assert r.pairs[("a", "b")] == pytest.approx(ref(shapely.intersection(a, b)), rel=1e-9)


@pytest.mark.xfail(strict=True, reason="known gap (docs/area-accuracy.md, 'Edges along a "
                   "parallel'): vertices another field puts on a cut tile line are not corrected")
def test_a_field_whose_edge_lies_on_a_cut_tile_line() -> None:
    # `inner` lies inside `big`, its southern edge exactly on the 48° tile line that cuts `big`.
    # North of the line, the union's cut edge keeps inner's two corners (three geodesics);
    # south of it, the cut edge is one geodesic: 12.5 m² (9.9e-6) more than the reference, which
    # has no vertex there. Found by Hypothesis in test_invariants (issue 10).
    big = shapely.box(12.0, 47.99609375, 12.01953125, 48.00390625)
    inner = shapely.box(12.005, 48.0, 12.01, 48.002)
    r = run([big, inner], ["a", "a"])
    assert r.owner == pytest.approx(ref(big), rel=1e-9)


def test_antimeridian_split_field_is_one_field() -> None:
    west = shapely.box(179.995, -17.01, 180.0, -17.0)
    east = shapely.box(-180.0, -17.01, -179.995, -17.0)
    r = run([shapely.MultiPolygon([west, east])], ["u"])
    assert r.owner == pytest.approx(ref(west) + ref(east), rel=1e-9)
    assert 1.0e6 < r.owner < 1.2e6  # ~0.01° × 0.01° in Fiji, not a 360°-wide band


def test_daily_new_area_sums_to_the_union() -> None:
    boxes = [BOX, shapely.box(10.005, 45.0, 10.015, 45.01), BOX, shapely.box(10.02, 45.0, 10.03, 45.01)]
    r = run(boxes, ["a", "a", "b", "a"], days=[1, 2, 2, 5], daily=True)
    assert r.daily_owner[1] == pytest.approx(ref(BOX), rel=1e-7)
    assert r.daily_owner[2] == pytest.approx(ref(shapely.box(10.01, 45.0, 10.015, 45.01)), rel=1e-6)
    assert sum(r.daily_owner.values()) == pytest.approx(r.owner, rel=1e-7)
    assert r.daily_users["b"] == {2: pytest.approx(ref(BOX), rel=1e-7)}


# Field-sized boxes (up to ~2 km a side). Geod takes every edge as a geodesic, so splitting an
# edge (at a tile line, or where another polygon's corner touches it in a union) moves the area by
# the sliver between the geodesic and the two shorter ones: ~20 m² for a 1.2 km edge at 48°, a few
# 1e-6 of such fields. That is the SPEC's own reference formula at work (docs/area.md), and it is
# 20× inside the 1e-4 the SPEC allows; hence the tolerances below.
boxes_strategy = st.lists(
    st.tuples(st.floats(-0.1, 0.1), st.floats(-0.1, 0.1), st.floats(0.001, 0.02),
              st.floats(0.001, 0.02), st.sampled_from("abcd"), st.integers(0, 9)),
    min_size=1, max_size=25)
TOL = 2e-5
# Tile cuts are corrected exactly (test_fields_across_tile_edges_match_the_untiled_union asserts
# 1e-9). What remains is Geod's non-additivity along parallels: see ``bulge_slack``.
TOL_REF = TOL
R_EARTH = 6_371_000.0


def _bulge(width_deg: float, lat: float) -> float:
    """m² between a geodesic along a ``width_deg`` long stretch of parallel and the parallel."""
    metres = width_deg * 111_320.0 * math.cos(math.radians(lat))
    return metres**3 * math.tan(math.radians(abs(lat))) / (12 * R_EARTH)


def bulge_slack(boxes: list, *, meeting: bool = False, tile_lines: bool = False) -> float:
    """m² a figure may move by where a union and its pieces split an edge along a parallel.

    An edge along a parallel, taken as a geodesic, bulges from the parallel by about
    ``L³ tan φ / (12 R)``; a figure measured as pieces that split such edges differently from the
    union moves by up to a few times that (docs/area-accuracy.md, "Edges along a parallel").
    ``meeting``: the boxes that touch or overlap another one (each day's new area is measured
    apart from earlier days'). ``tile_lines``: a 0.1° tile line on which a box has an edge while
    another box crosses it (the vertices the first puts on the cut are not corrected). Zero
    when there is no such box or line, so those cases keep the tolerances above.
    """
    slack = 0.0
    if meeting:
        for k, b in enumerate(boxes):
            if any(shapely.intersects(b, o) for m, o in enumerate(boxes) if m != k):
                x0, y0, x1, y1 = b.bounds
                slack += 3 * (_bulge(x1 - x0, y0) + _bulge(x1 - x0, y1))
    if tile_lines:
        for y in {y for b in boxes for y in (b.bounds[1], b.bounds[3])}:
            if y != round(y / 0.1) * 0.1:
                continue
            on = [b.bounds[2] - b.bounds[0] for b in boxes if y in (b.bounds[1], b.bounds[3])]
            crossing = [b.bounds[2] - b.bounds[0] for b in boxes if b.bounds[1] < y < b.bounds[3]]
            if crossing:
                slack += 3 * _bulge(sum(on) + sum(crossing), y)
    return slack


@settings(max_examples=40, deadline=None)
@given(items=boxes_strategy, seed=st.integers(0, 1000))
# Found by running this test with many more examples (issue 10). A cut by the 12° meridian at
# another user's corner was not corrected for the user: 21.5 m² (fixed).
@example(items=[(0.0, 0.0, 0.015625, 0.015625, "b", 0), (0.0, 0.0625, 0.015625, 0.00390625, "a", 0),
                (-0.015625, 0.0, 0.01953125, 0.001953125, "a", 0)], seed=0)
# Two touching boxes of one user and day: Σ daily measures them apart, 17.2 m² (2.3e-5) above
# the union (bulge_slack, meeting=True).
@example(items=[(0.0, 0.0, 0.015625, 0.015625, "a", 0), (0.0, 0.0, 0.015625, 0.00390625, "b", 0),
                (0.0, 0.00390625, 0.0078125, 0.00390625, "b", 0)], seed=0)
# Day 1's box splits day 0's southern edge: Σ daily 32.3 m² (2.8e-5) below the union.
@example(items=[(0.0, 0.0, 0.015625, 0.015625, "a", 0), (0.0, 0.0, 0.0078125, 0.009765625, "b", 1),
                (0.0, 0.0078125, 0.01953125, 0.00390625, "b", 0)], seed=0)
def test_invariants(items, seed) -> None:  # noqa: ANN001
    boxes = [shapely.box(12 + x, 48 + y, 12 + x + w, 48 + y + h) for x, y, w, h, _, _ in items]
    users = [u for *_, u, _ in items]
    days = [d for *_, d in items]
    of = {u: [b for b, v in zip(boxes, users) if v == u] for u in set(users)}
    r = run(boxes, users, days, overlap=True, daily=True)
    total = ref(shapely.union_all(boxes))
    assert r.owner == pytest.approx(total, rel=TOL_REF, abs=bulge_slack(boxes, tile_lines=True))
    assert sum(r.users.values()) >= r.owner * (1 - TOL)
    for u, a in r.users.items():
        assert r.exclusive[u] <= a * (1 + TOL)
        assert a == pytest.approx(ref(shapely.union_all(of[u])), rel=TOL_REF,
                                  abs=bulge_slack(of[u], tile_lines=True))
    assert sum(r.daily_owner.values()) == pytest.approx(
        r.owner, rel=TOL, abs=bulge_slack(boxes, meeting=True, tile_lines=True))
    for u, days_u in r.daily_users.items():
        assert sum(days_u.values()) == pytest.approx(
            r.users[u], rel=TOL, abs=bulge_slack(of[u], meeting=True, tile_lines=True))
    # Order of events and the size of the tiles change nothing.
    perm = np.random.default_rng(seed).permutation(len(boxes))
    shuffled = run([boxes[i] for i in perm], [users[i] for i in perm], [days[i] for i in perm],
                   daily=True)
    assert shuffled.owner == pytest.approx(r.owner, rel=1e-7)
    assert shuffled.daily_owner == pytest.approx(r.daily_owner, rel=1e-6, abs=1e-3)
    for tile in (0.013, 1.0):
        other = compute(AreaInput(np.asarray(boxes, dtype=object), np.asarray(users, dtype=object)),
                        tile_deg=tile, workers=1)
        assert other.owner == pytest.approx(r.owner, rel=TOL_REF,
                                            abs=bulge_slack(boxes, tile_lines=True))


def test_overlap_regions_name_every_user_covering_them() -> None:
    a = shapely.box(0, 0, 0.02, 0.02)
    b = shapely.box(0.01, 0, 0.03, 0.02)
    c = shapely.box(0.015, 0, 0.025, 0.02)
    r = run([a, b, c], ["a", "b", "c"], regions=True)
    from usagectl.meters.area import _merge_regions

    regions = {users: g for g, users in _merge_regions(r.regions)}
    assert set(regions) == {("a", "b"), ("a", "b", "c"), ("b", "c")}
    assert ref(regions[("a", "b", "c")]) == pytest.approx(ref(shapely.box(0.015, 0, 0.02, 0.02)), rel=1e-7)
    covered_twice = sum(ref(g) for g in regions.values())
    assert covered_twice == pytest.approx(ref(shapely.box(0.01, 0, 0.025, 0.02)), rel=1e-7)


def test_parallel_equals_serial() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(5, 5.5, 3000), rng.uniform(50, 50.5, 3000)
    boxes = shapely.box(x, y, x + 0.004, y + 0.004)
    users = np.asarray([f"u{i % 5}" for i in range(3000)], dtype=object)
    serial = compute(AreaInput(boxes, users), workers=1)
    import usagectl.meters.area as area

    old = area.PARALLEL_MIN_PIECES
    area.PARALLEL_MIN_PIECES = 100
    try:
        parallel = compute(AreaInput(boxes, users), workers=2)
    finally:
        area.PARALLEL_MIN_PIECES = old
    assert parallel.owner == pytest.approx(serial.owner, rel=1e-12)
    assert parallel.users == pytest.approx(serial.users, rel=1e-12)


def test_geodesic_area_is_orientation_proof() -> None:
    cw = shapely.Polygon(list(BOX.exterior.coords)[::-1])
    assert geodesic_area(BOX) > 0
    assert geodesic_area(cw) == pytest.approx(geodesic_area(BOX), rel=1e-15)


@settings(max_examples=30, deadline=None)
@given(items=boxes_strategy, since=st.integers(0, 10))
def test_recent_days_equal_the_full_daily_series(items, since) -> None:  # noqa: ANN001
    """The trend's last days (recent_news) are the full daily series' values for those days."""
    from usagectl.meters.area import recent_news

    boxes = np.asarray([shapely.box(12 + x, 48 + y, 12 + x + w, 48 + y + h)
                        for x, y, w, h, _, _ in items], dtype=object)
    data = AreaInput(boxes, np.asarray([u for *_, u, _ in items], dtype=object),
                     np.asarray([d for *_, d in items]))
    full = compute(data, daily=True, workers=1)
    owner = recent_news(data, since, "owner", workers=1)
    users = recent_news(data, since, "users", workers=1)
    assert owner.owner == 0 and not owner.users and not users.daily_owner  # nothing else built
    assert set(owner.daily_owner) == {d for d in full.daily_owner if d >= since}
    for d, a in owner.daily_owner.items():
        assert a == pytest.approx(full.daily_owner[d], rel=1e-12, abs=1e-6)
    for u, days in full.daily_users.items():
        recent = {d: a for d, a in days.items() if d >= since}
        assert users.daily_users.get(u, {}) == pytest.approx(recent, rel=1e-12, abs=1e-6)


def test_recent_days_cover_tile_cuts_and_ignore_far_tiles() -> None:
    # A day-3 field across a tile line, over a day-1 field; a far field of day 1 is not cut.
    old = shapely.box(10.09, 45.0, 10.12, 45.01)
    new = shapely.box(10.095, 45.0, 10.13, 45.01)
    far = shapely.box(11.5, 45.0, 11.51, 45.01)
    data = AreaInput(np.asarray([old, new, far], dtype=object),
                     np.asarray(["a", "a", "a"], dtype=object), np.asarray([1, 3, 1]))
    from usagectl.meters.area import recent_news

    r = recent_news(data, 2, "owner", workers=1)
    assert r.tiles == 2  # the two tiles of the new field; the far one is never touched
    assert r.daily_owner == {3: pytest.approx(ref(shapely.box(10.12, 45.0, 10.13, 45.01)),
                                              rel=1e-9)}


def test_cut_records_survive_the_store_and_keep_their_corrections() -> None:
    """Tile results go through JSON (usagectl.meters.area_cache): their cut records too."""
    import json

    from usagectl.meters import area_cuts
    from usagectl.meters.area import AreaResult, combine, compute_tiles

    # A long, thin field at 70° N across several 0.1° tile lines: chains and simple cuts.
    field = shapely.Polygon([(24.93, 70.01), (25.37, 70.02), (25.36, 70.05), (24.95, 70.03)])
    data = AreaInput(np.asarray([field, BOX], dtype=object), np.asarray(["a", "b"], dtype=object),
                     np.asarray([1, 2]))
    tiles = compute_tiles(data, daily=True, workers=1)
    assert sum(len(t.cuts) for t in tiles.values()) > 0
    stored = [AreaResult.from_json(json.loads(json.dumps(t.to_json()))) for t in tiles.values()]
    for a, b in zip(tiles.values(), stored):
        assert a.cuts.labels == b.cuts.labels
        assert np.array_equal(a.cuts.pts, b.cuts.pts) and np.array_equal(a.cuts.lab, b.cuts.lab)
    direct, through = combine(tiles), combine(dict(zip(tiles, stored)))
    assert through.owner == direct.owner and through.daily_owner == direct.daily_owner
    assert direct.owner == pytest.approx(ref(shapely.union(field, BOX)), rel=1e-12)
    # Records of figures a view did not ask for can be left out without touching the others.
    kept = area_cuts.concat([t.cuts for t in stored]).without({"od", "ud", "sd"})
    assert {label[0] for label in kept.labels} <= {"o", "u"}
    assert area_cuts.corrections(kept) == pytest.approx(
        {k: v for k, v in area_cuts.corrections(area_cuts.concat([t.cuts for t in stored])).items()
         if k[0] in ("o", "u")}, rel=1e-12)


# One user's field re-uploaded with sub-metre jitter over five days (the last time with a pond cut
# out): on day 4 every piece is almost covered by earlier days, and GEOS unites the same-day
# slivers into GEOMETRYCOLLECTION (POLYGON EMPTY, GEOMETRYCOLLECTION EMPTY).
JITTERED = [
    ("POLYGON ((8.086826957116612 47.147468319463854, 8.075754570567444 47.14173209708446, 8.0"
     "8211532318431 47.13339112468892, 8.088958425675601 47.13516068867765, 8.094333704225924 "
     "47.14210749238431, 8.086826957116612 47.147468319463854))"),
    ("POLYGON ((8.086818455505083 47.14746141618706, 8.075776845395406 47.141709053204906, 8.0"
     "8208316230922 47.13338731343203, 8.088961617424765 47.135163563896725, 8.094361253331908"
     " 47.14209091658411, 8.086818455505083 47.14746141618706))"),
    ("POLYGON ((8.08681745343051 47.14746277332137, 8.075749407916446 47.141731427399925, 8.08"
     "2108840938359 47.133391932696945, 8.088959503501142 47.13516828089994, 8.094333337163588"
     " 47.14210358232089, 8.08681745343051 47.14746277332137))"),
    ("POLYGON ((8.086834826794684 47.14742371333952, 8.07575545948214 47.14173726010086, 8.082"
     "068547338372 47.13339662280119, 8.088955187159616 47.13517611077674, 8.09433417588123 47"
     ".142112563815566, 8.086834826794684 47.14742371333952))"),
    ("POLYGON ((8.086827841245762 47.147468750077266, 8.07575462541768 47.14173215505865, 8.08"
     "2115164068572 47.133391469999175, 8.088958465314322 47.13516067388117, 8.094334937452748"
     " 47.14210735765021, 8.086827841245762 47.147468750077266))"),
    ("POLYGON ((8.094333337163588 47.14210358232089, 8.088959503501142 47.13516828089994, 8.08"
     "2108840938359 47.133391932696945, 8.075749407916446 47.141731427399925, 8.08681745343051"
     " 47.14746277332137, 8.094333337163588 47.14210358232089), (8.086146021499744 47.14060490"
     "764455, 8.086089115751852 47.1407925007549, 8.085996705831644 47.14096538755555, 8.08587"
     "2343000528 47.14111692410372, 8.085720806452361 47.141241286934836, 8.085547919651706 47"
     ".14133369685505, 8.085360326541357 47.14139060260294, 8.085165236219341 47.1414098173225"
     "3, 8.084970145897325 47.14139060260294, 8.084782552786976 47.14133369685505, 8.084609665"
     "98632 47.141241286934836, 8.084458129438154 47.14111692410372, 8.084333766607038 47.1409"
     "6538755555, 8.08424135668683 47.1407925007549, 8.084184450938938 47.14060490764455, 8.08"
     "4165236219341 47.140409817322535, 8.084184450938938 47.14021472700052, 8.08424135668683 "
     "47.14002713389017, 8.084333766607038 47.13985424708952, 8.084458129438154 47.13970271054"
     "135, 8.08460966598632 47.139578347710234, 8.084782552786976 47.13948593779002, 8.0849701"
     "45897325 47.13942903204213, 8.085165236219341 47.13940981732254, 8.085360326541357 47.13"
     "942903204213, 8.085547919651706 47.13948593779002, 8.085720806452361 47.139578347710234,"
     " 8.085872343000528 47.13970271054135, 8.085996705831644 47.13985424708952, 8.08608911575"
     "1852 47.14002713389017, 8.086146021499744 47.14021472700052, 8.08616523621934 47.1404098"
     "17322535, 8.086146021499744 47.14060490764455))"),
]


def test_a_day_whose_new_slivers_collapse_to_nothing_counts_zero() -> None:
    fields = [shapely.from_wkt(JITTERED[k]) for k in (0, 1, 2, 3, 2, 0, 4, 2, 5)]
    r = run(fields, ["u"] * 9, days=[4, 2, 2, 2, 1, 1, 0, 4, 4], daily=True)
    assert sum(r.daily_owner.values()) == pytest.approx(r.owner, rel=1e-6)
    assert r.daily_owner[4] == pytest.approx(0.0, abs=1e-3)
    assert r.daily_users["u"] == pytest.approx(r.daily_owner, abs=1e-9)
