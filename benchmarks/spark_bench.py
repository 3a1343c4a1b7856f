"""The ``spark`` section of ``make bench``: ``report --engine spark`` against the local engine.

For each data set — unique-area polygons (``area_gen.py``, contract ``big``; default 100k and
1M) and scalar token events (``events_gen.py``, contract ``tokens-2026`` with a sum, a count and
a distinct meter; default 10M) — on the same database, the same contract and the same
``--as-of``:

- the **local engine**: ``usagectl report -c C --as-of A --format json --out F`` (``runs``
  measured runs after ``warmup``);
- **Spark end to end**: the same command with ``--engine spark --spark-master local[2]``, each a
  new process, so Spark's start-up and its first job are inside;
- **Spark in a warm session**: one process (``spark_bench.py --internal-warm``) that opens one
  session with ``usagectl.engines.spark.spark_session`` (timed: *session up*), then runs the
  same report twice through the CLI's own entry point in that process, which reuses the active
  session: the first is the *first job* (Spark's code generation and the Python workers'
  start-up), the second the *steady state*.

Every report is written to a file and compared byte for byte with the local engine's (the
report JSON carries no timings). The stored per-tile area figures (``area_tiles``) are deleted
before every report, so that each one computes every tile: otherwise every report after the
first would only read the first one's results. Memory is measured on the whole process tree: the JVM is a
child of the Python process and Spark's Python workers are children of the JVM, so the table
gives the summed PSS of the tree (sampled every 0.25 s) beside the largest single process's peak
RSS (``/usr/bin/time -v``), as ``area_scale.run_timed`` measures them.

Benchmarks measure; nothing here asserts a time. The pure helpers (``estimate``,
``phases_table``, ``identical_text``) are tested in tests/test_benchmarks.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from area_scale import Timed, _usagectl, run_timed
from harness import fmt_mib, fmt_ratio, fmt_s, median, ratio

DEFAULT_MASTER = "local[2]"
DEFAULT_POLYGONS = (100_000, 1_000_000)
DEFAULT_ROWS = 10_000_000
QUICK_POLYGONS = (10_000,)
QUICK_ROWS = 100_000

#: Seconds on this 2-core machine (issue 12's feasibility study and the engine's own tests):
#: Spark's fixed costs, and per million polygons or events.
COST = {
    "spark_up": 15.0,          # JVM + session, local[2]
    "first_job": 15.0,         # the first job's warm-up (code generation, Python workers)
    "process": 1.5,            # a usagectl process's own start-up and database open
    "poly_gen_ingest": 36.0,   # area_gen + `usagectl ingest`, per 1M polygons
    "poly_report": 30.0,       # the unique-area report, per 1M polygons (either engine, for now)
    "poly_spark_extra": 3.0,   # exporting the window's events for Spark, per 1M polygons
    "events_gen_db": 5.0,      # CSV + the reports database by INSERT, per 1M events
    "events_local": 0.3,       # the local engine's report, per 1M events
    "events_spark": 3.0,       # export + Spark SQL, per 1M events
}


# ------------------------------------------------------------------------------ pure helpers


def estimate(*, polygons: Sequence[int], rows: int, runs: int, warmup: int
             ) -> list[tuple[str, float]]:
    """(step, estimated seconds) of the spark section, in the order it runs."""
    k = runs + warmup
    fixed = COST["spark_up"] + COST["first_job"]
    steps: list[tuple[str, float]] = []
    for n in polygons:
        m = n / 1e6
        local = COST["process"] + COST["poly_report"] * m
        spark = fixed + local + COST["poly_spark_extra"] * m
        steps.append((f"spark: {n:,} polygons (generate, ingest; local ×{k}, Spark ×{k}, "
                      "warm session ×1)",
                      COST["poly_gen_ingest"] * m + k * (local + spark) + spark + local))
    if rows > 0:
        m = rows / 1e6
        local = COST["process"] + COST["events_local"] * m
        spark = fixed + COST["process"] + COST["events_spark"] * m
        steps.append((f"spark: {rows:,} events (generate, database; local ×{k}, Spark ×{k}, "
                      "warm session ×1)",
                      COST["events_gen_db"] * m + k * (local + spark) + spark + local))
    return steps


@dataclass
class Case:
    """One data set: its runs on each side and the warm session's phases."""
    work: str
    contract: str
    local: list[Timed] = field(default_factory=list)
    spark: list[Timed] = field(default_factory=list)
    warm: Timed | None = None
    #: Each Spark report (``spark run 1``, ``warm first job``, …) → equal bytes to the local
    #: engine's, or None when one side has no output to compare.
    identical: dict[str, bool | None] = field(default_factory=dict)
    note: str = ""  # how the data was made, or why it was not measured

    @staticmethod
    def _median(runs: list[Timed]) -> float | None:
        # A side with a failed run has no median (as harness.Side): the survivors would flatter it.
        if not runs or not all(r.ok for r in runs):
            return None
        return median([r.seconds for r in runs])

    @property
    def local_s(self) -> float | None:
        return self._median(self.local)

    @property
    def spark_s(self) -> float | None:
        return self._median(self.spark)

    def phase(self, name: str) -> float | None:
        """``up``, ``first`` or ``steady`` seconds of the warm session, None when it failed."""
        out = self.warm.output if self.warm is not None and self.warm.ok else None
        if not isinstance(out, dict):
            return None
        if name == "up":
            return out.get("up")
        reports = out.get("reports") or []
        i = {"first": 0, "steady": 1}[name]
        return reports[i] if len(reports) > i else None

    def peak(self, side: str, kind: str) -> int | None:
        """The largest ``rss`` (largest process) or ``pss`` (whole tree) of a side's runs."""
        runs = {"local": self.local, "spark": [*self.spark, *([self.warm] if self.warm else [])]}
        key = "peak_rss_kib" if kind == "rss" else "peak_tree_pss_kib"
        return max((getattr(r, key) for r in runs[side]), default=None) or None


