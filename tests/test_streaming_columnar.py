"""The log, ``export`` and ``rejects`` written a record batch at a time (docs/cli.md "Streaming
large outputs"; :mod:`usagectl.renderers.columnar`): byte for byte the text the row-by-row
writers give.

The reference is the document built the way the table formats and ``serve`` still build it —
every row fetched as Python values into a list, then ``jsonout.dumps`` / ``csvout.render`` —
and the streamed row-by-row writer (``batch_size`` without ``columnar``). The databases are made
by the real ``usagectl ingest`` from JSON Lines with hostile text: quotes, commas, line breaks,
CR, tabs, control characters, astral and right-to-left characters, formula starts, empty
strings, NULLs, long strings, tiny and huge decimals, indicator lists.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import write
from tests.test_streaming import AS_OF, CONTRACT, jq_ok, reference, streamed
from usagectl.cli import app
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.columnar import _iso, _timestamps
from usagectl.reports.report import ViewOptions, build_view
from usagectl.reports.window import open_window
from usagectl.store import audit
from usagectl.store.db import connect
from usagectl.store.streaming import ARROW_BATCH, Batches

HOSTILE = ["=2+3", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "x\r=2+3", "a\n+1", "a\r\n-1",
           'q"uote', '""', "a,b", ",", "\\", "\\n", "\u2028", "\x7f", "\x08\x0c", "\x01\x1f",
           "ünï ☃", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀", "שלום עולם", "\u202eevil\u202c", "مرحبا", "", " ", "null",
           "0E-9", "1,5", "x" * 3000, "-", "=", "\t", "'", "\n\n", "e\u0301"]
#: Credits as written in the file (ingest refuses negative ones and more than 18 integer digits).
CREDITS = ["0", "0.000000001", "0.0000005", "0.000001", "1", "27.31", "27.310000000", "1e-7",
           "123456789012345678.123456789", "99999999999.5", "0.1", "1000000", "12.000000001",
           "0.000", "5E+3"]
#: Ingest refuses control characters (C0, DEL, C1) in ids, and every text of the log is an id:
#: those rows are rejected, and their text is in ``rejects``' raw records.
PRINTABLE = [h for h in HOSTILE if not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in h)]
TEXT = st.one_of(st.sampled_from(PRINTABLE), st.sampled_from(HOSTILE),
                 st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=12),
                 st.text(st.characters(exclude_categories=("Cs",)), max_size=4))


def _line(i: int, d: dict[str, Any]) -> str:
    """One JSON Lines record; ``credits`` is written as the number text itself."""
    ts = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=d["second"])
    rec: dict[str, Any] = {"event_id": f"e{i}", "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                           "owner_id": "o", "user_id": d["user"], "org_id": d["org"],
                           "product": d["product"], "status": d["status"],
                           "error_code": d["error"], "endpoint": d["endpoint"],
                           "operation": d["operation"], "dataset_id": d["dataset"],
                           "indicator_ids": d["indicators"], "input_tokens": d["tokens"],
                           "response_time_ms": d["ms"], "session_id": d["session"],
                           "request_id": d["request"], "credits": "CREDITS"}
    text = json.dumps(rec, ensure_ascii=d["ascii"])
    return text.replace('"CREDITS"', d["credits"] if d["credits"] is not None else "null")


EVENT = st.fixed_dictionaries({
    "second": st.integers(0, 30 * 86_400) | st.sampled_from([2_253_599, 2_253_600, 2_253_601]),
    "user": TEXT, "org": st.none() | TEXT, "product": st.none() | TEXT,
    "status": st.none() | st.sampled_from(["success", "failed"]) | TEXT,
    "error": st.none() | TEXT, "endpoint": st.none() | TEXT, "operation": st.none() | TEXT,
    "dataset": st.none() | TEXT,
    "indicators": st.none() | st.lists(st.none() | TEXT, max_size=4),
    "tokens": st.none() | st.integers(0, 2**63 - 1) | st.integers(-(2**63), 2**63 - 1),
    "credits": st.none() | st.sampled_from(CREDITS) | st.decimals(
        min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=9,
        allow_nan=False).map(str),
    "ms": st.none() | st.floats(0, 1e12) | st.floats(allow_nan=False, allow_infinity=False,
                                                     width=32),
    "session": st.none() | TEXT, "request": st.none() | TEXT, "ascii": st.booleans(),
})


class Cli:
    """``usagectl --db DB …`` in process, its stdout as bytes."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.runner = CliRunner(env={"COLUMNS": "120"})

    def __call__(self, *args: str, ok: bool = True) -> bytes:
        r = self.runner.invoke(app, ["--db", str(self.db), *args], catch_exceptions=False)
        if ok:
            assert r.exit_code == 0, r.stderr
        return r.stdout_bytes


