"""The JSON Lines bulk path (DuckDB ``read_ndjson_objects``) against the Python reader.

Every file is ingested twice, once as usagectl does (bulk where the byte scan vouches for the
file and the statement can reproduce every value, the Python reader otherwise) and once forced
through the Python reader; the accounting, the events (every column: values, attributes,
lines, content hashes) and the rejects (line, reason, raw text) must be identical.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import usagectl.store.ingest as ingest_mod
from usagectl.sources.readers import JsonLinesSource
from usagectl.store.db import connect
from usagectl.store.ingest import IngestOptions, ingest_paths


def _ingest(path: Path, db: Path, *, exact: bool, monkeypatch: pytest.MonkeyPatch,
            options: IngestOptions | None = None) -> tuple[dict, list, list, bool]:
    """Ingest ``path`` into a new ``db``; returns (counts, events, rejects, bulk path taken)."""
    used = {"bulk": False}
    real = ingest_mod._stage_jsonl_bulk

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if exact:
            return False
        used["bulk"] = real(*args, **kwargs)
        return used["bulk"]

    with monkeypatch.context() as m:
        m.setattr(ingest_mod, "_stage_jsonl_bulk", spy)
        con = connect(db)
        try:
            (res,) = ingest_paths(con, [str(path)], options or IngestOptions())
        finally:
            con.close()
    counts = {k: getattr(res, k) for k in ("status", "error", "rows_read", "accepted",
                                          "duplicates", "rejected", "conflicts", "blank_lines")}
    ro = duckdb.connect(str(db), read_only=True)
    try:
        events = ro.execute(
            "SELECT * EXCLUDE (ingest_id, ingested_at) FROM events ORDER BY source_line, event_id"
        ).fetchall()
        rejects = ro.execute("SELECT line, reason, raw FROM rejects ORDER BY line, reason").fetchall()
    finally:
        ro.close()
    return counts, events, rejects, used["bulk"]


def _compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes,
             name: str = "e.jsonl", options: IngestOptions | None = None) -> bool:
    f = tmp_path / name
    f.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    for db in tmp_path.glob("*.duckdb*"):
        db.unlink()
    fast = _ingest(f, tmp_path / "fast.duckdb", exact=False, monkeypatch=monkeypatch,
                   options=options)
    exact = _ingest(f, tmp_path / "exact.duckdb", exact=True, monkeypatch=monkeypatch,
                    options=options)
    assert fast[:3] == exact[:3]
    return fast[3]


def _record(i: int) -> dict:
    return {"event_id": f"e{i}", "ts": f"2026-01-0{1 + i % 9}T10:00:0{i % 10}Z",
            "owner_id": "acme", "user_id": f"u{i % 3}", "product": "chat",
            "input_tokens": i * 7, "credits": f"{i}.2500", "indicator_ids": f"{i},{i + 1}",
            "note": f'said "hi" {i}\\n'}


def _lines(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for r in records).encode()


# credits as a JSON number with its trailing zeros: "42.5730" must stay 42.5730.
GOOD = _lines([_record(i) for i in range(40)]).replace(b'"credits":"', b'"credits":') \
    .replace(b'00","indicator', b'00,"indicator')


def test_a_clean_jsonl_file_is_read_in_bulk_with_the_python_readers_rows(tmp_path,
                                                                          monkeypatch) -> None:
    assert b'"credits":3.2500,' in GOOD
    assert _compare(tmp_path, monkeypatch, GOOD)


def _refuse(self):  # noqa: ANN001, ANN202
    raise AssertionError("the Python reader was used")


def test_the_bulk_path_does_not_read_records_in_python(tmp_path, monkeypatch) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(GOOD)
    monkeypatch.setattr(JsonLinesSource, "chunks", _refuse)
    con = connect(tmp_path / "u.duckdb")
    try:
        (res,) = ingest_paths(con, [str(f)], IngestOptions())
    finally:
        con.close()
    assert (res.status, res.rows_read, res.accepted) == ("ok", 40, 40)


def test_line_numbers_hold_when_duckdb_reads_the_file_in_parallel(tmp_path, monkeypatch) -> None:
    """DuckDB reads JSON in 32 MiB buffers, one per thread, and without insertion order kept
    writes rows out of file order (125,074 of 200,000 rows, measured): a 40 MB file."""
    monkeypatch.setattr(JsonLinesSource, "chunks", _refuse)
    pad = "x" * 400
    f = tmp_path / "e.jsonl"
    f.write_text("".join(
        f'{{"event_id":"L{n}","ts":"2026-01-01T00:00:00Z","owner_id":"o","user_id":"u",'
        f'"input_tokens":{"12.5" if n % 1000 == 0 else n},"note":"{pad}"}}\n'
        for n in range(1, 100_001)))
    assert f.stat().st_size > 40_000_000
    db = tmp_path / "u.duckdb"
    con = connect(db)
    try:
        (res,) = ingest_paths(con, [str(f)], IngestOptions())
    finally:
        con.close()
    assert (res.rows_read, res.accepted, res.rejected) == (100_000, 99_900, 100)
    ro = duckdb.connect(str(db), read_only=True)
    try:
        wrong = ro.execute("SELECT count(*) FROM events WHERE event_id <> 'L' || source_line"
                           ).fetchone()[0]
        rejects = ro.execute("SELECT count(*) FROM rejects WHERE line % 1000 <> 0 "
                             "OR raw NOT LIKE '{\"event_id\":\"L' || line || '\"%'").fetchone()[0]
    finally:
        ro.close()
    assert (wrong, rejects) == (0, 0)


def test_rejects_at_scale_match_the_python_reader(tmp_path, monkeypatch) -> None:
    rows = [_record(i) for i in range(30_000)]
    for i in (5, 17_000, 29_999):
        rows[i]["input_tokens"] = 12.5  # rejected: a decimal in an integer field
    assert _compare(tmp_path, monkeypatch, _lines(rows))


B = b'"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o","user_id":"u","product":"p"'

# case: (file, whether the bulk path can take it)
HOSTILE = {
    "keys in another order": (b'{"ts":"2026-01-01T00:00:00Z","event_id":"a","owner_id":"o",'
                              b'"user_id":"u","product":"p"}\n'
                              b'{"event_id":"b","ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                              b'"user_id":"u","product":"p","extra":1.50,"flag":true,"n":null}\n',
                              True),
    "missing keys and nulls": (b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n'
                               b'{"event_id":null,"ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                               b'"user_id":"","product":"p"}\n', True),
    "a decimal where an integer goes": (b'{' + B + b',"input_tokens":12.50,"credits":-0.0,"status":-0}\n',
                                        True),
    "numbers in every form": (b'{' + B + b',"input_tokens":1E3,"credits":-0}\n', False),
    "big integers": (b'{' + B + b',"input_tokens":123456789012345678901234}\n', True),
    "a big integer attribute": (b'{' + B + b',"x":18446744073709551616}\n', False),
    "nested": (b'{' + B + b',"meta":{"a":[1,2.50]}}\n', False),
    "lists of integers and plain text": (b'{' + B + b',"indicator_ids":[964, 897,-3],'
                                         b'"tags":["a b","c"],"e":[]}\n'
                                         b'{' + B + b',"indicator_ids":["1","2"],"big":'
                                         b'[123456789012345678901234]}\n', True),
    "a list with a decimal": (b'{' + B + b',"indicator_ids":[1,2.0]}\n', False),
    "a list with -0": (b'{' + B + b',"indicator_ids":[-0]}\n', True),  # both write 0
    "a list with text to escape": (b'{' + B + b',"tags":["\xc3\xa9"]}\n', False),
    "duplicate keys": (b'{' + B + b',"owner_id":"p"}\n', False),
    "trailing comma": (b'{' + B + b',}\n', False),
    "nan": (b'{' + B + b',"credits":NaN}\n', False),
    "blank line": (b'{' + B + b'}\n\n', False),
    "not an object": (b'{' + B + b'}\n[1]\n', False),
    "two objects on a line": (b'{' + B + b'} {}\n', False),
    "escapes": (b'{' + B + b',"note":"a\\u0000b\\/"}\n', False),
    "crlf": (b'{' + B + b'}\r\n', False),
    "bom": (b'\xef\xbb\xbf{' + B + b'}\n', False),
    "invalid utf-8": (b'{' + B + b',"note":"\xff"}\n', False),
    "no final newline": (b'{' + B + b',"note":"\xc3\xa9 \x7f \xe2\x80\xa8 \\"\\\\ \\t"}', True),
    "a key sequence first seen late": (b"".join(
        b'{"event_id":"a%d","ts":"2026-01-01T00:00:00Z","owner_id":"o","user_id":"u",'
        b'"product":"p"}\n' % i for i in range(1_001)) + b'{"product":"p",' + B[:-14] + b'}\n',
        True),
    "duplicate keys late": (b"".join(b'{' + B.replace(b'"a"', b'"a%d"' % i) + b'}\n'
                                     for i in range(1_001)) + b'{' + B + b',"ts":"x"}\n', False),
    "many key sequences": (b"".join(b'{' + B + b',"k%d":1}\n' % i for i in range(65)), False),
    "an empty object": (b'{' + B + b'}\n{}\n', True),
    "a key that is not plain": (b'{' + B + b',"a b":1}\n', False),
    "colliding keys": (b'{' + B + b',"timestamp":"2026-01-02T00:00:00Z"}\n', True),
    "small and large decimals": (b'{' + B + b',"credits":0.00001,"x":0.00001}\n'
                                 b'{' + B + b',"y":12345678901234567.5}\n', False),
    "decimals both serialisers write alike": (b'{' + B + b',"x":0.0001,"y":42.5730,"z":-0.0,'
                                              b'"w":-9223372036854775808,'
                                              b'"v":18446744073709551615,"u":1.5}\n',
                                              True),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_jsonl_gives_the_python_readers_result(tmp_path, monkeypatch, case) -> None:
    content, bulk = HOSTILE[case]
    assert _compare(tmp_path, monkeypatch, content) == bulk


def test_the_benchmark_generators_file_is_read_in_bulk(tmp_path, monkeypatch) -> None:
    """The file ``make bench`` ingests (DuckDB's own JSON writer: decimals like 42.5730, quotes
    and commas in text) takes the bulk path with the Python reader's result."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import events_gen
    finally:
        sys.path.pop(0)
    path = events_gen.write(600, tmp_path / "ev", formats=("jsonl",))["jsonl"]
    assert _compare(tmp_path, monkeypatch, path.read_bytes())


