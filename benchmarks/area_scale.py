"""Unique area at scale: usagectl against a naive union and DuckDB spatial's ``ST_Union_Agg``.

For each size N, in one run on the same data (``benchmarks/area_gen.py``: N field-boundary
events of one owner, 200 users, 40 % jittered re-uploads, contract ``big`` with meter ``area``):

1. Write the Parquet into a temporary folder, ``usagectl --db DB ingest FILE -q`` and
   ``usagectl --db DB contracts load c.toml -q``.
2. Time, each as its own subprocess (wall clock; peak RSS from ``/usr/bin/time -v``, i.e. the
   largest single process of the tree; plus the peak of the summed PSS of the whole process
   tree sampled from /proc, since the engine forks a pool),
   with ``--as-of 2026-12-31T23:00:00Z --format json``: ``report -c big`` (cold), the same
   again, ``report --view users``, ``overlap``, ``report --view daily``, then the ingest of one
   more local day of events (0.3 % of N: re-processed fields and new fields) and ``report``
   again (incremental).
3. Naive reference (main venv): ``shapely.union_all`` of every counted geometry (owner) and one
   ``union_all`` per user (users), each in its own subprocess; area with
   ``abs(pyproj.Geod(ellps="WGS84").geometry_area_perimeter(shapely.orient_polygons(g))[0])``.
4. DuckDB spatial in a separate virtual environment (the main one has a DuckDB the extension
   wheel does not fit): ``ST_Union_Agg(ST_GeomFromWKB(geometry))`` for the owner and
   ``GROUP BY user_id`` for the users; the union WKB is written out and its area taken in
   another subprocess with the same Geod formula (not counted in the union time).
5. A Markdown section: one table per size and the measured ratios. It judges nothing.

Every subprocess has a timeout (``--timeout``, default 1800 s); a run that hits it is recorded
as "timed out", never raised.

Usage::

    .venv/bin/python benchmarks/area_scale.py --sizes 200000 1000000 --output /tmp/area.md
    .venv/bin/python benchmarks/area_scale.py --sizes 10000 --output /tmp/area-small.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SIZES = (200_000, 1_000_000)
TIMEOUT_S = 1800.0
AS_OF = "2026-12-31T23:00:00Z"
EXTRA_FRACTION = 0.003  # the extra day's events, as a share of N
ACRE_M2 = 4046.8564224
SPATIAL_PACKAGE = "duckdb-extension-spatial"
CONTRACT_ID = "big"
METER = "area"
ZONE = "America/Chicago"


def period_bounds() -> tuple[str, str, str]:
    """(start, end, as_of) of the counted window as UTC ISO strings: the annual period of the
    contract in its zone (start inclusive, end exclusive) and ``ts <= as_of``."""
    zone = ZoneInfo(ZONE)
    start = datetime(2026, 1, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(2027, 1, 1, tzinfo=zone).astimezone(UTC)
    as_of = datetime.fromisoformat(AS_OF.replace("Z", "+00:00")).astimezone(UTC)
    return start.isoformat(), end.isoformat(), as_of.isoformat()


# ----------------------------------------------------------------------------- measurement


@dataclass
class Timed:
    """One subprocess: wall time, peak memory, exit code and its parsed JSON output."""
    cmd: list[str]
    seconds: float = 0.0
    peak_rss_kib: int = 0          # largest single process (ru_maxrss of the reaped tree)
    peak_tree_pss_kib: int = 0     # summed PSS of the process tree, sampled every 0.25 s
    exit_code: int | None = None
    timed_out: bool = False
    timeout: float = 0.0
    output: dict | list | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.exit_code == 0 and self.output is not None


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.peak_pss = 0
        self.peak_rss = 0

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _tree(self.pid)
            self.peak_pss = max(self.peak_pss, sum(_pss_kib(p) for p in pids))
            self.peak_rss = max(self.peak_rss, max((_rss_kib(p) for p in pids), default=0))
            self.stop.wait(0.25)


TIME_BIN = "/usr/bin/time"
# Without /usr/bin/time: a small Python launcher that runs the command as its own child and
# writes that child's ru_maxrss (what `time -v` does).
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write('Maximum resident set size (kbytes): %d\\n'\n"
    "    % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)
_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")



def measured_command(cmd: list[str], rusage_path: str) -> list[str]:
    """``cmd`` wrapped so that its resource usage (peak RSS) is written to ``rusage_path``:
    GNU time when installed, else a small Python launcher that reports the same field."""
    if os.access(TIME_BIN, os.X_OK):
        return [TIME_BIN, "-v", "-o", rusage_path, *cmd]
    return [sys.executable, "-c", _LAUNCHER, rusage_path, *cmd]

def run_timed(cmd: list[str], *, timeout: float, env: dict | None = None,
              parse_json: bool = True) -> Timed:
    """Run ``cmd`` in its own process group; measure it; kill the group at the timeout.

    The peak RSS comes from a small process in between (``/usr/bin/time -v``, or a Python
    launcher when it is missing) that forks the command: ``ru_maxrss`` of a process forked
    straight from this one would count this process's own memory (the forked copy's high-water
    mark survives the exec).
    """
    res = Timed(cmd=cmd, timeout=timeout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(prefix="usagectl-rusage-", suffix=".txt") as ru:
        full = measured_command(cmd, ru.name)
        t0 = time.monotonic()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, start_new_session=True)
        sampler = _Sampler(proc.pid)
        sampler.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            res.timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # our own child's group (start_new_session)
            except ProcessLookupError:
                pass
            proc.wait()
        res.seconds = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        res.exit_code = proc.returncode
        ru.seek(0)
        m = _MAXRSS.search(ru.read().decode("utf-8", "replace"))
        # Killed at the timeout, the launcher writes nothing: the sampled peak stands in.
        res.peak_rss_kib = int(m.group(1)) if m else sampler.peak_rss
        res.peak_tree_pss_kib = sampler.peak_pss
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if res.timed_out:
        res.error = f"timed out after {timeout:g} s"
        return res
    if parse_json:
        try:
            res.output = json.loads(stdout)
        except ValueError:
            pass
        if res.output is None:
            res.error = (f"exit {res.exit_code}, no JSON on stdout: {stdout[-300:]!r}; "
                         f"stderr: {stderr[-600:]!r}")
    elif res.exit_code == 0:
        res.output = {}
    if res.exit_code != 0 and not res.error:
        said = json.dumps(res.output)[:600] if res.output else ""
        res.error = f"exit {res.exit_code}: {said} {stderr.strip()[-600:]!r}"
    return res


# ---------------------------------------------------------------------------------- data


def _usagectl() -> list[str]:
    exe = Path(sys.executable).with_name("usagectl")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "usagectl"]


def extra_day(table, k: int, *, seed: int = 7):  # type: ignore[no-untyped-def]
    """``k`` more events on 2026-12-31 (local, before as_of), with new event ids: half re-process
    existing fields by their user with metres of jitter, half are new fields (copies of existing
    ones moved east of the whole landscape, so they add area and touch new tiles)."""
    import numpy as np
    import pyarrow as pa
    import shapely

    rng = np.random.default_rng(seed)
    n = table.num_rows
    pick = rng.integers(0, n, k)
    every = shapely.from_wkb(np.asarray(table.column("geometry").to_pylist(), dtype=object))
    xmin, _, xmax, _ = shapely.total_bounds(every)
    geoms = every[pick]
    del every
    users = np.asarray(table.column("user_id").to_pylist(), dtype=object)[pick]
    resources = np.asarray(table.column("resource_id").to_pylist(), dtype=object)[pick]
    new = np.arange(k) >= k // 2
    # Offsets in degrees: ~3 m jitter for re-processed fields, a shift past the landscape's east
    # edge for the new ones.
    dx = np.where(new, (xmax - xmin) + 0.2, rng.normal(0, 3.0 / 82_000, k))
    dy = np.where(new, 0.0, rng.normal(0, 3.0 / 111_000, k))
    counts = shapely.get_num_coordinates(geoms)
    coords = shapely.get_coordinates(geoms)
    coords[:, 0] += np.repeat(dx, counts)
    coords[:, 1] += np.repeat(dy, counts)
    geoms = shapely.set_coordinates(geoms.copy(), coords)
    resources = np.where(new, np.array([f"n{i}" for i in range(k)], dtype=object), resources)
    t0 = np.datetime64("2026-12-31T06:00:00")  # 00:00 in America/Chicago
    secs = np.sort(rng.integers(0, 17 * 3600, k))  # until 23:00 UTC, the as-of
    ts = (t0 + secs.astype("timedelta64[s]")).astype("datetime64[us]")
    return pa.table({
        "event_id": pa.array([f"x{i}" for i in range(k)]),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "owner_id": pa.array(["big"] * k),
        "user_id": pa.array(list(users)),
        "product": pa.array(["FIELDS_BOUNDARY"] * k),
        "resource_id": pa.array(list(resources)),
        "geometry": pa.array(shapely.to_wkb(geoms), pa.binary()),
    })


# ------------------------------------------------------------- in-subprocess reference work


def _geod_acres(geoms) -> float:  # type: ignore[no-untyped-def]
    import pyproj
    import shapely

    geod = pyproj.Geod(ellps="WGS84")
    total = 0.0
    for g in geoms:
        if g is None or g.is_empty:
            continue
        total += abs(geod.geometry_area_perimeter(shapely.orient_polygons(g))[0])
    return total / ACRE_M2


def _read_counted(parquet: str, start: str, end: str, as_of: str):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import shapely

    t = pq.read_table(parquet, columns=["ts", "user_id", "geometry"])
    ts = t.column("ts")

    def at(s: str):  # type: ignore[no-untyped-def]
        return pa.scalar(datetime.fromisoformat(s), type=ts.type)

    keep = pc.and_(pc.and_(pc.greater_equal(ts, at(start)), pc.less(ts, at(end))),
                   pc.less_equal(ts, at(as_of)))
    t = t.filter(keep)
    geoms = shapely.from_wkb(np.asarray(t.column("geometry").to_pylist(), dtype=object))
    users = np.asarray(t.column("user_id").to_pylist(), dtype=object)
    return geoms, users


def internal_naive(mode: str, parquet: str, start: str, end: str, as_of: str) -> dict:
    import numpy as np
    import shapely

    t0 = time.perf_counter()
    geoms, users = _read_counted(parquet, start, end, as_of)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if mode == "owner":
        unions = [shapely.union_all(geoms)]
    else:
        order = np.argsort(users, kind="stable")
        su = users[order]
        cuts = np.flatnonzero(su[1:] != su[:-1]) + 1
        unions = [shapely.union_all(part) for part in np.split(geoms[order], cuts)]
    union_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acres = _geod_acres(unions)
    area_s = time.perf_counter() - t0
    return {"events": int(len(geoms)), "groups": len(unions), "read_s": read_s,
            "union_s": union_s, "area_s": area_s, "acres": acres}


def internal_area(parquet: str) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    import shapely

    t0 = time.perf_counter()
    t = pq.read_table(parquet)
    geoms = shapely.from_wkb(np.asarray(t.column("wkb").to_pylist(), dtype=object))
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acres = _geod_acres(geoms)
    return {"groups": t.num_rows, "read_s": read_s, "area_s": time.perf_counter() - t0,
            "acres": acres}


# ------------------------------------------------------------------------- DuckDB spatial

# Runs in the spatial venv: only duckdb and duckdb_extension_spatial are there.
_SPATIAL_PROBE = """
import json, pathlib, importlib.metadata as md
import duckdb, duckdb_extension_spatial as m
ext = sorted(pathlib.Path(m.__file__).parent.rglob("spatial.duckdb_extension"))
if not ext:
    raise SystemExit("no spatial.duckdb_extension file in " + str(pathlib.Path(m.__file__).parent))