def identical_text(identical: dict[str, bool | None]) -> str:
    """``yes``, ``**no** (…)`` naming the reports that differ, or ``–`` when none compared."""
    compared = {k: v for k, v in identical.items() if v is not None}
    if not compared:
        return "–"
    differ = [k for k, v in compared.items() if not v]
    if differ:
        return f"**no** ({', '.join(differ)})"
    return "yes" if len(compared) == len(identical) else \
        f"yes ({len(compared)} of {len(identical)} compared)"


PHASES_HEAD = ("| data | local engine s | Spark end to end s | session up s | first job s | "
               "steady state s | steady / local | JSON identical | local peak RSS / tree PSS "
               "MiB | Spark peak RSS / tree PSS MiB |")


def phases_table(cases: Sequence[Case]) -> str:
    """The section's table: one row per data set."""
    lines = [PHASES_HEAD, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for c in cases:
        local, spark, steady = c.local_s, c.spark_s, c.phase("steady")
        lines.append(
            f"| {c.work} | {fmt_s(local) if local is not None else _failed(c.local)} | "
            f"{fmt_s(spark) if spark is not None else _failed(c.spark)} | "
            f"{fmt_s(c.phase('up'))} | {fmt_s(c.phase('first'))} | {fmt_s(steady)} | "
            f"{fmt_ratio(ratio(steady, local))} | {identical_text(c.identical)} | "
            f"{fmt_mib(c.peak('local', 'rss'))} / {fmt_mib(c.peak('local', 'pss'))} | "
            f"{fmt_mib(c.peak('spark', 'rss'))} / {fmt_mib(c.peak('spark', 'pss'))} |")
    return "\n".join(lines)


def _failed(runs: list[Timed]) -> str:
    if not runs:
        return "not run"
    bad = next((r for r in runs if not r.ok), None)
    if bad is None:
        return "–"
    return "timed out" if bad.timed_out else f"failed (exit {bad.exit_code})"


def details(cases: Sequence[Case]) -> str:
    out = []
    for c in cases:
        warm = c.warm.error if c.warm is not None and c.warm.error else ""
        out.append(
            f"- **{c.work}** (contract `{c.contract}`): local runs (s) "
            f"{', '.join(fmt_s(r.seconds) for r in c.local) or '–'}; Spark runs (s) "
            f"{', '.join(fmt_s(r.seconds) for r in c.spark) or '–'}; warm session process "
            f"{fmt_s(c.warm.seconds) if c.warm is not None else '–'} s in all. Byte-identical "
            "to the local engine's JSON: "
            + (", ".join(f"{k} {'yes' if v else 'NO' if v is not None else '–'}"
                         for k, v in c.identical.items()) or "–") + "."
            + "".join(f" {name}: {err[:400]}." for name, rs in
                      (("local", c.local), ("Spark", c.spark))
                      if (err := next((r.error for r in rs if r.error), "")))
            + (f" Warm session: {warm[:400]}." if warm else "")
            + (f" {c.note}" if c.note else ""))
    return "\n".join(out)


def markdown(cases: Sequence[Case], *, master: str, runs: int, warmup: int,
             area_engine_note: str) -> str:
    parts = [
        f"## Spark engine: `report --engine spark` on `{master}` against the local engine",
        "",
        "The same database, contract and `--as-of` on both engines, `--format json`. *Local "
        f"engine* and *Spark end to end* are the medians of {runs} measured run(s) after "
        f"{warmup} warm-up(s) of `usagectl report … --out FILE` as new processes (the Spark "
        f"ones with `--engine spark --spark-master {master}`: JVM start-up, session, exporting "
        "the window's events to Parquet, the first job and the report). *Session up*, *first "
        "job* and *steady state* come from one more process that opens one Spark session and "
        "runs the same report twice in it (through the CLI's own entry point, which reuses the "
        "active session): the first report pays Spark's first-job warm-up, the second is what "
        "a long-lived session costs per report. *JSON identical*: every Spark report's bytes "
        "equal the local engine's (the report carries no timings). The stored area figures "
        "(`area_tiles`) are deleted before every report, on both sides and between the warm "
        "session's two, so each report computes every tile rather than reading the previous "
        "one's. Memory: the largest single "
        "process's peak RSS (`/usr/bin/time -v`) / the summed PSS of the whole process tree "
        "(Python, the JVM, Spark's Python workers; sampled every 0.25 s), largest over the runs. "
        "For Spark read the tree PSS: `time -v` counts only the processes their parent waited "
        "for, and pyspark does not always wait for its JVM.",
        "",
        phases_table(cases),
        "",
        area_engine_note,
        "",
        "What ran:",
        "",
        details(cases),
        "",
    ]
    return "\n".join(parts)


AREA_NOTE = ("Unique-area meters: with `--engine spark` the driver plans the blocks of tiles "
             "and Spark's Python workers run them (docs/spark.md \"Area meters\"); the area "
             "cache is emptied before every report, so each run computes every tile.")


# ------------------------------------------------------------------------------- measuring


def _report_cmd(db: Path, contract: str, as_of: str, out: Path, master: str | None) -> list[str]:
    engine = ["--engine", "spark", "--spark-master", master] if master else []
    return ["--db", str(db), "report", "-c", contract, "--as-of", as_of, "--format", "json",
            *engine, "--out", str(out), "-q"]


def clear_area_cache(db: Path | str) -> None:
    """Empty the stored per-tile area figures (``area_tiles``, derived data that is always safe
    to delete, docs/area.md), so that the next report computes every tile instead of reading
    what the previous one stored."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        con.execute("DELETE FROM area_tiles")
    finally:
        con.close()


def _same(a: Path, b: Path) -> bool | None:
    if not (a.is_file() and b.is_file()):
        return None
    return a.read_bytes() == b.read_bytes()


def measure_case(case: Case, db: Path, as_of: str, *, master: str, runs: int, warmup: int,
                 timeout: float, workdir: Path, log: Callable[[str], None] = print) -> Case:
    """Local and Spark CLI runs alternating (warm-ups first), then the warm session."""
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    local_json = out / "local.json"
    cli = _usagectl()
    failed: set[str] = set()
    for i in range(-warmup, runs):
        for side, master_arg in (("local", None), ("spark", master)):
            if side in failed:
                continue
            target = local_json if side == "local" else out / f"spark-{i}.json"
            target.unlink(missing_ok=True)
            clear_area_cache(db)
            t = run_timed([*cli, *_report_cmd(db, case.contract, as_of, target, master_arg)],
                          timeout=timeout, parse_json=False)
            label = "warm-up" if i < 0 else f"run {i + 1}"
            log(f"  {case.work} [{side} {label}]: {t.seconds:.1f} s, peak RSS "
                f"{fmt_mib(t.peak_rss_kib)} MiB, tree PSS {fmt_mib(t.peak_tree_pss_kib)} MiB"
                + (f" — {t.error}" if t.error else ""))
            if i >= 0 or not t.ok:
                (case.local if side == "local" else case.spark).append(t)
            if not t.ok:
                failed.add(side)
            if side == "spark":
                case.identical[f"spark {label}"] = _same(local_json, target) if t.ok else None
    prefix = out / "warm"
    warm = run_timed([sys.executable, str(Path(__file__).resolve()), "--internal-warm",
                      str(db), case.contract, as_of, master, str(prefix)], timeout=timeout)
    case.warm = warm
    for i, name in enumerate(("warm first job", "warm steady state")):
        case.identical[name] = _same(local_json, Path(f"{prefix}-{i}.json")) if warm.ok else None
    log(f"  {case.work} [warm session]: " + (
        json.dumps(warm.output) if warm.ok else warm.error)
        + f", tree PSS {fmt_mib(warm.peak_tree_pss_kib)} MiB")
    return case


def _load_contract(db: Path, text: str, folder: Path, timeout: float) -> None:
    path = folder / "contract.toml"
    path.write_text(text, encoding="utf-8")
    t = run_timed([*_usagectl(), "--db", str(db), "contracts", "load", str(path), "-q"],
                  timeout=timeout, parse_json=False)
    if not t.ok:
        raise RuntimeError(f"contracts load failed: {t.error}")


def polygons_case(n: int, *, master: str, runs: int, warmup: int, timeout: float,
                  workdir: Path, log: Callable[[str], None] = print) -> Case:
    import pyarrow.parquet as pq

    import area_gen
    import area_scale

    base = workdir / f"spark-polygons-{n}"
    base.mkdir(parents=True, exist_ok=True)
    case = Case(f"unique_area, {n:,} polygons", area_scale.CONTRACT_ID)
    t0 = time.monotonic()
    parquet = base / "polygons.parquet"
    pq.write_table(area_gen.generate(n), parquet)
    db = base / "area.duckdb"
    ing = run_timed([*_usagectl(), "--db", str(db), "ingest", str(parquet), "--format", "json",
                     "-q"], timeout=timeout)
    if not ing.ok:
        case.note = f"Not measured: the ingest failed: {ing.error[:400]}."
        return case
    parquet.unlink()
    _load_contract(db, area_gen.CONTRACT, base, timeout)
    log(f"spark: {n:,} polygons generated and ingested in {time.monotonic() - t0:.0f} s")
    return measure_case(case, db, area_scale.AS_OF, master=master, runs=runs, warmup=warmup,
                        timeout=timeout, workdir=base, log=log)


def events_case(rows: int, *, master: str, runs: int, warmup: int, timeout: float,
                workdir: Path, log: Callable[[str], None] = print) -> Case:
    import events_gen
    import speed

    base = workdir / "spark-events"
    base.mkdir(parents=True, exist_ok=True)
    case = Case(f"sum, count, distinct; {rows:,} token events", events_gen.CONTRACT_ID)
    t0 = time.monotonic()
    files = events_gen.write(rows, base / "events", ("csv",), log=log)
    opts = speed.Options(rows=rows, polygons=0, geojson_polygons=0, runs=runs, warmup=warmup,
                         startup_runs=1, timeout=timeout, cap_mib=0, workdir=base,
                         reports_from="insert", log=log)
    db, how = speed.reports_db(opts, files, None)
    files["csv"].unlink()
    case.note = f"Database: {how}."
    log(f"spark: {rows:,} events generated, database built in {time.monotonic() - t0:.0f} s")
    return measure_case(case, db, events_gen.AS_OF, master=master, runs=runs, warmup=warmup,
                        timeout=timeout, workdir=base, log=log)


def run_section(*, polygons: Sequence[int], rows: int, master: str = DEFAULT_MASTER,
                runs: int, warmup: int, timeout: float, workdir: Path,
                log: Callable[[str], None] = print) -> str:
    """Measure every data set (one Spark process at a time) and return the section's Markdown."""
    import shutil

    cases = []
    for n in polygons:
        cases.append(polygons_case(n, master=master, runs=runs, warmup=warmup, timeout=timeout,
                                   workdir=workdir, log=log))
        shutil.rmtree(workdir / f"spark-polygons-{n}", ignore_errors=True)
    if rows > 0:
        cases.append(events_case(rows, master=master, runs=runs, warmup=warmup,
                                 timeout=timeout, workdir=workdir, log=log))
        shutil.rmtree(workdir / "spark-events", ignore_errors=True)
    return markdown(cases, master=master, runs=runs, warmup=warmup, area_engine_note=AREA_NOTE)


# ------------------------------------------------------------------------- the warm session


def internal_warm(db: str, contract: str, as_of: str, master: str, prefix: str) -> dict:
    """One session, the same report twice in it; prints {"up": s, "reports": [s, s]}."""
    t0 = time.monotonic()
    from usagectl.cli import main as cli
    from usagectl.engines.spark import spark_session

    reports = []
    with spark_session(master):
        up = time.monotonic() - t0
        for i in range(2):
            clear_area_cache(db)
            t = time.monotonic()
            try:
                cli(_report_cmd(Path(db), contract, as_of, Path(f"{prefix}-{i}.json"), master))
                code = 0
            except SystemExit as exc:  # typer ends the command with SystemExit
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if code != 0:
                raise SystemExit(f"report {i + 1} in the warm session exited {code}")
            reports.append(time.monotonic() - t)
    return {"up": up, "reports": reports}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 6 and args[0] == "--internal-warm":
        print(json.dumps(internal_warm(*args[1:])), flush=True)
        return 0
    print("usage: spark_bench.py --internal-warm DB CONTRACT AS_OF MASTER PREFIX "
          "(run by benchmarks/run.py --only spark)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