def test_gzip_is_read_in_bulk(tmp_path, monkeypatch) -> None:
    assert _compare(tmp_path, monkeypatch, GOOD, name="e.jsonl.gz")


def test_geometry_and_routes_keep_the_chunk_pipeline(tmp_path, monkeypatch) -> None:
    geo = GOOD.replace(b'"product":"chat"', b'"product":"chat","geometry":"POINT (1 2)"')
    assert not _compare(tmp_path, monkeypatch, geo)
    url = GOOD.replace(b'"product":"chat"', b'"product":"chat","endpoint":"/a?b=1"')
    assert not _compare(tmp_path, monkeypatch, url)


_KEY = st.sampled_from(["event_id", "ts", "owner_id", "user_id", "product", "input_tokens",
                        "credits", "status", "note", "x-y", "a.b", "meta"])
_TEXT = st.text(st.characters(codec="utf-8"), max_size=8)
_NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?",
                        fullmatch=True)
_SCALAR = st.one_of(_TEXT.map(lambda t: json.dumps(t, ensure_ascii=False)), _TEXT.map(json.dumps),
                    _NUMBER, st.from_regex(r"-?(0|[1-9][0-9]{0,3})\.[0-9]{1,4}", fullmatch=True), st.sampled_from(["true", "false", "null"]),
                    st.just('"2026-01-01T00:00:00Z"'), st.just('"acme"'))
