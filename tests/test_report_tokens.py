"""Issue 13 item 4: ``report --view tokens --group-by resource_id|session_id`` — tokens per file
and per conversation, with labels from the events' extra columns, newest first, paged, with the
totals of the page and of the range — on ten events whose figures are computed by hand below."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, SAMPLE_DATA, write

# Owner o, March 2026 (UTC). `filename` and `title` are extra columns (kept in attributes).
#   id   time (UTC)     user product file sess  in   out  think  status  filename       title
#   t1   03-02 09:00    u1   upload  f1   -     100  10   5      200     a.pdf
#   t2   03-02 10:00    u1   chat    -    s1    20   30   -      200                    Budget
#   t3   03-02 11:00    u2   chat    -    s1    40   50   7      200                    Budget v2
#   t4   03-02 12:00    u2   upload  f2   -     300  20   -      200     b.pdf
#   t5   03-03 00:00    u1   upload  f1   -     200  15   0      200     a-renamed.pdf   (= --to)
#   t6   03-03 08:00    u1   chat    f1   s2    10   5    -      200     (blank)        Plan
#   t7   03-03 09:00    u2   chat    -    s2    1    2    3      500 failed: not counted
#   t8   03-03 10:00    u2   chat    -    s1    5    5    -      200                    "  " (blank)
#   t9   03-03 11:00    u1   upload  f3   -     -    -    -      200     c.pdf: no token field
#   t10  03-03 12:00    u1   chat    -    -     7    8    -      200
# Counted token events: t1-t6, t8, t10 (t7 failed, t9 carries no token). A missing thinking
# count adds 0. Whole period: input 100+20+40+300+200+10+5+7 = 682, output 10+30+50+20+15+5+5+8
# = 143, thinking 5+7 = 12, total 837, 8 events.
EVENTS = (
    "event_id,timestamp,user_id,product,resource_id,session_id,input_tokens,output_tokens,"
    "thinking_tokens,status_code,filename,title\n"
    "t1,2026-03-02T09:00:00Z,u1,upload,f1,,100,10,5,200,a.pdf,\n"
    "t2,2026-03-02T10:00:00Z,u1,chat,,s1,20,30,,200,,Budget\n"
    "t3,2026-03-02T11:00:00Z,u2,chat,,s1,40,50,7,200,,Budget v2\n"
    "t4,2026-03-02T12:00:00Z,u2,upload,f2,,300,20,,200,b.pdf,\n"
    "t5,2026-03-03T00:00:00Z,u1,upload,f1,,200,15,0,200,a-renamed.pdf,\n"
    "t6,2026-03-03T08:00:00Z,u1,chat,f1,s2,10,5,,200,,Plan\n"
    "t7,2026-03-03T09:00:00Z,u2,chat,,s2,1,2,3,500,,Failed\n"
    "t8,2026-03-03T10:00:00Z,u2,chat,,s1,5,5,,200,,  \n"
    "t9,2026-03-03T11:00:00Z,u1,upload,f3,,,,,200,c.pdf,\n"
    "t10,2026-03-03T12:00:00Z,u1,chat,,,7,8,,200,,\n"
)
CONTRACT = """
[[contract]]
id = "c"
owner = "o"
start = 2026-01-01
cycle = "monthly"
timezone = "UTC"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]

  [[contract.meter]]
  name = "chat_all"
  aggregate = "sum"
  fields = ["input_tokens"]
  products = ["chat"]
  include_failed = true
