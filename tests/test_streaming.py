"""Streaming outputs (docs/cli.md "Streaming"): the log view, ``export`` and ``rejects`` write
their rows as DuckDB hands them over, in batches, with exactly the text of the whole document.

References are computed here from the non-streamed document (the events as a list, fetched at
once) rendered by ``jsonout.dumps`` / ``csvout.render``; the streamed output must equal them
byte for byte, whatever the batch size.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write
from usagectl.errors import IOFailure
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.console import Env
from usagectl.renderers.output import emit, write_output
from usagectl.reports.report import ViewOptions, build_view
from usagectl.reports.window import open_window
from usagectl.store import audit
from usagectl.store.db import connect

CONTRACT = """
[[contract]]
id = "c"
owner = "o"
start = 2026-03-01
cycle = "monthly"
timezone = "Europe/Berlin"

  [[contract.meter]]
  name = "requests"
  aggregate = "count"

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
"""
AS_OF = "2026-03-31T12:00:00Z"
START = datetime(2026, 3, 1, tzinfo=UTC)
COLUMNS = ("owner_id", "event_id", "ts", "user_id", "org_id", "product", "action", "status",
           "succeeded", "error_code", "endpoint", "method", "operation", "geometry", "dataset_id",
           "indicator_ids", "input_tokens", "output_tokens", "thinking_tokens", "credits",
           "response_time_ms", "session_id", "request_id", "content_hash", "ingest_id",
           "ingested_at")
#: Cells that spreadsheets or JSON readers trip over, mixed into every text field.
HOSTILE = ["=2+3", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "x\r=2+3", "a\n+1", 'q"uote', "a,b",
           "[/foo]", "ünï ☃", "", " ", "null", "\\", "\u2028"]


def text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8))


def _event(i: int, d: dict[str, Any]) -> tuple:
    ts = START + timedelta(seconds=d["second"])
    return ("o", f"e{i}", ts, d["user"], d["org"], d["product"], "process", d["status"], True,
            d["error"], d["endpoint"], "GET", None, d["geometry"], d["dataset"], d["indicators"],
            d["tokens"], d["tokens"], None, d["credits"], d["ms"], d["session"], d["request"],
            "h", 1, START)


EVENT = st.fixed_dictionaries({
    "second": st.integers(0, 30 * 86_400),
    "user": text(), "org": st.none() | text(), "product": st.none() | text(),
    "status": st.none() | text(), "error": st.none() | text(), "endpoint": st.none() | text(),
    "dataset": st.none() | text(),
    "indicators": st.none() | st.lists(text(), max_size=3),
    "tokens": st.none() | st.integers(-(2**63), 2**63 - 1),
    "credits": st.none() | st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"),
                                       places=9, allow_nan=False),
    "ms": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    "session": st.none() | text(), "request": st.none() | text(),
    "geometry": st.none() | st.builds(
        lambda x, y: shapely.to_wkb(shapely.box(x, y, x + 0.01, y + 0.01)),
        st.floats(-170, 170), st.floats(-80, 80)),
})


def make_db(db: Path, events: list[dict[str, Any]]) -> None:
    """A usagectl database with the contract and ``events`` inserted as rows of owner ``o``."""
    con = connect(db)
    try:
        con.execute("INSERT INTO ingests (id, path, started_at, status, tool_version) "
                    "VALUES (1, 'gen.csv', now(), 'ok', 'test')")
        if events:
            con.executemany(f"INSERT INTO events ({', '.join(COLUMNS)}) "
                            f"VALUES ({', '.join('?' for _ in COLUMNS)})",
                            [_event(i, d) for i, d in enumerate(events)])
    finally:
        con.close()


def load_contract(cli, tmp_path: Path) -> None:  # noqa: ANN001
    r = cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT), "-q")
    assert r.exit_code == 0, r.stderr


def reference(db: Path, view_opts: ViewOptions = ViewOptions()) -> tuple[str, str]:
    """The log's JSON and CSV made the way they were before streaming: every event fetched at
    once into a list, then the whole document rendered."""
    con = connect(db, read_only=True)
    try:
        window = open_window(con, "c", None, AS_OF)
        doc = build_view(con, window, "log", view_opts)
        assert isinstance(doc["events"], list)
        names = [m.name for m in window.contract.meters]
        rows, cols = csvout.view_rows("log", doc, names)
        return jsonout.dumps(doc), csvout.render(rows, cols)
    finally:
        con.close()


def streamed(db: Path, batch_size: int, fmt: str, view_opts: ViewOptions = ViewOptions()) -> str:
    """The log written by :func:`emit` from a document whose events are streamed."""
    con = connect(db, read_only=True)
    try:
        window = open_window(con, "c", None, AS_OF)
        doc = build_view(con, window, "log", view_opts, batch_size=batch_size)
        assert isinstance(doc["events"], Iterator)
        out = io.StringIO()
        emit(Env(stdout=out, stderr=io.StringIO()), "log", doc, fmt,
             meters=[m.name for m in window.contract.meters])
        return out.getvalue()
    finally:
        con.close()


def jq_ok(text: str) -> None:
    """The text is one valid JSON document for ``jq`` too, when jq is installed."""
    if shutil.which("jq"):
        r = subprocess.run(["jq", "-c", "."], input=text.encode(), capture_output=True)
        assert r.returncode == 0, r.stderr


# -- the writers consume iterators --------------------------------------------------------------

ROWS = [{"a": i, "b": f"=x{i}", "c": [i, Decimal("1.50")], "d": None} for i in range(5)]


@pytest.mark.parametrize("size", [1, 7, 1 << 16])
def test_json_chunks_of_an_iterator_are_the_whole_document(size: int) -> None:
    doc = {"head": {"k": 1}, "rows": ROWS, "n": 5}
    whole = jsonout.dumps(doc)
    pieces = list(jsonout.chunks({**doc, "rows": iter(ROWS)}, size))
    assert "".join(pieces) == whole
    assert len(pieces) > 1 if size == 1 else True
    assert "".join(jsonout.chunks({"rows": iter([])})) == jsonout.dumps({"rows": []})
    assert "".join(jsonout.chunks(iter(ROWS))) == jsonout.dumps(ROWS)


@pytest.mark.parametrize("size", [1, 30, 1 << 16])
def test_csv_chunks_of_an_iterator_are_the_whole_text_in_whole_lines(size: int) -> None:
    whole = csvout.render(ROWS, ["a", "b", "c", "d"])
    pieces = list(csvout.chunks(iter(ROWS), ["a", "b", "c", "d"], size))
    assert "".join(pieces) == whole
    assert all(p.endswith("\n") for p in pieces)


# -- the log, streamed -----------------------------------------------------------------------

FIVE = [{"second": 60 * i, "user": f"u{i % 2}", "org": None, "product": "P", "status": "ok",
         "error": None, "endpoint": "/d", "dataset": f"d{i % 3}", "indicators": [f"i{i}"],
         "tokens": i, "credits": Decimal("0.5") * i, "ms": 1.5, "session": None, "request": None,
         "geometry": None} for i in range(5)]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 10_000])
def test_log_events_are_fetched_in_batches_with_the_same_output(cli, db_path: Path, tmp_path: Path,
                                                                batch_size: int) -> None:
    make_db(db_path, FIVE)
    load_contract(cli, tmp_path)
    ref_json, ref_csv = reference(db_path)
    assert len(json.loads(ref_json)["events"]) == 5
    assert streamed(db_path, batch_size, "json") == ref_json
    assert streamed(db_path, batch_size, "csv") == ref_csv
    paged = ViewOptions(limit=2, offset=1)
    assert streamed(db_path, batch_size, "json", paged) == reference(db_path, paged)[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, max_size=25))
def test_streamed_log_equals_the_whole_document(tmp_path_factory, events) -> None:  # noqa: ANN001
    """Random events (hostile text, NULLs, decimals, geometries): the CLI's streamed JSON and
    CSV are byte for byte the non-streamed document's, and the JSON is one valid document."""
    from usagectl.cli import app
    from typer.testing import CliRunner

    tmp = tmp_path_factory.mktemp("log")
    db = tmp / "u.duckdb"
    make_db(db, events)
    runner = CliRunner(env={"COLUMNS": "120"})

    def run(*args: str) -> str:
        r = runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)
        assert r.exit_code == 0, r.stderr
        return r.stdout

    run("contracts", "load", str(write(tmp / "c.toml", CONTRACT)), "-q")
    ref_json, ref_csv = reference(db)
    base = ("report", "-c", "c", "--view", "log", "--as-of", AS_OF)
    out_json = run(*base, "--format", "json")
    assert out_json == ref_json
    assert json.loads(out_json) == json.loads(ref_json)
    jq_ok(out_json)
    assert run(*base, "--format", "csv") == ref_csv
    run(*base, "--format", "json", "--out", str(tmp / "log.json"), "-q")
    assert (tmp / "log.json").read_text(encoding="utf-8") == ref_json


