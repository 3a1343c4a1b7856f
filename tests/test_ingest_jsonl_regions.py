"""Region-level fallback of the JSON Lines bulk path.

Where the byte scan cannot vouch for a block of the file, only that region goes to the Python
reader (``json.loads`` per line); the vouched lines around it are still staged by the one
``read_ndjson_objects`` statement. The staging table (rownum, line, reason, raw text, every
typed value, content hash), the line accounting and the ingest's results must equal those of
the whole-file Python reader.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import usagectl.sources.readers as readers
from usagectl.sources.readers import JsonLinesSource, _RecordBatcher, open_source
from usagectl.store import db
from usagectl.store.ingest import IngestOptions, _stage_file
from tests.test_ingest_jsonl_bulk import _ingest


def _good(i: int, eid: str | None = None, product: str = "chat") -> bytes:
    return json.dumps({
        "event_id": eid or f"e{i}", "ts": f"2026-01-0{1 + i % 9}T10:00:0{i % 10}Z",
        "owner_id": "acme", "user_id": f"u{i % 3}", "product": product,
        "input_tokens": i * 7, "indicator_ids": [i, i + 1], "note": f'n {i} said "hi"',
    }, separators=(",", ":")).replace('"indicator_ids"', f'"credits":{i}.250,"indicator_ids"'
                                      ).encode()


def _stage(path: Path, tmp: Path, name: str, *, bulk: bool, options: IngestOptions
           ) -> tuple[list, dict, dict]:
    """Stage ``path`` into a fresh staging file; (staged rows by rownum, stats, what ran)."""
    seen = {"regions": 0, "exact_records": 0}
    real_regions = getattr(JsonLinesSource, "region_chunks", None)
    real_add = _RecordBatcher.add

    def regions(self, layout):  # noqa: ANN001, ANN202
        seen["regions"] += 1
        yield from real_regions(self, layout)

    def add(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["exact_records"] += 1
        return real_add(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        if real_regions is not None:
            m.setattr(JsonLinesSource, "region_chunks", regions)
        m.setattr(_RecordBatcher, "add", add)
        con = db.staging_connect(tmp / f"{name}.duckdb")
        try:
            source = open_source(path, {}, False, None)
            _stage_file(con, source, "staged", options, None, path.stat().st_size, bulk=bulk)
            rows = con.execute("SELECT * FROM staged ORDER BY rownum").fetchall()
            leftovers = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        finally:
            con.close()
    assert leftovers == ["staged"]
    assert not [p for p in tmp.iterdir() if ".regions." in p.name]
    s = source.stats
    stats = {"records": s.records, "blank": s.blank_lines, "header": s.header_lines,
             "physical": s.physical_lines, "continuation": s.continuation_lines,
             "seen": sorted(s.seen_canonical)}
    return rows, stats, seen


def _both(tmp: Path, content: bytes, monkeypatch: pytest.MonkeyPatch, name: str = "e.jsonl",
          options: IngestOptions | None = None) -> dict:
    """Stage and ingest ``content`` by the region path and by the whole-file Python reader;
    the staging tables, stats and ingest results must be equal."""
    options = options or IngestOptions()
    f = tmp / name
    f.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    fast_rows, fast_stats, seen = _stage(f, tmp, "fast", bulk=True, options=options)
    exact_rows, exact_stats, _ = _stage(f, tmp, "exact", bulk=False, options=options)
    assert fast_stats == exact_stats
    assert len(fast_rows) == len(exact_rows)
    for a, b in zip(fast_rows, exact_rows):
        assert a == b
    for p in tmp.glob("*.duckdb*"):
        p.unlink()
    fast = _ingest(f, tmp / "i-fast.duckdb", exact=False, monkeypatch=monkeypatch,
                   options=options)
    exact = _ingest(f, tmp / "i-exact.duckdb", exact=True, monkeypatch=monkeypatch,
                    options=options)
    assert fast[:3] == exact[:3]
    assert fast[0]["rows_read"] == (fast[0]["accepted"] + fast[0]["duplicates"]
                                    + fast[0]["rejected"])
    seen["bulk"] = fast[3]
    return seen


def _file(rows: list[bytes]) -> bytes:
    return b"\n".join(rows) + b"\n"


def test_a_big_clean_file_with_one_bad_line_reads_only_that_region_in_python(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1024)
    rows = [_good(i) for i in range(3000)]
    rows[1500] = rows[1500][:-9]  # truncated JSON
    seen = _both(tmp_path, _file(rows), monkeypatch)
    assert seen["regions"] == 1 and seen["bulk"]
    # The bad line's piece of its block (1 KiB: a handful of lines), not the 3,000 records of
    # the file nor the ~370 of its 64 KiB block.
    assert 0 < seen["exact_records"] < 20


def test_a_line_across_a_block_edge_and_regions_at_both_ends(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 300)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)
    rows = [_good(i) for i in range(40)]
    rows[0] = b"\xef\xbb\xbf" + rows[0]  # a BOM: the first line is a region
    rows[12] = rows[12].replace(b'"n 12', b'"\xff 12')  # invalid UTF-8
    rows[13] = rows[13] + b"\r"  # CRLF line
    rows[20] = rows[3].replace(b'"chat"', b'"chat2"')  # conflicts with line 4 (bulk)
    rows[21] = rows[21].replace(b'"n 21', b'"\x00 21')  # NUL
    rows[22] = rows[2]  # repeats line 3, inside a region (next to the NUL line)
    rows.append(b"[1]")  # not an object, last line, no final newline
    seen = _both(tmp_path, b"\n".join(rows), monkeypatch)
    assert seen["regions"] == 1 and seen["bulk"]


def test_too_many_regions_keep_the_whole_file_python_reader(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)
    monkeypatch.setattr(readers, "REGION_MAX_COUNT", 2)
    rows = [_good(i) for i in range(60)]
    for i in (5, 25, 45):
        rows[i] = b""
    seen = _both(tmp_path, _file(rows), monkeypatch)
    assert seen["regions"] == 0 and not seen["bulk"]


def test_a_mostly_unvouched_file_keeps_the_whole_file_python_reader(tmp_path,
                                                                    monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1)
    rows = [_good(i) for i in range(60)]
    for i in range(0, 60, 2):
        rows[i] = rows[i] + b" "
    seen = _both(tmp_path, _file(rows), monkeypatch)
    assert seen["regions"] == 0 and not seen["bulk"]


def test_a_compressed_file_with_a_region_goes_whole_to_the_python_reader(tmp_path,
                                                                         monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1)
    rows = [_good(i) for i in range(60)]
    rows[30] = b""
    seen = _both(tmp_path, _file(rows), monkeypatch, name="e.jsonl.gz")
    assert seen["regions"] == 0 and not seen["bulk"]


def test_vouched_lines_the_statement_refuses_send_the_whole_file_to_python(
        tmp_path, monkeypatch) -> None:
    """An exponent in a vouched line fails the bulk statement after the region was staged:
    nothing of either stays, the whole file goes to the Python reader."""
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)
    rows = [_good(i) for i in range(30)]
    rows[4] = b"{}{"
    rows[20] = rows[20].replace(b'"credits":20.250', b'"credits":2.025E1')
    seen = _both(tmp_path, _file(rows), monkeypatch)
    assert seen["regions"] == 1 and not seen["bulk"]


def test_geometry_and_urls_in_a_region_only(tmp_path, monkeypatch) -> None:
    """A region's records take the chunk pipeline (shapely, endpoint reduction) as the whole
    file would; the vouched lines hold neither."""
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)
    rows = [_good(i) for i in range(30)]
    rows[7] = (b'{"type":"Feature","id":"f7","geometry":{"type":"Point","coordinates":[1,2]},'
               b'"properties":{"ts":"2026-01-01T00:00:00Z","owner_id":"acme","user_id":"u",'
               b'"product":"chat","endpoint":"/a/b?c=1"}}')
    seen = _both(tmp_path, _file(rows), monkeypatch)
    assert seen["regions"] == 1 and seen["bulk"]


_TROUBLE = [
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u","product":"p"',
    b"",
    b"   ",
    b"[1,2]",
    b'"just text"',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u\x00",'
    b'"product":"p"}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"\xff",'
    b'"product":"p"}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p"}\r',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p"}\r{"event_id":"z2"}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p","input_tokens":12.5}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p","note":"\\ud800"}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"\\u00fc\\/",}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"\\u00fc\\/"}',
    b' {"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p"}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p\tq"}',
    b'{"event_id":"ZZ","ts":"2026-01-01T10:00:00Z","owner_id":"acme","user_id":"u",'
    b'"product":"p","x":1E3,"y":[1.5,{"a":null}]}',
    b'{"event_id":"ZZ","event_id":"dup","ts":"2026-01-01T10:00:00Z","owner_id":"acme",'
    b'"user_id":"u","product":"p"}',
    b"\xef\xbb\xbf{\"event_id\":\"ZZ\"}",
]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(1, 40),
       trouble=st.lists(st.tuples(st.integers(0, 60), st.integers(0, len(_TROUBLE) - 1),
                                  st.integers(0, 45), st.booleans()), max_size=4),
       dupes=st.lists(st.tuples(st.integers(0, 45), st.integers(0, 45), st.booleans()),
                      max_size=3),
       block=st.sampled_from([64, 256, 1024]), piece=st.sampled_from([1, 300, 1 << 16]),
       final_newline=st.booleans())
def test_generated_files_stage_like_the_python_reader(tmp_path_factory, monkeypatch, n, trouble,
                                                      dupes, block, piece,
                                                      final_newline) -> None:
    """Good records with trouble injected at random places (the trouble line's event_id may
    repeat an earlier one; good records repeat or contradict earlier ones): the region path
    stages exactly what the whole-file Python reader stages."""
    tmp = tmp_path_factory.mktemp("r")
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", block)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", piece)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)
    rows = [_good(i) for i in range(n)]
    for at, same_as, conflict in dupes:
        if at < n and same_as < n:
            rows[at] = _good(same_as, product="chat2" if conflict else "chat")
    for at, kind, eid, keep_id in trouble:
        line = _TROUBLE[kind].replace(b"ZZ", f"e{eid}".encode() if keep_id else b"z")
        rows.insert(min(at, len(rows)), line)
    seen = _both(tmp, b"\n".join(rows) + (b"\n" if final_newline else b""), monkeypatch)
    event("regions" if seen["regions"] else "bulk" if seen["bulk"] else "whole file in Python")


def test_a_dead_ingests_spans_file_is_removed_with_its_staging_file(tmp_path) -> None:
    """The copy of the vouched lines sits beside the staging file; the next writer removes it
    with the staging file when the process that made it died (with or without its lock file)."""
    target = tmp_path / "u.duckdb"
    left = [tmp_path / f"u.duckdb.staging-{i}.duckdb{s}" for i in (7, 8)
            for s in ("", ".regions.csv", ".regions.jsonl")]
    for p in [*left, tmp_path / "u.duckdb.staging-8.lock"]:
        p.write_bytes(b"x")
    db.StagingClaim.remove_stale(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
