"""Duplicates and conflicts: what "same content" means (SPEC §3.3, issue 10 item 4)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

SQUARE = "POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42))"


def stored(db: Path, sql: str) -> list:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_content_hash_and_derived_event_id_definitions_are_unchanged(cli, tmp_path: Path,
                                                                     db_path: Path) -> None:
    """Databases written before keep working only if these hashes never change: a new
    definition would derive new event ids for the same rows and store them twice. The values
    were produced by usagectl before issue 10."""
    f = write(tmp_path / "g.csv",
              "timestamp,owner_id,user_id,product,endpoint,status,dataset_id,indicator_ids,"
              "input_tokens,credits,response_time_ms,geometry\n"
              f'2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,/datasets?x=1,200,d1,"964,897",12,1.5,3.25,"{SQUARE}"\n'
              "2026-01-01T10:00:00Z,acme,u1,DATASETS,/datasets,200,d1,,,,,\n"
              f'2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,/fields,200,d1,"964,897",12,1.5,3.25,"{SQUARE}"\n')
    assert cli("ingest", f).exit_code == 0
    got = stored(db_path, "SELECT source_line, event_id, content_hash FROM events ORDER BY 1")
    assert [(line, eid) for line, eid, _ in got] == [
        (2, "h-90c6757b367f1338b49b1a679a05cfb3"),
        (3, "h-d7eecc8f54d777ca3e014273453d700b"),
        (4, "h-01512b6c8f6366a172d5cf9447f998cd")]
    assert got[1][2] == "d7eecc8f54d777ca3e014273453d700b17106f8f42bf81412d4ca083bfee7f3b"
    assert got[2][2] == "01512b6c8f6366a172d5cf9447f998cd1875b286411bd14953755189298985f8"


def _fields(n: int):  # noqa: ANN202 — a GeoDataFrame
    """n field-like polygons (5–9 vertices, irregular) around Iowa, in EPSG:4326."""
    import geopandas as gpd
    import numpy as np
    import shapely

    rng = np.random.default_rng(10)
    geoms = []
    for _ in range(n):
        cx, cy = -93.5 + rng.uniform(0, 2), 41.5 + rng.uniform(0, 1.5)
        k = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.002, 0.006, k)
        geoms.append(shapely.Polygon(np.column_stack([cx + radii * np.cos(angles),
                                                      cy + radii * np.sin(angles)])))
    return gpd.GeoDataFrame({
        "event_id": [f"f{i}" for i in range(n)],
        "ts": [f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z" for i in range(n)],
        "owner_id": ["acme"] * n, "user_id": [f"u{i % 4}" for i in range(n)],
        "product": ["FIELDS_BOUNDARY"] * n}, geometry=geoms, crs=4326)


def _wkt_csv(gdf, path: Path) -> Path:  # noqa: ANN001
    import shapely

    lines = ["event_id,ts,owner_id,user_id,product,geometry"]
    for row in gdf.itertuples():
        wkt = shapely.to_wkt(row.geometry, rounding_precision=-1)
        lines.append(f'{row.event_id},{row.ts},{row.owner_id},{row.user_id},{row.product},"{wkt}"')
    return write(path, "\n".join(lines) + "\n")


def test_same_events_through_another_pipeline_are_duplicates(cli, tmp_path: Path,
                                                             db_path: Path) -> None:
    """A GeoParquet in EPSG:3857 and a WKT CSV in EPSG:4326 of the same 50 events disagree in
    the last bits after reprojection: the copy is 50 duplicates, not 50 conflicts."""
    import shapely

    gdf = _fields(50)
    gdf.to_crs(3857).to_parquet(tmp_path / "fields_3857.parquet")
    csv = _wkt_csv(gdf, tmp_path / "fields_4326.csv")
    first = cli("ingest", tmp_path / "fields_3857.parquet", "--format", "json").json()["files"][0]
    assert first["accepted"] == 50, first
    # The premise: the stored (reprojected) geometries are not bit-identical to the 4326 ones.
    stored_geoms = [shapely.from_wkb(bytes(w)) for (w,) in
                    stored(db_path, "SELECT geometry FROM events ORDER BY source_line")]
    assert sum(not a.equals_exact(b, 0) for a, b in zip(stored_geoms, gdf.geometry)) > 25
    copy = cli("ingest", csv, "--format", "json").json()["files"][0]
    assert (copy["accepted"], copy["duplicates"], copy["rejected"]) == (0, 50, 0), copy
    # And the other way round, into a fresh database.
    other = tmp_path / "other.duckdb"
    assert cli("ingest", csv, db=other).exit_code == 0
    back = cli("ingest", tmp_path / "fields_3857.parquet", "--format", "json", db=other).json()
    assert (back["files"][0]["duplicates"], back["files"][0]["rejected"]) == (50, 0)

    # One vertex moved by 1e-6° (about 0.1 m) is a real change of shape: one conflict.
    moved = gdf.copy()
    coords = list(moved.geometry.iloc[7].exterior.coords)
    coords[2] = (coords[2][0] + 1e-6, coords[2][1])
    coords[-1] = coords[0]
    moved.loc[7, "geometry"] = shapely.Polygon(coords)
    out = cli("ingest", _wkt_csv(moved, tmp_path / "moved.csv"), "--format", "json").json()
    f = out["files"][0]
    assert (f["duplicates"], f["rejected"], f["conflicts"]) == (49, 1, 1), f
    (reject,) = [r for r in cli("rejects", "--format", "json").json()
                 if r["path"].endswith("moved.csv")]
    assert "conflict" in reject["reason"] and "geometry" in reject["reason"]


@pytest.mark.parametrize(("second", "outcome"), [
    ("POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.01000000000004,-93 42))", "duplicate"),
    ("POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.0100000008,-93 42))", "duplicate"),
    ("POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.010000002,-93 42))", "conflict"),
    ("POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42.005,-93 42))", "conflict"),
    ("MULTIPOLYGON(((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42)),"
     "((-92 42,-91.99 42,-91.99 42.01,-92 42.01,-92 42)))", "conflict"),
    # The same ring from another start vertex, or wound the other way: the same shape.
    ("POLYGON((-92.99 42,-92.99 42.01,-93 42.01,-93 42,-92.99 42))", "duplicate"),
    ("POLYGON((-93 42,-93 42.01,-92.99 42.01,-92.99 42,-93 42))", "duplicate"),
    ("POLYGON((-93 42.01,-92.99 42.01,-92.99 42,-93 42,-93 42.01))", "duplicate"),
    # Rotated and moved within 1e-9°, where the moved vertex ties with another one for the
    # lowest x (so normalising alone would start the two rings at different vertices).
    ("POLYGON((-92.99 42,-92.99 42.01,-93.0000000000004 42.01,-93 42,-92.99 42))", "duplicate"),
    ("POLYGON((-92.99 42,-92.99 42.01,-93 42.01,-93.0000000004 42,-92.99 42))", "duplicate"),
    # Rotated, but a vertex moved beyond 1e-9°, or a different square: conflicts.
    ("POLYGON((-92.99 42,-92.99 42.01,-93.000000002 42.01,-93 42,-92.99 42))", "conflict"),
    ("POLYGON((-92.99 42,-92.99 42.02,-93 42.02,-93 42,-92.99 42))", "conflict"),
])
def test_geometry_tolerance_within_one_file(cli, tmp_path: Path, second: str,
                                            outcome: str) -> None:
    """Within 1e-9° (vertex by vertex, whatever the ring's start vertex and winding) is the same
    shape; beyond it, or another vertex count or structure (an extra collinear vertex, another
    part), is a conflict."""
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,product,geometry\n"
              f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{SQUARE}"\n'
              f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{second}"\n')
    out = cli("ingest", f, "--format", "json").json()["files"][0]
    expected = (1, 1, 0) if outcome == "duplicate" else (1, 0, 1)
    assert (out["accepted"], out["duplicates"], out["rejected"]) == expected, out


def test_reingest_into_a_migrated_v3_database_gives_duplicates(cli, tmp_path: Path,
                                                               db_path: Path) -> None:
    """A database written before (schema 3, content hashes of that version) is migrated on the
    next write and re-ingesting its files still finds every event a duplicate."""
    gdf = _fields(20)
    csv = _wkt_csv(gdf, tmp_path / "f.csv")
    assert cli("ingest", csv).exit_code == 0
    con = duckdb.connect(str(db_path))
    con.execute("ALTER TABLE events ALTER COLUMN product SET NOT NULL")
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
    gdf.to_crs(3857).to_parquet(tmp_path / "f.parquet")
    for path in (csv, tmp_path / "f.parquet"):
        f = cli("ingest", path, "--format", "json").json()["files"][0]
        assert (f["duplicates"], f["rejected"]) == (20, 0), f
    assert stored(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]


REDTEAM_A = "POLYGON((-93.60 42.00,-93.59 42.00,-93.59 42.01,-93.60 42.01,-93.60 42.00))"
REDTEAM_B = "POLYGON((-93.59 42.00,-93.59 42.01,-93.60 42.01,-93.60 42.00,-93.59 42.00))"
TWO = ("MULTIPOLYGON(((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42)),"
       "((-92 42,-91.99 42,-91.99 42.01,-92 42.01,-92 42)))")
TWO_SWAPPED = ("MULTIPOLYGON(((-91.99 42.01,-92 42.01,-92 42,-91.99 42,-91.99 42.01)),"
               "((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42)))")


@pytest.mark.parametrize(("first", "second"), [(REDTEAM_A, REDTEAM_B), (TWO, TWO_SWAPPED)])
def test_same_shape_in_another_vertex_or_part_order_across_files(cli, tmp_path: Path,
                                                                 first: str, second: str) -> None:
    """Stored, then re-sent with the ring started elsewhere (or the parts listed the other way
    round): a duplicate, not a conflict."""
    head = "event_id,ts,owner_id,user_id,product,geometry\n"
    a = write(tmp_path / "a.csv", head + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{first}"\n')
    b = write(tmp_path / "b.csv", head + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{second}"\n')
    assert cli("ingest", a, "--format", "json").json()["totals"]["accepted"] == 1
    out = cli("ingest", b, "--format", "json").json()["totals"]
    assert (out["duplicates"], out["rejected"]) == (1, 0), out


def test_same_shape_compares_rings_as_cycles() -> None:
    """The comparison itself: start vertex, winding and the order of parts and holes do not
    matter; a vertex beyond 1e-9°, another vertex count or a missing hole does."""
    import numpy as np
    import shapely

    from usagectl.sources.geometry import same_shape

    def ring(coords: list, start: int = 0, reverse: bool = False) -> list:
        c = coords[start:] + coords[:start]
        return (c[::-1] if reverse else c) + [(c[::-1] if reverse else c)[0]]

    shell = [(0, 0), (10, 0), (10, 10), (0, 10)]
    h1 = [(1, 1), (2, 1), (2, 2), (1, 2)]
    h2 = [(5, 5), (6, 5), (6, 6), (5, 6)]
    base = shapely.Polygon(ring(shell), [ring(h1), ring(h2)])
    # Holes swapped, each ring rotated and reversed, one vertex moved by 4e-13 to tie lowest x.
    nudged = [(x - 4e-13 if (x, y) == (0, 10) else x, y) for x, y in shell]
    same = shapely.Polygon(ring(nudged, 2, True), [ring(h2, 1), ring(h1, 3, True)])
    moved = shapely.Polygon(ring([(0, 0), (10, 0), (10, 10), (0, 10.000001)], 1), [ring(h2), ring(h1)])
    one_hole = shapely.Polygon(ring(shell, 1), [ring(h1)])
    extra = shapely.Polygon(ring(shell + [(0, 5)], 1), [ring(h1), ring(h2)])
    a = np.array([base, base, base, base, None, base, None], dtype=object)
    b = np.array([same, moved, one_hole, extra, None, None, base], dtype=object)
    assert same_shape(a, b, 1e-9).tolist() == [True, False, False, False, True, False, False]