# -- export ----------------------------------------------------------------------------------

def test_export_streams_the_log_file_with_its_hash_and_rows(cli, db_path: Path, tmp_path: Path) -> None:
    events = [{**FIVE[i % 5], "second": 7 * i, "user": HOSTILE[i % len(HOSTILE)]} for i in range(40)]
    make_db(db_path, events)
    load_contract(cli, tmp_path)
    r = cli("export", "-c", "c", "--as-of", AS_OF, "--out-dir", tmp_path / "x", "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    _, ref_csv = reference(db_path)
    data = (tmp_path / "x" / "c.log.csv").read_bytes()
    assert data == ref_csv.encode("utf-8")
    (entry,) = [f for f in r.json()["files"] if f["view"] == "log"]
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["rows"] == 40


# -- rejects ---------------------------------------------------------------------------------

def test_rejects_stream_the_same_json_and_csv(cli, db_path: Path, tmp_path: Path) -> None:
    lines = ["event_id,timestamp,owner_id,user_id,product,input_tokens"]
    for i in range(30):
        tok = "12.5" if i % 3 else str(i)
        lines.append(f"e{i},2026-03-02T10:00:00Z,o,\"=u{i},x\",P,{tok}")
    r = cli("ingest", write(tmp_path / "r.csv", "\n".join(lines) + "\n"), "--format", "json")
    assert r.json()["totals"]["rejected"] == 20, r.stdout
    con = connect(db_path, read_only=True)
    try:
        rows = audit.list_rejects(con)
        streamed_rows = audit.stream_rejects(con, batch_size=3)
        assert isinstance(streamed_rows, Iterator)
        assert list(streamed_rows) == rows
    finally:
        con.close()
    out = cli("rejects", "--format", "json")
    assert out.exit_code == 0 and out.stdout == jsonout.dumps(rows)
    jq_ok(out.stdout)
    assert cli("rejects", "--format", "csv").stdout == csvout.render(rows, audit.REJECT_KEYS)
    page = cli("rejects", "--format", "json", "--limit", "4", "--offset", "3").json()
    assert page == json.loads(jsonout.dumps(rows[3:7]))
    assert cli("rejects", "--format", "json", "--limit", "0").stdout == "[]\n"


# -- failures mid-stream ---------------------------------------------------------------------

def _failing(rows: int) -> Iterator[dict[str, Any]]:
    for i in range(rows):
        yield {"i": i, "pad": "x" * 200}
    raise IOFailure("the database went away", {})


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_failure_mid_stream_leaves_no_partial_out_file(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "out.txt"
    target.write_text("previous\n")
    env = Env(stdout=io.StringIO(), stderr=io.StringIO())
    pieces = (jsonout.chunks({"rows": _failing(1000)}) if fmt == "json"
              else csvout.chunks(_failing(1000), ["i", "pad"]))
    with pytest.raises(IOFailure):
        write_output(env, pieces, str(target))
    assert target.read_text() == "previous\n"  # the old file whole, no half of the new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temp file left
    with pytest.raises(IOFailure):
        write_output(env, jsonout.chunks({"rows": _failing(1000)}), str(tmp_path / "new.json"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failure_mid_stream_on_stdout_leaves_the_json_unclosed_and_errors_on_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    from usagectl.cli import _fail
    from usagectl.renderers.console import STDOUT

    out = io.StringIO()
    env = Env(stdout=out, stderr=io.StringIO())
    with pytest.raises(IOFailure) as failed:
        write_output(env, jsonout.chunks({"rows": _failing(1000)}), None)
    assert out.getvalue().startswith('{\n  "rows": [')
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.getvalue())  # unclosed: no reader takes it for the whole document
    assert STDOUT.partial
    try:
        assert _fail(failed.value, True) == 1
    finally:
        STDOUT.partial = False
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing appended to the partial document
    assert json.loads(captured.err)["error"]["message"] == "the database went away"
    # A stream that ends normally leaves stdout whole, and errors go to stdout again.
    write_output(env, jsonout.chunks({"rows": iter(ROWS)}), None)
    assert not STDOUT.partial


# -- tables page -------------------------------------------------------------------------------

def test_tables_list_at_most_a_thousand_rows(cli, db_path: Path, tmp_path: Path) -> None:
    make_db(db_path, FIVE)
    load_contract(cli, tmp_path)
    base = ("report", "-c", "c", "--view", "log", "--as-of", AS_OF)
    r = cli(*base, "--limit", "1001")
    assert r.exit_code == 2 and "at most 1,000 rows" in r.stderr and "--format csv" in r.stderr
    assert cli(*base, "--limit", "1000").exit_code == 0
    assert cli(*base, "--limit", "1001", "--format", "csv").exit_code == 0
    r = cli("rejects", "--limit", "1001")
    assert r.exit_code == 2 and "at most 1,000 rows" in r.stderr
    assert cli("rejects", "--limit", "1001", "--format", "json").stdout == "[]\n"


def test_the_streamed_log_needs_no_more_memory_than_its_batches(cli, db_path: Path,
                                                               tmp_path: Path) -> None:
    """Structural: with ``batch_size`` the events are taken from DuckDB's pending result a batch
    at a time — after the first event only the rest of that batch has been fetched."""
    make_db(db_path, FIVE)
    load_contract(cli, tmp_path)
    con = connect(db_path, read_only=True)
    try:
        window = open_window(con, "c", None, AS_OF)
        doc = build_view(con, window, "log", batch_size=2)
        events = doc["events"]
        first = next(events)
        assert first["event_id"] == "e0"
        # The connection still holds the pending result: the next fetch continues it.
        assert [r[1] for r in con.fetchmany(2)] == ["e2", "e3"]
        assert [e["event_id"] for e in events] == ["e1", "e4"]
    finally:
        con.close()


def test_envelope_keys_and_order_are_unchanged(cli, db_path: Path, tmp_path: Path) -> None:
    make_db(db_path, FIVE)
    load_contract(cli, tmp_path)
    doc = cli("report", "-c", "c", "--view", "log", "--as-of", AS_OF, "--format", "json").json()
    assert list(doc) == ["contract", "period", "events", "total_count", "limit", "offset",
                         "has_more"]
    assert list(doc["events"][0]) == ["ts", "event_id", "user_id", "org_id", "product", "action",
                                      "resource_id", "status", "error_code", "endpoint", "method",
                                      "operation", "dataset_id", "indicator_ids", "input_tokens",
                                      "output_tokens", "thinking_tokens", "credits",
                                      "response_time_ms", "session_id", "request_id", "new_user",
                                      "new_dataset", "new_indicators"]


def test_the_memory_limit_is_lowered_while_streaming_and_put_back(cli, db_path: Path,
                                                                  tmp_path: Path) -> None:
    from usagectl.store.streaming import run_streamed

    make_db(db_path, FIVE)
    load_contract(cli, tmp_path)
    con = connect(db_path, read_only=True)

    def limit() -> str:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    try:
        before = limit()
        rows = run_streamed(con, "SELECT current_setting('memory_limit') FROM range(3)", [],
                            lambda r: r[0], 2)
        assert list(rows) == ["122.0 MiB"] * 3  # STREAM_MEMORY_LIMIT, while the rows are read
        assert limit() == before
        unfinished = run_streamed(con, "SELECT * FROM range(10)", [], lambda r: r[0], 2)
        assert next(unfinished) == 0
        unfinished.close()  # a writer that failed midway: the limit is put back too
        assert limit() == before
        unread = run_streamed(con, "SELECT * FROM range(10)", [], lambda r: r[0], 2)
        unread.close()  # a file refused before its first row was taken (export: a link)
        assert limit() == before
    finally:
        con.close()


def test_a_query_that_cannot_spill_is_run_again_under_the_session_limit(db_path: Path) -> None:
    """An aggregate that needs more than the streaming limit and cannot spill (a list of
    1.5M strings) still streams, under the session's own limit, rather than failing."""
    from usagectl.store.streaming import run_streamed

    con = connect(db_path)
    try:
        before = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        rows = run_streamed(con, "SELECT len(list(repeat('x', 100) || i)) FROM range(?) t(i)",
                            [1_500_000], lambda r: r[0], 10)
        assert list(rows) == [1_500_000]
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == before
    finally:
        con.close()
