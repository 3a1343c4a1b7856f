"""`export --events DIR`: the events table as a Parquet dataset, and reading it back (SPEC §6, §8).

Round trips compare every column of every row with the events table, bit for bit (geometry WKB,
decimals, microsecond instants); docs/dataset.md describes the layout these tests pin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import write
from tests.test_cli_export import mount_point  # noqa: F401 — a fixture
from usagectl.errors import ValidationError
from usagectl.store.db import EVENT_COLUMNS
from usagectl.store.events_dataset import (MANIFEST, decode_partition_value,
                                           encode_partition_value, read_events_dataset)

HOSTILE = ["../x", "a/b", "..", ".", "%2F", "a=b", "é =?%", "owner=x/month=2026-01", "C:\\evil",
           "#[x]*", "{a,b}?^"]
FIELD = shapely.box(-93.60, 42.00, -93.59, 42.01)


def events_of(db_path: Path, owner: str | None = None) -> list[tuple]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        where, params = ("WHERE owner_id = ?", [owner]) if owner is not None else ("", [])
        return con.execute(f"SELECT * FROM events {where} ORDER BY owner_id, event_id",
                           params).fetchall()


def read_back(path: Path, owner: str | None = None) -> tuple[list[tuple], list[str], list[str]]:
    """Rows, column names and types of a dataset as :func:`read_events_dataset` gives them."""
    with duckdb.connect() as con:
        rel = read_events_dataset(con, path, owner)
        return (rel.order("owner_id, event_id").fetchall(), rel.columns,
                [str(t) for t in rel.types])


def table_types(db_path: Path) -> list[str]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return [str(t) for t in con.sql("SELECT * FROM events").types]


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def jsonl_event(eid: str, ts: str, owner: str, **more: object) -> str:
    return json.dumps({"event_id": eid, "ts": ts, "owner_id": owner, "user_id": "u1",
                       "product": "FIELDS_BOUNDARY", **more}, ensure_ascii=False) + "\n"


@pytest.fixture
def generated(cli, tmp_path: Path) -> str:
    """An owner with a hostile id: boundaries processed, replaced and deleted over three months,
    a failed call, decimals, indicator lists, attributes and a MultiPolygon."""
    owner = "../evil/owner=x"
    g1, g2 = FIELD.wkt, shapely.affinity.translate(FIELD, 0.02).wkt
    multi = shapely.MultiPolygon([FIELD, shapely.affinity.translate(FIELD, 0.5)]).wkt
    lines = [
        jsonl_event("b1", "2026-01-05T10:00:00.123456Z", owner, resource_id="r1", geometry=g1,
                    credits="0.000000001", indicator_ids=["ndvi", "lai"], note="first"),
        jsonl_event("b2", "2026-01-31T23:59:59.999999Z", owner, resource_id="r2", geometry=multi,
                    credits="123456789012345678.5", response_time_ms=0.1),
        jsonl_event("b1b", "2026-02-10T10:00:00Z", owner, resource_id="r1", geometry=g2),
        jsonl_event("d1", "2026-02-20T10:00:00Z", owner, action="delete", resource_id="r2"),
        jsonl_event("d2", "2026-03-01T00:00:00Z", owner, action="delete", resource_id="r1",
                    user_id="u2"),
        jsonl_event("f1", "2026-03-02T00:00:00Z", owner, resource_id="r3", geometry=g1,
                    status=500, error_code="internal_error"),
        jsonl_event("t1", "2026-03-03T00:00:00Z", "plain", product="API_TOKENS", input_tokens=7,
                    output_tokens=2**62, endpoint="/v1/x", method="POST"),
    ]
    r = cli("ingest", write(tmp_path / "gen.jsonl", "".join(lines)), "--format", "json")
    assert r.exit_code == 0 and r.json()["totals"]["rejected"] == 0, r.stdout
    return owner


# -- round trips --------------------------------------------------------------------------------

def test_sample_round_trip_is_bit_exact(sample, db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "events"
    r = sample("export", "--events", out, "--format", "json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    rows, cols, types = read_back(out)
    assert rows == events_of(db_path)  # every column, bytes and decimals included
    assert cols == [c for c, _, _, _ in EVENT_COLUMNS]
    assert types == table_types(db_path)
    assert doc["rows"] == len(rows)
    assert sorted(o["owner_id"] for o in doc["owners"]) == sorted({r[0] for r in rows})
    for o in doc["owners"]:
        assert read_back(out, o["owner_id"])[0] == events_of(db_path, o["owner_id"])
        months = sorted(p.name for p in (out / o["folder"]).iterdir())
        assert months == [f"month={m}" for m in o["months"]]


def test_generated_owner_with_deletes_round_trips(cli, generated: str, db_path: Path,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "events"
    assert cli("export", "--events", out, "--owner", generated, "--quiet").exit_code == 0
    rows, _, types = read_back(out, generated)
    assert rows == events_of(db_path, generated)
    assert types == table_types(db_path)
    # The rows every policy needs: replaced and deleted boundaries, the failed call.
    assert [(r[1], r[6], r[9]) for r in rows] == [
        ("b1", "process", True), ("b1b", "process", True), ("b2", "process", True),
        ("d1", "delete", True), ("d2", "delete", True), ("f1", "process", False)]
    assert read_back(out)[0] == rows  # --owner wrote that owner only
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "owner=..%2Fevil%2Fowner%3Dx"]
    assert sorted(p.name for p in (out / "owner=..%2Fevil%2Fowner%3Dx").iterdir()) == [
        "month=2026-01", "month=2026-02", "month=2026-03"]


def test_files_carry_types_and_geoparquet_metadata(cli, generated: str, tmp_path: Path) -> None:
    out = tmp_path / "events"
    assert cli("export", "--events", out, "--quiet").exit_code == 0
    files = parquet_files(out)
    assert files
    for f in files:
        meta = pq.read_metadata(f)
        geo = json.loads(meta.metadata[b"geo"])
        assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
        column = geo["columns"]["geometry"]
        assert column["encoding"] == "WKB"
        assert column["geometry_types"] == ["MultiPolygon", "Polygon"]
        assert column["crs"]["id"] == {"authority": "OGC", "code": "CRS84"}
        schema = {meta.schema.column(i).name: meta.schema.column(i) for i in range(meta.num_columns)}
        assert "owner" not in schema and "month" not in schema  # in the folder names only
        ts = str(schema["ts"].logical_type)
        assert "isAdjustedToUTC=true" in ts and "microseconds" in ts  # Spark: TimestampType
        assert str(schema["credits"].logical_type).startswith("Decimal(precision=38, scale=9")
        assert schema["geometry"].physical_type == "BYTE_ARRAY"


def test_month_is_the_utc_month_of_ts(cli, generated: str, tmp_path: Path) -> None:
    out = tmp_path / "events"
    assert cli("export", "--events", out, "--quiet").exit_code == 0
    folder = out / "owner=..%2Fevil%2Fowner%3Dx"
    with duckdb.connect() as con:
        for f in parquet_files(folder):
            month = f.parent.name.removeprefix("month=")
            got = con.execute("SELECT DISTINCT strftime(timezone('UTC', ts), '%Y-%m') "
                              "FROM read_parquet(?)", [str(f)]).fetchall()
            assert got == [(month,)]


# -- owner folder names ---------------------------------------------------------------------------

@pytest.mark.parametrize("owner", HOSTILE)
def test_hostile_owner_stays_one_folder_inside_dir(cli, owner: str, tmp_path: Path) -> None:
    data = write(tmp_path / "h.jsonl", jsonl_event("e1", "2026-01-01T00:00:00Z", owner,
                                                   product="API_TOKENS"))
    r = cli("ingest", data, "--format", "json")
    assert r.exit_code == 0 and r.json()["totals"]["accepted"] == 1, r.stdout
    out = tmp_path / "d" / "events"
    assert cli("export", "--events", out, "--quiet").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["events"]  # nothing beside
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1 and folders[0].parent == out
    name = folders[0].name
    assert name.startswith("owner=") and "/" not in name
    assert decode_partition_value(name.removeprefix("owner=")) == owner
    [f] = parquet_files(out)
    assert f.parent.parent == folders[0]
    assert read_back(out, owner)[0][0][:2] == (owner, "e1")


def test_partition_values_are_escaped_as_spark_does() -> None:
    assert encode_partition_value("a/b") == "a%2Fb"
    assert encode_partition_value("../x") == "..%2Fx"
    assert encode_partition_value("100%") == "100%25"
    assert encode_partition_value("k=v:w") == "k%3Dv%3Aw"
    assert encode_partition_value("é ü") == "é ü"  # Spark reads a %XX as one character


@given(st.text(min_size=1))
def test_partition_encoding_is_reversible(value: str) -> None:
    encoded = encode_partition_value(value)
    assert "/" not in encoded and "\x00" not in encoded
    assert decode_partition_value(encoded) == value


# -- an owner without events, the target folder ---------------------------------------------------

def test_owner_without_events_gives_a_readable_empty_dataset(cli, generated: str, db_path: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "events"
    r = cli("export", "--events", out, "--owner", "nobody", "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["rows"] == 0 and r.json()["owners"] == []
    rows, _, types = read_back(out)
    assert rows == [] and types == table_types(db_path)
    assert read_back(out, "nobody")[0] == []


def test_non_empty_folder_is_refused_without_overwrite(cli, generated: str, tmp_path: Path) -> None:
    out = tmp_path / "events"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = cli("export", "--events", out)
    assert r.exit_code == 2
    assert "not empty" in r.stderr and "--overwrite" in r.stderr
    # --overwrite replaces only what an export wrote.
    r = cli("export", "--events", out, "--overwrite")
    assert r.exit_code == 2 and MANIFEST in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    (out / "keep.txt").unlink()  # an empty folder is fine
    assert cli("export", "--events", out, "--quiet").exit_code == 0


def test_overwrite_replaces_the_previous_dataset(cli, generated: str, db_path: Path,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "events"
    assert cli("export", "--events", out, "--quiet").exit_code == 0
    assert cli("export", "--events", out, "--owner", "plain", "--quiet").exit_code == 2
    assert cli("export", "--events", out, "--owner", "plain", "--overwrite", "--quiet").exit_code == 0
    assert read_back(out)[0] == events_of(db_path, "plain")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_or_a_uri_as_target_is_a_usage_error(cli, generated: str, tmp_path: Path) -> None:
    r = cli("export", "--events", write(tmp_path / "f", "x"))
    assert r.exit_code == 2 and "not a folder" in r.stderr
    r = cli("export", "--events", "s3a://bucket/events")
    assert r.exit_code == 2 and "local folder" in r.stderr
    r = cli("export", "--events", tmp_path / "e", "--all")
    assert r.exit_code == 2
    r = cli("export", "--owner", "x", "--out-dir", tmp_path / "csv", "--all")
    assert r.exit_code == 2 and "--events" in r.stderr


def test_a_failed_write_leaves_nothing(cli, generated: str, tmp_path: Path) -> None:
    # A parent path that is a file: the temp folder beside DIR cannot be made.
    parent = write(tmp_path / "parent", "x")
    r = cli("export", "--events", parent / "events")
    assert r.exit_code == 1 and "parent" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["parent", "gen.jsonl",
                                                                 "usage.duckdb"])


def test_a_killed_export_leaves_nothing_at_dir_and_the_next_cleans_up(db_path: Path,
                                                                       tmp_path: Path) -> None:
    """kill -9 while the files are written: DIR never appears half written; the next export
    removes the dead run's temp folder."""
    con = duckdb.connect(str(db_path))  # a usagectl database with many events, quickly
    from usagectl.store.db import migrate
    migrate(con)
    con.execute("""
INSERT INTO events (owner_id, event_id, ts, user_id, product, action, succeeded, geometry,
                    credits, content_hash, ingest_id, ingested_at)
SELECT 'o' || (i % 7), 'e' || i, TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_seconds(i * 37),
       'u' || (i % 50), 'FIELDS_BOUNDARY', 'process', true, ?, (i % 1000) / 100, md5(i::VARCHAR),
       1, TIMESTAMPTZ '2026-06-01 00:00:00+00'
FROM range(600000) t(i)""", [shapely.to_wkb(FIELD)])
    con.close()
    out = tmp_path / "events"
    cmd = [sys.executable, "-m", "usagectl", "--db", str(db_path), "export", "--events", str(out),
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".events.export-") and p.is_dir()
                      for p in tmp_path.iterdir()):
            assert proc.poll() is None, "the export ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".events.export-")]  # left behind
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with duckdb.connect() as c:
        assert c.execute("SELECT count(*) FROM read_parquet(?)",
                         [[str(f) for f in parquet_files(out)]]).fetchone() == (600000,)


