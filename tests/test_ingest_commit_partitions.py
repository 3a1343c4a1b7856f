"""The commit classifies and inserts a big file in bounded pieces (hash partitions of
``(owner_id, event_id)``, ranges of ``rownum``), all inside the one commit transaction, so that
its memory does not grow with the file (docs/ingest.md "Memory and speed"). Cut into many
pieces, a commit must give exactly what one piece gives: the same events, rejects, duplicates
and conflicts, decided in file order."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import usagectl.store.ingest as ingest_mod
from usagectl.store.ingest import IngestOptions, ingest_paths

HEADER = "event_id,timestamp,owner_id,user_id,product,input_tokens,credits\n"


def _row(event: int, owner: int, tokens: int, valid: bool = True) -> str:
    ts = "2026-03-01T10:00:00Z" if valid else "not-a-time"
    return f"e{event},{ts},o{owner},u1,API_TOKENS,{tokens},1.5\n"


def _ingest(db: Path, files: list[Path], piece_rows: int, strict: bool = False) -> list:
    keep = ingest_mod.COMMIT_PARTITION_ROWS
    ingest_mod.COMMIT_PARTITION_ROWS = piece_rows
    try:
        return [ingest_paths(str(db), [str(f)], IngestOptions(strict=strict))[0] for f in files]
    finally:
        ingest_mod.COMMIT_PARTITION_ROWS = keep


def _state(db: Path) -> tuple:
    con = duckdb.connect(str(db), read_only=True)
    try:
        events = con.execute(
            "SELECT owner_id, event_id, epoch_us(ts), input_tokens, credits, ingest_id, "
            "source_line, content_hash, repaired FROM events ORDER BY owner_id, event_id").fetchall()
        rejects = con.execute("SELECT ingest_id, line, reason, raw FROM rejects "
                              "ORDER BY ingest_id, line, reason").fetchall()
        ingests = con.execute("SELECT id, status, rows_read, accepted, duplicates, rejected, "
                              "conflicts, repaired FROM ingests ORDER BY id").fetchall()
    finally:
        con.close()
    return events, rejects, ingests


def test_pieces_follow_the_staged_row_count() -> None:
    rows = ingest_mod.COMMIT_PARTITION_ROWS
    assert ingest_mod._commit_partitions(0) == 1
    assert ingest_mod._commit_partitions(rows) == 1
    assert ingest_mod._commit_partitions(rows + 1) == 2
    assert ingest_mod._commit_partitions(10 * rows) == 10


def test_a_file_above_the_piece_size_is_classified_partition_by_partition(tmp_path, monkeypatch):
    seen: list[tuple[int, int]] = []
    real = ingest_mod._partition_filter

    def spy(parts: int, p: int, alias: str = "") -> str:
        seen.append((parts, p))
        return real(parts, p, alias)

    monkeypatch.setattr(ingest_mod, "_partition_filter", spy)
    f = tmp_path / "ten.csv"
    f.write_text(HEADER + "".join(_row(i, 1, i) for i in range(10)))
    (r,) = _ingest(tmp_path / "db.duckdb", [f], piece_rows=3)
    assert (r.status, r.rows_read, r.accepted) == ("ok", 10, 10)
    assert {p for parts, p in seen if parts == 4} == {0, 1, 2, 3}


def test_the_pieces_are_one_transaction(tmp_path, monkeypatch):
    """A failure after every piece was inserted leaves nothing behind: all or nothing."""
    real = ingest_mod._insert_accepted

    def insert_then_fail(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        real(*args, **kwargs)
        raise ValueError("boom after the last piece")

    monkeypatch.setattr(ingest_mod, "_insert_accepted", insert_then_fail)
    f = tmp_path / "ten.csv"
    f.write_text(HEADER + "".join(_row(i, i % 3, i) for i in range(10)))
    db = tmp_path / "db.duckdb"
    (r,) = _ingest(db, [f], piece_rows=2)
    assert r.status == "failed" and "boom" in r.error
    events, rejects, ingests = _state(db)
    assert events == [] and rejects == [] and ingests[0][1] == "failed"


def test_strict_with_a_conflict_in_a_later_partition_stores_nothing(tmp_path):
    f = tmp_path / "f.csv"
    f.write_text(HEADER + "".join(_row(i, 1, i) for i in range(12)) + _row(11, 1, 999))
    db = tmp_path / "db.duckdb"
    (r,) = _ingest(db, [f], piece_rows=2, strict=True)
    assert (r.status, r.conflicts, r.accepted) == ("failed", 1, 0)
    assert _state(db)[0] == []


# (event, owner, content, valid): few keys and two contents, so that keys repeat in a file
# and across files with the same or another content; one row in four is invalid.
_ROW = st.tuples(st.integers(0, 7), st.integers(0, 2), st.integers(0, 1),
                 st.sampled_from([True, True, True, False]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(_ROW, max_size=14), second=st.lists(_ROW, min_size=1, max_size=14),
       piece_rows=st.integers(1, 4))
def test_a_commit_in_pieces_equals_the_commit_in_one(tmp_path_factory, first, second,
                                                     piece_rows) -> None:
    """In-file duplicates and conflicts (keys repeated with equal or other content), keys
    stored by an earlier file, invalid rows and a re-ingest, in one piece and in many."""
    tmp = tmp_path_factory.mktemp("pieces")
    files = []
    for name, rows in (("first", first), ("second", second)):
        f = tmp / f"{name}.csv"
        f.write_text(HEADER + "".join(_row(e, o, t, v) for e, o, t, v in rows))
        files.append(f)
    files.append(files[1])  # the second file again: all duplicates (or rejects)
    one = _ingest(tmp / "one.duckdb", files, piece_rows=10_000)
    many = _ingest(tmp / "many.duckdb", files, piece_rows=piece_rows)
    summary = [(r.status, r.rows_read, r.accepted, r.duplicates, r.rejected, r.conflicts)
               for r in one]
    assert summary == [(r.status, r.rows_read, r.accepted, r.duplicates, r.rejected, r.conflicts)
                       for r in many]
    assert all(s[1] == s[2] + s[3] + s[4] for s in summary)
    assert _state(tmp / "one.duckdb") == _state(tmp / "many.duckdb")


@pytest.mark.parametrize("piece_rows", [1, 2, 5])
def test_file_order_decides_in_every_piece(tmp_path, piece_rows):
    """The first row of a key in the file is kept; later rows are duplicates or conflicts
    naming that first line, however the file is cut."""
    f = tmp_path / "f.csv"
    f.write_text(HEADER + _row(1, 1, 5) + _row(2, 1, 7) + _row(1, 1, 6) + _row(1, 1, 5)
                 + _row(2, 1, 8) + _row(3, 2, 1))
    db = tmp_path / "db.duckdb"
    (r,) = _ingest(db, [f], piece_rows=piece_rows)
    assert (r.accepted, r.duplicates, r.conflicts) == (3, 1, 2)
    events, rejects, _ = _state(db)
    assert [(e[1], e[3], e[6]) for e in events] == [("e1", 5, 2), ("e2", 7, 3), ("e3", 1, 7)]
    assert [(x[1], "line 2" in x[2] or "line 3" in x[2]) for x in rejects] == [(4, True), (6, True)]
