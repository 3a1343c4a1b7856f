"""Parquet maps with a repeated key: each such row is a reject with its reason, both ways.

Arrow lets a map hold the same key twice; DuckDB's maps do not. The reader's chunks stopped the
whole file with "Arrow map contains duplicate key" (found by the property test of
tests/test_ingest_parquet_bulk.py), while the bulk path stored such a map as JSON with the key
twice. Now the row is rejected, naming the column and the key, whichever path stages the file.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import reasons
from usagectl.store import ingest


def _write(path) -> None:  # noqa: ANN001
    mt = pa.map_(pa.string(), pa.int64())
    pq.write_table(pa.table({
        "event_id": ["e1", "e2", "e3", "e4", "e5"],
        "timestamp": ["2026-11-01T00:00:00Z"] * 5,
        "owner_id": ["o"] * 5, "user_id": ["u"] * 5, "operation": ["X"] * 5,
        "zz": pa.array([[("a", 1), ("a", 2)], [("b", 1)], None, [], [("c", 1), ("d", 1)]], mt),
        # a map inside a struct: found at any depth
        "deep": pa.array([{"m": [("k", 1)]}, {"m": [("k", 1)]}, {"m": [("x", 1), ("x", 1)]},
                          None, {"m": None}],
                         pa.struct([("m", mt)])),
    }), path)


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "chunks"])
def test_a_map_with_a_repeated_key_is_a_reject(cli, tmp_path, monkeypatch, bulk):
    if not bulk:  # the reader's chunks, as a file the bulk path refuses would take
        monkeypatch.setattr(ingest, "_stage_parquet_bulk", lambda *a, **k: False)
    path = tmp_path / "maps.parquet"
    _write(path)
    run = cli("ingest", path, "--format", "json")
    assert run.exit_code == 0, run.stdout + run.stderr
    (res,) = run.json()["files"]
    assert (res["status"], res["rows_read"], res["accepted"], res["rejected"]) == ("ok", 5, 3, 2)
    got = reasons(cli)
    assert set(got) == {1, 3}
    assert "'zz'" in got[1] and "'a'" in got[1] and "twice" in got[1]
    assert "'deep'" in got[3] and "'x'" in got[3]


def test_repeated_keys_are_found_in_slices_and_chunks() -> None:
    from usagectl.sources.readers import repeated_map_keys

    mt = pa.map_(pa.string(), pa.int64())
    arr = pa.array([[("a", 1), ("a", 2)], [("b", 1)], None, [("c", 1), ("c", 2), ("d", 3)]], mt)
    assert repeated_map_keys(arr) == {0: "a", 3: "c"}
    assert repeated_map_keys(arr.slice(1)) == {2: "c"}  # offsets into the whole key buffer
    assert repeated_map_keys(pa.chunked_array([arr.slice(0, 2), arr.slice(2)])) == {0: "a", 3: "c"}
    nested = pa.array([[(1, [("x", 1), ("x", 2)])], [(1, [("y", 1)]), (1, None)]],
                      pa.map_(pa.int64(), mt))
    assert repeated_map_keys(nested) == {0: "x", 1: 1}
