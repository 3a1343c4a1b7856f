"""`usagectl ingest`: accounting, reject reasons, duplicates and conflicts (SPEC §3.3)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import query, reasons, write

HEADER = "event_id,timestamp,owner_id,user_id,product,input_tokens,credits\n"


def events(db: Path, sql: str = "SELECT event_id FROM events ORDER BY event_id") -> list:
    return query(db, sql)


def one_file(out: dict) -> dict:
    assert len(out["files"]) == 1
    return out["files"][0]


# ------------------------------------------------------------------------------- accounting


def test_accounting_holds_and_json_has_spec_keys(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER
              + "e1,2026-01-01T10:00:00Z,acme,u1,API_TOKENS,10,1.5\n"
              + "e2,2026-01-01T11:00:00Z,acme,u2,API_TOKENS,12.5,1\n"
              + "e3,2026-01-01T12:00:00Z,acme,u3,API_TOKENS,3,0.25\n"
              + "e1,2026-01-01T10:00:00Z,acme,u1,API_TOKENS,10,1.50\n")
    r = cli("ingest", f, "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    out = r.json()
    file = one_file(out)
    for key in ("path", "sha256", "format", "rows_read", "accepted", "duplicates", "rejected",
                "repaired", "seconds"):
        assert key in file
    assert (file["rows_read"], file["accepted"], file["duplicates"], file["rejected"]) == (4, 2, 1, 1)
    assert file["format"] == "csv"
    assert out["totals"]["rows_read"] == 4
    assert events(tmp_path / "usage.duckdb") == [("e1",), ("e3",)]


def test_reingest_adds_nothing_and_is_all_duplicates(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "".join(
        f"e{i},2026-01-01T10:00:{i:02d}Z,acme,u{i % 3},API_TOKENS,{i},0\n" for i in range(20)))
    assert cli("ingest", f).exit_code == 0
    second = one_file(cli("ingest", f, "--format", "json").json())
    assert (second["rows_read"], second["accepted"], second["duplicates"]) == (20, 0, 20)
    assert len(events(tmp_path / "usage.duckdb")) == 20


def test_blank_lines_are_counted_not_rows(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n\n\n"
              "e2,2026-01-01T10:00:00Z,acme,u1,P,1,0\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["rows_read"], out["accepted"], out["blank_lines"]) == (2, 2, 2)


# ---------------------------------------------------------------------- CSV splitting pitfalls


def test_unterminated_quote_does_not_swallow_the_next_rows(cli, tmp_path: Path) -> None:
    # RELIABILITY.md: a reader that let an open quote swallow the next row lost an event.
    f = write(tmp_path / "a.csv", HEADER
              + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n"
              + 'e2,2026-01-01T10:00:00Z,acme,"u2,P,1,0\n'
              + "e3,2026-01-01T10:00:00Z,acme,u3,P,1,0\n"
              + 'e4,2026-01-01T10:00:00Z,acme,"u,4",P,1,0\n'
              + "e5,2026-01-01T10:00:00Z,acme,u5,P,1,0\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["rows_read"], out["accepted"], out["rejected"]) == (5, 4, 1)
    assert [e[0] for e in events(tmp_path / "usage.duckdb")] == ["e1", "e3", "e4", "e5"]
    assert "unterminated quote" in reasons(cli)[3]


def test_quoted_newline_keeps_a_record_whole(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "event_id,timestamp,owner_id,user_id,product,note\n"
              'e1,2026-01-01T10:00:00Z,acme,u1,P,"two\nlines"\n'
              "e2,2026-01-01T10:00:00Z,acme,u2,P,x\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["rows_read"], out["accepted"]) == (2, 2)
    attrs = events(tmp_path / "usage.duckdb", "SELECT attributes FROM events ORDER BY event_id")
    assert json.loads(attrs[0][0]) == {"note": "two\nlines"}


def test_wrong_field_count_and_bad_utf8_are_rejected_rows(cli, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes((HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0,extra\n").encode()
                  + b"e2,2026-01-01T10:00:00Z,acme,u\xff2,P,1,0\n"
                  + b"e3,2026-01-01T10:00:00Z,acme,u3,P,1,0\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["rows_read"], out["accepted"], out["rejected"]) == (3, 1, 2)
    r = reasons(cli)
    assert "8 values but the header has 7 columns" in r[2]
    assert "not valid UTF-8" in r[3]


def test_fraction_after_many_integers_is_rejected_not_rounded(cli, tmp_path: Path) -> None:
    # RELIABILITY.md: type sniffing on a sample rounded 12.5 to 13 after 30 000 integers.
    rows = [f"e{i},2026-01-01T10:00:00Z,acme,u1,P,{i},0\n" for i in range(30_001)]
    rows.append("late,2026-01-01T10:00:00Z,acme,u1,P,12.5,0\n")
    f = write(tmp_path / "a.csv", HEADER + "".join(rows))
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["rows_read"], out["accepted"], out["rejected"]) == (30_002, 30_001, 1)
    assert "12.5 is not a whole number" in reasons(cli)[30_003]
    assert events(tmp_path / "usage.duckdb",
                  "SELECT count(*) FROM events WHERE event_id = 'late'") == [(0,)]


def test_whole_number_written_as_decimal_is_accepted(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,12.0,0\n")
    assert one_file(cli("ingest", f, "--format", "json").json())["accepted"] == 1
    assert events(tmp_path / "usage.duckdb", "SELECT input_tokens FROM events") == [(12,)]


# ------------------------------------------------------------------------------ reject reasons


@pytest.mark.parametrize(("row", "expected"), [
    ("e,2026-01-01T10:00:00Z,acme,u1,P,-3,0", "negative"),
    ("e,2026-01-01T10:00:00Z,acme,u1,P,abc,0", "not a number"),
    ("e,yesterday,acme,u1,P,1,0", "could not be parsed"),
    ("e,2026-02-30T10:00:00Z,acme,u1,P,1,0", "could not be parsed"),
    ("e,,acme,u1,P,1,0", "ts is empty"),
    ("e,2026-01-01T10:00:00Z,acme,,P,1,0", "user_id is empty"),
    ("e,2026-01-01T10:00:00Z,,u1,P,1,0", "owner_id is empty"),
    ("e,2026-01-01T10:00:00Z,acme,u1,P,1,-0.5", "credits -0.5 is negative"),
    ("e,2026-01-01T10:00:00Z,acme,u1,P,1,0.1234567891", "more than 9 decimal places"),
    ("e,2026-01-01T10:00:00Z,acme,u1,P,1,1e3x", "not a decimal number"),
    ("e,2026-01-01T10:00:00Z,acme,u1,P,99999999999999999999999,0", "too large"),
])
def test_bad_values_are_rejected_with_a_reason(cli, tmp_path: Path, row: str, expected: str) -> None:
    f = write(tmp_path / "a.csv", HEADER + row + "\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["rows_read"], out["accepted"], out["rejected"]) == (1, 0, 1)
    assert expected in reasons(cli)[2]


def test_dst_gap_in_tz_is_rejected(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-03-08 02:30:00,acme,u1,P,1,0\n"
              + "e2,2026-03-08 03:30:00,acme,u1,P,1,0\n")
    out = one_file(cli("ingest", f, "--tz", "America/New_York", "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (1, 1)
    assert "does not exist in time zone America/New_York" in reasons(cli)[2]
    assert events(tmp_path / "usage.duckdb", "SELECT CAST(ts AS VARCHAR) FROM events") == [
        ("2026-03-08 07:30:00+00",)]


def test_timestamp_forms(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER
              + "a,2026-01-01T10:00:00Z,acme,u1,P,1,0\n"
              + "b,2026-01-01T12:00:00+02:00,acme,u1,P,1,0\n"
              + "c,2026-01-01 10:00:00,acme,u1,P,1,0\n"
              + "d,1767261600,acme,u1,P,1,0\n"
              + "e,1767261600000,acme,u1,P,1,0\n"
              + "f,2026-01-01T10:00:00.000Z,acme,u1,P,1,0\n")
    assert one_file(cli("ingest", f, "--format", "json").json())["accepted"] == 6
    stamps = {t for (t,) in events(tmp_path / "usage.duckdb", "SELECT epoch(ts) FROM events")}
    assert stamps == {1767261600.0}


def test_owner_option_fills_and_checks(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,,u1,P,1,0\n"
              + "e2,2026-01-01T10:00:00Z,other,u1,P,1,0\n")
    out = one_file(cli("ingest", f, "--owner", "acme", "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (1, 1)
    assert "differs from --owner" in reasons(cli)[3]


def test_delete_needs_a_resource_and_unknown_actions_are_rejected(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,product,action,resource_id\n"
              "e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,delete,\n"
              "e2,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,explode,b1\n"
              "e3,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,Delete,b1\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (1, 2)
    r = reasons(cli)
    assert "needs resource_id" in r[2] and "not process or delete" in r[3]


# ----------------------------------------------------------------------------------- geometry

SQUARE = "POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42))"
GEO_HEADER = "event_id,ts,owner_id,user_id,product,geometry\n"


@pytest.mark.parametrize(("geometry", "expected"), [
    ("POLYGON((150000 400000,150100 400000,150100 400100,150000 400000))", "pass --crs"),
    ("POLYGON((179.9 -17,-179.9 -17,-179.9 -17.1,179.9 -17.1,179.9 -17))", "antimeridian"),
    ("POINT(-93 42)", "is a Point"),
    ("LINESTRING(-93 42,-92 42)", "is a LineString"),
    ("POLYGON EMPTY", "empty"),
    ("POLYGON((-93 42,-92 42,-93 42))", "no area"),
    ("not a geometry", "could not be parsed"),
])
def test_bad_geometries_are_rejected(cli, tmp_path: Path, geometry: str, expected: str) -> None:
    f = write(tmp_path / "a.csv", GEO_HEADER + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{geometry}"\n')
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (0, 1), out
    assert expected in reasons(cli)[2]


def test_area_product_without_geometry_is_rejected_but_failed_or_delete_is_not(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,product,status,action,resource_id,geometry\n"
              "e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,200,process,b1,\n"
              "e2,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,500,process,b1,\n"
              "e3,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,200,delete,b1,\n"
              "e4,2026-01-01T10:00:00Z,acme,u1,OPERATIONS_OPERATION,200,process,o1,\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (3, 1)
    assert "FIELDS_BOUNDARY event has no geometry" in reasons(cli)[2]


def test_bowtie_is_repaired_and_counted(cli, tmp_path: Path) -> None:
    bowtie = "POLYGON((-93 42,-92.99 42.01,-92.99 42,-93 42.01,-93 42))"
    f = write(tmp_path / "a.csv", GEO_HEADER + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{bowtie}"\n')
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["repaired"]) == (1, 1)
    import shapely

    (wkb,) = events(tmp_path / "usage.duckdb", "SELECT geometry FROM events")[0]
    g = shapely.from_wkb(bytes(wkb))
    assert g.is_valid and g.geom_type == "MultiPolygon"
    assert g.area == pytest.approx(0.01 * 0.01 / 2)  # both lobes kept (buffer(0) drops one)


def test_geometry_encodings_all_give_the_same_polygon(cli, tmp_path: Path) -> None:
    import shapely

    poly = shapely.from_wkt(SQUARE)
    gj = shapely.to_geojson(poly).replace('"', '""')
    hexwkb = shapely.to_wkb(poly, hex=True)
    f = write(tmp_path / "a.csv", GEO_HEADER
              + f'a,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{SQUARE}"\n'
              + f'b,2026-01-01T10:00:00Z,acme,u2,FIELDS_BOUNDARY,"{gj}"\n'
              + f"c,2026-01-01T10:00:00Z,acme,u3,FIELDS_BOUNDARY,{hexwkb}\n")
    assert one_file(cli("ingest", f, "--format", "json").json())["accepted"] == 3
    geoms = [shapely.from_wkb(bytes(w)) for (w,) in
             events(tmp_path / "usage.duckdb", "SELECT geometry FROM events")]
    assert all(g.equals(poly) for g in geoms)


def test_crs_option_reprojects(cli, tmp_path: Path) -> None:
    from pyproj import Transformer

    tr = Transformer.from_crs(4326, 28992, always_xy=True)
    pts = [tr.transform(x, y) for x, y in [(5.0, 52.0), (5.01, 52.0), (5.01, 52.01), (5.0, 52.01)]]
    wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in pts + pts[:1]) + "))"
    f = write(tmp_path / "a.csv", GEO_HEADER + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{wkt}"\n')
    rejected = one_file(cli("ingest", f, "--format", "json").json())
    assert rejected["rejected"] == 1  # without --crs the RD metres are refused
    ok = one_file(cli("ingest", f, "--crs", "EPSG:28992", "--format", "json").json())
    assert ok["accepted"] == 1
    import shapely

    (wkb,) = events(tmp_path / "usage.duckdb", "SELECT geometry FROM events")[0]
    minx, miny, maxx, maxy = shapely.from_wkb(bytes(wkb)).bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((5.0, 52.0, 5.01, 52.01), abs=1e-7)


# ----------------------------------------------------------------------- duplicates, conflicts


def test_overlapping_file_adds_only_the_new_events(cli, tmp_path: Path) -> None:
    rows = [f"e{i},2026-01-01T10:00:{i:02d}Z,acme,u1,P,{i},0\n" for i in range(10)]
    a = write(tmp_path / "a.csv", HEADER + "".join(rows[:6]))
    b = write(tmp_path / "b.csv", HEADER + "".join(rows[4:]))
    cli("ingest", a)
    out = one_file(cli("ingest", b, "--format", "json").json())
    assert (out["accepted"], out["duplicates"]) == (4, 2)
    assert len(events(tmp_path / "usage.duckdb")) == 10


def test_conflict_is_rejected_and_names_both_sides(cli, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,10,0\n")
    b = write(tmp_path / "b.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,11,0\n")
    cli("ingest", a)
    out = one_file(cli("ingest", b, "--format", "json").json())
    assert (out["accepted"], out["duplicates"], out["rejected"], out["conflicts"]) == (0, 0, 1, 1)
    reason = reasons(cli)[2]
    assert "conflict" in reason and "e1" in reason and str(a) in reason
    assert "input_tokens" in reason and "line 2" in reason
    assert events(tmp_path / "usage.duckdb", "SELECT input_tokens FROM events") == [(10,)]


def test_same_event_id_for_two_owners_is_two_events(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n"
              + "e1,2026-01-01T10:00:00Z,other,u1,P,1,0\n")
    assert one_file(cli("ingest", f, "--format", "json").json())["accepted"] == 2


def test_missing_event_id_is_derived_from_content(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "timestamp,owner_id,user_id,product\n"
              "2026-01-01T10:00:00Z,acme,u1,P\n2026-01-01T10:00:00Z,acme,u1,P\n"
              "2026-01-01T10:00:01Z,acme,u1,P\n")
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["duplicates"]) == (2, 1)
    again = one_file(cli("ingest", f, "--format", "json").json())
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    ids = [e for (e,) in events(tmp_path / "usage.duckdb")]
    assert all(i.startswith("h-") and len(i) == 34 for i in ids)


def test_equivalent_spellings_are_duplicates_not_conflicts(cli, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,10,1.5\n")
    b = write(tmp_path / "b.csv", HEADER + "e1,2026-01-01 12:00:00+02:00,acme,u1,P,10.0,1.50\n")
    cli("ingest", a)
    out = one_file(cli("ingest", b, "--format", "json").json())
    assert (out["duplicates"], out["rejected"]) == (1, 0)


# ------------------------------------------------------------------------ whole-file failures


def test_missing_required_column_fails_the_file_and_names_aliases(cli, tmp_path: Path, db_path: Path) -> None:
    ok = write(tmp_path / "ok.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n")
    bad = write(tmp_path / "bad.csv", "event_id,timestamp,owner_id,product\ne2,2026-01-01T10:00:00Z,acme,P\n")
    r = cli("ingest", ok, bad, "--format", "json")
    assert r.exit_code == 1
    files = r.json()["files"]
    assert files[0]["status"] == "ok" and files[1]["status"] == "failed"
    assert "user_id" in files[1]["error"] and "X-User-ID".lower().replace("-", "") in files[1]["error"]
    assert events(db_path) == [("e1",)]
    ingests = cli("ingests", "--format", "json").json()
    assert [i["status"] for i in ingests] == ["ok", "failed"]
    assert ingests[1]["accepted"] == 0 and ingests[1]["error"]


def test_unreadable_and_misnamed_files_fail_cleanly(cli, tmp_path: Path) -> None:
    pq = tmp_path / "x.parquet"
    pq.write_bytes(b"this is not parquet")
    gj = write(tmp_path / "x.geojson", '{"type": "Feature", "properties": {}}')
    broken = write(tmp_path / "y.geojson", '{"type": "FeatureCollection", "features": [')
    r = cli("ingest", pq, gj, broken, "--format", "json")
    assert r.exit_code == 1
    errors = [f["error"] for f in r.json()["files"]]
    assert "not a readable Parquet file" in errors[0]
    assert "not a GeoJSON FeatureCollection" in errors[1]
    assert "not valid JSON" in errors[2] or "incomplete" in errors[2].lower()


def test_missing_path_is_an_error(cli, tmp_path: Path) -> None:
    r = cli("ingest", tmp_path / "nope.csv", "--format", "json")
    assert r.exit_code == 1
    assert r.json()["error"]["code"] == "io_error"


def test_strict_fails_the_whole_file_but_keeps_the_reasons(cli, tmp_path: Path, db_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n"
              + "e2,2026-01-01T10:00:00Z,acme,u1,P,1.5,0\n")
    r = cli("ingest", f, "--strict", "--format", "json")
    assert r.exit_code == 1
    file = one_file(r.json())
    assert file["status"] == "failed" and file["accepted"] == 0 and "--strict" in file["error"]
    assert events(db_path) == []
    assert "not a whole number" in reasons(cli)[3]


# ------------------------------------------------------------------------------------ formats


def test_all_formats_and_compressions(cli, tmp_path: Path, db_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    rows = HEADER + "c1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n"
    (tmp_path / "d").mkdir()
    write(tmp_path / "d" / "a.csv", rows)
    (tmp_path / "d" / "b.tsv").write_text(rows.replace(",", "\t").replace("c1", "t1"))
    with gzip.open(tmp_path / "d" / "c.csv.gz", "wt") as g:
        g.write(rows.replace("c1", "g1"))
    (tmp_path / "d" / "e.csv.zst").write_bytes(
        zstandard.ZstdCompressor().compress(rows.replace("c1", "z1").encode()))
    (tmp_path / "d" / "f.jsonl").write_text(
        '{"event_id": "j1", "ts": "2026-01-01T10:00:00Z", "owner_id": "acme", "userId": "u1",'
        ' "product": "P", "credits": 1.25, "indicators": [964, 897]}\n')
    (tmp_path / "d" / "g.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "gj1", "geometry": json.loads(
            '{"type":"Polygon","coordinates":[[[-93,42],[-92.99,42],[-92.99,42.01],[-93,42]]]}'),
         "properties": {"timestamp": "2026-01-01T10:00:00Z", "owner": "acme",
                        "leafUserId": "u1", "product": "FIELDS_BOUNDARY"}}]}))
    pq.write_table(pa.table({"event_id": ["p1"], "ts": pa.array([1767261600_000000],
                                                                pa.timestamp("us", tz="UTC")),
                             "owner_id": ["acme"], "api_key_id": ["u1"], "product": ["P"],
                             "input_tokens": pa.array([5], pa.int64())}),
                   tmp_path / "d" / "h.parquet")
    (tmp_path / "d" / "notes.txt.bak").write_text("ignored: unknown extension")
    r = cli("ingest", tmp_path / "d", "--format", "json")
    assert r.exit_code == 0, r.stdout
    out = r.json()
    assert out["totals"]["accepted"] == 7 and out["totals"]["rejected"] == 0, out
    assert [(Path(f["path"]).name, f["format"]) for f in out["files"]] == [
        ("a.csv", "csv"), ("b.tsv", "tsv"), ("c.csv.gz", "csv"), ("e.csv.zst", "csv"),
        ("f.jsonl", "jsonl"), ("g.geojson", "geojson"), ("h.parquet", "parquet")]
    got = dict(events(db_path, "SELECT event_id, user_id FROM events"))
    assert got == {"c1": "u1", "t1": "u1", "g1": "u1", "z1": "u1", "j1": "u1", "gj1": "u1",
                   "p1": "u1"}
    assert events(db_path, "SELECT indicator_ids, credits FROM events WHERE event_id = 'j1'") == [
        (["964", "897"], __import__("decimal").Decimal("1.25"))]


def test_glob_and_map(cli, tmp_path: Path, db_path: Path) -> None:
    for i in range(3):
        write(tmp_path / f"part{i}.csv", "id,when,tenant,customer,what\n"
              f"m{i},2026-01-01T10:00:00Z,acme,c{i},P\n")
    args = ["ingest", str(tmp_path / "part*.csv"), "--map", "user_id=customer", "--map",
            "ts=when", "--map", "product=what", "--format", "json"]
    # --map copies: `customer` keeps its own role (an owner alias) beside `tenant`.
    r = cli(*args)
    assert r.exit_code == 1 and "--map owner_id=tenant" in r.json()["files"][0]["error"]
    r = cli(*args, "--map", "owner_id=tenant")
    assert r.exit_code == 0, r.stdout
    assert r.json()["totals"]["accepted"] == 3
    assert events(db_path, "SELECT user_id, product, event_id FROM events ORDER BY 1") == [
        ("c0", "P", "m0"), ("c1", "P", "m1"), ("c2", "P", "m2")]


def test_geoparquet_crs_is_honoured(cli, tmp_path: Path, db_path: Path) -> None:
    import geopandas as gpd
    import shapely

    poly_rd = shapely.box(155000, 463000, 155100, 463100)  # 1 ha near Amersfoort, EPSG:28992
    gdf = gpd.GeoDataFrame({"event_id": ["g1"], "ts": ["2026-01-01T10:00:00Z"],
                            "owner_id": ["acme"], "user_id": ["u1"],
                            "product": ["FIELDS_BOUNDARY"]}, geometry=[poly_rd], crs=28992)
    path = tmp_path / "f.parquet"
    gdf.to_parquet(path)
    out = one_file(cli("ingest", path, "--format", "json").json())
    assert out["accepted"] == 1, out
    from pyproj import Geod

    (wkb,) = events(db_path, "SELECT geometry FROM events")[0]
    area = abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.from_wkb(bytes(wkb)))[0])
    assert area == pytest.approx(10_000, rel=2e-4)  # RD scale factor is within 1e-4 here
    conflict = cli("ingest", path, "--crs", "EPSG:4326", "--format", "json")
    assert "declares CRS" in one_file(conflict.json())["error"]


def test_a_field_split_at_the_antimeridian_is_accepted(cli, tmp_path: Path) -> None:
    """RFC 7946 §3.1.9: the split MultiPolygon spans 360° as a whole but each part is narrow."""
    split = ("MULTIPOLYGON(((179.995 -17.01,180 -17.01,180 -17,179.995 -17,179.995 -17.01)),"
             "((-180 -17.01,-179.995 -17.01,-179.995 -17,-180 -17,-180 -17.01)))")
    f = write(tmp_path / "a.csv", GEO_HEADER + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{split}"\n')
    out = one_file(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (1, 0), cli("rejects", "--format", "json").stdout
    cli("contracts", "load", write(tmp_path / "c.toml", '[[contract]]\nid = "c"\nowner = "acme"\n'
                                   'start = 2026-01-01\ncycle = "annual"\n  [[contract.meter]]\n'
                                   '  name = "a"\n  aggregate = "unique_area"\n  unit = "m2"\n'))
    m = cli("report", "-c", "c", "--as-of", "2026-06-01", "--format", "json").json()["meters"][0]
    assert 1.0e6 < m["owner_total"] < 1.2e6  # ~0.01° × 0.01° in Fiji, not a 360°-wide band


# ------------------------------------------------------------------- quiet and the ingest table


def test_quiet_ingest_prints_nothing_on_success(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1,0\n"
              + "e2,2026-01-01T10:00:00Z,acme,u1,P,1.5,0\n")  # a rejected row is not a failure
    for args in (("ingest", f, "-q"), ("-q", "ingest", f)):
        r = cli(*args)
        assert (r.exit_code, r.stdout, r.stderr) == (0, "", ""), args
    # Data asked for explicitly is still written.
    r = cli("ingest", f, "-q", "--format", "json")
    assert r.exit_code == 0 and r.json()["totals"]["duplicates"] == 1 and r.stderr == ""


def test_quiet_ingest_still_reports_failures_on_stderr(cli, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.csv", "event_id,timestamp,owner_id\ne1,2026-01-01T10:00:00Z,acme\n")
    r = cli("ingest", bad, "-q")
    assert r.exit_code == 1 and r.stdout == ""
    assert "missing required column" in r.stderr and "bad.csv" in r.stderr


def test_ingest_table_never_wraps_a_long_path(cli, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "2026" / "november" / "gateway-exports"
    deep.mkdir(parents=True)
    files = [write(deep / f"events-{i}.csv", HEADER + f"e{i},2026-01-01T10:00:00Z,acme,u1,P,1,0\n")
             for i in range(2)]
    assert len(str(files[0])) > 120
    elsewhere = tmp_path.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    monkeypatch.chdir(elsewhere)  # the files are outside the current folder: middle elided
    r = cli("ingest", *files, env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 120 for line in lines)
    for i in range(2):
        (row,) = [line for line in lines if f"events-{i}.csv" in line]
        assert "…" in row and "ok" in row and str(tmp_path)[:8] in row  # one line, start and end
    monkeypatch.chdir(deep.parent)  # inside the current folder: shown relative to it
    r = cli("ingest", *files, env={"COLUMNS": "120"}, db=tmp_path / "other.duckdb")
    rel = str(files[0].relative_to(deep.parent))
    (row,) = [line for line in r.stdout.splitlines() if "events-0.csv" in line]
    assert rel in row and "…" not in row and "ok" in row
    listing = cli("ingests", env={"COLUMNS": "120"}, db=tmp_path / "other.duckdb").stdout
    (row,) = [line for line in listing.splitlines() if "events-0.csv" in line]
    assert rel in row and "ok" in row and all(len(x) <= 120 for x in listing.splitlines())
