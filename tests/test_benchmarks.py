"""The benchmark harness's own helpers (benchmarks/): medians, ratios, targets, tables, the plan,
the generators at tiny sizes. Benchmarks measure; these tests never assert a time."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import area_curve  # noqa: E402
import events_gen  # noqa: E402
import harness  # noqa: E402
import run as bench_run  # noqa: E402
from harness import Comparison, Run, Side, Target  # noqa: E402

PY = sys.executable


def test_median_of_odd_even_and_no_values():
    assert harness.median([3.0, 1.0, 2.0]) == 2.0
    assert harness.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert harness.median([]) is None


def test_ratio_needs_both_sides_and_a_positive_peer():
    assert harness.ratio(3.0, 1.5) == 2.0
    assert harness.ratio(None, 1.0) is None
    assert harness.ratio(1.0, 0.0) is None


@pytest.mark.parametrize(("target", "ours", "peer", "rss_kib", "verdict"), [
    (Target("ratio", 2.0), 2.0, 1.0, None, "met"),
    (Target("ratio", 2.0), 2.01, 1.0, None, "missed"),
    (Target("ratio", 2.0), None, 1.0, None, "–"),
    (Target("delta", 0.15), 0.25, 0.10, None, "met"),
    (Target("delta", 0.15), 0.30, 0.10, None, "missed"),
    (Target("rss", 500), 9.0, 1.0, 500 * 1024, "met"),
    (Target("rss", 500), 1.0, 9.0, 501 * 1024, "missed"),
    (Target("rss", 500), 1.0, 1.0, None, "–"),
    (Target(), 5.0, 1.0, 1, "–"),
])
def test_target_verdicts(target, ours, peer, rss_kib, verdict):
    assert target.judge(ours, peer, rss_kib) == verdict


def test_a_side_with_a_failed_run_has_no_median():
    side = Side("x", [Run(seconds=1.0, exit_code=0), Run(seconds=9.0, exit_code=1)])
    assert side.median_s is None
    assert Side("x", [Run(seconds=1.0, exit_code=0), Run(seconds=3.0, exit_code=0)]).median_s == 2


def test_fmt_seconds_keeps_three_significant_digits():
    assert [harness.fmt_s(x) for x in (0.2154, 3.214, 45.66, 1234.4, None)] == [
        "0.215", "3.21", "45.7", "1,234", "–"]


def test_comparison_table_rows():
    ok = Comparison("ingest CSV", Side("u", [Run(4.0, 300 * 1024, 0)]),
                    Side("p", [Run(1.0, 100 * 1024, 0)]), Target("ratio", 2.0))
    killed = Comparison("log JSON", Side("u", [Run(9.0, 4100 * 1024, -9, capped=True)]),
                        Side("p", [Run(1.0, 90 * 1024, 0)]), Target("rss", 500))
    startup = Comparison("--version", Side("u", [Run(0.3, 50 * 1024, 0)]),
                         Side("p", [Run(0.1, 10 * 1024, 0)]), Target("delta", 0.15))
    lines = harness.comparison_table([ok, killed, startup]).splitlines()
    assert lines[2] == ("| ingest CSV | 4.00 | 1.00 | 4.00× | ≤ 2× | **missed** | 300 | 100 |")
    assert lines[3] == ("| log JSON | killed at 4,100 MiB | 1.00 | – | peak RSS ≤ 500 MiB | "
                        "**missed** | 4,100 | 90 |")
    assert lines[4] == "| --version | 0.300 | 0.100 | +0.200 s | ≤ +0.15 s | **missed** | 50 | 10 |"


def test_target_summary_lists_misses_and_failures():
    sec = SimpleNamespace(comparisons=[
        Comparison("a", Side("", [Run(1.0, 1, 0)]), Side("", [Run(1.0, 1, 0)]), Target("ratio", 2)),
        Comparison("b", Side("", [Run(5.0, 1, 0)]), Side("", [Run(1.0, 1, 0)]), Target("ratio", 2)),
        Comparison("c", Side("", [Run(5.0, 1, 1)]), Side("", [Run(1.0, 1, 0)]), Target("ratio", 2)),
        Comparison("log", Side("", [Run(9.0, 740 * 1024, 0)]), Side("", [Run(1.0, 1, 0)]),
                   Target("rss", 500)),
    ])
    text = bench_run.target_summary([sec])
    assert text.startswith("Targets met: 1 of 4.")
    assert "Missed: b (5.00×, target ≤ 2×); log (peak RSS 740 MiB, target peak RSS ≤ 500 MiB)."\
        in text
    assert "Not measured (a side failed): c." in text


def _plan(**kw):
    args = dict(rows=10_000_000, polygons=1_000_000, geojson_polygons=100_000, runs=3, warmup=1,
                startup_runs=10, area_sizes=[10_000, 100_000, 1_000_000], area_timeout=600.0)
    args.update(kw)
    return harness.estimate_plan(**args)


def test_the_full_plan_fits_an_hour_and_the_quick_one_minutes():
    full = sum(s for _, s in _plan())
    quick = sum(s for _, s in _plan(rows=100_000, polygons=10_000, geojson_polygons=5_000,
                                     runs=1, startup_runs=5,
                                     only=[s for s in harness.SECTIONS if s != "area"]))
    assert 20 * 60 < full < 60 * 60
    assert quick < 5 * 60


def test_the_plan_lists_only_the_chosen_sections_and_caps_the_curve_at_its_timeout():
    names = [name for name, _ in _plan(only=["startup"])]
    assert names == ["start-up: 2 commands and `python -c pass` ×11 each"]
    slow = dict(_plan(only=["area"], area_sizes=[1_000_000], area_timeout=10_000))
    fast = dict(_plan(only=["area"], area_sizes=[1_000_000], area_timeout=60))
    assert fast["area curve at 1,000,000 polygons"] < slow["area curve at 1,000,000 polygons"]
    built = [n for n, _ in _plan(only=["reports"])]
    assert any(n.startswith("build the reports database") for n in built)
    reused = [n for n, _ in _plan(only=["ingest", "reports"])]
    assert not any(n.startswith("build the reports database") for n in reused)


def test_sections_keep_their_order_and_unknown_names_are_refused():
    assert bench_run.parse_sections("startup,ingest", None) == ["ingest", "startup"]
    assert bench_run.parse_sections(None, "area") == ["ingest", "geo", "reports", "export",
                                                      "serve", "startup"]
    assert bench_run.parse_sections("area-detail", None) == ["area-detail"]
    with pytest.raises(ValueError, match="unknown section report: valid are ingest, geo"):
        bench_run.parse_sections("report", None)


def test_every_format_holds_the_same_events(tmp_path):
    paths = events_gen.write(57, tmp_path / "ev")
    con = duckdb.connect()
    readers = {"csv": "read_csv", "jsonl": "read_json", "parquet": "read_parquet"}
    seen = {}
    for fmt, path in paths.items():
        assert events_gen.count_rows(path) == 57
        seen[fmt] = con.execute(
            f"SELECT list(event_id ORDER BY event_id), sum(input_tokens), sum(output_tokens), "
            f"sum(credits::DECIMAL(18, 4)), count(DISTINCT user_id) FROM {readers[fmt]}(?)",
            [str(path)]).fetchone()
    assert seen["csv"] == seen["jsonl"] == seen["parquet"]
    assert len(set(seen["csv"][0])) == 57


def test_polygons_as_geoparquet_and_geojson(tmp_path):
    import geopandas

    assert events_gen.write_polygons(40, tmp_path / "p.parquet", "geoparquet") == 40
    assert events_gen.write_polygons(30, tmp_path / "p.geojson", "geojson") == 30
    assert len(geopandas.read_parquet(tmp_path / "p.parquet")) == 40
    assert len(geopandas.read_file(tmp_path / "p.geojson")) == 30


def test_measure_records_timeouts_and_the_memory_cap():
    slow = harness.measure([PY, "-c", "import time; time.sleep(60)"], timeout=1.0)
    assert slow.timed_out and not slow.ok and "timed out" in slow.error
    hog = harness.measure([PY, "-c", "import time; b = bytearray(400 * 2**20); time.sleep(60)"],
                          timeout=50.0, cap_mib=150)
    assert hog.capped and not hog.timed_out and "memory cap" in hog.error
    fine = harness.measure([PY, "-c", "print(42)"], timeout=60.0)
    assert fine.ok and fine.stdout.strip() == "42" and fine.peak_rss_kib > 0


def test_a_timed_out_curve_point_sits_at_the_timeout():
    from area_scale import Timed

    point = area_curve._combine([Timed(cmd=[], seconds=3.0, exit_code=0, output={}),
                                 Timed(cmd=[], seconds=20.0, timed_out=True)], 20.0)
    assert point.timed_out and point.seconds == 20.0 and point.note == "timed out (20 s)"
    done = area_curve._combine([Timed(cmd=[], seconds=3.0, exit_code=0, output={}),
                                Timed(cmd=[], seconds=4.0, exit_code=0, output={})], 20.0)
    assert done.seconds == 7.0 and not done.timed_out


def test_the_curve_png_is_drawn_with_a_timed_out_point(tmp_path):
    pytest.importorskip("matplotlib")
    results = [area_curve.CurveSize(n, points={
        "usagectl": area_curve.Point(seconds=n / 1000),
        "naive": area_curve.Point(seconds=n / 100) if n < 10_000 else
        area_curve.Point(seconds=50.0, timed_out=True, note="timed out (50 s)"),
        "st": area_curve.Point(note="DuckDB spatial not available"),
    }) for n in (1_000, 10_000)]
    png = tmp_path / "curve.png"
    area_curve.plot(results, png, 50.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = area_curve.markdown(results, "curve.png", 50.0, "none")
    assert "![Seconds against polygons for the three methods](curve.png)" in md
    assert "| 10,000 | – | 10.0 | ≥ 50 (timed out) | failed: DuckDB spatial" in md


def test_the_fallback_database_reports_what_an_ingest_reports(tmp_path):
    """The reports benchmark's direct INSERT stands in for an ingest: same report, same events."""
    import json
    import subprocess

    import speed

    files = events_gen.write(300, tmp_path / "ev", ("csv",))
    opts = speed.Options(rows=300, polygons=0, geojson_polygons=0, runs=1, warmup=0,
                         startup_runs=1, timeout=120, cap_mib=2048, workdir=tmp_path,
                         reports_from="insert", log=lambda m: None)
    ingested = tmp_path / "ingested.duckdb"
    subprocess.run(speed._ingest_cmd(ingested, files["csv"]), check=True, capture_output=True)
    subprocess.run([*speed._usagectl(), "--db", str(ingested), "contracts", "load",
                    str(_contract(tmp_path)), "-q"], check=True, capture_output=True)
    inserted, how = speed.reports_db(opts, files, None)
    assert how.startswith("built by a direct DuckDB INSERT")

    def report(db, *view):
        out = subprocess.run([*speed._usagectl(), "--db", str(db), "report", "-c",
                              events_gen.CONTRACT_ID, *view, "--as-of", events_gen.AS_OF,
                              "--format", "json"], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    a, b = report(ingested), report(inserted)
    assert a["meters"] == b["meters"]
    assert [m["owner_total"] for m in a["meters"]] != [0, 0, 0]
    assert report(ingested, "--view", "users") == report(inserted, "--view", "users")


def _contract(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(events_gen.CONTRACT, encoding="utf-8")
    return path


def _old_report() -> str:
    return "\n".join([
        "# Benchmarks", "", "Intro.", "", "## Machine", "", "- Date: 2026-11-30 15:10 UTC",
        "- This run: `benchmarks/run.py --rows 10 --only ingest,startup`", "",
        "## Summary", "", "Targets met: 0 of 2.", "",
        "## Ingest: 10 token events", "", "Old ingest.", "",
        "| work | usagectl s | peer s | ratio | target | result | usagectl peak RSS MiB | "
        "peer peak RSS MiB |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |",
        "| ingest CSV | 4.00 | 1.00 | 4.00× | ≤ 2× | **missed** | 300 | 100 |", "",
        "## Start-up", "", "Old start-up.", "",
        "| work | usagectl s | peer s | ratio | target | result | usagectl peak RSS MiB | "
        "peer peak RSS MiB |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |",
        "| --version | 0.300 | 0.100 | +0.200 s | ≤ +0.15 s | **missed** | 50 | 10 |", "",
        "## Unique-area report: scaling curve", "", "Old curve.", ""])


def test_update_keeps_the_sections_not_run_and_labels_them():
    new = {"startup": "## Start-up\n\nNew start-up.\n"}
    blocks = bench_run.merge_sections(_old_report(), new)
    assert list(blocks) == ["ingest", "startup", "area"]
    assert blocks["startup"] == new["startup"]
    assert "Old ingest." in blocks["ingest"] and "Old curve." in blocks["area"]
    label = ("_Kept from an earlier run (2026-11-30 15:10 UTC, `benchmarks/run.py --rows 10 "
             "--only ingest,startup`): the latest run did not measure this section._")
    assert blocks["ingest"].splitlines()[2] == label
    # Kept twice: the label names the run that measured it, not the one that kept it.
    again = bench_run.merge_sections("## Machine\n\n- Date: later\n- This run: `x`\n\n"
                                     + blocks["ingest"], {})
    assert again["ingest"].count("_Kept from") == 1 and label in again["ingest"]


def test_the_summary_counts_every_table_of_the_merged_report():
    text = bench_run.summary_from_tables(_old_report())
    assert text == ("Targets met: 0 of 2. Missed: ingest CSV (4.00×, target ≤ 2×); --version "
                    "(+0.200 s, target ≤ +0.15 s).")


def _timed(seconds, ok=True, rss=100, pss=150, output=None):
    from area_scale import Timed

    return Timed(cmd=[], seconds=seconds, peak_rss_kib=rss * 1024, peak_tree_pss_kib=pss * 1024,
                 exit_code=0 if ok else 1, output=({} if output is None else output)
                 if ok else None, error="" if ok else "exit 1: 'boom'")


def test_the_spark_plan_is_off_by_default_and_quick_fits_minutes():
    import spark_bench

    assert "spark" not in bench_run.parse_sections(None, None)
    assert bench_run.parse_sections("spark", None) == ["spark"]
    quick = spark_bench.estimate(polygons=spark_bench.QUICK_POLYGONS, rows=spark_bench.QUICK_ROWS,
                                 runs=1, warmup=0)
    full = spark_bench.estimate(polygons=spark_bench.DEFAULT_POLYGONS,
                                rows=spark_bench.DEFAULT_ROWS, runs=3, warmup=1)
    assert [name.split(" (")[0] for name, _ in full] == [
        "spark: 100,000 polygons", "spark: 1,000,000 polygons", "spark: 10,000,000 events"]
    assert sum(s for _, s in quick) < 3 * 60 < sum(s for _, s in full)
    assert [n for n, _ in spark_bench.estimate(polygons=[], rows=0, runs=1, warmup=0)] == []


def test_spark_identical_text_names_the_reports_that_differ():
    import spark_bench

    assert spark_bench.identical_text({"spark run 1": True, "warm steady state": True}) == "yes"
    assert spark_bench.identical_text({"spark run 1": True, "warm first job": False}) == \
        "**no** (warm first job)"
    assert spark_bench.identical_text({"spark run 1": True, "warm first job": None}) == \
        "yes (1 of 2 compared)"
    assert spark_bench.identical_text({"spark run 1": None}) == "–"
    assert spark_bench.identical_text({}) == "–"


def test_spark_phases_table_rows():
    import spark_bench

    ok = spark_bench.Case(
        "unique_area, 10,000 polygons", "big",
        local=[_timed(2.0), _timed(4.0, rss=300, pss=320)],
        spark=[_timed(40.0, rss=900, pss=2000), _timed(30.0)],
        warm=_timed(50.0, rss=950, pss=2100, output={"up": 12.5, "reports": [20.0, 5.0]}),
        identical={"spark run 1": True, "warm first job": True, "warm steady state": True})
    broken = spark_bench.Case("sum, count, distinct; 100 token events", "tokens-2026",
                              local=[_timed(1.0)], spark=[_timed(9.0, ok=False)],
                              warm=_timed(3.0, ok=False), identical={"spark run 1": None})
    lines = spark_bench.phases_table([ok, broken]).splitlines()
    assert lines[0] == spark_bench.PHASES_HEAD
    assert lines[2] == ("| unique_area, 10,000 polygons | 3.00 | 35.0 | 12.5 | 20.0 | 5.00 | "
                        "1.67× | yes | 300 / 320 | 950 / 2,100 |")
    assert lines[3] == ("| sum, count, distinct; 100 token events | 1.00 | failed (exit 1) | – | "
                        "– | – | – | – | 100 / 150 | 100 / 150 |")
    md = spark_bench.markdown([ok, broken], master="local[2]", runs=2, warmup=1,
                              area_engine_note="Area note.")
    assert md.startswith("## Spark engine: `report --engine spark` on `local[2]`")
    assert md.startswith(bench_run.SECTION_HEADINGS["spark"])
    assert "Spark: exit 1: 'boom'." in md and "Area note." in md
    # No target: the summary counts no Spark row.
    assert bench_run.summary_from_tables(md) == "Targets met: 0 of 0."


def test_the_spark_sizes_follow_quick_and_the_options(capsys):
    assert bench_run.main(["--plan", "--only", "spark", "--quick"]) == 0
    steps = [line for line in capsys.readouterr().err.splitlines() if "spark:" in line]
    assert [line.split(" (")[0].strip() for line in steps] == [
        "spark: 10,000 polygons", "spark: 100,000 events"]
    assert "local ×1, Spark ×1" in steps[0]  # --quick: one run, no warm-up
    assert bench_run.main(["--plan", "--only", "spark", "--spark-polygons", "0",
                           "--spark-rows", "5000", "--runs", "2", "--spark-warmup", "1"]) == 0
    steps = [line for line in capsys.readouterr().err.splitlines() if "spark:" in line]
    assert len(steps) == 1 and "5,000 events" in steps[0] and "local ×3, Spark ×3" in steps[0]


def test_the_plan_counts_the_ingest_runs_asked_for():
    # --ingest-runs/--ingest-warmup set the runs of the CSV, JSON Lines and Parquet ingests and
    # the re-ingest; the estimate must follow them (it used --runs for everything).
    default = dict(_plan(only=["ingest"]))
    one = dict(_plan(only=["ingest"], ingest_runs=1, ingest_warmup=0))
    assert "ingest csv ×1 each side" in one
    assert one["ingest csv ×1 each side"] < default["ingest csv ×4 each side"] / 3
    assert one.keys() - {"ingest csv ×1 each side", "ingest jsonl ×1 each side",
                         "ingest parquet ×1 each side", "re-ingest csv ×1 each side"} \
        == default.keys() - {"ingest csv ×4 each side", "ingest jsonl ×4 each side",
                             "ingest parquet ×4 each side", "re-ingest csv ×4 each side"}


# ------------------------------------------------------------------------------ serve section


def test_percentiles_interpolate_between_the_closest_ranks():
    q = harness.percentiles([float(x) for x in range(10, 0, -1)], (0, 50, 90, 99, 100))
    assert q == pytest.approx({0: 1.0, 50: 5.5, 90: 9.1, 99: 9.91, 100: 10.0})
    assert harness.percentiles([7.0]) == {50: 7.0, 90: 7.0, 99: 7.0}
    assert harness.percentiles([]) is None


def test_percentiles_are_numpys_default_method():
    import numpy as np

    rng = np.random.default_rng(14)
    for n in (2, 3, 200, 1001):
        xs = rng.lognormal(size=n).tolist()
        got = harness.percentiles(xs, (1, 50, 90, 99))
        assert [got[p] for p in (1, 50, 90, 99)] == pytest.approx(
            np.percentile(xs, [1, 50, 90, 99]).tolist())


def test_serve_answers_must_be_200_and_identical_to_the_first():
    import serve_bench

    first = b'{"tokens_used": 5}'
    assert serve_bench.check_answers([200] * 3, [first] * 3, first) == "3 × 200, identical"
    assert serve_bench.check_answers([200, 200, 200], [first, b'{"tokens_used": 6}', first],
                                     first) == "**1 of 3 differ from the first answer**"
    assert serve_bench.check_answers([200, 503, 0, 503], [first, b"", b"", b""], first) == (
        "**3 of 4 not 200** (no answer ×1, 503 ×2)")
    # The floor's 401s: statuses only (each error carries its own request id).
    assert serve_bench.check_answers([401, 401], None, None, expect=401) == "2 × 401"
    assert serve_bench.check_answers([], [], None) == "no requests"


def test_serve_figures_are_compared_with_the_peers_row():
    import json

    import serve_bench

    summary = json.dumps({"meters": [{"owner_total": 120}, {"owner_total": 9},
                                     {"owner_total": 2}]}).encode()
    usage = json.dumps({"tokens_used": 120}).encode()
    row = ["120", "100", "20", "9", "2"]  # tokens, input, output, requests, users
    assert serve_bench.served_figures("summary", summary) == ["120", "9", "2"]
    assert serve_bench.peer_figures("summary", row) == ["120", "9", "2"]
    assert serve_bench.peer_figures("usage", ["120"]) == ["120"]
    assert serve_bench.figures_text(serve_bench.served_figures("usage", usage), ["120"]) == "yes"
    assert serve_bench.figures_text(["121"], ["120"]) == "**no** (usagectl ['121'], peer ['120'])"
    assert serve_bench.served_figures("usage", b'{"error": {}}') is None
    assert serve_bench.figures_text(None, ["120"]).startswith("not compared")


def test_serve_latency_table_rows():
    import serve_bench
    from serve_bench import Phase

    ms = [x / 1000 for x in range(1, 101)]  # 1 … 100 ms
    phases = [
        Phase("summary", "usagectl serve, 1 client", [x + 0.010 for x in ms], wall=10.0,
              answers="100 × 200, identical", rss_kib=200 * 1024),
        Phase("usage", "usagectl serve, 1 client", ms, wall=5.0, answers="100 × 200, identical",
              rss_kib=150 * 1024),
        Phase("usage", "usagectl serve, 1 client, no token (401: no database)", [0.001] * 4,
              wall=0.004, answers="4 × 401", rss_kib=150 * 1024, versus_peer=False),
        Phase("summary", "peer: one DuckDB query, warm connection", [x / 10 for x in ms],
              wall=0.505, answers="same figures as usagectl: yes", rss_kib=80 * 1024),
        Phase("summary", "peer: open read-only + the query + close, each time", [], wall=0.0,
              error="exit 1", rss_kib=80 * 1024, versus_peer=False),
    ]
    lines = serve_bench.latency_table(phases).splitlines()
    assert lines[0] == serve_bench.TABLE_HEAD
    # Each route's rows together, the peer's p50 (5.05 ms) dividing usagectl's (60.5 ms).
    assert lines[2] == ("| `GET /api/v2/usage/summary` | usagectl serve, 1 client | 100 | 60.5 | "
                        "100 | 109 | 110 | 10.0 | 12.0× | 100 × 200, identical | 200 |")
    assert lines[3] == ("| `GET /api/v2/usage/summary` | peer: one DuckDB query, warm connection "
                        "| 100 | 5.05 | 9.01 | 9.90 | 10.0 | 198.0 | – | same figures as "
                        "usagectl: yes | 80 |")
    assert lines[4] == ("| `GET /api/v2/usage/summary` | peer: open read-only + the query + "
                        "close, each time | 0 | – | – | – | – | – | – | – (exit 1) | 80 |")
    # No peer row for usage: no ratio; the 401 floor never gets one.
    assert lines[5].endswith("| 50.5 | 90.1 | 99.0 | 100 | 20.0 | – | 100 × 200, identical | 150 |")
    assert lines[6].startswith("| `GET /api/public/v1/usage/` | usagectl serve, 1 client, no token")
    assert "| 1,000.0 | – | 4 × 401 |" in lines[6]


def test_the_serve_plan_and_section_place():
    names = [n for n, _ in _plan(only=["serve"])]
    assert names[0].startswith("generate 10,000,000 events")
    assert names[1].startswith("build the reports database")
    assert names[2] == ("serve: 2 routes × (5 + 200 requests + 200 over 8 clients), and the "
                        "peer's queries")
    alone = dict(_plan(only=["serve"], serve_requests=50, serve_clients=1))
    assert "serve: 2 routes × (5 + 50 requests), and the peer's queries" in alone
    assert list(bench_run.SECTION_HEADINGS).index("serve") == \
        list(bench_run.SECTION_HEADINGS).index("export") + 1


def test_the_serve_section_measures_a_real_server(tmp_path):
    """The whole section on 300 events: a real `usagectl serve`, every answer a 200 identical
    to the first, the peer's figures the server's (no time is asserted)."""
    import serve_bench
    import speed

    files = events_gen.write(300, tmp_path / "ev", ("csv",))
    opts = speed.Options(rows=300, polygons=0, geojson_polygons=0, runs=1, warmup=0,
                         startup_runs=1, timeout=120, cap_mib=2048, workdir=tmp_path,
                         reports_from="insert", log=lambda m: None)
    db, how = speed.reports_db(opts, files, None)
    sec = serve_bench.serve_section(opts, db, how, requests=3, warmup=1, clients=2)
    assert sec.key == "serve" and sec.title == "Serve: request latency at 300 events"
    table = sec.notes[0].splitlines()
    rows = {tuple(c.strip() for c in line.strip("|").split(" | ")[:2]): line
            for line in table[2:]}
    for route in ("/api/v2/usage/summary", "/api/public/v1/usage/"):
        for side in ("usagectl serve, 1 client", "usagectl serve, 2 clients"):
            assert "| 3 × 200, identical |" in rows[(f"`GET {route}`", side)]
        assert "| same figures as usagectl: yes |" in rows[
            (f"`GET {route}`", "peer: one DuckDB query, warm connection")]
    assert "| 3 × 401 |" in rows[("`GET /api/public/v1/usage/`",
                                  "usagectl serve, 1 client, no token (401: no database)")]
    assert "1 connection (summary), 1 connection (usage)" in sec.notes[1]
    md = bench_run.section_markdown(sec)
    assert md.startswith(bench_run.SECTION_HEADINGS["serve"])
    assert bench_run.summary_from_tables(md) == "Targets met: 0 of 0."
