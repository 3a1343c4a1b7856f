"""Parquet strings that are not valid UTF-8: each such row is a reject with its reason.

Parquet's string type promises UTF-8, but nothing enforces it: a writer can put any bytes in a
string column. DuckDB's Arrow scan hit such bytes with a FATAL error that invalidated the
staging database, so the whole file failed with "database has been invalidated". Now the
reader checks every text column of a chunk and rejects just the rows that hold invalid bytes,
naming the column; the other rows load.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import reasons


def _unchecked_strings(values: list[bytes]) -> pa.Array:
    """A string array holding these bytes as they are (Arrow's casts would refuse them)."""
    b = pa.array(values, type=pa.binary())
    return pa.Array.from_buffers(pa.string(), len(b), b.buffers())


def test_rows_with_invalid_utf8_are_rejected_and_the_rest_load(cli, tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({
        "event_id": ["e1", "e2", "e3", "e4"],
        "timestamp": ["2026-11-01T00:00:00Z"] * 4,
        "owner_id": ["o"] * 4,
        "user_id": _unchecked_strings([b"u1", b"u\xff2", b"u3", b"u4"]),
        "operation": ["X"] * 4,
        "note": _unchecked_strings([b"fine", b"fine", b"caf\xc3", b"caf\xc3\xa9"]),
    }), path)
    run = cli("ingest", path, "--format", "json")
    assert run.exit_code == 0, run.stdout + run.stderr
    (res,) = run.json()["files"]
    assert res["status"] == "ok"
    assert (res["rows_read"], res["accepted"], res["rejected"]) == (4, 2, 2)
    got = reasons(cli)
    assert set(got) == {2, 3}
    assert "user_id" in got[2] and "not valid UTF-8" in got[2] and "byte 0xff" in got[2]
    assert "note" in got[3] and "not valid UTF-8" in got[3]


def test_a_list_of_strings_with_invalid_utf8_is_a_reject(cli, tmp_path):
    path = tmp_path / "bad-list.parquet"
    inner = _unchecked_strings([b"a", b"b\xfe", b"c"])
    ids = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), inner)
    pq.write_table(pa.table({
        "event_id": ["e1", "e2", "e3"], "timestamp": ["2026-11-01T00:00:00Z"] * 3,
        "owner_id": ["o"] * 3, "user_id": ["u"] * 3, "operation": ["X"] * 3,
        "tags": ids,
    }), path)
    run = cli("ingest", path, "--format", "json")
    (res,) = run.json()["files"]
    assert (res["status"], res["accepted"], res["rejected"]) == ("ok", 2, 1), res
    assert "tags" in reasons(cli)[2]
