"""`make bench`: usagectl against the bare DuckDB underneath it, written to docs/benchmarks.md.

Benchmarks are not tests: they measure and report, they never assert times or memory. The report
starts with the machine (cores, memory, versions, load average before and after), then one table
per section: usagectl's median seconds, its peer's, the ratio, issue 11's target and whether it
was met, and the peak RSS of each side. Sections (``--only``): ingest (CSV, JSON Lines, Parquet
and a re-ingest), geo (GeoParquet, GeoJSON), reports (consolidated, users, series, top), export
(log JSON/CSV and ``export``: memory), serve (p50/p90/p99 latency of a running ``usagectl
serve``'s ``summary`` and ``usage`` routes against the same query on a warm DuckDB connection,
``serve_bench.py``: ``--serve-requests``, ``--serve-warmup``, ``--serve-clients``), startup,
and area (the unique-area scaling curve as a PNG beside the report). ``area-detail`` (issue 3's full unique-area section, ``area_scale.py``) and
``spark`` (``report --engine spark`` on ``local[2]`` against the local engine, ``spark_bench.py``:
``--spark-polygons``, ``--spark-rows``, ``--spark-master``, ``--spark-warmup``) run only when
named.

The default run (10M events, 1M + 100k polygons, 3 runs after a warm-up, the curve at 10k, 100k
and 1M) takes about an hour on a 2-core machine; the plan and its estimate are printed first
(``--plan`` prints them and stops). ``--quick`` is a few minutes: 100k events, 10k + 5k
polygons, one run, no curve.

Usage::

    make bench                                   # the full run, writes docs/benchmarks.md
    make bench BENCH_ARGS="--quick --output /tmp/bench/benchmarks.md"
    .venv/bin/python benchmarks/run.py --plan
    .venv/bin/python benchmarks/run.py --only reports,export --rows 1000000 --output /tmp/b.md
    .venv/bin/python benchmarks/run.py --only serve --update   # serve latency at 10M, ~20 min
    .venv/bin/python benchmarks/run.py --only serve --quick --output /tmp/serve.md  # ~1 min
    .venv/bin/python benchmarks/run.py --only spark --update   # the Spark engine, ~20 min
    .venv/bin/python benchmarks/run.py --only spark --quick --output /tmp/spark.md  # ~2-3 min
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import area_scale  # noqa: E402 — the benchmark modules beside this file
import harness  # noqa: E402
import serve_bench  # noqa: E402
import spark_bench  # noqa: E402

EXTRA_SECTIONS = ("area-detail", "spark")
QUICK = {"rows": 100_000, "polygons": 10_000, "geojson_polygons": 5_000, "runs": 1,
         "startup_runs": 5, "skip": ["area"]}


def _meminfo_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _usagectl_limit() -> str:
    try:
        from usagectl.store.db import DEFAULT_MEMORY_LIMIT
        from usagectl.store.ingest import INGEST_MEMORY_LIMIT
    except ImportError:
        return "unknown"
    return f"{DEFAULT_MEMORY_LIMIT} (reports), {INGEST_MEMORY_LIMIT} (ingest)"


def machine_description() -> list[str]:
    import duckdb
    import pyarrow

    try:
        from usagectl import __version__ as usagectl_version
    except ImportError:
        usagectl_version = "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {cores} cores (`nproc`), {_cpu_model()}",
        f"- Memory: {_meminfo_gib()}",
        f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"PyArrow {pyarrow.__version__}, usagectl {usagectl_version}",
        f"- DuckDB threads: {os.environ.get('USAGECTL_THREADS') or 'default (one per core)'}; "
        "memory_limit: usagectl "
        f"{os.environ.get('USAGECTL_MEMORY_LIMIT') or _usagectl_limit() + ' (its defaults)'}, "
        "the peers DuckDB's "
        "default (80 % of RAM)",
        "- usagectl's bytecode compiled before measuring (`compileall`, as installing a wheel "
        "does)",
    ]


def compile_bytecode() -> None:
    """Compile usagectl's modules to bytecode before anything is measured, as installing a wheel
    does. An editable install writes the bytecode on its first run, unless
    ``PYTHONDONTWRITEBYTECODE`` is set (it is in some shells and containers): then every process
    would compile ~50 modules from source again (~70 ms of start-up, measured)."""
    import compileall

    compileall.compile_dir(str(ROOT / "usagectl"), quiet=1)


def _fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)



def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def parse_sections(only: str | None, skip: str | None) -> list[str]:
    """The sections to run, in their fixed order, from ``--only`` and ``--skip``.

    Raises ValueError naming the valid values for an unknown one.
    """
    valid = (*harness.SECTIONS, *EXTRA_SECTIONS)

    def split(text: str | None) -> list[str]:
        names = [x.strip() for x in (text or "").split(",") if x.strip()]
        bad = [x for x in names if x not in valid]
        if bad:
            raise ValueError(f"unknown section {', '.join(bad)}: valid are {', '.join(valid)}")
        return names

    chosen = split(only) or list(harness.SECTIONS)
    dropped = set(split(skip))
    return [s for s in valid if s in chosen and s not in dropped]


def load_line(before: tuple[float, float, float], after: tuple[float, float, float],
              cores: int) -> str:
    busy = max(before[0], after[0], after[1]) > cores
    return (f"- Load average (1, 5, 15 min): {_fmt_load(before)} before, {_fmt_load(after)} "
            "after" + (" — **other work was running on this machine; times are inflated**"
                       if busy else ""))


def _measured(c) -> str:  # type: ignore[no-untyped-def]
    """What a comparison's target is judged on: the peak RSS, or the ratio (difference)."""
    if c.target.kind == "rss":
        return f"peak RSS {harness.fmt_mib(c.ours.peak_rss_kib)} MiB"
    return c.ratio_text()