_VALUE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3).map(lambda v: "[" + ",".join(v) + "]"))


_GOOD = {"event_id": st.sampled_from(['"e1"', '"e2"', '"e3"']),
         "ts": st.sampled_from(['"2026-01-01T00:00:00Z"', '"2026-01-02T10:00:00+02:00"']),
         "user_id": st.sampled_from(['"u1"', '"ü"', "7"]),
         "product": st.sampled_from(['"chat"', '"Chat "'])}


@st.composite
def _line(draw: st.DrawFn) -> str:
    """A record with the required keys (mostly good values) and others, in any order."""
    keys = draw(st.lists(_KEY, max_size=5, unique=True))
    keys = draw(st.permutations(list(dict.fromkeys([*_GOOD, *keys]))))
    values = {k: draw(st.one_of(_GOOD[k], _VALUE) if k in _GOOD and draw(st.booleans())
                      else _GOOD.get(k, _VALUE)) for k in keys}
    return "{" + ",".join(f'"{k}":{v}' for k, v in values.items()) + "}"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(_line(), min_size=1, max_size=10))
def test_generated_hostile_jsonl_matches_the_python_reader(tmp_path_factory, monkeypatch,
                                                          lines) -> None:
    tmp = tmp_path_factory.mktemp("j")
    bulk = _compare(tmp, monkeypatch, ("\n".join(lines) + "\n").encode(),
                    options=IngestOptions(owner="acme"))
    event("bulk" if bulk else "python reader")
