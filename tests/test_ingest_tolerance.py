"""Duplicates and conflicts: what "same content" means (SPEC §3.3, issue 10 item 4)."""

from __future__ import annotations

from pathlib import Path

import duckdb

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