def target_summary(sections: list) -> str:  # type: ignore[type-arg]
    return summary_from_tables("\n\n".join(harness.comparison_table(s.comparisons)
                                           for s in sections if s.comparisons))


_TABLE_HEAD = "| work | usagectl s | peer s | ratio | target | result |"


def summary_from_tables(markdown: str) -> str:
    """Targets met, missed and not measured, read from every comparison table in ``markdown``
    (so that sections kept by ``--update`` count as well as the ones just measured)."""
    met, missed, unknown = [], [], []
    in_table = False
    for line in markdown.splitlines():
        if line.startswith(_TABLE_HEAD):
            in_table = True
            continue
        if not in_table or line.startswith("| ---"):
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        work, _ours, _peer, ratio_text, target, result, ours_rss = (
            c.strip() for c in line.strip("|").split(" | ")[:7])
        measured = f"peak RSS {ours_rss} MiB" if target.startswith("peak RSS") else ratio_text
        if result == "met":
            met.append(work)
        elif result == "**missed**":
            missed.append(f"{work} ({measured}, target {target})")
        elif target != "–":
            unknown.append(work)
    parts = [f"Targets met: {len(met)} of {len(met) + len(missed) + len(unknown)}."]
    if missed:
        parts.append("Missed: " + "; ".join(missed) + ".")
    if unknown:
        parts.append("Not measured (a side failed): " + "; ".join(unknown) + ".")
    return " ".join(parts)


#: How each section's heading starts, to find it again in an earlier report (``--update``).
SECTION_HEADINGS = {"ingest": "## Ingest: ", "geo": "## Ingest of polygons",
                    "reports": "## Reports: ", "export": "## Log export: ",
                    "serve": "## Serve: ", "startup": "## Start-up", "area": "## Unique-area report: scaling curve",
                    "area-detail": "## Unique area at scale", "spark": "## Spark engine"}
_KEPT = "_Kept from an earlier run"


