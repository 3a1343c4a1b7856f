"""Region-level fallback of the CSV bulk path.

Where the byte scan cannot vouch for a block of the file, only that region goes to the exact
splitter; the vouched lines around it are still read by DuckDB's ``read_csv``. The staging
table (every typed value, line, reason, raw text, content hash), the line accounting and the
ingest's results must equal those of the whole-file exact splitter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import usagectl.sources.readers as readers
from usagectl.sources.readers import CsvSource, open_source
from usagectl.store import db
from usagectl.store.ingest import IngestOptions, _stage_file
from tests.test_ingest_csv_bulk import _ingest

HEADER = b"event_id,ts,owner_id,user_id,product,input_tokens,credits,indicator_ids,note"


def _good(i: int, eid: str | None = None) -> bytes:
    return (f"{eid or f'e{i}'},2026-01-0{1 + i % 9}T10:00:0{i % 10}Z,acme,u{i % 3},chat,{i * 7},"
            f'{i}.25,"{i},{i + 1}","n {i} said ""hi"""').encode()


def _stage(path: Path, tmp: Path, name: str, *, bulk: bool, options: IngestOptions
           ) -> tuple[list, dict, dict]:
    """Stage ``path`` into a fresh staging file; (staged rows by rownum, stats, what ran)."""
    seen = {"regions": 0, "exact_records": 0}
    real_regions = CsvSource.region_chunks
    real_records = CsvSource._records

    def regions(self, layout):  # noqa: ANN001, ANN202
        seen["regions"] += 1
        yield from real_regions(self, layout)

    def records(self, lines, width):  # noqa: ANN001, ANN202
        for r in real_records(self, lines, width):
            seen["exact_records"] += 1
            yield r

    with pytest.MonkeyPatch.context() as m:
        m.setattr(CsvSource, "region_chunks", regions)
        m.setattr(CsvSource, "_records", records)
        con = db.staging_connect(tmp / f"{name}.duckdb")
        try:
            source = open_source(path, {}, False, None)
            _stage_file(con, source, "staged", options, None, path.stat().st_size, bulk=bulk)
            rows = con.execute("SELECT * FROM staged ORDER BY rownum").fetchall()
            leftovers = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        finally:
            con.close()
    assert leftovers == ["staged"]
    assert not [p for p in tmp.iterdir() if p.name.endswith(".regions.csv")]
    s = source.stats
    stats = {"records": s.records, "blank": s.blank_lines, "header": s.header_lines,
             "physical": s.physical_lines, "continuation": s.continuation_lines}
    return rows, stats, seen


def _both(tmp: Path, content: bytes, monkeypatch: pytest.MonkeyPatch, name: str = "e.csv",
          options: IngestOptions | None = None) -> dict:
    """Stage and ingest ``content`` by the region path and by the exact splitter; equal."""
    options = options or IngestOptions()
    f = tmp / name
    f.write_bytes(content)
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
    return seen


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)


