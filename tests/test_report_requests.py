"""Issue 13 items 2, 3 and 7: ``--view requests`` (the v2 summary and top endpoints), the log as
the v2 details endpoint (``--operation/--endpoint/--status/--order``), and ``--view series
--group-by product|operation`` — on a six-event file whose figures are computed by hand below."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write

# Owner o, March 2026 (UTC). Statuses: 200 succeeds, 429/500 fail.
#   id  time (UTC)        user org   product endpoint op       status error          rt   credits tokens
#   e1  03-02 10:00       u1   org1  upload  /files   upload   200                   100  1.5     5
#   e2  03-02 11:00       u1   org1  chat    /chat    message  200                   200  0.25    10
#   e3  03-02 12:00       u2   org2  chat    /chat    message  429    rate_limited   1    0       20
#   e4  03-03 09:00       u2   org2  chat    /chat    message  500    internal_error 50   (none)  40
#   e5  03-03 10:00       u3   -     upload  /files   upload   200                   101  2       80
#   e6  03-03 11:00       u1   org1  chat    /chat    message  429    rate_limited   30   0.5     160
#   e7  03-03 12:00       u3   -     chat    /chat    message  200                   (none) 0     320
EVENTS = (
    "event_id,timestamp,user_id,org_id,product,endpoint,operation,status_code,error_code,"
    "response_time_ms,credits,input_tokens\n"
    "e1,2026-03-02T10:00:00Z,u1,org1,upload,/files,upload,200,,100,1.5,5\n"
    "e2,2026-03-02T11:00:00Z,u1,org1,chat,/chat,message,200,,200,0.25,10\n"
    "e3,2026-03-02T12:00:00Z,u2,org2,chat,/chat,message,429,rate_limited,1,0,20\n"
    "e4,2026-03-03T09:00:00Z,u2,org2,chat,/chat,message,500,internal_error,50,,40\n"
    "e5,2026-03-03T10:00:00Z,u3,,upload,/files,upload,200,,101,2,80\n"
    "e6,2026-03-03T11:00:00Z,u1,org1,chat,/chat,message,429,rate_limited,30,0.5,160\n"
    "e7,2026-03-03T12:00:00Z,u3,,chat,/chat,message,200,,,0,320\n"
)
CONTRACT = """
[[contract]]
id = "c"
owner = "o"
start = 2026-01-01
cycle = "monthly"
timezone = "UTC"

  [[contract.meter]]
  name = "calls"
  aggregate = "count"

  [[contract.meter]]
  name = "all_calls"
  aggregate = "count"
  include_failed = true

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens"]

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
"""
AS_OF = "2026-03-10T00:00:00Z"


@pytest.fixture
def rq(cli, tmp_path: Path):  # noqa: ANN201
    r = cli("ingest", write(tmp_path / "e.csv", EVENTS), "--owner", "o", "--format", "json")
    assert r.json()["totals"]["accepted"] == 7, r.stdout
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0

    def report(*args: str, code: int = 0):  # noqa: ANN202
        r = cli("report", "-c", "c", "--as-of", AS_OF, *args)
        assert r.exit_code == code, r.stdout + r.stderr
        return r

    return report


def doc(rq, *args: str) -> dict:  # noqa: ANN001
    return rq(*args, "--format", "json").json()


# --------------------------------------------------------------------------- item 2: requests

def test_requests_summary_counts_failures_whatever_include_failed_says(rq) -> None:
    d = doc(rq, "--view", "requests")
    # 7 events; e1 e2 e5 e7 succeeded (4), e3 e6 rate_limited and e4 internal_error failed (3),
    # although the meter "calls" leaves failures out. success_rate 4/7 = 0.571428… → 0.5714.
    # Response times of e1..e6 (e7 has none, so it is not in the average):
    # (100 + 200 + 1 + 50 + 101 + 30) / 6 = 482 / 6 = 80.3333… → 80.333 (3 places).
    # Credits 1.5 + 0.25 + 0 + 0.5 + 2 + 0 = 4.25 (e4 has none).
    assert d["summary"] == {
        "total": 7, "successful": 4, "failed": 3, "success_rate": 0.5714,
        "failed_by_error_code": {"rate_limited": 2, "internal_error": 1},
        "avg_response_time_ms": 80.333, "response_times": 6, "credits": 4.25}
    assert d["group_by"] is None and d["rows"] == []


def test_requests_by_endpoint_ordered_by_request_count(rq) -> None:
    d = doc(rq, "--view", "requests", "--group-by", "endpoint")
    assert d["group_by"] == "endpoint"
    assert [r["key"] for r in d["rows"]] == ["/chat", "/files"]  # 5 requests, then 2
    chat, files = d["rows"]
    # /chat: e2 e3 e4 e6 e7; ok e2 e7; rt (200 + 1 + 50 + 30) / 4 = 70.25; credits 0.75.
    assert chat == {"key": "/chat", "total": 5, "successful": 2, "failed": 3,
                    "success_rate": 0.4,
                    "failed_by_error_code": {"rate_limited": 2, "internal_error": 1},
                    "avg_response_time_ms": 70.25, "response_times": 4, "credits": 0.75}
    # /files: e1 e5, both ok; rt (100 + 101) / 2 = 100.5; credits 3.5.
    assert files == {"key": "/files", "total": 2, "successful": 2, "failed": 0,
                     "success_rate": 1, "failed_by_error_code": {},
                     "avg_response_time_ms": 100.5, "response_times": 2, "credits": 3.5}


def test_requests_ties_are_ordered_by_key_and_none_last(rq) -> None:
    # user_id: u1 e1 e2 e6 (3), u2 e3 e4 (2), u3 e5 e7 (2): u2 before u3 on the tie.
    assert [(r["key"], r["total"]) for r in doc(rq, "--view", "requests", "--group-by",
                                                "user_id")["rows"]] == [
        ("u1", 3), ("u2", 2), ("u3", 2)]
    # error_code: none (e1 e2 e5 e7: 4), rate_limited 2, internal_error 1.
    assert [(r["key"], r["total"]) for r in doc(rq, "--view", "requests", "--group-by",
                                                "error_code")["rows"]] == [
        (None, 4), ("rate_limited", 2), ("internal_error", 1)]
    # org_id: org1 (3), then org2 and none (2 each): the missing org comes last.
    assert [(r["key"], r["total"]) for r in doc(rq, "--view", "requests", "--group-by",
                                                "org_id")["rows"]] == [
        ("org1", 3), ("org2", 2), (None, 2)]


def test_requests_with_user_from_to_and_paging(rq) -> None:
    d = doc(rq, "--view", "requests", "--user", "u1", "--group-by", "product")
    # u1: e1 upload ok; e2 chat ok; e6 chat rate_limited → chat 2, upload 1.
    assert [(r["key"], r["total"], r["failed"]) for r in d["rows"]] == [("chat", 2, 1),
                                                                         ("upload", 1, 0)]
    assert d["summary"]["total"] == 3 and d["user"] == "u1"
    # --from 2026-03-03 --to 2026-03-04 (half-open: the 3rd only): e4 e5 e6 e7 only.
    d = doc(rq, "--view", "requests", "--from", "2026-03-03", "--to", "2026-03-04")
    assert d["summary"]["total"] == 4 and d["summary"]["failed"] == 2
    assert d["range"] == {"from": "2026-03-03T00:00:00+00:00", "to": "2026-03-04T00:00:00+00:00"}
    # An instant, included: from noon on the 3rd, e7 alone.
    later = doc(rq, "--view", "requests", "--from", "2026-03-03T12:00:00Z", "--to", "2026-03-04")
    assert (later["summary"]["total"], later["summary"]["failed"]) == (1, 0)
    d = doc(rq, "--view", "requests", "--group-by", "user_id", "--limit", "1", "--offset", "1")
    assert [r["key"] for r in d["rows"]] == ["u2"]
    assert (d["total_count"], d["has_more"]) == (3, True)
    assert d["summary"]["total"] == 7  # the summary is the whole range's, not the page's


def test_requests_csv_and_table(rq) -> None:
    rows = list(csv.DictReader(io.StringIO(rq("--view", "requests", "--group-by", "endpoint",
                                              "--format", "csv").stdout)))
    assert [(r["key"], r["total"], r["success_rate"], r["avg_response_time_ms"], r["credits"])
            for r in rows] == [("/chat", "5", "0.4", "70.25", "0.75"),
                               ("/files", "2", "1", "100.5", "3.5")]
    assert rows[0]["failed_by_error_code"] == '{"internal_error": 1, "rate_limited": 2}'
    one = list(csv.DictReader(io.StringIO(rq("--view", "requests", "--format", "csv").stdout)))
    assert len(one) == 1 and one[0]["total"] == "7" and one[0]["key"] == ""
    table = rq("--view", "requests", "--group-by", "endpoint").stdout
    assert "/chat" in table and "80.333" in table and "57.14 %" in table
    assert "rate_limited 2" in table


def test_requests_group_by_is_checked_per_view(rq) -> None:
    r = rq("--view", "requests", "--group-by", "resource_id", code=2)
    for valid in ("endpoint", "operation", "product", "user_id", "org_id", "error_code"):
        assert valid in r.stderr
    r = rq("--view", "requests", "--bucket", "day", code=2)
    assert "--bucket applies only to --view series" in r.stderr
    r = rq("--view", "top", "--group-by", "error_code", code=2)
    assert "resource_id" in r.stderr


def test_requests_in_the_html_report_escaped(cli, tmp_path: Path) -> None:
    events = ("event_id,timestamp,user_id,endpoint,status_code,error_code,response_time_ms\n"
              "x1,2026-03-02T10:00:00Z,u1,/<script>alert(1)</script>,500,<b>boom</b>,10\n"
              "x2,2026-03-02T11:00:00Z,u1,/ok,200,,20\n")
    assert cli("ingest", write(tmp_path / "x.csv", events), "--owner", "o", "--product", "API",
               "-q").exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    out = tmp_path / "r.html"
    r = cli("report", "-c", "c", "--as-of", AS_OF, "--format", "html", "--out", out)
    assert r.exit_code == 0, r.stderr
    html = out.read_text()
    assert "<h2>Requests</h2>" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>boom</b>" not in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "50 %" in html  # success rate 1 / 2


# ---------------------------------------------------------------------- item 3: log as details

def ids(d: dict) -> list[str]:
    return [e["event_id"] for e in d["events"]]


def test_log_of_an_include_failed_count_meter_lists_failures(rq) -> None:
    assert ids(doc(rq, "--view", "log", "--meter", "all_calls")) == [
        "e1", "e2", "e3", "e4", "e5", "e6", "e7"]
    assert ids(doc(rq, "--view", "log", "--meter", "calls")) == ["e1", "e2", "e5", "e7"]


def test_log_filters_and_order(rq) -> None:
    m = ("--view", "log", "--meter", "all_calls")
    assert ids(doc(rq, *m, "--status", "failed")) == ["e3", "e4", "e6"]
    assert ids(doc(rq, *m, "--status", "ok", "--endpoint", "/chat")) == ["e2", "e7"]
    assert ids(doc(rq, *m, "--operation", "upload")) == ["e1", "e5"]
    assert ids(doc(rq, *m, "--user", "u1", "--order", "desc")) == ["e6", "e2", "e1"]
    d = doc(rq, *m, "--order", "desc", "--status", "failed", "--limit", "2")
    assert ids(d) == ["e6", "e4"] and (d["total_count"], d["has_more"]) == (3, True)
    # A filter value is a bound parameter, never SQL.
    assert ids(doc(rq, *m, "--endpoint", "/chat' OR '1'='1")) == []
    rows = list(csv.DictReader(io.StringIO(rq(*m, "--status", "failed", "--order", "desc",
                                              "--format", "csv").stdout)))
    assert [r["event_id"] for r in rows] == ["e6", "e4", "e3"]
    # With a range too: the filters and the order still apply (the 3rd: e4 e5 e6 e7).
    d = doc(rq, *m, "--from", "2026-03-03", "--to", "2026-03-04", "--status", "failed",
            "--order", "desc")
    assert ids(d) == ["e6", "e4"] and d["range"]["from"] == "2026-03-03T00:00:00+00:00"


def test_log_order_ties_broken_by_event_id(cli, tmp_path: Path) -> None:
    same = ("event_id,timestamp,user_id,status_code\n"
            "b,2026-03-02T10:00:00Z,u1,200\na,2026-03-02T10:00:00Z,u1,200\n"
            "c,2026-03-02T10:00:00Z,u1,200\n")
    assert cli("ingest", write(tmp_path / "s.csv", same), "--owner", "o", "--product", "P",
               "-q").exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0

    def order(*a: str) -> list[str]:
        return ids(cli("report", "-c", "c", "--as-of", AS_OF, "--view", "log", *a,
                       "--format", "json").json())

    assert order() == ["a", "b", "c"]
    assert order("--order", "desc") == ["c", "b", "a"]


def test_log_only_options_are_refused_elsewhere(rq) -> None:
    for option, value in (("--status", "ok"), ("--order", "desc"), ("--endpoint", "/x"),
                          ("--operation", "y")):
        r = rq("--view", "daily", option, value, code=2)
        assert f"{option} applies only to --view log" in r.stderr
    r = rq("--view", "log", "--status", "maybe", code=2)
    assert "ok, failed" in r.stderr
    r = rq("--view", "log", "--order", "up", code=2)
    assert "asc, desc" in r.stderr


# ------------------------------------------------------------------- item 7: series by product

def test_series_by_product_per_day(rq) -> None:
    d = doc(rq, "--view", "series", "--group-by", "product", "--meter", "all_calls",
            "--meter", "tokens", "--meter", "users")
    got = [(r["start"][:10], r["group"], r["meters"]) for r in d["series"]]
    # all_calls counts failures; tokens and users (include_failed false) only e1 e2 e5 e7.
    # Day 03-02: upload e1 (1 call, 5 tokens, u1 new); chat e2 e3 (2 calls, tokens 10 of e2 —
    # e3 failed —, nobody new: u1 was first seen at e1, an upload).
    # Day 03-03: upload e5 (1 call, 80 tokens, u3 new); chat e4 e6 e7 (3 calls, tokens 320 of
    # e7, nobody new: u3 was first seen at e5, an upload, two hours before e7).
    assert got == [
        ("2026-03-02", "chat", {"all_calls": 2, "tokens": 10, "users": 0}),
        ("2026-03-02", "upload", {"all_calls": 1, "tokens": 5, "users": 1}),
        ("2026-03-03", "chat", {"all_calls": 3, "tokens": 320, "users": 0}),
        ("2026-03-03", "upload", {"all_calls": 1, "tokens": 80, "users": 1}),
    ]
    assert d["group_by"] == "product"
    rows = list(csv.DictReader(io.StringIO(rq("--view", "series", "--group-by", "operation",
                                              "--meter", "tokens", "--format", "csv").stdout)))
    assert [(r["start"][:10], r["group"], r["meters_tokens"]) for r in rows] == [
        ("2026-03-02", "message", "10"), ("2026-03-02", "upload", "5"),
        ("2026-03-03", "message", "320"), ("2026-03-03", "upload", "80")]
    table = rq("--view", "series", "--group-by", "product", "--meter", "tokens").stdout
    assert "chat" in table and "upload" in table and "415" in table  # 10 + 5 + 320 + 80


def test_series_group_by_values_and_refusals(rq) -> None:
    r = rq("--view", "series", "--group-by", "endpoint", code=2)
    assert "product, operation" in r.stderr


# ------------------------------------------------------------------------ property: Σ = total

EVENT = st.tuples(st.integers(0, 9 * 24 - 1), st.sampled_from(["u1", "u2", "u3"]),
                  st.sampled_from(["upload", "chat", ""]), st.sampled_from(["a", "b", ""]),
                  st.sampled_from([200, 429, 500]), st.sampled_from(["", "x", "y"]),
                  st.integers(0, 1000), st.sampled_from(["", "0.5", "1.25", "3"]))


def _csv(events: list) -> str:
    lines = ["event_id,timestamp,user_id,product,operation,endpoint,status_code,error_code,"
             "input_tokens,credits,response_time_ms"]
    for i, (h, u, p, op, s, err, tok, cr) in enumerate(events):
        ts = f"2026-03-{1 + h // 24:02d}T{h % 24:02d}:00:00Z"
        lines.append(f"p{i},{ts},{u},{p},{op},{op and '/' + op},{s},{err},{tok},{cr},"
                     f"{tok % 7 if tok % 3 else ''}")
    return "\n".join(lines) + "\n"


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(EVENT, min_size=1, max_size=25))
def test_groups_sum_to_totals(tmp_path_factory, events) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from usagectl.cli import app

    tmp = tmp_path_factory.mktemp("p")
    db = tmp / "p.duckdb"

    def run(*args: str) -> dict | str:
        r = CliRunner().invoke(app, ["--db", str(db), *map(str, args)], catch_exceptions=False)
        assert r.exit_code == 0, r.stdout
        return r.stdout

    run("ingest", write(tmp / "p.csv", _csv(events)), "--owner", "o", "-q")
    run("contracts", "load", write(tmp / "c.toml", CONTRACT), "-q")
    import json

    def report(*a: str) -> dict:
        return json.loads(run("report", "-c", "c", "--as-of", AS_OF, "--format", "json", *a))

    whole = report("--view", "requests")["summary"]
    for group in ("endpoint", "operation", "product", "user_id", "org_id", "error_code"):
        rows = report("--view", "requests", "--group-by", group)["rows"]
        for key in ("total", "successful", "failed", "response_times"):
            assert sum(r[key] for r in rows) == whole[key], (group, key)
        assert sum(Decimal(str(r["credits"])) for r in rows) == Decimal(str(whole["credits"]))
        codes: dict[str, int] = {}
        for r in rows:
            for c, n in r["failed_by_error_code"].items():
                codes[c] = codes.get(c, 0) + n
        assert codes == whole["failed_by_error_code"]
        counts = [r["total"] for r in rows]
        assert counts == sorted(counts, reverse=True)
    meters = ("--meter", "all_calls", "--meter", "calls", "--meter", "tokens", "--meter", "users")
    for bucket in ("hour", "day", "month"):
        plain = {r["start"]: r["meters"] for r in report("--view", "series", "--bucket", bucket,
                                                          *meters)["series"]}
        for group in ("product", "operation"):
            summed: dict[str, dict[str, int]] = {}
            for r in report("--view", "series", "--bucket", bucket, "--group-by", group,
                            *meters)["series"]:
                into = summed.setdefault(r["start"], {})
                for m, v in r["meters"].items():
                    into[m] = into.get(m, 0) + v
            starts = set(plain) | set(summed)
            for s in starts:
                for m in ("all_calls", "calls", "tokens", "users"):
                    assert summed.get(s, {}).get(m, 0) == plain.get(s, {}).get(m, 0), (
                        bucket, group, s, m)


def test_the_views_doc_examples_are_the_readme_s_which_run() -> None:
    """docs/requests.md shows the README's examples (tests/test_docs.py runs those)."""
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    doc = (REPO / "docs" / "requests.md").read_text(encoding="utf-8")
    examples = [line for line in doc.splitlines() if line.startswith("$ usagectl")]
    assert len(examples) >= 3 and all(e in readme for e in examples)  # more views add theirs
    for key in ("success_rate", "failed_by_error_code", "avg_response_time_ms", "response_times",
                "credits", "group_by", "total_count", "has_more", "`group`", "`start`"):
        assert key in doc


def test_the_filtered_log_stays_streamed(rq, db_path: Path) -> None:
    """The filters and the order are in the one streamed query: with ``batch_size`` the events
    are still an iterator over DuckDB's pending result, and equal to the listed events."""
    from collections.abc import Iterator

    from usagectl.reports.report import ViewOptions, build_view
    from usagectl.reports.window import open_window
    from usagectl.store.db import connect

    opts = ViewOptions(meters=["all_calls"], status="failed", order="desc", endpoint="/chat")
    con = connect(db_path, read_only=True)
    try:
        window = open_window(con, "c", None, AS_OF)
        whole = build_view(con, window, "log", opts)
        streamed = build_view(con, window, "log", opts, batch_size=1)
        assert isinstance(streamed["events"], Iterator)
        events = list(streamed["events"])
    finally:
        con.close()
    # Failed /chat events, newest first: e6 (03-03 11:00), e4 (03-03 09:00), e3 (03-02 12:00).
    assert [e["event_id"] for e in events] == ["e6", "e4", "e3"] == ids(whole)
    assert events == whole["events"]