"""
AS_OF = "2026-03-10T00:00:00Z"
TOTALS = {"input_tokens": 682, "output_tokens": 143, "thinking_tokens": 12, "total_tokens": 837}


@pytest.fixture
def tk(cli, tmp_path: Path):  # noqa: ANN201
    r = cli("ingest", write(tmp_path / "e.csv", EVENTS), "--owner", "o", "--format", "json")
    assert r.json()["totals"]["accepted"] == 10, r.stdout
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0

    def report(*args: str, code: int = 0):  # noqa: ANN202
        r = cli("report", "-c", "c", "--as-of", AS_OF, "--view", "tokens", *args)
        assert r.exit_code == code, r.stdout + r.stderr
        return r.json() if "json" in args and code == 0 else r

    return report


def _figures(r: dict, count: str = "events") -> tuple:
    return (r["input_tokens"], r["output_tokens"], r["thinking_tokens"], r["total_tokens"], r[count])


def test_tokens_per_file_newest_first_with_filename(tk) -> None:
    # f1: t1, t5, t6 → input 100+200+10 = 310, output 10+15+5 = 30, thinking 5, total 345,
    #     3 events, last seen t6 03-03 08:00; filename: t6's is blank, so t5's a-renamed.pdf.
    # f2: t4 → 300, 20, 0, 320, 1 event, last seen 03-02 12:00, b.pdf.
    # no file: t2, t3, t8, t10 → 20+40+5+7 = 72, 30+50+5+8 = 93, 7, 172, 4 events; listed last
    #     although it was seen last (03-03 12:00).
    doc = tk("--group-by", "resource_id", "--label", "filename", "--format", "json")
    assert [r["resource_id"] for r in doc["rows"]] == ["f1", "f2", None]
    assert [r["label"] for r in doc["rows"]] == ["a-renamed.pdf", "b.pdf", None]
    assert [_figures(r) for r in doc["rows"]] == [(310, 30, 5, 345, 3), (300, 20, 0, 320, 1),
                                                  (72, 93, 7, 172, 4)]
    f1 = doc["rows"][0]
    assert (f1["first_seen"], f1["last_seen"]) == ("2026-03-02T09:00:00+00:00",
                                                   "2026-03-03T08:00:00+00:00")
    assert doc["totals"] == doc["page_totals"] == {**TOTALS, "events": 8}
    assert (doc["group_by"], doc["label_from"], doc["total_count"], doc["limit"], doc["offset"],
            doc["has_more"]) == ("resource_id", "filename", 3, None, 0, False)
    assert list(f1) == ["resource_id", "label", "input_tokens", "output_tokens", "thinking_tokens",
                        "total_tokens", "events", "first_seen", "last_seen"]


def test_tokens_per_conversation_with_title_and_message_count(tk) -> None:
    # s1: t2, t3, t8 → 20+40+5 = 65, 30+50+5 = 85, 7, 157, 3 messages, last 03-03 10:00; title:
    #     t8's is blank ("  "), so t3's "Budget v2".
    # s2: t6 (t7 failed) → 10, 5, 0, 15, 1 message, last 03-03 08:00, "Plan".
    # none: t1, t4, t5, t10 → 100+300+200+7 = 607, 10+20+15+8 = 53, 5, 665, 4 messages.
    doc = tk("--group-by", "session_id", "--label", "title", "--format", "json")
    assert [(r["session_id"], r["label"]) for r in doc["rows"]] == [
        ("s1", "Budget v2"), ("s2", "Plan"), (None, None)]
    assert [_figures(r, "message_count") for r in doc["rows"]] == [
        (65, 85, 7, 157, 3), (10, 5, 0, 15, 1), (607, 53, 5, 665, 4)]
    assert doc["totals"] == {**TOTALS, "message_count": 8}
    assert "events" not in doc["rows"][0]


def test_tokens_range_ends_before_an_event_exactly_at_to(tk) -> None:
    # [03-02, 03-03): t5 at 03-03 00:00 is out. f1 is t1 alone: 100, 10, 5, 115, a.pdf (the name
    # t5 gave it later is not in the range); f2 (last 12:00) is now newer than f1 (09:00).
    # no file: t2, t3 → 60, 80, 7, 147. Totals 460, 110, 12, 582, 4 events.
    doc = tk("--group-by", "resource_id", "--label", "filename", "--from", "2026-03-02",
             "--to", "2026-03-03", "--format", "json")
    assert doc["range"] == {"from": "2026-03-02T00:00:00+00:00", "to": "2026-03-03T00:00:00+00:00"}
    assert [(r["resource_id"], r["label"], _figures(r)) for r in doc["rows"]] == [
        ("f2", "b.pdf", (300, 20, 0, 320, 1)), ("f1", "a.pdf", (100, 10, 5, 115, 1)),
        (None, None, (60, 80, 7, 147, 2))]
    assert doc["totals"] == {"input_tokens": 460, "output_tokens": 110, "thinking_tokens": 12,
                             "total_tokens": 582, "events": 4}
    # An instant is exact: up to 00:00:00.001 takes t5 in.
    doc = tk("--group-by", "resource_id", "--from", "2026-03-02", "--to",
             "2026-03-03T00:00:00.001Z", "--format", "json")
    assert doc["totals"]["events"] == 5 and doc["rows"][0]["resource_id"] == "f1"


def test_tokens_of_one_user(tk) -> None:
    # u1: t1, t2, t5, t6, t10 (t9 has no token). s2: t6 → 15, last 03-03 08:00; s1: t2 → 20, 30,
    # 0, 50, "Budget"; none: t1, t5, t10 → 307, 33, 5, 345, 3. Totals 337, 68, 5, 410, 5.
    doc = tk("--group-by", "session_id", "--label", "title", "--user", "u1", "--format", "json")
    assert doc["user"] == "u1"
    assert [(r["session_id"], r["label"], _figures(r, "message_count")) for r in doc["rows"]] == [
        ("s2", "Plan", (10, 5, 0, 15, 1)), ("s1", "Budget", (20, 30, 0, 50, 1)),
        (None, None, (307, 33, 5, 345, 3))]
    assert doc["totals"] == {"input_tokens": 337, "output_tokens": 68, "thinking_tokens": 5,
                             "total_tokens": 410, "message_count": 5}


def test_tokens_pages_and_their_totals(tk) -> None:
    # Page 2 of 1 item per page: s2 alone; the range's totals stay the whole 8 events.
    doc = tk("--group-by", "session_id", "--limit", "1", "--offset", "1", "--format", "json")
    assert [r["session_id"] for r in doc["rows"]] == ["s2"]
    assert doc["page_totals"] == {"input_tokens": 10, "output_tokens": 5, "thinking_tokens": 0,
                                  "total_tokens": 15, "message_count": 1}
    assert doc["totals"] == {**TOTALS, "message_count": 8}
    assert (doc["total_count"], doc["limit"], doc["offset"], doc["has_more"]) == (3, 1, 1, True)
    past = tk("--group-by", "session_id", "--offset", "5", "--format", "json")
    assert past["rows"] == [] and past["has_more"] is False
    assert past["page_totals"] == {"input_tokens": 0, "output_tokens": 0, "thinking_tokens": 0,
                                   "total_tokens": 0, "message_count": 0}


def test_tokens_default_groups_by_product(tk) -> None:
    # chat: t2, t3, t6, t8, t10 → 82, 98, 7, 187, 5 (last 03-03 12:00); upload: t1, t4, t5 →
    # 600, 45, 5, 650, 3 (t9 has no token; last 03-03 00:00).
    doc = tk("--format", "json")
    assert doc["group_by"] == "product"
    assert [(r["product"], _figures(r)) for r in doc["rows"]] == [
        ("chat", (82, 98, 7, 187, 5)), ("upload", (600, 45, 5, 650, 3))]


def test_tokens_meter_narrows_to_its_filters_failures_with_include_failed(tk) -> None:
    # chat_all: products chat, include_failed → s2 is t6 and the failed t7: 11, 7, 3, 21, 2.
    doc = tk("--group-by", "session_id", "--meter", "chat_all", "--format", "json")
    assert doc["meters"] == ["chat_all"]
    # s1: t2, t3, t8 (as before); s2: t6 and t7 → 11, 7, 3, 21, 2; none: t10 → 7, 8, 0, 15, 1.
    assert [(r["session_id"], _figures(r, "message_count")) for r in doc["rows"]] == [
        ("s1", (65, 85, 7, 157, 3)), ("s2", (11, 7, 3, 21, 2)), (None, (7, 8, 0, 15, 1))]


def test_tokens_ties_on_last_seen_are_ordered_by_key(cli, tmp_path: Path) -> None:
    text = ("event_id,timestamp,user_id,session_id,input_tokens\n"
            "a,2026-03-02T09:00:00Z,u,s-b,1\nb,2026-03-02T09:00:00Z,u,s-a,2\n"
            "c,2026-03-02T09:00:00Z,u,s-c,3\n")
    assert cli("ingest", write(tmp_path / "t.csv", text), "--owner", "o", "-q").exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    r = cli("report", "-c", "c", "--as-of", AS_OF, "--view", "tokens", "--group-by",
            "session_id", "--format", "json")
    assert [x["session_id"] for x in r.json()["rows"]] == ["s-a", "s-b", "s-c"]


def test_tokens_csv_table_out_and_quiet(tk, tmp_path: Path) -> None:
    text = tk("--group-by", "resource_id", "--label", "filename", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["contract_id", "period_index", "period_start", "period_end", "as_of",
                             "group_by", "label_from", "resource_id", "label", "input_tokens",
                             "output_tokens", "thinking_tokens", "total_tokens", "events",
                             "first_seen", "last_seen"]
    assert [(r["resource_id"], r["label"], r["total_tokens"]) for r in rows] == [
        ("f1", "a-renamed.pdf", "345"), ("f2", "b.pdf", "320"), ("", "", "172")]
    out = tmp_path / "t.csv"
    r = tk("--group-by", "resource_id", "--format", "csv", "--out", str(out), "-q")
    assert r.stdout == "" and r.stderr == ""
    assert out.read_text(encoding="utf-8") == tk("--group-by", "resource_id", "--format",
                                                 "csv").stdout
    # The table: the page (here every item), then the page's and the range's totals.
    table = tk("--group-by", "session_id", "--label", "title").stdout
    assert "Tokens per conversation" in table and "Budget v2" in table
    assert table.count("837") == 2 and "(none)" in table


def test_tokens_table_pages_by_default(cli, tmp_path: Path) -> None:
    """A table lists 50 items unless --limit (as the log does); JSON lists them all."""
    text = "event_id,timestamp,user_id,session_id,input_tokens\n" + "".join(
        f"e{i},2026-03-02T{i // 60:02d}:{i % 60:02d}:00Z,u,s{i:03d},1\n" for i in range(60))
    assert cli("ingest", write(tmp_path / "t.csv", text), "--owner", "o", "-q").exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    args = ("report", "-c", "c", "--as-of", AS_OF, "--view", "tokens", "--group-by", "session_id")
    r = cli(*args)
    assert r.exit_code == 0 and "s059" in r.stdout and "s009" not in r.stdout
    assert "10 more items; use --offset 50" in r.stderr
    assert len(cli(*args, "--format", "json").json()["rows"]) == 60


def test_tokens_options_are_checked(tk) -> None:
    r = tk("--group-by", "user_id", code=2)
    assert "resource_id, session_id, product" in r.stderr
    r = tk("--group-by", "user_id", "--format", "json", code=2)
    assert json.loads(r.stdout or r.stderr)["error"]["details"]["valid"] == [
        "resource_id", "session_id", "product"]
    assert "applies only to --view series" in tk("--bucket", "day", code=2).stderr
    assert "applies only to --view log" in tk("--order", "desc", code=2).stderr
    assert "--label needs" in tk("--label", " ", code=2).stderr
    assert "--limit must be >= 0" in tk("--limit", "-1", code=2).stderr


def test_label_applies_only_to_tokens(cli, tk) -> None:
    for view in ("consolidated", "top", "requests", "log"):
        r = cli("report", "-c", "c", "--as-of", AS_OF, "--view", view, "--label", "title")
        assert r.exit_code == 2 and "--label applies only to --view tokens" in r.stderr, view


def test_labels_are_data_in_csv_and_table(cli, tmp_path: Path) -> None:
    """A title is free text: a formula start is neutralised in CSV, markup shown literally."""
    text = ("event_id,timestamp,user_id,session_id,input_tokens,title\n"
            "a,2026-03-02T09:00:00Z,u,s1,1,=HYPERLINK(\"x\")\n"
            "b,2026-03-02T10:00:00Z,u,s2,1,[/bold] [red]x\n")
    assert cli("ingest", write(tmp_path / "t.csv", text), "--owner", "o", "-q").exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    args = ("report", "-c", "c", "--as-of", AS_OF, "--view", "tokens", "--group-by",
            "session_id", "--label", "title")
    rows = list(csv.DictReader(io.StringIO(cli(*args, "--format", "csv").stdout)))
    assert [r["label"] for r in rows] == ["[/bold] [red]x", "'=HYPERLINK(\"x\")"]
    r = cli(*args)
    assert r.exit_code == 0 and "[/bold]" in r.stdout and "[red]x" in r.stdout


def test_export_writes_the_tokens_view(tk, cli, tmp_path: Path) -> None:
    r = cli("export", "--contract", "c", "--views", "tokens", "--out-dir", tmp_path / "x",
            "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "x" / "c.tokens.csv").read_text())))
    assert [(r["group_by"], r["product"], r["total_tokens"]) for r in rows] == [
        ("product", "chat", "187"), ("product", "upload", "650")]


def test_tokens_rows_stream_with_batches(tk, db_path: Path) -> None:
    """With ``batch_size`` the rows are an iterator over DuckDB's result, equal to the list."""
    from collections.abc import Iterator

    from usagectl.reports.report import ViewOptions, build_view
    from usagectl.reports.window import open_window
    from usagectl.store.db import connect

    con = connect(db_path, read_only=True)
    try:
        window = open_window(con, "c", None, AS_OF)
        opts = ViewOptions(group_by="session_id", label="title", limit=2)
        listed = build_view(con, window, "tokens", opts)
        streamed = build_view(con, window, "tokens", opts, batch_size=1)
        assert isinstance(streamed["rows"], Iterator)
        assert list(streamed["rows"]) == listed["rows"]
        assert {k: v for k, v in streamed.items() if k != "rows"} == {
            k: v for k, v in listed.items() if k != "rows"}
    finally:
        con.close()