def ingested(tmp: Path, events: list[dict[str, Any]], junk: list[str] = ()) -> Cli:
    """A database made by ``usagectl ingest`` of the events (and ``junk`` lines, rejected)."""
    cli = Cli(tmp / "u.duckdb")
    cli("contracts", "load", str(write(tmp / "c.toml", CONTRACT)), "-q")
    lines = [_line(i, d) for i, d in enumerate(events)] + list(junk)
    if lines:
        (tmp / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        cli("ingest", str(tmp / "events.jsonl"), "-q", ok=False)  # rejects exit 0 or 1
    return cli


def rejects_reference(db: Path) -> tuple[str, str]:
    con = connect(db, read_only=True)
    try:
        rows = audit.list_rejects(con)
    finally:
        con.close()
    return jsonout.dumps(rows), csvout.render(rows, audit.REJECT_KEYS)


def check_all(tmp: Path, cli: Cli, options: ViewOptions = ViewOptions(),
              args: tuple[str, ...] = ()) -> None:
    """Every way of writing the log, and rejects, equals the reference bytes."""
    ref_json, ref_csv = reference(cli.db, options)
    base = ("report", "-c", "c", "--view", "log", "--as-of", AS_OF, *args)
    for fmt, ref in (("json", ref_json), ("csv", ref_csv)):
        expected = ref.encode("utf-8")
        assert cli(*base, "--format", fmt) == expected, fmt
        out = tmp / f"log.{fmt}"
        cli(*base, "--format", fmt, "--out", str(out), "-q")
        assert out.read_bytes() == expected, fmt
        assert streamed(cli.db, 3, fmt, options) == ref  # the row-by-row stream agrees too
    jq_ok(ref_json)
    json.loads(cli(*base, "--format", "json"))
    rej_json, rej_csv = rejects_reference(cli.db)
    assert cli("rejects", "--format", "json") == rej_json.encode("utf-8")
    assert cli("rejects", "--format", "csv") == rej_csv.encode("utf-8")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(EVENT, max_size=30), junk=st.lists(TEXT, max_size=3))
def test_columnar_log_and_rejects_equal_the_row_by_row_text(tmp_path_factory, events, junk
                                                            ) -> None:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("col")
    cli = ingested(tmp, events, [json.dumps({"event_id": j, "owner_id": "o"}) for j in junk])
    check_all(tmp, cli)
    check_all(tmp, cli, ViewOptions(limit=4, offset=1, order="desc"),
              ("--limit", "4", "--offset", "1", "--order", "desc"))


def _fixture_events(n: int) -> list[dict[str, Any]]:
    """Every hostile string and credit in every text field, over more than one record batch."""
    rnd = random.Random(7)
    out = []
    for i in range(n):
        def h(k: int, i: int = i) -> str:
            return (PRINTABLE if i % 50 else HOSTILE)[(i * 7 + k) % len(PRINTABLE)]
        out.append({"second": (i * 977) % (30 * 86_400), "user": h(0).strip() or "u",
                    "org": h(1) if i % 5 else None,
                    "product": h(2), "status": ["success", "success", h(3)][i % 3],
                    "error": h(4) if i % 2 else None, "endpoint": h(5), "operation": h(6),
                    "dataset": h(7) if i % 4 else None,
                    "indicators": [None, [], [h(8)], [h(9), None, h(10)]][i % 4],
                    "tokens": rnd.choice([None, 0, 2**63 - 1, i]),
                    "credits": CREDITS[i % len(CREDITS)] if i % 6 else None,
                    "ms": rnd.choice([None, 0.0, 1.5, 1e-7, 999_999_999_999.5, 123.456]),
                    "session": h(11), "request": h(12) if i % 3 else None, "ascii": i % 2 == 0})
    return out


