"""The JSON Lines bulk path (DuckDB ``read_ndjson_objects``) against the Python reader.

Every file is ingested twice, once as usagectl does (bulk where the byte scan vouches for the
file and the statement can reproduce every value, the Python reader otherwise) and once forced
through the Python reader; the accounting, the events (every column: values, attributes,
lines, content hashes) and the rejects (line, reason, raw text) must be identical.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
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


def test_the_bulk_path_does_not_read_records_in_python(tmp_path, monkeypatch) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(GOOD)

    def refuse(self):  # noqa: ANN001, ANN202
        raise AssertionError("the Python reader was used")

    monkeypatch.setattr(JsonLinesSource, "chunks", refuse)
    con = connect(tmp_path / "u.duckdb")
    try:
        (res,) = ingest_paths(con, [str(f)], IngestOptions())
    finally:
        con.close()
    assert (res.status, res.rows_read, res.accepted) == ("ok", 40, 40)


def test_line_numbers_hold_when_duckdb_reads_the_file_in_parallel(tmp_path, monkeypatch) -> None:
    rows = [_record(i) for i in range(30_000)]
    for i in (5, 17_000, 29_999):
        rows[i]["input_tokens"] = 12.5  # rejected: a decimal in an integer field
    assert _compare(tmp_path, monkeypatch, _lines(rows))


HOSTILE = {
    "keys in another order": b'{"ts":"2026-01-01T00:00:00Z","event_id":"a","owner_id":"o",'
                             b'"user_id":"u","product":"p"}\n'
                             b'{"event_id":"b","ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                             b'"user_id":"u","product":"p","extra":1.50,"flag":true,"n":null}\n',
    "missing keys and nulls": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n'
                              b'{"event_id":null,"ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                              b'"user_id":"","product":"p"}\n',
    "numbers in every form": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                             b'"input_tokens":1E3,"credits":-0}\n',
    "big integers": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                    b'"input_tokens":123456789012345678901234,"x":18446744073709551616}\n',
    "nested": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o","meta":{"a":[1,2.50]}}\n',
    "duplicate keys": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o","owner_id":"p"}\n',
    "trailing comma": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o",}\n',
    "nan": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o","credits":NaN}\n',
    "blank line": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n\n',
    "not an object": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n[1]\n',
    "two objects on a line": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"} {}\n',
    "escapes": b'{"event_id":"a\\u0000b","ts":"2026-01-01T00:00:00Z","owner_id":"o\\/p"}\n',
    "crlf": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\r\n',
    "bom": b'\xef\xbb\xbf{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n',
    "invalid utf-8": b'{"event_id":"a\xff","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n',
    "no final newline": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"\xc3\xa9"}',
    "a key sequence after the sample": b"".join(
        b'{"event_id":"a%d","ts":"2026-01-01T00:00:00Z","owner_id":"o"}\n' % i
        for i in range(1_001)) + b'{"owner_id":"o","event_id":"z","ts":"2026-01-01T00:00:00Z"}\n',
    "colliding keys": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","timestamp":"2026-01-02T00:00:00Z",'
                      b'"owner_id":"o"}\n',
    "small and large decimals": b'{"event_id":"a","ts":"2026-01-01T00:00:00Z","owner_id":"o",'
                                b'"credits":0.00001,"x":0.00001,"y":12345678901234567.5}\n',
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_jsonl_gives_the_python_readers_result(tmp_path, monkeypatch, case) -> None:
    _compare(tmp_path, monkeypatch, HOSTILE[case])


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
_SCALAR = st.one_of(_TEXT.map(json.dumps), _NUMBER, st.sampled_from(["true", "false", "null"]),
                    st.just('"2026-01-01T00:00:00Z"'), st.just('"acme"'))
_VALUE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3).map(lambda v: "[" + ",".join(v) + "]"))


@st.composite
def _line(draw: st.DrawFn) -> str:
    keys = draw(st.lists(_KEY, min_size=1, max_size=7, unique=True))
    return "{" + ",".join(f'"{k}":{draw(_VALUE)}' for k in keys) + "}"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(_line(), min_size=1, max_size=10))
def test_generated_hostile_jsonl_matches_the_python_reader(tmp_path_factory, monkeypatch,
                                                          lines) -> None:
    tmp = tmp_path_factory.mktemp("j")
    _compare(tmp, monkeypatch, ("\n".join(lines) + "\n").encode(),
             options=IngestOptions(owner="acme"))