con = duckdb.connect()
con.execute("LOAD '" + str(ext[-1]).replace("'", "''") + "'")
row = con.execute("SELECT extension_version FROM duckdb_extensions() "
                  "WHERE extension_name = 'spatial' AND loaded").fetchone()
print(json.dumps({"duckdb": duckdb.__version__, "package": md.version("duckdb-extension-spatial"),
                  "extension_version": row[0] if row else None, "extension_file": str(ext[-1])}))
"""

_SPATIAL_UNION = """
import json, pathlib, sys, time
import duckdb, duckdb_extension_spatial as m
mode, parquet, start, end, as_of, out = sys.argv[1:7]
ext = sorted(pathlib.Path(m.__file__).parent.rglob("spatial.duckdb_extension"))[-1]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")  # it would print on stdout
con.execute("LOAD '" + str(ext).replace("'", "''") + "'")
t0 = time.perf_counter()
con.execute("CREATE TEMP TABLE ev AS SELECT user_id, geometry FROM read_parquet(?) "
            "WHERE ts >= ?::TIMESTAMPTZ AND ts < ?::TIMESTAMPTZ AND ts <= ?::TIMESTAMPTZ",
            [parquet, start, end, as_of])
read_s = time.perf_counter() - t0
events = con.execute("SELECT count(*) FROM ev").fetchone()[0]
t0 = time.perf_counter()
if mode == "owner":
    con.execute("CREATE TEMP TABLE r AS SELECT 'owner' AS user_id, "
                "ST_AsWKB(ST_Union_Agg(ST_GeomFromWKB(geometry)))::BLOB AS wkb FROM ev")