# ------------------------------------------------------------- property: pages add up to the range

EVENT = st.tuples(st.integers(0, 3 * 24 - 1), st.sampled_from(["f1", "f2", "f3", "f4", ""]),
                  st.sampled_from(["s1", "s2", "s3", ""]),
                  st.one_of(st.none(), st.integers(0, 10**6)),
                  st.one_of(st.none(), st.integers(0, 10**6)),
                  st.one_of(st.none(), st.integers(0, 10**6)), st.sampled_from([200, 500]))


def _csv(events: list) -> str:
    lines = ["event_id,timestamp,user_id,resource_id,session_id,input_tokens,output_tokens,"
             "thinking_tokens,status_code"]
    for i, (h, f, s, a, b, c, status) in enumerate(events):
        ts = f"2026-03-{1 + h // 24:02d}T{h % 24:02d}:00:00Z"  # hours repeat: ties on last seen
        cells = ["" if v is None else v for v in (a, b, c)]
        lines.append(f"p{i},{ts},u,{f},{s},{cells[0]},{cells[1]},{cells[2]},{status}")
    return "\n".join(lines) + "\n"


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, min_size=0, max_size=30), size=st.integers(1, 4))
def test_pages_add_up_to_the_range(tmp_path_factory, events, size) -> None:  # noqa: ANN001
    """Σ over every page = the range's totals, each page's totals = Σ its rows, total_count is
    the same on every page, no item is on two pages and every item is on one."""
    from typer.testing import CliRunner

    from usagectl.cli import app

    tmp = tmp_path_factory.mktemp("p")
    db = tmp / "p.duckdb"

    def run(*args: str) -> str:
        r = CliRunner().invoke(app, ["--db", str(db), *map(str, args)], catch_exceptions=False)
        assert r.exit_code == 0, r.stdout
        return r.stdout

    run("ingest", write(tmp / "p.csv", _csv(events)), "--owner", "o", "-q")
    run("contracts", "load", write(tmp / "c.toml", CONTRACT), "-q")
    for group, count in (("resource_id", "events"), ("session_id", "message_count")):
        def page(offset: int) -> dict:
            return json.loads(run("report", "-c", "c", "--as-of", AS_OF, "--view", "tokens",
                                  "--group-by", group, "--limit", size, "--offset", offset,
                                  "--format", "json"))

        whole = json.loads(run("report", "-c", "c", "--as-of", AS_OF, "--view", "tokens",
                               "--group-by", group, "--format", "json"))
        seen: list = []
        summed = dict.fromkeys(whole["totals"], 0)
        offset = 0
        while True:
            doc = page(offset)
            assert doc["total_count"] == whole["total_count"]
            assert doc["totals"] == whole["totals"]
            for key in summed:
                assert doc["page_totals"][key] == sum(r[key] for r in doc["rows"]), key
                summed[key] += doc["page_totals"][key]
            seen += [r[group] for r in doc["rows"]]
            offset += size
            if not doc["has_more"]:
                break
        assert len(seen) == len(set(seen)) == whole["total_count"]
        assert seen == [r[group] for r in whole["rows"]]
        assert summed == whole["totals"]
        # The range's totals are the counted events' (hand-free: from the generated rows).
        ok = [e for e in events if e[6] == 200 and any(v is not None for v in e[3:6])]
        assert whole["totals"][count] == len(ok)
        assert whole["totals"]["total_tokens"] == sum(v or 0 for e in ok for v in e[3:6])


