"""Measuring usagectl against its bare-DuckDB peer: runs, medians, ratios, targets, tables.

Everything the speed benchmarks share. The pure helpers (``median``, ``Target.judge``,
``fmt_*``, ``comparison_table``, ``estimate_plan``) are tested in tests/test_benchmarks.py; the
tests never assert a time.

How one comparison is measured (``compare``): a warm-up run of each side (page cache, .pyc
files, the database's first open), then ``runs`` measured runs alternating usagectl and its peer
back to back, so that a load spike from the other work on the machine hits both; the table gives
the median of each side, their ratio, and the largest peak RSS of the measured runs. Each run is
its own process under ``/usr/bin/time -v`` (``area_scale.run_timed``'s way: "Maximum resident set
size" of the largest process), with a timeout and a memory cap: a process tree whose RSS passes
the cap is killed and recorded as such (the pre-issue log export holds every event in memory and
would take the machine's whole RAM at 10M events).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from area_scale import _MAXRSS, _rss_kib, _tree, measured_command

# ------------------------------------------------------------------------------ pure helpers


def median(values: Sequence[float]) -> float | None:
    """The median (mean of the two middle values for an even count); None when empty."""
    xs = sorted(values)
    if not xs:
        return None
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def percentiles(values: Sequence[float], ps: Sequence[int] = (50, 90, 99)
                ) -> dict[int, float] | None:
    """The ``ps``-th percentiles of ``values`` by linear interpolation between the closest ranks
    (``statistics.quantiles(method="inclusive")``, numpy.percentile's default): p50 is the
    median, p100 the largest value. None when empty; a single value is every percentile."""
    xs = sorted(values)
    if not xs:
        return None
    if len(xs) == 1:
        return {p: xs[0] for p in ps}
    cuts = statistics.quantiles(xs, n=100, method="inclusive")  # the 1st to 99th percentiles
    return {p: xs[0] if p == 0 else xs[-1] if p == 100 else cuts[p - 1] for p in ps}


def ratio(ours: float | None, peer: float | None) -> float | None:
    if ours is None or peer is None or peer <= 0:
        return None
    return ours / peer


def fmt_s(x: float | None) -> str:
    """Seconds with three significant digits below 100 s (0.215, 3.21, 45.6), else whole."""
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def fmt_mib(kib: int | None) -> str:
    return "–" if not kib else f"{kib / 1024:,.0f}"


def fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


@dataclass(frozen=True)
class Target:
    """What the issue asks of one comparison.

    kind ``ratio``: usagectl median / peer median ≤ limit; ``delta``: usagectl median − peer
    median ≤ limit seconds; ``rss``: usagectl's peak RSS ≤ limit MiB; ``none``: measured only.
    """
    kind: str = "none"
    limit: float = 0.0

    def describe(self) -> str:
        if self.kind == "ratio":
            return f"≤ {self.limit:g}×"
        if self.kind == "delta":
            return f"≤ +{self.limit:g} s"
        if self.kind == "rss":
            return f"peak RSS ≤ {self.limit:g} MiB"
        return "–"

    def judge(self, ours_s: float | None, peer_s: float | None,
              ours_rss_kib: int | None) -> str:
        """``met``, ``missed``, or ``–`` when there is no target or no measurement."""
        if self.kind == "ratio":
            r = ratio(ours_s, peer_s)
            return "–" if r is None else ("met" if r <= self.limit else "missed")
        if self.kind == "delta":
            if ours_s is None or peer_s is None:
                return "–"
            return "met" if ours_s - peer_s <= self.limit else "missed"
        if self.kind == "rss":
            if not ours_rss_kib:
                return "–"
            return "met" if ours_rss_kib / 1024 <= self.limit else "missed"
        return "–"


# ------------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One process: wall time, peak RSS of its largest process, how it ended."""
    seconds: float = 0.0
    peak_rss_kib: int = 0
    exit_code: int | None = None
    timed_out: bool = False
    capped: bool = False  # killed because its RSS passed the memory cap
    stdout: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.capped


class _Watch(threading.Thread):
    """Samples the process tree's largest RSS every 0.1 s; kills the group past ``cap_kib``."""

    def __init__(self, pid: int, cap_kib: int | None) -> None:
        super().__init__(daemon=True)
        self.pid, self.cap_kib = pid, cap_kib
        self.stop = threading.Event()
        self.peak_kib = 0
        self.capped = False
        self._since = 0  # the peak since the last ``take_peak`` (a long-running server's phases)
        self._lock = threading.Lock()

    def take_peak(self) -> int:
        """The largest RSS (KiB) sampled since the last call (or the start); starts anew."""
        rss = max((_rss_kib(p) for p in _tree(self.pid)), default=0)
        with self._lock:
            peak, self._since = max(self._since, rss), rss
        return peak

    def run(self) -> None:
        while not self.stop.is_set():
            rss = max((_rss_kib(p) for p in _tree(self.pid)), default=0)
            with self._lock:
                self.peak_kib = max(self.peak_kib, rss)
                self._since = max(self._since, rss)
            if self.cap_kib and rss > self.cap_kib and not self.capped:
                self.capped = True
                try:
                    os.killpg(self.pid, signal.SIGKILL)  # our own child's session
                except ProcessLookupError:
                    pass
            self.stop.wait(0.1)


def measure(cmd: Sequence[str], *, timeout: float, cap_mib: float | None = None,
            cwd: Path | None = None, keep_stdout: int = 100_000) -> Run:
    """Run ``cmd`` once as its own process group, timed, with its peak RSS."""
    run = Run()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(prefix="usagectl-rusage-", suffix=".txt") as ru:
        full = measured_command(cmd, ru.name)
        t0 = time.monotonic()
        proc = subprocess.Popen(full, stdout=out, stderr=err, cwd=cwd, start_new_session=True)
        watch = _Watch(proc.pid, int(cap_mib * 1024) if cap_mib else None)
        watch.start()
        expired = threading.Event()

        def kill_late() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        # A blocking wait, the timeout on a timer thread: `Popen.wait(timeout)` polls with
        # sleeps that grow to 50 ms, which rounded every start-up time up to that step.
        timer = threading.Timer(timeout, kill_late)
        timer.start()
        try:
            proc.wait()
        finally:
            timer.cancel()
        run.seconds = time.monotonic() - t0
        run.timed_out = expired.is_set()
        watch.stop.set()
        watch.join()
        run.capped = watch.capped
        run.exit_code = proc.returncode
        ru.seek(0)
        m = _MAXRSS.search(ru.read().decode("utf-8", "replace"))
        run.peak_rss_kib = int(m.group(1)) if m else watch.peak_kib  # killed: the sampled peak
        out.seek(0)
        err.seek(0)
        run.stdout = out.read(keep_stdout).decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if run.timed_out:
        run.error = f"timed out after {timeout:g} s"
    elif run.capped:
        run.error = f"killed at the memory cap ({cap_mib:,.0f} MiB RSS)"
    elif run.exit_code != 0:
        run.error = f"exit {run.exit_code}: {stderr.strip()[-600:]!r}"
    return run


@dataclass
class Side:
    """One side of a comparison: the command, its measured runs, and a one-line description."""
    what: str
    runs: list[Run] = field(default_factory=list)

    @property
    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    @property
    def median_s(self) -> float | None:
        # A side with any failed run has no median: a median of the survivors would flatter it.
        if not self.runs or len(self.good) != len(self.runs):
            return None
        return median([r.seconds for r in self.runs])

    @property
    def peak_rss_kib(self) -> int | None:
        return max((r.peak_rss_kib for r in self.runs), default=None) or None

    @property
    def error(self) -> str:
        return next((r.error for r in self.runs if r.error), "")


@dataclass
class Comparison:
    work: str
    ours: Side
    peer: Side
    target: Target = Target()
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.ours.median_s, self.peer.median_s)

    @property
    def verdict(self) -> str:
        return self.target.judge(self.ours.median_s, self.peer.median_s, self.ours.peak_rss_kib)

    def ratio_text(self) -> str:
        if self.target.kind == "delta":
            o, p = self.ours.median_s, self.peer.median_s
            return "–" if o is None or p is None else f"{o - p:+.3f} s"
        return fmt_ratio(self.ratio)