else:
    con.execute("CREATE TEMP TABLE r AS SELECT user_id, "
                "ST_AsWKB(ST_Union_Agg(ST_GeomFromWKB(geometry)))::BLOB AS wkb "
                "FROM ev GROUP BY user_id")
union_s = time.perf_counter() - t0
groups = con.execute("SELECT count(*) FROM r").fetchone()[0]
con.execute("COPY r TO '" + out.replace("'", "''") + "' (FORMAT parquet)")
threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
print(json.dumps({"events": events, "groups": groups, "read_s": read_s, "union_s": union_s,
                  "threads": threads}))
"""


@dataclass
class SpatialEnv:
    python: Path | None = None
    versions: dict = field(default_factory=dict)
    note: str = ""


def _probe(python: Path) -> dict | None:
    try:
        r = subprocess.run([str(python), "-c", _SPATIAL_PROBE], capture_output=True, text=True,
                           timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def ensure_spatial_venv(path: Path, log=print) -> SpatialEnv:  # type: ignore[no-untyped-def]
    """The venv with duckdb + the spatial extension wheel, created when missing or broken."""
    python = path / "bin" / "python"
    if python.exists():
        versions = _probe(python)
        if versions:
            return SpatialEnv(python, versions, f"existing virtual environment {path}")
    steps: list[list[str]] = []
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        steps.append([base, "-m", "venv", str(path)])
    # The wheel pins the DuckDB version its extension was built for (Requires-Dist: duckdb==X),
    # so pip brings that DuckDB along with it.
    steps.append([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  SPATIAL_PACKAGE])
    for cmd in steps:
        log("spatial venv: " + " ".join(cmd))
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return SpatialEnv(note=f"could not run {' '.join(cmd)}: {exc}")
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            return SpatialEnv(note=f"`{' '.join(cmd)}` failed: {' / '.join(tail)}")
    versions = _probe(python)
    if not versions:
        return SpatialEnv(note=f"{path}: duckdb or the spatial extension does not load")
    return SpatialEnv(python, versions, f"created {path} (pip install {SPATIAL_PACKAGE})")


# ------------------------------------------------------------------------------ one size


@dataclass
class Row:
    label: str
    timed: Timed | None = None
    owner: float | None = None
    users: float | None = None
    overlap: float | None = None
    detail: str = ""
    compute_s: float | None = None  # what the ratios use (reference rows)
    note: str = ""


@dataclass
class SizeResult:
    n: int
    distinct: int = 0
    extra: int = 0
    parquet_mib: float = 0.0
    generate_s: float = 0.0
    counted: int | None = None
    reference_events: dict = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    spatial: SpatialEnv | None = None
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    errors: list[str] = field(default_factory=list)


def _area_meter(report: dict) -> dict:
    for m in report.get("meters") or []:
        if m.get("name") == METER:
            return m
    return {}


def _parse(kind: str, out: object
           ) -> tuple[float | None, float | None, float | None, int | None]:
    """(owner, Σ users, overlap, events) in acres from one usagectl JSON output."""
    if not isinstance(out, dict):
        return None, None, None, None
    if kind == "report":
        m = _area_meter(out)
        return m.get("owner_total"), m.get("user_total"), m.get("overlap"), m.get("events")
    if kind == "users":
        return None, sum((u.get("meters") or {}).get(METER) or 0.0
                         for u in out.get("users") or []), None, None
    if kind == "overlap":
        return out.get("owner_total"), out.get("user_total"), out.get("overlap"), None
    if kind == "daily":
        days = [(d.get("meters") or {}).get(METER) or {} for d in out.get("days") or []]
        return (sum(d.get("owner") or 0.0 for d in days),
                sum(d.get("user") or 0.0 for d in days), None, None)
    return None, None, None, None


def run_size(n: int, *, seed: int, timeout: float, workdir: Path | None,
             spatial: SpatialEnv, keep: bool, log) -> SizeResult:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    import area_gen

    res = SizeResult(n=n, spatial=spatial, load_before=os.getloadavg())
    base = Path(tempfile.mkdtemp(prefix=f"usagectl-area-{n}-", dir=workdir))
    try:
        t0 = time.monotonic()
        table = area_gen.generate(n, seed=seed)
        res.distinct = len(set(table.column("resource_id").to_pylist()))
        parquet = base / "events.parquet"
        pq.write_table(table, parquet)
        res.extra = max(1, round(n * EXTRA_FRACTION))
        extra_file = base / "extra_day.parquet"
        pq.write_table(extra_day(table, res.extra, seed=seed + 1), extra_file)
        del table
        (base / "c.toml").write_text(area_gen.CONTRACT, encoding="utf-8")
        res.generate_s = time.monotonic() - t0
        res.parquet_mib = parquet.stat().st_size / 2**20
        log(f"area n={n:,}: generated {res.parquet_mib:,.0f} MiB in {res.generate_s:.0f} s "
            f"({res.distinct:,} distinct fields) in {base}")

        db = base / "area.duckdb"
        cli = [*_usagectl(), "--db", str(db)]
        q = ["--as-of", AS_OF, "--format", "json"]

        def step(key: str, label: str, args: list[str], kind: str | None,
                 db_path: Path = db) -> Row:
            t = run_timed([*_usagectl(), "--db", str(db_path), *args], timeout=timeout)
            row = Row(label, t)
            if t.ok and kind == "ingest":
                files = t.output.get("files") or [{}] if isinstance(t.output, dict) else [{}]
                f = files[0]
                row.detail = (f"accepted {f.get('accepted', 0):,}, duplicates "
                              f"{f.get('duplicates', 0):,}, rejected {f.get('rejected', 0):,}")
                if f.get("status") != "ok" or f.get("rejected"):
                    res.errors.append(f"{label}: {json.dumps(f)[:300]}")
            elif t.ok and kind:
                row.owner, row.users, row.overlap, events = _parse(kind, t.output)
                if key == "report_cold":
                    res.counted = events
            if t.error:
                res.errors.append(f"{label}: {t.error}")
            res.rows[key] = row
            log(f"  {label}: {t.seconds:.1f} s, peak RSS {t.peak_rss_kib / 1024:,.0f} MiB"
                + (f" — {t.error}" if t.error else ""))
            return row

        step("ingest", f"`ingest` ({n:,} events)",
             ["ingest", str(parquet), "--format", "json", "-q"], "ingest")
        load = run_timed(cli + ["contracts", "load", str(base / "c.toml"), "-q"],
                         timeout=timeout, parse_json=False)
        if not load.ok:
            res.errors.append(f"contracts load: {load.error}")
        c = ["-c", CONTRACT_ID]
        # The daily view on its own, from a store no report has filled: a copy of the database.
        fresh = base / "fresh.duckdb"
        shutil.copyfile(db, fresh)
        step("daily_cold", "`report --view daily`, nothing stored yet",
             ["report", *c, "--view", "daily", *q], "daily", db_path=fresh)
        fresh.unlink()
        step("report_cold", "`report` (consolidated), first run", ["report", *c, *q], "report")
        step("report_warm", "`report` again, unchanged data", ["report", *c, *q], "report")
        step("users", "`report --view users`", ["report", *c, "--view", "users", *q], "users")
        step("overlap", "`overlap`", ["overlap", *c, *q], "overlap")
        step("daily", "`report --view daily` after those (adds daily values to stored tiles)",
             ["report", *c, "--view", "daily", *q], "daily")
        step("ingest_extra", f"`ingest` one more day ({res.extra:,} events)",
             ["ingest", str(extra_file), "--format", "json", "-q"], "ingest")
        step("report_incr", "`report` after that ingest (incremental)",
             ["report", *c, *q], "report")

        start, end, as_of = period_bounds()
        me = [sys.executable, str(Path(__file__).resolve())]
        for mode in ("owner", "users"):
            key = f"naive_{mode}"
            label = f"naive `union_all` + Geod, {'owner' if mode == 'owner' else 'per user'}"
            t = run_timed(me + ["--internal-naive", mode, str(parquet), start, end, as_of],
                          timeout=timeout)
            row = Row(label, t)
            if t.ok:
                o = t.output
                setattr(row, "owner" if mode == "owner" else "users", o["acres"])
                row.compute_s = o["union_s"] + o["area_s"]
                row.detail = (f"read {o['read_s']:.1f} / union {o['union_s']:.1f} / "
                              f"area {o['area_s']:.1f}")
                res.reference_events["naive " + mode] = o["events"]
            else:
                res.errors.append(f"{label}: {t.error}")
            res.rows[key] = row
            log(f"  {label}: {t.seconds:.1f} s" + (f" — {t.error}" if t.error else ""))

        for mode in ("owner", "users"):
            key = f"st_{mode}"
            label = f"DuckDB `ST_Union_Agg`, {'owner' if mode == 'owner' else 'GROUP BY user_id'}"
            row = Row(label)
            res.rows[key] = row
            if spatial.python is None:
                row.note = f"not run: {spatial.note}"
                res.errors.append(f"{label}: {row.note}")
                continue
            out = base / f"st_{mode}.parquet"
            t = run_timed([str(spatial.python), "-c", _SPATIAL_UNION, mode, str(parquet), start,
                           end, as_of, str(out)], timeout=timeout)
            row.timed = t
            if not t.ok:
                res.errors.append(f"{label}: {t.error}")
                log(f"  {label}: {t.seconds:.1f} s — {t.error}")
                continue
            o = t.output
            row.compute_s = o["union_s"]
            res.reference_events["ST_Union_Agg " + mode] = o["events"]
            a = run_timed(me + ["--internal-area", str(out)], timeout=timeout)
            if a.ok:
                setattr(row, "owner" if mode == "owner" else "users", a.output["acres"])
                row.detail = (f"read {o['read_s']:.1f} / union {o['union_s']:.1f}; "
                              f"area {a.output['area_s']:.1f} apart")
            else:
                row.detail = f"read {o['read_s']:.1f} / union {o['union_s']:.1f}"
                row.note = f"area step: {a.error}"
                res.errors.append(f"{label}, area step: {a.error}")
            log(f"  {label}: {t.seconds:.1f} s (union {o['union_s']:.1f} s)")
    finally:
        res.load_after = os.getloadavg()
        if keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return res


def run_benchmark(sizes: list[int], *, seed: int = 42, timeout: float = TIMEOUT_S,
                  workdir: Path | None = None, spatial_venv: Path | None = None,
                  keep: bool = False,
                  log=print) -> list[SizeResult]:  # type: ignore[no-untyped-def]
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    venv = spatial_venv or Path(tempfile.gettempdir()) / "usagectl-spatial-venv"
    spatial = ensure_spatial_venv(venv, log=log)
    log(f"spatial venv: {spatial.note}; {spatial.versions or 'unavailable'}")
    return [run_size(n, seed=seed, timeout=timeout, workdir=workdir, spatial=spatial,
                     keep=keep, log=log) for n in sorted(sizes)]


# ------------------------------------------------------------------------------- report


def _num(x: float | None, fmt: str = ",.1f") -> str:
    return "–" if x is None else format(x, fmt)


def _rel(x: float | None, ref: float | None) -> str:
    if x is None or ref is None or ref == 0:
        return "–"
    d = (x - ref) / ref
    return "0" if d == 0 else f"{d:+.1e}"


def _wall(t: Timed | None) -> str:
    if t is None:
        return "–"
    if t.timed_out:
        return f"timed out ({t.timeout:g} s)"
    return f"{t.seconds:,.1f}" + ("" if t.exit_code == 0 else f" (exit {t.exit_code})")


def _mib(kib: int | None) -> str:
    return "–" if not kib else f"{kib / 1024:,.0f}"


@dataclass
class Q:
    """A time in seconds, or a lower bound of one (a run that hit its timeout)."""
    value: float
    ge: bool = False


def _q(q: Q | None) -> str:
    return "–" if q is None else ("≥ " if q.ge else "") + f"{q.value:,.1f} s"


def _qratio(a: Q | None, b: Q | None) -> str:
    if a is None or b is None or b.value == 0 or (a.ge and b.ge):
        return "–"
    return ("≥ " if a.ge else "≤ " if b.ge else "") + f"{a.value / b.value:.2f}"


def size_markdown(r: SizeResult) -> str:
    rows = r.rows
    cold = rows.get("report_cold")
    naive_o, naive_u = rows.get("naive_owner"), rows.get("naive_users")
    ref_owner = naive_o.owner if naive_o and naive_o.owner is not None else None
    ref_users = naive_u.users if naive_u and naive_u.users is not None else None
    ref_what_o = "naive owner union"
    ref_what_u = "naive per-user unions"
    if ref_owner is None and cold is not None:
        ref_owner, ref_what_o = cold.owner, "usagectl `report` (naive did not finish)"
    if ref_users is None and cold is not None:
        ref_users, ref_what_u = cold.users, "usagectl `report` (naive did not finish)"
    lines = [
        f"### {r.n:,} events",
        "",
        f"{r.distinct:,} distinct fields, 200 users; Parquet {r.parquet_mib:,.0f} MiB, generated "
        f"in {r.generate_s:.0f} s. Events counted by usagectl: {_num(r.counted, ',')}; by the "
        "references: " + (", ".join(f"{k} {v:,}" for k, v in r.reference_events.items())
                          or "–") + ". "
        f"Load average (1, 5, 15 min) {' / '.join(f'{x:.1f}' for x in r.load_before)} before, "
        f"{' / '.join(f'{x:.1f}' for x in r.load_after)} after.",
        "",
        "| method | wall s | details (s) | peak RSS MiB | Σ PSS MiB | owner acres | "
        "Σ users acres | rel. diff owner | rel. diff Σ users |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, row in rows.items():
        t = row.timed
        no_ref = key in ("ingest", "ingest_extra", "report_incr")
        wall = _wall(t) if t is not None else ("not run" if row.note else "–")
        lines.append(
            f"| {row.label} | {wall} | {row.detail or '–'} | "
            f"{_mib(t.peak_rss_kib if t else None)} | {_mib(t.peak_tree_pss_kib if t else None)} | "
            f"{_num(row.owner, ',.2f')} | {_num(row.users, ',.2f')} | "
            f"{'–' if no_ref else _rel(row.owner, ref_owner)} | "
            f"{'–' if no_ref else _rel(row.users, ref_users)} |")
    lines += [
        "",
        f"Relative differences are against the {ref_what_o} (owner) and the {ref_what_u} "
        "(Σ users), on the same events; the incremental report counts the extra day too, so it "
        "has none. *Peak RSS* is the largest single process (`/usr/bin/time -v`, \"Maximum "
        "resident set size\"); *Σ PSS* is the peak of the proportional set size summed over "
        "the process tree, sampled every 0.25 s (usagectl forks a worker pool); for a run "
        "killed at its timeout both are the highest sampled values."
        + (f" Overlap reported by `report`: {_num(cold.overlap, ',.2f')} acres."
           if cold and cold.overlap is not None else ""),
        "",
        "Ratios (wall times of the usagectl commands, which include start-up and reading the "
        "database; reference times exclude reading the Parquet; ST_Union_Agg excludes the area "
        "step, done apart in the main environment):",
        "",
    ]
    def wall(k: str) -> Q | None:
        row = rows.get(k)
        t = row.timed if row else None
        if t is None or (not t.ok and not t.timed_out):
            return None
        return Q(t.timeout, True) if t.timed_out else Q(t.seconds)

    def comp(*keys: str) -> Q | None:
        total, bound = 0.0, False
        for k in keys:
            row = rows.get(k)
            t = row.timed if row else None
            if row is not None and row.compute_s is not None:
                total += row.compute_s
            elif t is not None and t.timed_out:
                total, bound = total + t.timeout, True
            else:
                return None
        return Q(total, bound)

    rep = wall("report_cold")
    naive = comp("naive_owner", "naive_users")
    st = comp("st_owner", "st_users")
    lines.append(f"- naive (owner + per-user `union_all` + Geod) / usagectl `report`: "
                 f"{_q(naive)} / {_q(rep)} = **{_qratio(naive, rep)}**")
    if r.spatial is not None and r.spatial.python is None:
        lines.append(f"- `ST_Union_Agg` / usagectl `report`: not run ({r.spatial.note})")
    else:
        lines.append(f"- `ST_Union_Agg` (owner + GROUP BY user_id, union only) / usagectl "
                     f"`report`: {_q(st)} / {_q(rep)} = **{_qratio(st, rep)}**")
    trio = [wall(k) for k in ("report_cold", "users", "overlap")]
    if all(x is not None for x in trio):
        total = Q(sum(x.value for x in trio), any(x.ge for x in trio))
        lines.append(f"- `report` + `report --view users` + `overlap` (owner, users and overlap "
                     f"of the period): {_q(total)}; `overlap` alone (owner, Σ users, overlap, "
                     f"per-user exclusive): {_q(trio[2])}")
    for key, what, bold in (("daily_cold", "`report --view daily` on a fresh store / `report`",
                             True),
                            ("daily", "`report --view daily` after the report / `report`", False),
                            ("report_warm", "second `report` / first", False),
                            ("report_incr", "`report` after one more day / first", False)):
        ratio = _qratio(wall(key), rep)
        lines.append(f"- {what}: {_q(wall(key))} / {_q(rep)} = "
                     + (f"**{ratio}**" if bold else ratio))
    if r.errors:
        lines += ["", "Problems:", ""] + [f"- {e}" for e in r.errors]
    return "\n".join(lines) + "\n"


def markdown_section(results: list[SizeResult], heading: str = "##") -> str:
    spatial = next((r.spatial for r in results if r.spatial), None)
    if spatial and spatial.python:
        v = spatial.versions
        st = (f"DuckDB {v.get('duckdb')} with `{SPATIAL_PACKAGE}` {v.get('package')} "
              f"(extension version {v.get('extension_version')}, loaded from the wheel by path) "
              f"in a separate virtual environment ({spatial.note})")
    else:
        st = f"DuckDB spatial could not be set up: {spatial.note if spatial else 'not tried'}"
    parts = [
        f"{heading} Unique area at scale: usagectl against naive union and `ST_Union_Agg`",
        "",
        "Issue 3's targets, for reading the numbers: usagectl ≥ 3× faster than a naive union at "
        "200k; the 1M period report (owner, users, overlap) within about 2 minutes; the daily "
        "view ≤ 2× the report. This section measures; it does not judge.",
        "",
        "Data: `benchmarks/area_gen.py` (one owner, fields of 2–200 ha packed without overlap "
        "at about 42° N, 200 users as spatial blocks, 40 % of events re-process a field with "
        "~3 m jitter, a quarter of those by another user; timestamps over the year). Contract "
        "`big`, meter `area` (`unique_area`, acres), annual period from 2026-01-01 in "
        f"{ZONE}; every usagectl command runs with `--as-of {AS_OF} --format json` as its own "
        "process into a fresh database per size. The extra day is "
        f"{EXTRA_FRACTION:.1%} of N events on 2026-12-31 (local) with new event ids: half "
        "re-process existing fields with jitter, half are new fields east of the landscape.",
        "",
        "References read the same Parquet and keep the same events as the contract counts "
        "(period start inclusive, end exclusive, `ts <= as_of`): naive = `shapely.union_all` of "
        "all geometries (owner) and one `union_all` per user, each in its own process; "
        f"`ST_Union_Agg(ST_GeomFromWKB(geometry))`: {st}. Every area is "
        "`abs(pyproj.Geod(ellps=\"WGS84\").geometry_area_perimeter(shapely.orient_polygons(g))"
        "[0])`.",
        "",
    ]
    parts += [size_markdown(r) for r in results]
    return "\n".join(parts)


# -------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--internal-naive"]:
        print(json.dumps(internal_naive(*argv[1:6])))
        return 0
    if argv[:1] == ["--internal-area"]:
        print(json.dumps(internal_area(argv[1])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                    help="event counts (default: %(default)s)")
    ap.add_argument("--output", type=Path, help="write the Markdown section to this file")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S,
                    help="seconds per measured subprocess before it is killed and recorded as "
                         "timed out (default: %(default)s)")
    ap.add_argument("--spatial-venv", type=Path, default=None,
                    help="virtual environment with duckdb + duckdb-extension-spatial, created "
                         "when missing (default: $TMPDIR/usagectl-spatial-venv)")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the Parquet files and databases go (default: temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the files and databases")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    started = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    results = run_benchmark(args.sizes, seed=args.seed, timeout=args.timeout,
                            workdir=args.workdir, spatial_venv=args.spatial_venv,
                            keep=args.keep, log=log)
    from run import machine_description

    report = "\n".join(["## Machine", "", *machine_description(),
                        f"- This run: {(time.monotonic() - started) / 60:.1f} min", "",
                        markdown_section(results)])
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