# ------------------------------------------------------------------------------ docs/tokens.md

def _doc_commands() -> list[tuple[str, list[str]]]:
    from tests.test_docs import _examples

    return _examples((REPO / "docs" / "tokens.md").read_text(encoding="utf-8"))


def test_the_tokens_doc_examples_run_on_the_sample(tmp_path: Path) -> None:
    """docs/tokens.md's console examples run against the bundled sample and show real output."""
    shutil.copytree(SAMPLE_DATA, tmp_path / "sample_data")
    env = {**os.environ, "USAGECTL_DB": str(tmp_path / "usage.duckdb"), "COLUMNS": "120"}
    examples = _doc_commands()
    assert any("--view tokens" in c for c, _ in examples)
    for command, shown in examples:
        args = shlex.split(command)
        assert args[0] == "usagectl"
        r = subprocess.run([sys.executable, "-m", "usagectl", *args[1:]], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (command, r.stdout, r.stderr)
        for line in shown:
            if "…" not in line and line.strip():
                assert line.rstrip() in r.stdout + r.stderr, (command, line)


def test_the_tokens_doc_lists_the_json_keys() -> None:
    doc = (REPO / "docs" / "tokens.md").read_text(encoding="utf-8")
    from usagectl.reports.tokens import row_keys

    for key in (*row_keys("session_id"), "events", "group_by", "label_from", "rows",
                "total_count", "limit", "offset", "has_more", "page_totals", "totals", "meters"):
        assert f"`{key}`" in doc, key