Cmd = Sequence[str]


def compare(work: str, ours: Cmd | Callable[[int], Cmd], peer: Cmd | Callable[[int], Cmd], *,
            runs: int, warmup: int, timeout: float, cap_mib: float | None,
            ours_what: str = "", peer_what: str = "", target: Target = Target(),
            before: Callable[[str, int], None] | None = None, note: str = "",
            log: Callable[[str], None] = print) -> Comparison:
    """Warm-up then ``runs`` alternating runs of usagectl and its peer.

    ``ours``/``peer`` are a command or a function of the run index (-1-based warm-ups are
    negative) returning one; ``before(side, index)`` runs before each process (e.g. to delete the
    database a fresh ingest writes into). A side that fails or times out in its warm-up is not
    run again: its failure is the result.
    """
    comp = Comparison(work, Side(ours_what), Side(peer_what), target, note)
    sides = (("ours", ours, comp.ours), ("peer", peer, comp.peer))
    failed: set[str] = set()
    for i in range(-warmup, runs):
        for name, cmd, side in sides:
            if name in failed:
                continue
            if before is not None:
                before(name, i)
            argv = list(cmd(i) if callable(cmd) else cmd)
            r = measure(argv, timeout=timeout, cap_mib=cap_mib)
            if i >= 0:
                side.runs.append(r)
            if not r.ok:
                failed.add(name)
                if i < 0:
                    side.runs.append(r)
            log(f"  {work} [{name} {'warm-up' if i < 0 else f'run {i + 1}'}]: "
                f"{r.seconds:.2f} s, peak RSS {fmt_mib(r.peak_rss_kib)} MiB"
                + (f" — {r.error}" if r.error else ""))
    return comp


