"""The remaining RELIABILITY.md pitfalls that apply to ingest and its outputs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import duckdb
import shapely
from pyproj import Geod

from tests.conftest import write
from usagectl.renderers.console import Env
from usagectl.store.db import connect
from usagectl.store.ingest import IngestOptions

GEO_HEADER = "event_id,ts,owner_id,user_id,product,geometry\n"


def _geoms(db: Path) -> list:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [shapely.from_wkb(bytes(w)) for (w,) in
                con.execute("SELECT geometry FROM events ORDER BY event_id").fetchall()]
    finally:
        con.close()


def test_reject_csv_neutralises_formulas_but_not_numbers(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,product,input_tokens\n"
              "=HYPERLINK(\"http://x\"),2026-01-01T10:00:00Z,acme,u1,P,1.5\n"
              "-2+3,2026-01-01T10:00:00Z,acme,u1,P,-7\n")
    cli("ingest", f)
    out = cli("rejects", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["raw"][:2] for r in rows] == ["'=", "'-"]
    assert [r["line"] for r in rows] == ["2", "3"]  # numbers stay numbers


def test_rejects_are_kept_per_ingest(cli, tmp_path: Path) -> None:
    bad = "event_id,ts,owner_id,user_id,product\ne1,never,acme,u1,P\n"
    a, b = write(tmp_path / "a.csv", bad), write(tmp_path / "b.csv", bad)
    cli("ingest", a)
    cli("ingest", b)
    assert len(cli("rejects", "--format", "json").json()) == 2
    only_b = cli("rejects", "--ingest", "2", "--format", "json").json()
    assert [(r["path"], r["line"]) for r in only_b] == [(str(b), 2)]
    assert cli("rejects", "--ingest", "99", "--format", "json").json()["error"]["code"] == "not_found"


def test_overlapping_multipolygon_parts_are_merged_not_double_counted(cli, tmp_path: Path, db_path: Path) -> None:
    mp = ("MULTIPOLYGON(((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42)),"
          "((-92.995 42,-92.985 42,-92.985 42.01,-92.995 42.01,-92.995 42)))")
    f = write(tmp_path / "a.csv", GEO_HEADER + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{mp}"\n')
    out = cli("ingest", f, "--format", "json").json()["files"][0]
    assert (out["accepted"], out["repaired"]) == (1, 1)
    (g,) = _geoms(db_path)
    assert g.is_valid and abs(g.area - 0.015 * 0.01) < 1e-12


def test_clockwise_rings_are_stored_counter_clockwise(cli, tmp_path: Path, db_path: Path) -> None:
    # pyproj's Geod area is signed: a clockwise shell, or a hole wound like its shell, goes wrong.
    cw = ("POLYGON((-93 42,-93 42.01,-92.99 42.01,-92.99 42,-93 42),"
          "(-92.997 42.003,-92.993 42.003,-92.993 42.007,-92.997 42.007,-92.997 42.003))")
    f = write(tmp_path / "a.csv", GEO_HEADER + f'e1,2026-01-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,"{cw}"\n')
    assert cli("ingest", f, "--format", "json").json()["files"][0]["accepted"] == 1
    (g,) = _geoms(db_path)
    area = Geod(ellps="WGS84").geometry_area_perimeter(g)[0]
    shell = Geod(ellps="WGS84").geometry_area_perimeter(shapely.Polygon(g.exterior))[0]
    assert area > 0 and area < shell  # the hole is subtracted, not added


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_goes_to_stderr_on_a_terminal_and_never_to_stdout(tmp_path: Path) -> None:
    from usagectl.cli.ingest_cmds import _run_with_progress

    f = tmp_path / "a.csv"
    with f.open("w") as out:
        out.write("event_id,ts,owner_id,user_id,product\n")
        for i in range(120_000):
            out.write(f"e{i},2026-01-01T10:00:00Z,acme,u1,P\n")
    env = Env(stdout=io.StringIO(), stderr=_Tty())
    con = connect(tmp_path / "u.duckdb")
    (result,) = _run_with_progress(con, [str(f)], IngestOptions(), env)
    con.close()
    assert result.accepted == 120_000
    assert env.stdout.getvalue() == ""
    assert "a.csv" in env.stderr.getvalue()  # the bar's label

    quiet = Env(stdout=io.StringIO(), stderr=_Tty(), quiet=True)
    con = connect(tmp_path / "u2.duckdb")
    _run_with_progress(con, [str(f)], IngestOptions(), quiet)
    con.close()
    assert quiet.stderr.getvalue() == ""


def test_a_json_array_of_events_is_ingested(cli, tmp_path: Path) -> None:
    import json

    f = tmp_path / "export.json"
    f.write_text(json.dumps([
        {"event_id": "a1", "ts": "2026-01-01T10:00:00Z", "owner": "acme", "user": "u1",
         "product": "P", "credits": 1.5},
        {"event_id": "a2", "ts": "2026-01-01T10:00:00Z", "owner": "acme", "user": "u2",
         "product": "P"},
        5]))
    out = cli("ingest", f, "--format", "json").json()["files"][0]
    assert (out["format"], out["rows_read"], out["accepted"], out["rejected"]) == ("json", 3, 2, 1)
    assert "not a JSON object" in cli("rejects", "--format", "json").json()[0]["reason"]


def test_v1_database_is_migrated_without_its_primary_key(tmp_path: Path) -> None:
    """Schema 1 had PRIMARY KEY (owner_id, event_id); its index kept rolled-back keys after a
    failed COMMIT. Opening for writing rebuilds the table without it and keeps every row."""
    from usagectl.store import db as dbmod

    path = tmp_path / "v1.duckdb"
    v1 = dbmod.SCHEMA.replace("    ingested_at      TIMESTAMPTZ NOT NULL\n",
                              "    ingested_at      TIMESTAMPTZ NOT NULL,\n    PRIMARY KEY (owner_id, event_id)\n")
    con = duckdb.connect(str(path))
    con.execute(v1)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO events (owner_id, event_id, ts, user_id, product, action, succeeded, "
                "content_hash, ingest_id, ingested_at) VALUES ('o', 'e1', now(), 'u', 'p', "
                "'process', true, 'h', 1, now())")
    con.close()
    con = connect(path)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(dbmod.SCHEMA_VERSION),)
        assert con.execute("SELECT event_id FROM events").fetchall() == [("e1",)]
        pk = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'events' "
                         "AND constraint_type = 'PRIMARY KEY'").fetchone()
        assert pk == (0,)
    finally:
        con.close()