def test_reader_refuses_a_dataset_of_another_schema(tmp_path: Path) -> None:
    out = tmp_path / "other"
    out.mkdir()
    with duckdb.connect() as con:
        con.execute("COPY (SELECT 1 AS owner_id) TO ? (FORMAT parquet)", [str(out / "x.parquet")])
        with pytest.raises(ValidationError, match="not an events dataset"):
            read_events_dataset(con, out)
    assert os.listdir(out) == ["x.parquet"]


def test_a_live_exports_temp_folder_is_left_alone(cli, generated: str, tmp_path: Path) -> None:
    """Only temp folders whose lock nobody holds are stale; a running export's stays."""
    import fcntl

    live = tmp_path / ".events.export-live"
    live.mkdir()
    (live / "part.parquet").write_bytes(b"being written")
    dead = tmp_path / ".events.export-dead"
    dead.mkdir()
    write(tmp_path / ".events.export-dead.lock", "")
    with open(tmp_path / ".events.export-live.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cli("export", "--events", tmp_path / "events", "--quiet").exit_code == 0
        assert (live / "part.parquet").read_bytes() == b"being written"
    assert not dead.exists() and not (tmp_path / ".events.export-dead.lock").exists()


def test_reader_refuses_a_newer_layout(cli, generated: str, tmp_path: Path) -> None:
    out = tmp_path / "events"
    assert cli("export", "--events", out, "--quiet").exit_code == 0
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "version": 99}))
    with duckdb.connect() as con, pytest.raises(ValidationError, match="upgrade usagectl"):
        read_events_dataset(con, out)