# --------------------------------------------------------------------------------- markdown


def comparison_table(comps: Sequence[Comparison]) -> str:
    """The Markdown table of a section: one row per comparison."""
    lines = [
        "| work | usagectl s | peer s | ratio | target | result | usagectl peak RSS MiB | "
        "peer peak RSS MiB |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for c in comps:
        verdict = c.verdict
        shown = {"met": "met", "missed": "**missed**"}.get(verdict, verdict)
        ours = fmt_s(c.ours.median_s) if c.ours.median_s is not None else _failed(c.ours)
        peer = fmt_s(c.peer.median_s) if c.peer.median_s is not None else _failed(c.peer)
        lines.append(f"| {c.work} | {ours} | {peer} | {c.ratio_text()} | {c.target.describe()} | "
                     f"{shown} | {fmt_mib(c.ours.peak_rss_kib)} | {fmt_mib(c.peer.peak_rss_kib)} |")
    return "\n".join(lines)


def _failed(side: Side) -> str:
    if not side.runs:
        return "not run"
    r = next((r for r in side.runs if not r.ok), None)
    if r is None:
        return "–"
    if r.timed_out:
        return "timed out"
    if r.capped:
        return f"killed at {fmt_mib(r.peak_rss_kib)} MiB"
    return f"failed (exit {r.exit_code})"


def details(comps: Sequence[Comparison]) -> str:
    """What each side ran, each run's seconds, and any error."""
    out = []
    for c in comps:
        out.append(f"- **{c.work}**: usagectl = {c.ours.what}; peer = {c.peer.what}. Runs (s): "
                   f"usagectl {', '.join(fmt_s(r.seconds) for r in c.ours.runs) or '–'}; peer "
                   f"{', '.join(fmt_s(r.seconds) for r in c.peer.runs) or '–'}."
                   + (f" {c.note}" if c.note else "")
                   + (f" usagectl: {c.ours.error}." if c.ours.error else "")
                   + (f" peer: {c.peer.error}." if c.peer.error else ""))
    return "\n".join(out)


# ------------------------------------------------------------------------------- the plan

#: Seconds per million rows (or per million polygons) on this 2-core machine: the peers as
#: measured, usagectl at the issue's targets (today's code is slower: 29× the peer on CSV
#: ingest). Generation is DuckDB's (events) or area_gen + geopandas (polygons).
COST = {
    "gen_events": 8.0,             # CSV + JSONL + Parquet of 1M events
    "csv": (1.3, 0.65),            # (usagectl, peer) ingest
    "jsonl": (1.6, 0.8),
    "parquet": (0.8, 0.4),
    "reingest": 1.3,
    "gen_polygons": 25.0,          # GeoParquet via geopandas, per 1M polygons
    "gen_geojson": 60.0,           # GeoJSON via pyogrio, per 1M polygons
    "geoparquet": (18.0, 6.0),
    "geojson": (60.0, 25.0),
    "report_fixed": (0.5, 0.25),   # start-up + opening the database
    "report": (0.12, 0.05),        # per view
    "log_json": (4.0, 1.0),
    "log_csv": (3.0, 0.8),
    "export": (6.0, 0.8),
    # One request of the serve section, (fixed, per 1M events) seconds: usagectl (HTTP, a
    # read-only open whose buffers start cold, the view), the peer's query on its warm
    # connection, and opened per query (measured at 100k and 1M on the busy 2-core machine).
    "serve_usagectl": (0.08, 0.10),
    "serve_peer": (0.003, 0.025),
    "serve_peer_open": (0.005, 0.05),
    "serve_start": 3.0,            # the server's start until it answers, and its stop
    "startup": 0.35,               # one process, either side
    "process": 1.5,                # fixed cost of one measured process (start-up, opening)
    "area_ingest": 26.0,           # unique-area curve, per 1M polygons, one run each
    "area_report": 30.0,
    "area_naive": 320.0,
    "area_st": 240.0,
    "area_gen": 10.0,
}
SECTIONS = ("ingest", "geo", "reports", "export", "serve", "startup", "area")


def estimate_plan(*, rows: int, polygons: int, geojson_polygons: int, runs: int, warmup: int,
                  startup_runs: int, area_sizes: Sequence[int], area_timeout: float,
                  only: Sequence[str] = SECTIONS, reports_from_ingest: bool = True,
                  export_runs: int = 1, ingest_runs: int | None = None,
                  ingest_warmup: int | None = None, serve_requests: int = 200,
                  serve_warmup: int = 5, serve_clients: int = 8) -> list[tuple[str, float]]:
    """(step, estimated seconds) for a run with these options, in the order they run."""
    m = rows / 1e6
    k = runs + warmup
    # The file ingests' runs (--ingest-runs/--ingest-warmup, default --runs/--warmup).
    ki = ((runs if ingest_runs is None else ingest_runs)
          + (warmup if ingest_warmup is None else ingest_warmup))
    ingest_pair = 2 * ki * COST["process"]
    pair = 2 * k * COST["process"]  # the fixed cost of one comparison's processes
    steps: list[tuple[str, float]] = []
    need_events = any(s in only for s in ("ingest", "reports", "export", "serve"))
    if need_events:
        steps.append((f"generate {rows:,} events (CSV, JSONL, Parquet)", COST["gen_events"] * m))
    if "ingest" in only:
        for fmt in ("csv", "jsonl", "parquet"):
            ours, peer = COST[fmt]
            steps.append((f"ingest {fmt} ×{ki} each side", ki * (ours + peer) * m + ingest_pair))
        steps.append((f"re-ingest csv ×{ki} each side",
                      ki * (COST["reingest"] + COST["csv"][1]) * m + ingest_pair))
        steps.append(("ingest csv at a tenth of the rows (memory), once", COST["csv"][0] * m / 10))
    if "geo" in only:
        pm, gm = polygons / 1e6, geojson_polygons / 1e6
        steps.append((f"generate {polygons:,} + {geojson_polygons:,} polygons",
                      COST["gen_polygons"] * pm + COST["gen_geojson"] * gm))
        steps.append((f"ingest GeoParquet ×{k} each side",
                      k * sum(COST["geoparquet"]) * pm + pair))
        steps.append((f"ingest GeoJSON ×{k} each side", k * sum(COST["geojson"]) * gm + pair))
    if "reports" in only or "export" in only or "serve" in only:
        if not ("ingest" in only and reports_from_ingest):
            steps.append(("build the reports database (usagectl ingest, or DuckDB INSERT)",
                          COST["csv"][0] * m))
    if "reports" in only:
        per = sum(COST["report_fixed"]) + sum(COST["report"]) * m
        steps.append((f"4 report views ×{k} each side", 4 * (k * per + pair)))
    if "export" in only:
        per = sum(COST["log_json"]) + sum(COST["log_csv"]) + sum(COST["export"])
        steps.append((f"log JSON, log CSV, export ×{export_runs} each side",
                      export_runs * per * m + 3 * 2 * export_runs * COST["process"]))
    if "serve" in only:
        ours, peer, peer_open = (COST[k][0] + COST[k][1] * m
                                 for k in ("serve_usagectl", "serve_peer", "serve_peer_open"))
        # The concurrent phase: as many requests again, no faster than sequential on 2 cores;
        # the 401 floor's requests cost next to nothing.
        sent = serve_warmup + serve_requests * (2 if serve_clients > 1 else 1)
        steps.append((f"serve: 2 routes × ({serve_warmup} + {serve_requests} requests"
                      + (f" + {serve_requests} over {serve_clients} clients"
                         if serve_clients > 1 else "") + "), and the peer's queries",
                      COST["serve_start"] + 2 * sent * ours
                      + 2 * ((serve_warmup + serve_requests) * peer + serve_requests * peer_open)
                      + COST["process"]))
    if "startup" in only:
        steps.append((f"start-up: 2 commands and `python -c pass` ×{startup_runs + 1} each",
                      4 * (startup_runs + 1) * COST["startup"]))
    if "area" in only:
        for n in sorted(area_sizes):
            a = n / 1e6
            capped = sum(min(COST[key] * a, area_timeout)
                         for key in ("area_report", "area_naive", "area_st"))
            steps.append((f"area curve at {n:,} polygons",
                          (COST["area_gen"] + COST["area_ingest"]) * a + capped
                          + 6 * COST["process"]))
    return steps


def plan_text(steps: Sequence[tuple[str, float]]) -> str:
    total = sum(s for _, s in steps)
    lines = [f"  {name}: ~{fmt_duration(s)}" for name, s in steps]
    lines.append(f"  total: ~{fmt_duration(total)} (if usagectl meets the issue's targets; "
                 "more where it does not, and on a busy machine)")
    return "\n".join(lines)


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
