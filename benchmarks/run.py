"""`make bench`: run the benchmarks in benchmarks/ and write docs/benchmarks.md.

Benchmarks are not tests: they measure and report, they never assert times or memory. Each run
is on whatever machine `make bench` runs on, so the report starts with a description of that
machine (cores, memory, Python, DuckDB, date).

Two benchmarks:

- ``ingest_memory.py``: wall time and peak RSS of ``usagectl ingest`` at growing file sizes,
  plus a re-ingest of the largest file. The default size list takes about 10–15 minutes on a
  2-core machine; ``--sizes`` picks others, e.g. ``--sizes 100000 250000`` for a quick look
  (written elsewhere with ``--output``).
- ``area_scale.py``: the unique-area reports (consolidated, again, users, overlap, daily, after
  one more day) against a naive ``shapely.union_all`` and DuckDB spatial's ``ST_Union_Agg`` (in
  a separate virtual environment it creates), at ``--area-sizes`` events (default 200,000 and
  1,000,000; long at 1,000,000: every measured step has a timeout, ``--area-timeout``).
  ``--area-sizes`` with no value, or ``--skip-area``, skips it.

Usage::

    make bench
    .venv/bin/python benchmarks/run.py --sizes 100000 250000 --output /tmp/bench.md
    .venv/bin/python benchmarks/run.py --sizes 100000 --geometry-sizes --area-sizes 20000 \\
        --output /tmp/bench.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import area_scale  # noqa: E402 — the benchmark modules beside this file
import ingest_memory  # noqa: E402

SIZES = (250_000, 1_000_000, 2_500_000, 5_000_000)
GEOMETRY_SIZES = (250_000, 1_000_000)
GEOMETRY_FRACTION = 0.1
AREA_SIZES = area_scale.SIZES


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
        "memory_limit: DuckDB default (80 % of RAM)",
    ]


def _fmt_load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


def growth_summary(runs: list) -> str:
    """One measured sentence on how peak RSS moved with file size (no judgement, no assert)."""
    first = [r for r in runs if r.label == "first ingest"]
    if len(first) < 2:
        return ""
    lo, hi = first[0], first[-1]
    return (f"Measured: peak RSS went from {lo.peak_rss_kib / 1024:,.0f} MiB at {lo.rows:,} rows "
            f"to {hi.peak_rss_kib / 1024:,.0f} MiB at {hi.rows:,} rows "
            f"(×{hi.peak_rss_kib / max(lo.peak_rss_kib, 1):.1f} for ×{hi.rows / lo.rows:.0f} "
            "the rows).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                    help="row counts for the ingest benchmark (default: %(default)s)")
    ap.add_argument("--geometry-sizes", type=int, nargs="*", default=list(GEOMETRY_SIZES),
                    help="row counts for a second series with polygons; none to skip "
                         "(default: %(default)s)")
    ap.add_argument("--geometry-fraction", type=float, default=GEOMETRY_FRACTION,
                    help="in that series, the fraction of rows that are FIELDS_BOUNDARY events "
                         "with a WKT polygon (default: %(default)s)")
    ap.add_argument("--area-sizes", type=int, nargs="*", default=list(AREA_SIZES),
                    help="event counts for the unique-area benchmark; none to skip "
                         "(default: %(default)s)")
    ap.add_argument("--skip-area", action="store_true",
                    help="skip the unique-area benchmark")
    ap.add_argument("--area-timeout", type=float, default=area_scale.TIMEOUT_S,
                    help="seconds per measured step of the area benchmark before it is "
                         "recorded as timed out (default: %(default)s)")
    ap.add_argument("--spatial-venv", type=Path, default=None,
                    help="virtual environment for DuckDB spatial (duckdb + "
                         "duckdb-extension-spatial), created when missing "
                         "(default: $TMPDIR/usagectl-spatial-venv)")
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md",
                    help="report file (default: docs/benchmarks.md)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the temporary CSVs and databases go (default: temp folder)")
    args = ap.parse_args(argv)

    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    machine = machine_description()
    load_before = os.getloadavg()
    log("ingest_memory: sizes " + ", ".join(f"{n:,}" for n in args.sizes))
    runs = ingest_memory.run_benchmark(args.sizes, workdir=args.workdir, log=log)
    geo_runs = []
    if args.geometry_sizes:
        log(f"ingest_memory with {args.geometry_fraction:.0%} polygons: sizes "
            + ", ".join(f"{n:,}" for n in args.geometry_sizes))
        geo_runs = ingest_memory.run_benchmark(args.geometry_sizes, reingest=False,
                                               geometry_fraction=args.geometry_fraction,
                                               workdir=args.workdir, log=log)
    area_results = []
    if args.area_sizes and not args.skip_area:
        log("area_scale: sizes " + ", ".join(f"{n:,}" for n in args.area_sizes))
        area_results = area_scale.run_benchmark(args.area_sizes, timeout=args.area_timeout,
                                                workdir=args.workdir,
                                                spatial_venv=args.spatial_venv, log=log)
    total = time.monotonic() - started
    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = max(load_before[0], load_after[0], load_after[1]) > (cores or 1)
    load_line = (f"- Load average (1, 5, 15 min): {_fmt_load(load_before)} before, "
                 f"{_fmt_load(load_after)} after"
                 + (" — **other work was running on this machine; times are inflated**"
                    if busy else ""))
    geo_section = [
        "## Ingest with polygons",
        "",
        ingest_memory.markdown_report(geo_runs, args.geometry_fraction),
    ] if geo_runs else []
    area_section = [area_scale.markdown_section(area_results)] if area_results else []
    report = "\n".join([
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run.py`); do not edit by hand. Benchmarks measure "
        "and report; they are not tests and assert nothing. Numbers are from one run on the "
        "machine below and move by several percent between runs.",
        "",
        "## Machine",
        "",
        *machine,
        f"- Whole benchmark run: {total / 60:.1f} min",
        load_line,
        "",
        "## Ingest: time and peak memory against file size",
        "",
        "The rule: large inputs stream, so memory does not grow with file size.",
        "",
        growth_summary(runs),
        "",
        ingest_memory.markdown_report(runs, 0.0),
        *geo_section,
        *area_section,
    ])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(report)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
