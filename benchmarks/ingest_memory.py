"""Ingest benchmark: wall time and peak RSS of `usagectl ingest` as the file grows.

SPEC §3.3 promises that large inputs stream ("memory does not grow with file size"). This
script checks that claim from the outside, the way a user would run the tool:

1. It writes a synthetic CSV of N rows straight to disk, a block at a time (the generator never
   holds the file in memory): event_id, timestamp (ISO 8601 with ``Z``), owner_id (a few
   owners), user_id (~200 users), product, endpoint, status (mostly 200), input_tokens,
   output_tokens, credits (decimal), indicator_ids (a quoted ``"1,2,3"`` list on some rows) and
   a free-text ``note`` column (an extra column, kept in ``attributes``). With
   ``--geometry-fraction F`` a ``geometry`` column is added and that fraction of rows become
   ``FIELDS_BOUNDARY`` events with a WKT polygon.
2. It runs ``usagectl --db <tmp>.duckdb ingest FILE --format json`` as a subprocess under
   ``/usr/bin/time -v`` (when present) and records the wall time and the peak resident set size
   of the process ("Maximum resident set size"). Without ``/usr/bin/time`` it falls back to
   ``os.wait4`` on the child, whose ``ru_maxrss`` is the same number. While the child runs, its
   RSS is also sampled from ``/proc`` so the table can say *when* the peak happened (early =
   reading/staging the file, late = the final classify-and-insert transaction).
3. It repeats that for several sizes, each into a fresh database, so the table shows whether
   peak memory grows with file size.
4. At the largest size it ingests the same file again into the same database: every row is a
   duplicate, which exercises the dedup join against a full ``events`` table.
5. It prints a Markdown table and can write it to a file (``--output``).

It also checks the SPEC §3.3 accounting in the JSON output: ``rows_read = accepted +
duplicates + rejected``, and ``accepted = N`` (first ingest) or ``duplicates = N`` (re-ingest).
A benchmark reports; it never asserts times, and a broken accounting is reported, not raised.

Usage::

    .venv/bin/python benchmarks/ingest_memory.py                       # 250k, 1M, 2.5M, 5M
    .venv/bin/python benchmarks/ingest_memory.py --sizes 100000 500000 --output /tmp/b.md
    .venv/bin/python benchmarks/ingest_memory.py --generate-only 1000000 /tmp/events.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (250_000, 1_000_000, 2_500_000, 5_000_000)
TIME_BIN = "/usr/bin/time"

OWNERS = ("acme-farms", "lca-institute", "terra-tokens", "docuscan")
PRODUCTS = ("API_TOKENS", "DATASETS", "verify", "describe", "chat")
ENDPOINTS = ("/v1/parcels", "/v1/soil", "/v1/chat", "/datasets", "/datasets/search", "/health")
NOTES = ("", "", "", "client=web", "client=cli v2.3", "retry after 429", "batch job, nightly",
         'said "hello"', "sdk=python-1.4.2; region=us-east-1")
HEADER = ["event_id", "timestamp", "owner_id", "user_id", "product", "endpoint", "status",
          "input_tokens", "output_tokens", "credits", "indicator_ids", "note"]


# ------------------------------------------------------------------------------ the input file


def _polygon(rng: random.Random) -> str:
    """A small (roughly 10–150 acre) convex quadrilateral in central Iowa, as WKT."""
    x0 = -94.0 + rng.random() * 1.0
    y0 = 41.5 + rng.random() * 1.0
    w = 0.002 + rng.random() * 0.008
    h = 0.002 + rng.random() * 0.006
    pts = [(x0, y0), (x0 + w, y0 + 0.0003), (x0 + w, y0 + h), (x0 - 0.0002, y0 + h)]
    pts.append(pts[0])
    return "POLYGON ((" + ", ".join(f"{x:.7f} {y:.7f}" for x, y in pts) + "))"


def generate_csv(path: Path, n_rows: int, *, seed: int = 20260101,
                 geometry_fraction: float = 0.0, block: int = 50_000) -> int:
    """Write ``n_rows`` valid events to ``path`` a block at a time; returns the file size."""
    rng = random.Random(seed)
    users = [f"user-{i:03d}" for i in range(200)]
    with_geom = geometry_fraction > 0
    header = HEADER + (["geometry"] if with_geom else [])
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    span = 300 * 86_400
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        done = 0
        while done < n_rows:
            rows = []
            for i in range(done, min(done + block, n_rows)):
                t = start + (i * span) // n_rows + rng.randrange(60)
                ts = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                owner = OWNERS[i % len(OWNERS)]
                user = users[rng.randrange(200)]
                r = rng.random()
                status = "200" if r < 0.93 else ("429" if r < 0.97 else "500")
                geom = ""
                if with_geom and rng.random() < geometry_fraction:
                    product, endpoint = "FIELDS_BOUNDARY", "/v1/boundaries"
                    geom = _polygon(rng)
                else:
                    product = PRODUCTS[rng.randrange(len(PRODUCTS))]
                    endpoint = ENDPOINTS[rng.randrange(len(ENDPOINTS))]
                tokens_in = rng.randrange(20, 4000) if product in ("API_TOKENS", "chat") else 0
                tokens_out = rng.randrange(0, 2000) if tokens_in else 0
                credits = f"{rng.randrange(0, 500_000) / 10_000:.4f}"
                indicators = (",".join(str(rng.randrange(800, 1100))
                                       for _ in range(rng.randrange(1, 6)))
                              if rng.random() < 0.3 else "")
                note = NOTES[rng.randrange(len(NOTES))]
                row = [f"ev-{i:09d}-{rng.getrandbits(32):08x}", ts, owner, user, product,
                       endpoint, status, tokens_in, tokens_out, credits, indicators, note]
                if with_geom:
                    row.append(geom)
                rows.append(row)
            w.writerows(rows)
            done += len(rows)
    return path.stat().st_size


# ------------------------------------------------------------------------------- measurement


@dataclass
class Run:
    label: str
    rows: int
    file_bytes: int
    seconds: float
    peak_rss_kib: int
    peak_at: float | None  # fraction of the wall time at which the sampled RSS peaked
    db_bytes: int
    result: dict = field(default_factory=dict)
    exit_code: int = 0
    method: str = ""
    accounting_ok: bool = False
    accounting_note: str = ""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _usagectl() -> list[str]:
    exe = Path(sys.executable).with_name("usagectl")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "usagectl"]


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class _Sampler(threading.Thread):
    """Samples the RSS of a process (and, under /usr/bin/time, of its child) every 0.2 s."""

    def __init__(self, pid: int, follow_child: bool) -> None:
        super().__init__(daemon=True)
        self.pid, self.follow_child = pid, follow_child
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            pids = [self.pid] + (_children(self.pid) if self.follow_child else [])
            rss = max((r for r in map(_rss_kib, pids) if r is not None), default=None)
            if rss is not None:
                self.samples.append((time.monotonic() - t0, rss))
            self.stop.wait(0.2)

    def peak_fraction(self, wall: float) -> float | None:
        if not self.samples or wall <= 0:
            return None
        t, _ = max(self.samples, key=lambda s: s[1])
        return min(t / wall, 1.0)


def measure_ingest(file: Path, db: Path, rows: int, label: str, expect: str) -> Run:
    """Run one ``usagectl ingest`` and measure it; ``expect`` is 'accepted' or 'duplicates'."""
    cmd = _usagectl() + ["--db", str(db), "ingest", str(file), "--format", "json"]
    use_time = os.access(TIME_BIN, os.X_OK)
    env = dict(os.environ)
    stderr_file = tempfile.TemporaryFile()
    t0 = time.monotonic()
    if use_time:
        proc = subprocess.Popen([TIME_BIN, "-v", *cmd], stdout=subprocess.PIPE,
                                stderr=stderr_file, env=env)
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file, env=env)
    sampler = _Sampler(proc.pid, follow_child=use_time)
    sampler.start()
    out_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    if use_time:
        code = proc.wait()
        ru_maxrss = None
    else:
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code
        ru_maxrss = usage.ru_maxrss  # KiB on Linux
    wall = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    reader.join()
    stderr_file.seek(0)
    err = stderr_file.read().decode("utf-8", "replace")
    if use_time:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
        peak = int(m.group(1)) if m else 0
        em = re.search(r"Exit status: (\d+)", err)
        code = int(em.group(1)) if em else code
        method = "/usr/bin/time -v (Maximum resident set size)"
    else:
        peak = int(ru_maxrss or 0)
        method = "os.wait4 ru_maxrss"
    stdout = b"".join(out_chunks).decode("utf-8", "replace")
    try:
        result = json.loads(stdout)
    except ValueError:
        result = {"error": "no JSON on stdout", "stdout": stdout[-2000:], "stderr": err[-4000:]}
    run = Run(label=label, rows=rows, file_bytes=file.stat().st_size, seconds=wall,
              peak_rss_kib=peak, peak_at=sampler.peak_fraction(wall),
              db_bytes=db.stat().st_size if db.exists() else 0, result=result,
              exit_code=code, method=method)
    _check_accounting(run, expect)
    return run


def _check_accounting(run: Run, expect: str) -> None:
    files = run.result.get("files") or []
    if len(files) != 1:
        run.accounting_note = f"unexpected output: {json.dumps(run.result)[:500]}"
        return
    f = files[0]
    balanced = f["rows_read"] == f["accepted"] + f["duplicates"] + f["rejected"]
    complete = f["rows_read"] == run.rows and f[expect] == run.rows
    run.accounting_ok = balanced and complete and f.get("status") == "ok"
    run.accounting_note = (
        f"status {f.get('status')}, rows_read {f['rows_read']:,} = accepted {f['accepted']:,} "
        f"+ duplicates {f['duplicates']:,} + rejected {f['rejected']:,}: "
        f"{'holds' if balanced else 'BROKEN'}; {expect} = N: {'yes' if complete else 'NO'}"
        + (f"; error: {f.get('error')}" if f.get("error") else ""))


# ----------------------------------------------------------------------------------- report


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def markdown_table(runs: list[Run]) -> str:
    lines = [
        "| run | rows | file size (MiB) | seconds | rows/s | peak RSS (MiB) | peak at | "
        "DB size (MiB) | accounting |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        peak_at = f"{r.peak_at:.0%} of run" if r.peak_at is not None else "–"
        lines.append(
            f"| {r.label} | {r.rows:,} | {r.file_bytes / 2**20:,.0f} | {r.seconds:,.1f} | "
            f"{r.rows_per_s:,.0f} | {_mib(r.peak_rss_kib)} | {peak_at} | "
            f"{r.db_bytes / 2**20:,.0f} | {'ok' if r.accounting_ok else 'FAILED'} |")
    return "\n".join(lines)


def markdown_report(runs: list[Run], geometry_fraction: float) -> str:
    method = runs[0].method if runs else ""
    geom = (f"{geometry_fraction:.0%} of rows are `FIELDS_BOUNDARY` events with a WKT polygon"
            if geometry_fraction else "no geometry column")
    parts = [
        "Synthetic CSV (`benchmarks/ingest_memory.py`): event_id, ISO timestamp with `Z`, "
        f"{len(OWNERS)} owners, 200 users, {len(PRODUCTS)} products, endpoint, status (93 % 200), "
        "input/output tokens, decimal credits, a quoted `\"1,2,3\"` indicator list on 30 % of "
        f"rows, a free-text extra column; {geom}. Every row is valid.",
        "",
        "Each `first ingest` run is `usagectl --db NEW.duckdb ingest FILE --format json` into a "
        "fresh database; `re-ingest` ingests the largest file again into the same database "
        f"(every row a duplicate). Peak RSS is measured with {method}; *peak at* is when the "
        "RSS sampled every 0.2 s from /proc was highest (early: reading and staging the file; "
        "late: the final classify-and-insert transaction).",
        "",
        markdown_table(runs),
        "",
        "Accounting (rows_read = accepted + duplicates + rejected, from the JSON output):",
        "",
    ]
    parts += [f"- {r.label}, {r.rows:,} rows: {r.accounting_note}" for r in runs]
    return "\n".join(parts) + "\n"


# -------------------------------------------------------------------------------------- main


def run_benchmark(sizes: list[int], *, geometry_fraction: float = 0.0, reingest: bool = True,
                  workdir: Path | None = None, keep: bool = False, seed: int = 20260101,
                  log=print) -> list[Run]:  # type: ignore[no-untyped-def]
    sizes = sorted(sizes)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="usagectl-bench-", dir=workdir))
    runs: list[Run] = []
    try:
        for n in sizes:
            file = base / f"events_{n}.csv"
            t = time.monotonic()
            size = generate_csv(file, n, seed=seed, geometry_fraction=geometry_fraction)
            log(f"generated {file.name}: {n:,} rows, {size / 2**20:,.0f} MiB "
                f"in {time.monotonic() - t:.0f} s")
            db = base / f"bench_{n}.duckdb"
            run = measure_ingest(file, db, n, "first ingest", "accepted")
            runs.append(run)
            log(f"  ingest: {run.seconds:.1f} s, peak RSS {_mib(run.peak_rss_kib)} MiB, "
                f"exit {run.exit_code}; {run.accounting_note}")
            if reingest and n == sizes[-1]:
                again = measure_ingest(file, db, n, "re-ingest (all duplicates)", "duplicates")
                runs.append(again)
                log(f"  re-ingest: {again.seconds:.1f} s, peak RSS "
                    f"{_mib(again.peak_rss_kib)} MiB, exit {again.exit_code}; "
                    f"{again.accounting_note}")
            if not keep:
                file.unlink()
                for p in base.glob(f"bench_{n}.duckdb*"):
                    p.unlink()
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            log(f"kept files in {base}")
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                    help="row counts to measure (default: %(default)s)")
    ap.add_argument("--geometry-fraction", type=float, default=0.0,
                    help="add a WKT geometry column; this fraction of rows are FIELDS_BOUNDARY")
    ap.add_argument("--no-reingest", action="store_true",
                    help="skip re-ingesting the largest file")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where to write the CSVs and databases (default: the temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the CSVs and databases")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--output", type=Path, help="also write the Markdown report to this file")
    ap.add_argument("--json", type=Path, help="also write the raw measurements as JSON")
    ap.add_argument("--generate-only", nargs=2, metavar=("ROWS", "PATH"),
                    help="only write a synthetic CSV of ROWS rows to PATH")
    args = ap.parse_args(argv)
    if args.generate_only:
        n, path = int(args.generate_only[0]), Path(args.generate_only[1])
        size = generate_csv(path, n, seed=args.seed, geometry_fraction=args.geometry_fraction)
        print(f"{path}: {n:,} rows, {size:,} bytes")
        return 0
    runs = run_benchmark(args.sizes, geometry_fraction=args.geometry_fraction,
                         reingest=not args.no_reingest, workdir=args.workdir, keep=args.keep,
                         seed=args.seed, log=lambda m: print(m, file=sys.stderr, flush=True))
    report = markdown_report(runs, args.geometry_fraction)
    print(report)
    if args.output:
        args.output.write_text(report, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__, "rows_per_s": r.rows_per_s}
                                         for r in runs], indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