def test_a_dataset_written_meanwhile_is_not_replaced_without_overwrite(cli, generated: str,
                                                                        tmp_path: Path) -> None:
    """Two exports to one new DIR: the one that finishes second fails instead of replacing the
    first's dataset (the last step, run here on its own, sees DIR filled since the check)."""
    from usagectl.errors import IOFailure
    from usagectl.store.events_dataset import _replace

    first = tmp_path / "events"
    assert cli("export", "--events", first, "--quiet").exit_code == 0
    before = sorted(p.relative_to(first) for p in first.rglob("*"))
    second = tmp_path / ".events.export-second"
    assert cli("export", "--events", second / "x", "--owner", "plain", "--quiet").exit_code == 0
    with pytest.raises(IOFailure, match="--overwrite"):
        _replace(second / "x", first, overwrite=False)
    assert sorted(p.relative_to(first) for p in first.rglob("*")) == before
    _replace(second / "x", first, overwrite=True)
    assert read_back(first)[0][0][0] == "plain"


def test_a_full_disk_mid_write_leaves_nothing(sample, tmp_path: Path,
                                              mount_point) -> None:  # noqa: F811
    full = mount_point("-t", "tmpfs", "-o", "size=120k", "tmpfs", target=tmp_path / "full")
    r = sample("export", "--events", full / "events", "--format", "json")
    assert r.exit_code == 1, r.stdout
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "io_error" and "No space left" in error["message"], error
    assert os.listdir(full) == []  # no DIR, no temp folder, no lock file


def test_a_read_only_parent_is_an_io_error_and_leaves_nothing(sample, tmp_path: Path,
                                                              mount_point) -> None:  # noqa: F811
    ro = tmp_path / "ro"
    ro.mkdir()
    mount_point("--bind", "-o", "ro", str(ro), target=ro)
    r = sample("export", "--events", ro / "events", "--format", "json")
    assert r.exit_code == 1
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "io_error" and "Read-only file system" in error["message"], error
    assert os.listdir(ro) == []
