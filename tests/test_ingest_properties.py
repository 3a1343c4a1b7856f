"""Hypothesis: however a log is cut into overlapping files and in whatever order they are
ingested, the database ends up holding exactly one copy of every event (SPEC §3.3)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usagectl.store.db import connect
from usagectl.store.ingest import IngestOptions, ingest_paths

HEADER = "event_id,timestamp,owner_id,user_id,product,input_tokens,indicator_ids\n"


def _rows(n: int) -> list[str]:
    return [f'e{i},2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z,acme,u{i % 7},P,{i * 3},"{i},{i + 1}"\n'
            for i in range(n)]


def _snapshot(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT event_id, epoch_us(ts), user_id, input_tokens, indicator_ids "
                           "FROM events ORDER BY event_id").fetchall()
    finally:
        con.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 60), cuts=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)),
                                           min_size=1, max_size=5),
       order=st.randoms(use_true_random=False))
def test_overlapping_parts_in_any_order_equal_one_full_ingest(tmp_path_factory, n, cuts, order) -> None:
    tmp = tmp_path_factory.mktemp("split")
    rows = _rows(n)
    full = tmp / "full.csv"
    full.write_text(HEADER + "".join(rows))
    ref_db = tmp / "ref.duckdb"
    con = connect(ref_db)
    ingest_paths(con, [str(full)], IngestOptions())
    con.close()

    # Parts: random (possibly overlapping, possibly empty) slices, plus one that guarantees
    # coverage, each ingested as its own file.
    parts = [(min(a, b), max(a, b)) for a, b in cuts] + [(0.0, 1.0)]
    order.shuffle(parts)
    db = tmp / "parts.duckdb"
    con = connect(db)
    accepted = duplicates = read = 0
    for i, (a, b) in enumerate(parts):
        lo, hi = int(a * n), max(int(b * n), int(a * n))
        f = tmp / f"part{i}.csv"
        f.write_text(HEADER + "".join(rows[lo:hi]))
        (r,) = ingest_paths(con, [str(f)], IngestOptions())
        assert r.status == "ok" and r.rejected == 0
        assert r.rows_read == r.accepted + r.duplicates + r.rejected == hi - lo
        accepted, duplicates, read = accepted + r.accepted, duplicates + r.duplicates, read + r.rows_read
    con.close()
    assert accepted == n
    assert duplicates == read - n
    assert _snapshot(db) == _snapshot(ref_db)