def test_a_hostile_log_over_several_batches_equals_the_reference(tmp_path: Path) -> None:
    n = 3 * ARROW_BATCH + 17
    cli = ingested(tmp_path, _fixture_events(n),
                   [json.dumps({"event_id": h, "owner_id": "o"}) for h in HOSTILE[:8]] + ["{bad"])
    listed = json.loads(cli("report", "-c", "c", "--view", "log", "--as-of", AS_OF, "--format",
                            "json", "--limit", "0"))["total_count"]
    assert 2 * ARROW_BATCH < listed < n  # several batches; rows with control characters rejected
    check_all(tmp_path, cli)


def test_control_characters_in_the_log_equal_the_reference(tmp_path: Path) -> None:
    """Rows inserted as they are (ingest refuses them): every hostile text, control
    characters included, in every text field, over several record batches."""
    from tests.test_streaming import make_db

    events = [{"second": (i * 613) % (30 * 86_400), "user": HOSTILE[i % len(HOSTILE)],
               "org": HOSTILE[(i + 1) % len(HOSTILE)] if i % 3 else None,
               "product": HOSTILE[(i + 2) % len(HOSTILE)], "status": HOSTILE[(i + 3) % len(HOSTILE)],
               "error": None, "endpoint": HOSTILE[(i + 4) % len(HOSTILE)],
               "dataset": HOSTILE[(i + 5) % len(HOSTILE)],
               "indicators": [None, [], [HOSTILE[(i + 6) % len(HOSTILE)], None]][i % 3],
               "tokens": i, "credits": Decimal(CREDITS[i % 11]).quantize(Decimal("1e-9")),
               "ms": [None, 1.5, 1e-7][i % 3], "session": HOSTILE[(i + 7) % len(HOSTILE)],
               "request": None, "geometry": None} for i in range(ARROW_BATCH + 100)]
    cli = Cli(tmp_path / "u.duckdb")
    make_db(cli.db, events)
    cli("contracts", "load", str(write(tmp_path / "c.toml", CONTRACT)), "-q")
    check_all(tmp_path, cli)


def test_real_stdout_and_out_files_are_the_reference_bytes(tmp_path: Path) -> None:
    """A real process: stdout through the pipe, ``--out`` through the temp file, and export."""
    cli = ingested(tmp_path, _fixture_events(300))
    ref_json, ref_csv = reference(cli.db)
    exe = [sys.executable, "-m", "usagectl", "--db", str(cli.db)]
    base = [*exe, "report", "-c", "c", "--view", "log", "--as-of", AS_OF]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    for fmt, ref in (("json", ref_json), ("csv", ref_csv)):
        r = subprocess.run([*base, "--format", fmt], capture_output=True, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == ref.encode("utf-8")
        out = tmp_path / f"p.{fmt}"
        r = subprocess.run([*base, "--format", fmt, "--out", str(out), "-q"], capture_output=True,
                           env=env)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == ref.encode("utf-8")
    r = subprocess.run([*exe, "export", "-c", "c", "--as-of", AS_OF, "--out-dir",
                        str(tmp_path / "x"), "-q"], capture_output=True, env=env)
    assert r.returncode == 0, r.stderr
    (log_file,) = (tmp_path / "x").rglob("*.log.csv")
    assert log_file.read_bytes() == ref_csv.encode("utf-8")


def test_the_log_is_read_as_record_batches_of_at_most_arrow_batch_rows(tmp_path: Path) -> None:
    """Structural: JSON and CSV outputs get the events as Arrow record batches, all of them."""
    n = 2 * ARROW_BATCH + 5
    cli = ingested(tmp_path, _fixture_events(n))
    con = connect(cli.db, read_only=True)
    try:
        window = open_window(con, "c", None, AS_OF)
        doc = build_view(con, window, "log", batch_size=10_000, columnar=True)
        stream = doc["events"]
        assert isinstance(stream, Batches)
        sizes = [b.num_rows for b in stream.batches()]
        assert max(sizes) <= ARROW_BATCH and sum(sizes) == doc["total_count"] > ARROW_BATCH
        # Row by row, the same stream gives the rows of the list the table formats use.
        rows = list(build_view(con, window, "log", batch_size=10_000, columnar=True)["events"])
        assert rows == build_view(con, window, "log")["events"]
        # The memory limit is back once the stream is read (store.streaming).
        assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] != "122.0 MiB"
    finally:
        con.close()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe",
                                  "Asia/Kathmandu", "Africa/Monrovia", "Pacific/Apia", "UTC"])