def merge_sections(old: str, new: dict[str, str]) -> dict[str, str]:
    """``--update``: the sections just measured (``new``, key → Markdown) and those of the
    earlier report ``old`` that this run did not measure, in the report's fixed order. A kept
    section gets a line naming the run that measured it (once: kept again, it keeps it)."""
    blocks: list[str] = []
    for line in old.splitlines(keepends=True):
        if line.startswith("## ") or not blocks:
            blocks.append("")
        blocks[-1] += line
    date = run = "?"
    for line in old.splitlines():
        if line.startswith("- Date: "):
            date = line[len("- Date: "):]
        elif line.startswith("- This run: "):
            run = line[len("- This run: "):]
    kept: dict[str, str] = {}
    for block in blocks:
        key = next((k for k, h in SECTION_HEADINGS.items() if block.startswith(h)), None)
        if key is None or key in new:
            continue
        if _KEPT not in block:
            head, _, rest = block.partition("\n")
            block = (f"{head}\n\n{_KEPT} ({date}, {run}): the latest run did not measure "
                     f"this section._\n{rest}")
        kept[key] = block
    return {k: new.get(k) or kept[k] for k in SECTION_HEADINGS if k in new or k in kept}


def section_markdown(sec) -> str:  # type: ignore[no-untyped-def]
    parts = [f"## {sec.title}", "", sec.intro, ""]
    if sec.comparisons:
        parts += [harness.comparison_table(sec.comparisons), ""]
    parts += [n + "\n" for n in sec.notes]
    if sec.comparisons:
        parts += ["What ran:", "", harness.details(sec.comparisons), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--rows", type=int, help="token events for ingest, reports and export "
                    "(default 10,000,000; --quick 100,000)")
    ap.add_argument("--polygons", type=int, help="polygons of the GeoParquet ingest "
                    "(default 1,000,000; --quick 10,000)")
    ap.add_argument("--geojson-polygons", type=int, help="polygons of the GeoJSON ingest "
                    "(default 100,000; --quick 5,000)")
    ap.add_argument("--runs", type=int, help="measured runs per side, after the warm-up; the "
                    "median is reported (default 3; --quick 1)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs per side (default 1)")
    ap.add_argument("--ingest-runs", type=int, help="measured runs of the CSV, JSON Lines and "
                    "Parquet ingests and the re-ingest (default: --runs); each takes minutes at "
                    "10M rows")
    ap.add_argument("--ingest-warmup", type=int, help="warm-up runs of those ingests (default: "
                    "--warmup)")
    ap.add_argument("--export-runs", type=int, default=1,
                    help="measured runs of each log export, without a warm-up (default 1: the "
                    "target there is peak memory, and a 10M-event log export takes minutes)")
    ap.add_argument("--startup-runs", type=int, help="measured runs of each start-up command "
                    "(default 10; --quick 5)")
    ap.add_argument("--area-sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                    help="polygons per point of the unique-area curve (default: %(default)s)")
    ap.add_argument("--area-timeout", type=float, default=600.0,
                    help="seconds per process of the curve before it counts as timed out "
                         "(default: %(default)s)")
    ap.add_argument("--area-detail-sizes", type=int, nargs="+", default=list(area_scale.SIZES),
                    help="event counts of the area-detail section (default: %(default)s)")
    ap.add_argument("--spark-polygons", type=int, nargs="+",
                    help="polygons of each unique-area data set of the spark section (default "
                         f"{' '.join(map(str, spark_bench.DEFAULT_POLYGONS))}; --quick "
                         f"{' '.join(map(str, spark_bench.QUICK_POLYGONS))}; 0 for none)")
    ap.add_argument("--spark-rows", type=int,
                    help=f"token events of the spark section (default {spark_bench.DEFAULT_ROWS:,}"
                         f"; --quick {spark_bench.QUICK_ROWS:,}; 0 for none)")
    ap.add_argument("--spark-master", default=spark_bench.DEFAULT_MASTER,
                    help="the spark section's --spark-master (default: %(default)s)")
    ap.add_argument("--spark-warmup", type=int,
                    help="warm-up runs per side in the spark section (default: --warmup; "
                         "--quick 0); measured runs are --runs")
    ap.add_argument("--serve-requests", type=int, default=serve_bench.DEFAULT_REQUESTS,
                    help="measured requests per route of the serve section, sequential and "
                         "again over the concurrent clients (default: %(default)s)")
    ap.add_argument("--serve-warmup", type=int, default=serve_bench.DEFAULT_WARMUP,
                    help="warm-up requests per route of the serve section (default: "
                         "%(default)s)")
    ap.add_argument("--serve-clients", type=int, default=serve_bench.DEFAULT_CLIENTS,
                    help="concurrent clients of the serve section's second phase; 1 for none "
                         "(default: %(default)s)")
    ap.add_argument("--only", help="comma-separated sections: "
                    + ", ".join((*harness.SECTIONS, *EXTRA_SECTIONS))
                    + f" (default: {','.join(harness.SECTIONS)})")
    ap.add_argument("--skip", help="comma-separated sections not to run")
    ap.add_argument("--quick", action="store_true",
                    help="a few minutes: 100k events, 10k + 5k polygons, 1 run, no area curve "
                         "(explicit options still win)")
    ap.add_argument("--reports-db", choices=("ingest", "insert"), default="ingest",
                    help="the reports' database: the one the CSV ingest benchmark wrote "
                         "(default; falls back to insert when ingest is not run or fails), or "
                         "a direct DuckDB INSERT into usagectl's schema")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="seconds per measured process (default: %(default)s)")
    ap.add_argument("--mem-cap", type=float, default=4096.0,
                    help="MiB of RSS at which a measured process is killed and recorded as "
                         "such (default: %(default)s)")
    ap.add_argument("--spatial-venv", type=Path, default=None,
                    help="virtual environment with duckdb + duckdb-extension-spatial, created "
                         "when missing (default: $TMPDIR/usagectl-spatial-venv)")
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md",
                    help="report file; the curve's PNG goes beside it as area-scaling.png "
                         "(default: docs/benchmarks.md)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the generated files and databases go (default: temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--plan", action="store_true", help="print the plan and its estimate, stop")
    ap.add_argument("--update", action="store_true",
                    help="replace only the sections this run measures in --output; keep the "
                         "others, each labelled with the run that measured it")
    args = ap.parse_args(argv)
    try:
        sections = parse_sections(args.only, ",".join(filter(None, [
            args.skip, ",".join(QUICK["skip"]) if args.quick and not args.only else ""])))
    except ValueError as exc:
        ap.error(str(exc))
    full = {"rows": 10_000_000, "polygons": 1_000_000, "geojson_polygons": 100_000, "runs": 3,
            "startup_runs": 10}
    for key, value in full.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK[key] if args.quick else value)
    for key in ("rows", "runs", "startup_runs"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be at least 1")
    if args.spark_polygons is None:
        args.spark_polygons = list(spark_bench.QUICK_POLYGONS if args.quick
                                   else spark_bench.DEFAULT_POLYGONS)
    args.spark_polygons = [n for n in args.spark_polygons if n > 0]
    if args.spark_rows is None:
        args.spark_rows = spark_bench.QUICK_ROWS if args.quick else spark_bench.DEFAULT_ROWS
    if args.spark_warmup is None:
        args.spark_warmup = 0 if args.quick else args.warmup
    if args.spark_rows < 0 or args.spark_warmup < 0:
        ap.error("--spark-rows and --spark-warmup must be 0 or more")
    if args.serve_requests < 1 or args.serve_warmup < 0 or args.serve_clients < 1:
        ap.error("--serve-requests and --serve-clients must be at least 1, --serve-warmup 0 "
                 "or more")

    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    plan = harness.estimate_plan(rows=args.rows, polygons=args.polygons,
                                 geojson_polygons=args.geojson_polygons, runs=args.runs,
                                 warmup=args.warmup, startup_runs=args.startup_runs,
                                 area_sizes=args.area_sizes, area_timeout=args.area_timeout,
                                 only=sections, reports_from_ingest=args.reports_db == "ingest",
                                 export_runs=args.export_runs, ingest_runs=args.ingest_runs,
                                 ingest_warmup=args.ingest_warmup,
                                 serve_requests=args.serve_requests,
                                 serve_warmup=args.serve_warmup,
                                 serve_clients=args.serve_clients)
    if "spark" in sections:
        plan += spark_bench.estimate(polygons=args.spark_polygons, rows=args.spark_rows,
                                     runs=args.runs, warmup=args.spark_warmup)
    estimate = sum(s for _, s in plan)
    print("Plan (sections: " + ", ".join(sections) + "):\n" + harness.plan_text(plan),
          file=sys.stderr, flush=True)
    if "area-detail" in sections:
        print("  area-detail: issue 3's section at "
              + ", ".join(f"{n:,}" for n in args.area_detail_sizes)
              + " events (about 20 min at 200k + 1M), not in the total", file=sys.stderr)
    if args.plan:
        return 0

    import speed

    compile_bytecode()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine = machine_description()
    load_before = os.getloadavg()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="usagectl-bench-", dir=args.workdir))
    opts = speed.Options(rows=args.rows, polygons=args.polygons,
                         geojson_polygons=args.geojson_polygons, runs=args.runs,
                         warmup=args.warmup, startup_runs=args.startup_runs,
                         timeout=args.timeout, cap_mib=args.mem_cap, workdir=work,
                         reports_from=args.reports_db, export_runs=args.export_runs,
                         ingest_runs=args.ingest_runs, ingest_warmup=args.ingest_warmup, log=log)
    done: list = []
    problems: list[str] = []
    extra_md: dict[str, str] = {}

    def attempt(name: str, fn):  # type: ignore[no-untyped-def]
        import traceback

        log(f"section {name}")
        try:
            return fn()
        except Exception as exc:  # a benchmark reports its failures; it does not stop
            log(traceback.format_exc())
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    try:
        files: dict[str, Path] = {}
        if any(s in sections for s in ("ingest", "reports", "export", "serve")):
            import events_gen

            formats = ("csv", "jsonl", "parquet") if "ingest" in sections else ("csv",)
            files = attempt("generate", lambda: events_gen.write(
                args.rows, work / "events", formats, log=log)) or {}
        kept = None
        if "ingest" in sections and files:
            got = attempt("ingest", lambda: speed.ingest_section(opts, files))
            if got:
                done.append(got[0])
                kept = got[1]
            for fmt in ("jsonl", "parquet"):
                if fmt in files:
                    files[fmt].unlink(missing_ok=True)
        if "geo" in sections:
            sec = attempt("geo", lambda: speed.geo_section(opts))
            if sec:
                done.append(sec)
        if any(s in sections for s in ("reports", "export", "serve")) and files:
            got = attempt("reports database", lambda: speed.reports_db(opts, files, kept))
            if got:
                db, how = got
                if "reports" in sections:
                    sec = attempt("reports", lambda: speed.reports_section(opts, db, how))
                    if sec:
                        done.append(sec)
                if "export" in sections:
                    sec = attempt("export", lambda: speed.export_section(opts, db, how))
                    if sec:
                        done.append(sec)
                if "serve" in sections:
                    sec = attempt("serve", lambda: serve_bench.serve_section(
                        opts, db, how, requests=args.serve_requests, warmup=args.serve_warmup,
                        clients=args.serve_clients))
                    if sec:
                        done.append(sec)
        if "startup" in sections:
            sec = attempt("startup", lambda: speed.startup_section(opts))
            if sec:
                done.append(sec)
        if "area" in sections:
            import area_curve

            png = args.output.parent / "area-scaling.png"

            def curve() -> str:
                results, note = area_curve.run_curve(args.area_sizes, timeout=args.area_timeout,
                                                     workdir=work, spatial_venv=args.spatial_venv,
                                                     keep=args.keep, log=log)
                area_curve.plot(results, png, args.area_timeout)
                log(f"wrote {png}")
                return area_curve.markdown(results, png.name, args.area_timeout, note)

            md = attempt("area", curve)
            if md:
                extra_md["area"] = md
        if "area-detail" in sections:
            res = attempt("area-detail", lambda: area_scale.run_benchmark(
                args.area_detail_sizes, timeout=args.timeout, workdir=work,
                spatial_venv=args.spatial_venv, keep=args.keep, log=log))
            if res:
                extra_md["area-detail"] = area_scale.markdown_section(res)
        if "spark" in sections:
            md = attempt("spark", lambda: spark_bench.run_section(
                polygons=args.spark_polygons, rows=args.spark_rows, master=args.spark_master,
                runs=args.runs, warmup=args.spark_warmup, timeout=args.timeout, workdir=work,
                log=log))
            if md:
                extra_md["spark"] = md
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    total = time.monotonic() - started
    load_after = os.getloadavg()
    options = (f"--rows {args.rows} --polygons {args.polygons} --geojson-polygons "
               f"{args.geojson_polygons} --runs {args.runs} --warmup {args.warmup} "
               f"--startup-runs {args.startup_runs} --export-runs {args.export_runs} "
               + (f"--ingest-runs {args.ingest_runs} " if args.ingest_runs is not None else "")
               + (f"--ingest-warmup {args.ingest_warmup} " if args.ingest_warmup is not None
                  else "")
               + f"--only {','.join(sections)}"
               + (f" --serve-requests {args.serve_requests} --serve-warmup {args.serve_warmup} "
                  f"--serve-clients {args.serve_clients}" if "serve" in sections else "")
               + (" --area-sizes " + " ".join(map(str, args.area_sizes))
                  + f" --area-timeout {args.area_timeout:g}" if "area" in sections else "")
               + (" --spark-polygons " + " ".join(map(str, args.spark_polygons or [0]))
                  + f" --spark-rows {args.spark_rows} --spark-master {args.spark_master} "
                  f"--spark-warmup {args.spark_warmup}" if "spark" in sections else ""))
    measured = {s.key: section_markdown(s) for s in done} | extra_md
    if args.update and args.output.exists():
        blocks = merge_sections(args.output.read_text(encoding="utf-8"), measured)
    else:
        blocks = {k: measured[k] for k in SECTION_HEADINGS if k in measured}
    report = "\n".join([
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run.py`); do not edit by hand. Benchmarks measure "
        "and report; they are not tests and assert nothing. Each usagectl command is compared "
        "with its bare peer (DuckDB, or geopandas for polygons) in the same run, back to back: "
        f"{_count(args.warmup, 'warm-up run')} of each side, then "
        f"{_count(args.runs, 'measured run')} alternating the two; the tables give each side's median, the ratio, issue 11's target and whether "
        "it was met, and the largest peak RSS of the measured runs (`/usr/bin/time -v`, "
        "\"Maximum resident set size\" of the largest process). Every command is a new process, "
        "so start-up is included on both sides. The ratios are what to read: absolute seconds "
        "move with the load of the machine.",
        "",
        "## Machine",
        "",
        *machine,
        f"- This run: `benchmarks/run.py {options}`",
        f"- Whole benchmark run: {total / 60:.1f} min (estimated {estimate / 60:.1f} min)",
        load_line(load_before, load_after, cores or 1),
        "",
        "## Summary",
        "",
        summary_from_tables("\n".join(blocks.values())),
        "",
        *([f"Sections that failed: {'; '.join(problems)}", ""] if problems else []),
        *blocks.values(),
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(report)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