def test_a_big_clean_file_with_one_bad_line_reads_only_that_region_exactly(
        tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", 1024)
    rows = [_good(i) for i in range(3000)]
    rows[1500] = b'e1500,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"never closed'
    seen = _both(tmp_path, HEADER + b"\n" + b"\n".join(rows) + b"\n", monkeypatch)
    assert seen["regions"] == 1
    # The bad line's piece of its block (1 KiB: about a dozen lines), not the 3,000 records
    # of the file nor the 800 of its 64 KiB block.
    assert 0 < seen["exact_records"] < 40


def test_a_quoted_value_across_a_block_edge_ends_the_region_inside_the_next_block(
        tmp_path, monkeypatch, small_blocks) -> None:
    rows = [_good(i) for i in range(60)]
    rows[10] = b'e10,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"' + b"\n".join(
        [b"spans"] * 12) + b'"'
    rows[30] = b"e30,2026-01-01T10:00:00Z,acme,u,chat,1,1,,x,extra"
    seen = _both(tmp_path, HEADER + b"\n" + b"\n".join(rows) + b"\n", monkeypatch)
    assert seen["regions"] == 1


def test_an_unterminated_quote_rereads_the_lines_after_it(tmp_path, monkeypatch,
                                                          small_blocks) -> None:
    rows = [_good(i) for i in range(40)]
    rows[5] = b'e5,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"open ' + b"x" * 600
    rows[39] = b'e39,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"open at the end'
    _both(tmp_path, HEADER + b"\n" + b"\n".join(rows), monkeypatch)


def test_regions_in_a_file_whose_bulk_rows_go_through_the_chunk_pipeline(
        tmp_path, monkeypatch, small_blocks) -> None:
    """Geometry and --route need Python: the bulk rows are sliced from a table, their lines
    mapped back the same way."""
    head = b"event_id,ts,owner_id,user_id,product,endpoint,geometry"
    rows = [f'g{i},2026-01-01T10:00:00Z,acme,u,FIELDS_BOUNDARY,/f/{i}?x={i},'
            f'"POLYGON (({i} 0, {i + 1} 0, {i + 1} 1, {i} 1, {i} 0))"'.encode() for i in range(40)]
    rows[7] = b'g7,2026-01-01T10:00:00Z,acme,u,FIELDS_BOUNDARY,/f/7,"POLYGON ((0 0,\n1 0, 1 1, 0 0))"'
    rows[20] = b'g20,2026-01-01T10:00:00Z,acme,u,FIELDS_BOUNDARY,/f/20,"POLYGON ((0 0, 1 1, 1 0,'
    rows[33] = b"g3,2026-01-01T10:00:00Z,acme,u,FIELDS_BOUNDARY,/f/3?x=3,"
    seen = _both(tmp_path, head + b"\n" + b"\n".join(rows) + b"\n", monkeypatch,
                 options=IngestOptions(routes=["/f/{resource_id}"]))
    assert seen["regions"] == 1


def test_too_many_regions_keep_the_whole_file_exact_path(tmp_path, monkeypatch,
                                                         small_blocks) -> None:
    monkeypatch.setattr(readers, "REGION_MAX_COUNT", 2)
    rows = [_good(i) for i in range(60)]
    for i in (5, 25, 45):
        rows[i] = b"x,y"
    seen = _both(tmp_path, HEADER + b"\n" + b"\n".join(rows) + b"\n", monkeypatch)
    assert seen["regions"] == 0


def test_a_mostly_unvouched_file_keeps_the_whole_file_exact_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", 256)
    rows = [_good(i) for i in range(60)]
    for i in range(0, 60, 2):
        rows[i] = b"x,y"
    seen = _both(tmp_path, HEADER + b"\n" + b"\n".join(rows) + b"\n", monkeypatch)
    assert seen["regions"] == 0


_TROUBLE = [
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"never closed',
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"two\nlines"',
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"' + b"\n".join([b"many"] * 9) + b'"',
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"' + b"x\n" * 3 + b'",extra',
    b"ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,x,extra",
    b"ZZ,2026-01-01T10:00:00Z,acme",
    b"ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,x,",
    b"",
    b"   ",
    b"ZZ,2026-01-01T10:00:00Z,acme,u\x00,chat,1,1,,x",
    b"ZZ,2026-01-01T10:00:00Z,acme,u\xff,chat,1,1,,x",
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,"\xff\nx"',
    b"ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,x\rmore",
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,, "x"',
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,"3" ,x',
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,a"b"c',
    b'ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,a"b',
    b"ZZ,2026-01-01T10:00:00Z,acme,u,chat,12.5,1,,x",
    b"ZZ,2026-01-01T10:00:00Z,acme,u,chat,1,1,,\xc3\xbc",
]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(n=st.integers(1, 40),
       trouble=st.lists(st.tuples(st.integers(0, 60), st.integers(0, len(_TROUBLE) - 1),
                                  st.integers(0, 45), st.booleans()), max_size=4),
       dupes=st.lists(st.tuples(st.integers(0, 45), st.integers(0, 45), st.booleans()),
                      max_size=3),
       block=st.sampled_from([64, 256, 1024]), piece=st.sampled_from([1, 100, 1 << 16]),
       crlf=st.booleans(), final_newline=st.booleans(), bom=st.booleans(), tsv=st.booleans())
def test_generated_files_stage_like_the_exact_splitter(tmp_path_factory, monkeypatch, n, trouble,
                                                       dupes, block, piece, crlf, final_newline,
                                                       bom, tsv) -> None:
    """Good rows with trouble injected at random places (an event_id of the trouble line may
    repeat an earlier one, and good rows repeat or contradict earlier ones): the region path
    stages exactly what the whole-file exact splitter stages."""
    tmp = tmp_path_factory.mktemp("r")
    monkeypatch.setattr(readers, "SCAN_BLOCK_BYTES", block)
    monkeypatch.setattr(readers, "REGION_PIECE_BYTES", piece)
    monkeypatch.setattr(readers, "REGION_MAX_SHARE", 1.0)
    rows = [_good(i) for i in range(n)]
    for at, same_as, conflict in dupes:
        if at < n and same_as < n:
            rows[at] = _good(same_as).replace(b",chat,", b",chat2," if conflict else b",chat,")
    for at, kind, eid, keep_id in trouble:
        line = _TROUBLE[kind].replace(b"ZZ", f"e{eid}".encode() if keep_id else b"z")
        rows.insert(min(at, len(rows)), line)
    nl = b"\r\n" if crlf else b"\n"
    content = nl.join([HEADER, *rows]) + (nl if final_newline else b"")
    if tsv:
        content = content.replace(b",", b"\t")
    _both(tmp, (b"\xef\xbb\xbf" if bom else b"") + content, monkeypatch,
          "e.tsv" if tsv else "e.csv")