def test_timestamps_are_pythons_isoformat_in_the_zone(zone: str) -> None:
    """Around every transition (offsets of 30 and 45 minutes, of seconds, half-hour DST) and
    at random instants, microseconds or none."""
    z = ZoneInfo(zone)
    rnd = random.Random(zone)
    us = [rnd.randrange(0, 253_000_000_000_000_000) for _ in range(20_000)]
    us += [rnd.randrange(0, 10**9) * 1_000_000 for _ in range(1000)]  # whole seconds
    for year in range(1970, 2040):  # each side of the zone's transitions
        t = datetime(year, 1, 1, tzinfo=UTC)
        while t.year == year:
            before = t.astimezone(z).utcoffset()
            t += timedelta(hours=6)
            if t.astimezone(z).utcoffset() != before:
                base = int((t - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000
                us += [base + k for k in range(-7 * 3_600_000_000, 3_600_000_001, 300_000_000)]
                us += [base + k - 1 for k in range(-7 * 3_600_000_000, 3_600_000_001, 300_000_000)]
    us += [0, 1, 999_999, 172_800_000_000, 172_799_999_999]
    arr = pa.array(sorted(us), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    assert _timestamps(arr, z).to_pylist() == [_iso(u, z) for u in sorted(us)]


@pytest.mark.parametrize("texts", [
    ["=1", "+1", "-1", "@x", "ok"],  # formula starts and nothing else to quote or escape
    ["\tx", "\rx", "x"],  # formula starts that are control characters
    ['q"', "x"], ["a,b", "x"], ["a\nb", "x"], ["\\", "x"], ["\x01", "x"],
    ["ünï", "𝔘", "שלום", "\u2028", "-", ""],
])
def test_each_kind_of_hostile_text_alone_in_a_column(tmp_path: Path, texts: list[str]) -> None:
    """A batch's column holding one kind of hostile text and nothing else (the writers check a
    whole column for what needs escaping, quoting or a formula prefix before doing it)."""
    from tests.test_streaming import make_db

    events = [{"second": 60 * i, "user": texts[i % len(texts)] or "u",
               "org": texts[(i + 1) % len(texts)], "product": texts[i % len(texts)],
               "status": "ok", "error": None, "endpoint": texts[(i + 2) % len(texts)],
               "dataset": texts[i % len(texts)], "indicators": [texts[i % len(texts)]],
               "tokens": i, "credits": Decimal(i) / 8, "ms": None,
               "session": texts[(i + 3) % len(texts)], "request": None, "geometry": None}
              for i in range(40)]
    cli = Cli(tmp_path / "u.duckdb")
    make_db(cli.db, events)
    cli("contracts", "load", str(write(tmp_path / "c.toml", CONTRACT)), "-q")
    check_all(tmp_path, cli)
