"""Values that must never be read silently (SPEC §3.3; issue 10 item 6): impossible UTC offsets,
leap seconds, control characters inside ids."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

HEADER = "event_id,ts,owner_id,user_id,product\n"


def ingest_one(cli, tmp_path: Path, row: str, header: str = HEADER) -> tuple[dict, str | None]:  # noqa: ANN001
    f = write(tmp_path / "a.csv", header + row + "\n")
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    rejects = cli("rejects", "--format", "json").json()
    return out, (rejects[0]["reason"] if rejects else None)


def stored_ts(db: Path) -> datetime:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT ts FROM events").fetchone()[0].astimezone(UTC)
    finally:
        con.close()


@pytest.mark.parametrize(("ts", "utc"), [
    ("2026-01-01T14:00:00+14:00", "2026-01-01T00:00:00"),  # Kiritimati, the easternmost zone
    ("2026-01-01T00:00:00-12:00", "2026-01-01T12:00:00"),  # Baker Island, the westernmost
    ("2026-01-01T05:30:00+0530", "2026-01-01T00:00:00"),
    ("2026-01-01T05:45:00+05:45", "2026-01-01T00:00:00"),   # Nepal
    ("2026-01-01T05:00:00+05", "2026-01-01T00:00:00"),
    ("2026-01-01T00:00:00-00:00", "2026-01-01T00:00:00"),
])
def test_real_offsets_are_accepted(cli, tmp_path: Path, db_path: Path, ts: str, utc: str) -> None:
    out, reason = ingest_one(cli, tmp_path, f"e1,{ts},acme,u1,P")
    assert out["accepted"] == 1, reason
    assert stored_ts(db_path) == datetime.fromisoformat(utc).replace(tzinfo=UTC)


@pytest.mark.parametrize(("ts", "utc", "tz"), [
    # RFC 3339 §5.6: "T" and "Z" may be written in lower case.
    ("2026-11-16T10:00:00z", "2026-11-16T10:00:00", "UTC"),
    ("2026-11-16t10:00:00Z", "2026-11-16T10:00:00", "UTC"),
    ("2026-11-16t10:00:00z", "2026-11-16T10:00:00", "UTC"),
    ("2026-11-16t10:00:00.25+01:00", "2026-11-16T09:00:00.25", "UTC"),
    ("2026-11-16t10:00:00", "2026-11-16T16:00:00", "America/Chicago"),  # naive: read in --tz
    ("2026-11-16 10:00:00z", "2026-11-16T10:00:00", "Asia/Tokyo"),  # z wins over --tz
])
def test_lower_case_t_and_z_are_accepted(cli, tmp_path: Path, db_path: Path, ts: str, utc: str,
                                         tz: str) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"e1,{ts},acme,u1,P\n")
    (out,) = cli("ingest", f, "--tz", tz, "--format", "json").json()["files"]
    assert out["accepted"] == 1, cli("rejects", "--format", "json").stdout
    assert stored_ts(db_path) == datetime.fromisoformat(utc).replace(tzinfo=UTC)


def test_lower_case_t_and_z_give_the_same_event(cli, tmp_path: Path) -> None:
    """The time is the same instant, so a file written with lower-case letters is a duplicate."""
    upper = write(tmp_path / "u.csv", HEADER + "e1,2026-11-16T10:00:00Z,acme,u1,P\n")
    lower = write(tmp_path / "l.csv", HEADER + "e1,2026-11-16t10:00:00z,acme,u1,P\n")
    assert cli("ingest", upper, "--format", "json").json()["totals"]["accepted"] == 1
    assert cli("ingest", lower, "--format", "json").json()["totals"]["duplicates"] == 1


@pytest.mark.parametrize("ts", ["2016-12-31t23:59:60z", "2026-03-08t02:30:00"])
def test_lower_case_leap_seconds_and_gaps_still_say_why(cli, tmp_path: Path, ts: str) -> None:
    f = write(tmp_path / "a.csv", HEADER + f"e1,{ts},acme,u1,P\n")
    cli("ingest", f, "--tz", "America/Chicago")
    (reject,) = cli("rejects", "--format", "json").json()
    assert "leap second" in reject["reason"] or "does not exist" in reject["reason"], reject


@pytest.mark.parametrize(("ts", "needle"), [
    ("2026-01-01T10:00:00+99:00", "not a UTC offset"),
    ("2026-01-01T10:00:00+25:00", "not a UTC offset"),
    ("2026-01-01T10:00:00+24:00", "not a UTC offset"),
    ("2026-01-01T10:00:00+05:75", "not a UTC offset"),
    ("2026-01-01T10:00:00-0560", "not a UTC offset"),
    ("2026-01-01T10:00:00+14:01", "-12:00 to +14:00"),
    ("2026-01-01T10:00:00-12:01", "-12:00 to +14:00"),
    ("2026-01-01T10:00:00+23:59", "-12:00 to +14:00"),
])
def test_impossible_offsets_are_rejected(cli, tmp_path: Path, ts: str, needle: str) -> None:
    out, reason = ingest_one(cli, tmp_path, f"e1,{ts},acme,u1,P")
    assert (out["accepted"], out["rejected"]) == (0, 1)
    assert needle in reason and ts in reason


@pytest.mark.parametrize("ts", ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.5+00:00",
                                "2016-12-31 23:59:60"])
def test_a_leap_second_is_rejected_saying_so(cli, tmp_path: Path, ts: str) -> None:
    out, reason = ingest_one(cli, tmp_path, f"e1,{ts},acme,u1,P")
    assert out["rejected"] == 1
    assert "leap second" in reason and "23:59:59" in reason


ID_FIELDS = ("event_id", "owner_id", "user_id", "org_id", "product", "resource_id", "status",
             "error_code", "endpoint", "method", "operation", "dataset_id", "indicator_ids",
             "session_id", "request_id")


@pytest.mark.parametrize("field", ID_FIELDS)
def test_a_nul_byte_in_an_id_is_rejected(cli, tmp_path: Path, field: str) -> None:
    values = {"event_id": "e1", "ts": "2026-01-01T10:00:00Z", "owner_id": "acme",
              "user_id": "u1", "product": "P"}
    values[field] = "a\x00b"
    out, reason = ingest_one(cli, tmp_path, ",".join(values.values()), ",".join(values) + "\n")
    assert (out["accepted"], out["rejected"]) == (0, 1), reason
    assert field in reason and "U+0000" in reason


@pytest.mark.parametrize(("char", "code"), [("\x01", "0001"), ("\x1b", "001B"), ("\t", "0009"),
                                             ("\x7f", "007F"), ("\x9b", "009B")])
def test_other_control_characters_in_ids_are_rejected(cli, tmp_path: Path, char: str,
                                                      code: str) -> None:
    out, reason = ingest_one(cli, tmp_path, f"e1,2026-01-01T10:00:00Z,acme,u{char}1,P")
    assert out["rejected"] == 1 and f"user_id contains a control character (U+{code})" in reason


def test_crlf_files_and_free_text_attributes_are_fine(cli, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"event_id,ts,owner_id,user_id,product,title\r\n"
                  b'e1,2026-01-01T10:00:00Z,acme,u1,P,"two\r\nlines\ttabbed"\r\n'
                  b"e2,2026-01-01T10:00:00Z,acme,u2,P,x\r\n")
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    assert (out["accepted"], out["rejected"]) == (2, 0)


def test_a_nul_in_json_and_parquet_ids_is_rejected(cli, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    j = write(tmp_path / "a.jsonl", '{"event_id": "j1", "ts": "2026-01-01T10:00:00Z", '
              '"owner": "acme", "user": "u\\u00001"}\n')
    p = tmp_path / "b.parquet"
    pq.write_table(pa.table({"event_id": ["p1"], "ts": ["2026-01-01T10:00:00Z"],
                             "owner_id": ["acme"], "user_id": ["u\x001"]}), p)
    files = cli("ingest", j, p, "--format", "json").json()["files"]
    assert [f["rejected"] for f in files] == [1, 1]
    assert all("U+0000" in r["reason"] for r in cli("rejects", "--format", "json").json())


def test_a_nul_escaped_inside_a_json_indicator_array_is_rejected(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,indicator_ids\n"
              'e1,2026-01-01T10:00:00Z,acme,u1,"[""9\\u00001""]"\n')
    (out,) = cli("ingest", f, "--format", "json").json()["files"]
    assert out["rejected"] == 1
    assert "indicator_ids contains a control character (U+0000)" in (
        cli("rejects", "--format", "json").json()[0]["reason"])
