"""Issue 11's speed benchmarks: usagectl against the bare DuckDB (or geopandas) doing the same work.

Sections (each a list of ``harness.Comparison``; ``run.py`` renders them):

- ``ingest``: 10M token events as CSV, JSON Lines and Parquet, each ``usagectl ingest`` into a
  fresh database against ``CREATE TABLE ev AS SELECT * FROM read_csv/read_json/read_parquet(f)``
  into a fresh DuckDB file in a new ``python -c`` process; a re-ingest of the CSV (every row a
  duplicate); and one ingest of a tenth of the rows, for how peak memory moves with the file.
- ``geo``: polygons from ``area_gen.py`` as GeoParquet and GeoJSON against
  ``geopandas.read_parquet``/``read_file`` + ``shapely.make_valid``.
- ``reports``: consolidated, users, series and top of a contract with sum, count and distinct
  meters over every event, against the same aggregates as one query in a new process. The
  database is the one the CSV ingest wrote (real ingested data); without it (``--only reports``,
  or the ingest failed) it is built by a direct DuckDB INSERT into usagectl's schema.
- ``export``: ``report --view log`` as JSON and CSV into a file, and ``export``, for their peak
  memory against the 500 MiB target, beside a bare ``COPY (SELECT …) TO`` of the same events.
- ``startup``: ``usagectl --version`` and ``usagectl report --help`` against ``python -c pass``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import events_gen
from area_scale import _usagectl
from harness import Comparison, Target, compare

PY = sys.executable
AS_OF = events_gen.AS_OF
INGEST_TARGET = Target("ratio", 2.0)
GEO_TARGET = Target("ratio", 3.0)
REPORT_TARGET = Target("ratio", 2.0)
STARTUP_TARGET = Target("delta", 0.15)
EXPORT_TARGET = Target("rss", 500)
NAMES = {"csv": "CSV", "jsonl": "JSON Lines", "parquet": "Parquet"}

# ------------------------------------------------------------------------------ the peers
# Each runs as `python -c CODE ARGS…`: a new process, start-up included, as usagectl's is.

PEER_INGEST = """
import sys, duckdb
reader, path, db = sys.argv[1:4]
con = duckdb.connect(db)
con.execute("CREATE TABLE ev AS SELECT * FROM " + reader + "(?)", [path])
print(con.execute("SELECT count(*) FROM ev").fetchone()[0])
"""

PEER_GEOPARQUET = """
import sys, geopandas, shapely
g = geopandas.read_parquet(sys.argv[1])
v = shapely.make_valid(g.geometry.values)
print(len(v))
"""

PEER_GEOJSON = """
import sys, geopandas, shapely
g = geopandas.read_file(sys.argv[1])
v = shapely.make_valid(g.geometry.values)
print(len(v))
"""

PEER_QUERY = """
import json, sys, duckdb
db, sql, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
con = duckdb.connect(db, read_only=True)
rows = con.execute(sql, params).fetchall()
print(len(rows))
"""

PEER_COPY = """
import json, sys, duckdb
db, sql, params, out, fmt = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
con = duckdb.connect(db, read_only=True)
opts = "FORMAT json, ARRAY true" if fmt == "json" else "FORMAT csv, HEADER true"
con.execute("COPY (" + sql + ") TO '" + out.replace("'", "''") + "' (" + opts + ")", params)
"""

#: The contract's period and as-of, bound as parameters in every peer query.
PERIOD = ["2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00", "2026-12-31T23:00:00+00:00"]
_COUNTED = ("owner_id = 'terra-tokens' AND ts >= ?::TIMESTAMPTZ AND ts < ?::TIMESTAMPTZ "
            "AND ts <= ?::TIMESTAMPTZ AND succeeded")
_TOKENS = "input_tokens + output_tokens"
_TOKEN_FILTER = "product IN ('API_TOKENS', 'chat')"
_METERS = (f"sum({_TOKENS}) FILTER (WHERE {_TOKEN_FILTER}) AS tokens, "
           f"sum(input_tokens) FILTER (WHERE {_TOKEN_FILTER}) AS input_tokens, "
           f"sum(output_tokens) FILTER (WHERE {_TOKEN_FILTER}) AS output_tokens, "
           "count(*) AS requests, count(DISTINCT user_id) AS users")

#: The same aggregates as each usagectl view, one statement each.
PEER_SQL = {
    "consolidated": f"SELECT {_METERS} FROM events WHERE {_COUNTED}",
    "users": f"SELECT user_id, {_METERS} FROM events WHERE {_COUNTED} GROUP BY user_id "
             "ORDER BY user_id",
    # New consumption per UTC day; the distinct meter's new users are those first seen that day.
    "series": f"""
WITH counted AS (SELECT * FROM events WHERE {_COUNTED}),
firsts AS (SELECT user_id, min(ts) AS first FROM counted GROUP BY user_id)
SELECT date_trunc('day', ts AT TIME ZONE 'UTC') AS day,
       sum({_TOKENS}) FILTER (WHERE {_TOKEN_FILTER}) AS tokens, count(*) AS requests,
       count(DISTINCT user_id) FILTER (WHERE ts = first) AS users
FROM counted JOIN firsts USING (user_id) GROUP BY day ORDER BY day""",
    "top": f"SELECT user_id, sum({_TOKENS}) AS tokens, count(*) AS events FROM events "
           f"WHERE {_COUNTED} AND {_TOKEN_FILTER} GROUP BY user_id "
           "ORDER BY tokens DESC, user_id LIMIT 50",
}
VIEW_ARGS = {
    "consolidated": [],
    "users": ["--view", "users"],
    "series": ["--view", "series", "--bucket", "day"],
    "top": ["--view", "top", "--group-by", "user_id", "--meter", "tokens"],
}
LOG_SQL = ("SELECT ts, event_id, user_id, org_id, product, action, resource_id, status, "
           "error_code, endpoint, method, operation, dataset_id, indicator_ids, input_tokens, "
           f"output_tokens, thinking_tokens, credits, response_time_ms, session_id, request_id "
           f"FROM events WHERE {_COUNTED} ORDER BY ts, event_id")


@dataclass
class Options:
    rows: int
    polygons: int
    geojson_polygons: int
    runs: int
    warmup: int
    startup_runs: int
    timeout: float
    cap_mib: float
    workdir: Path
    reports_from: str = "ingest"  # ingest (the CSV benchmark's database) or insert
    export_runs: int = 1  # the export's target is memory; each run at 10M takes minutes
    # Runs and warm-ups of the 10M-row CSV, JSON Lines and Parquet ingests and the re-ingest
    # (default: --runs and --warmup); each of those takes minutes at 10M rows.
    ingest_runs: int | None = None
    ingest_warmup: int | None = None

    @property
    def ingest(self) -> tuple[int, int]:
        """(runs, warm-up) of each file ingest."""
        return (self.runs if self.ingest_runs is None else self.ingest_runs,
                self.warmup if self.ingest_warmup is None else self.ingest_warmup)
    log: Callable[[str], None] = print


@dataclass
class Section:
    key: str
    title: str
    intro: str
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _rm_db(path: Path) -> None:
    for p in path.parent.glob(path.name + "*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _accounting(stdout: str, n: int, expect: str) -> str:
    """One sentence on SPEC §3.3's accounting in an ingest's JSON output."""
    try:
        f = (json.loads(stdout).get("files") or [{}])[0]
        balanced = f["rows_read"] == f["accepted"] + f["duplicates"] + f["rejected"]
        complete = f["rows_read"] == n and f[expect] == n
    except (ValueError, KeyError, AttributeError, IndexError, TypeError):
        return f"no ingest JSON on stdout: {stdout[:200]!r}"
    return (f"status {f.get('status')}, rows_read {f['rows_read']:,} = accepted "
            f"{f['accepted']:,} + duplicates {f['duplicates']:,} + rejected {f['rejected']:,} "
            f"({'holds' if balanced else 'BROKEN'}; {expect} = {n:,}: "
            f"{'yes' if complete else 'NO'})")


def _ingest_cmd(db: Path, file: Path) -> list[str]:
    return [*_usagectl(), "--db", str(db), "ingest", str(file), "--format", "json", "-q"]


# ------------------------------------------------------------------------------- sections


def ingest_section(o: Options, files: dict[str, Path]) -> tuple[Section, Path | None]:
    """Returns the section and the database the last CSV ingest wrote (for the reports)."""
    sec = Section("ingest", f"Ingest: {o.rows:,} token events",
                  "Each usagectl run is `usagectl --db NEW.duckdb ingest FILE --format json -q` "
                  "into a fresh database; each peer run is `CREATE TABLE ev AS SELECT * FROM "
                  "read_csv/read_json/read_parquet(FILE)` into a fresh DuckDB file, in a new "
                  "`python -c` process. The files hold the same events (`events_gen.py`).")
    readers = {"csv": "read_csv", "jsonl": "read_json", "parquet": "read_parquet"}
    kept: Path | None = None
    for fmt in ("csv", "jsonl", "parquet"):
        file = files[fmt]
        ours_db, peer_db = o.workdir / f"ingest_{fmt}.duckdb", o.workdir / f"peer_{fmt}.duckdb"

        def fresh(side: str, i: int, ours_db: Path = ours_db, peer_db: Path = peer_db) -> None:
            _rm_db(ours_db if side == "ours" else peer_db)

        c = compare(f"ingest {NAMES[fmt]} ({file.stat().st_size / 2**20:,.0f} MiB)",
                    _ingest_cmd(ours_db, file),
                    [PY, "-c", PEER_INGEST, readers[fmt], str(file), str(peer_db)],
                    runs=o.ingest[0], warmup=o.ingest[1], timeout=o.timeout, cap_mib=o.cap_mib,
                    ours_what=f"`usagectl ingest {file.name}` into a fresh database",
                    peer_what=f"`CREATE TABLE ev AS SELECT * FROM {readers[fmt]}(f)`",
                    target=INGEST_TARGET, before=fresh, log=o.log)
        last = c.ours.runs[-1] if c.ours.runs else None
        if last is not None:
            c.note = "Accounting of the last run: " + _accounting(last.stdout, o.rows, "accepted")
        sec.comparisons.append(c)
        _rm_db(peer_db)
        if fmt == "csv" and last is not None and last.ok:
            kept = ours_db
        else:
            _rm_db(ours_db)
    if kept is not None:
        c = compare("re-ingest the CSV (all duplicates)", _ingest_cmd(kept, files["csv"]),
                    [PY, "-c", PEER_INGEST, "read_csv", str(files["csv"]),
                     str(o.workdir / "peer_again.duckdb")],
                    runs=o.ingest[0], warmup=o.ingest[1], timeout=o.timeout, cap_mib=o.cap_mib,
                    ours_what="the same `usagectl ingest` into the database the CSV ingest wrote",
                    peer_what="the same `CREATE TABLE … read_csv(f)` into a fresh file",
                    target=INGEST_TARGET,
                    before=lambda side, i: _rm_db(o.workdir / "peer_again.duckdb"), log=o.log)
        last = c.ours.runs[-1] if c.ours.runs else None
        if last is not None:
            c.note = ("Accounting of the last run: "
                      + _accounting(last.stdout, o.rows, "duplicates"))
        sec.comparisons.append(c)
        _rm_db(o.workdir / "peer_again.duckdb")
    else:
        sec.notes.append("Re-ingest not run: the CSV ingest did not leave a database.")
    small = o.rows // 10
    if small >= 1000:
        sec.notes.append(memory_growth(o, small, sec.comparisons[0]))
    return sec, kept


def memory_growth(o: Options, small: int, full: Comparison) -> str:
    """One ingest of a tenth of the rows: does peak RSS grow with the file (SPEC §3.3)?"""
    from harness import measure

    base = o.workdir / "small"
    paths = events_gen.write(small, base, ("csv",), log=o.log)
    db = o.workdir / "small.duckdb"
    _rm_db(db)
    r = measure(_ingest_cmd(db, paths["csv"]), timeout=o.timeout, cap_mib=o.cap_mib)
    _rm_db(db)
    paths["csv"].unlink(missing_ok=True)
    big = full.ours.peak_rss_kib
    o.log(f"  ingest CSV at {small:,} rows: {r.seconds:.1f} s, peak RSS "
          f"{r.peak_rss_kib / 1024:,.0f} MiB" + (f" — {r.error}" if r.error else ""))
    if not r.ok or not big:
        return f"Memory against file size: not measured ({r.error or 'the full ingest failed'})."
    return (f"Memory against file size: one CSV ingest of {small:,} rows peaked at "
            f"{r.peak_rss_kib / 1024:,.0f} MiB RSS, the {o.rows:,}-row ingest at "
            f"{big / 1024:,.0f} MiB (×{big / max(r.peak_rss_kib, 1):.2f} for ×"
            f"{o.rows / small:.0f} the rows).")


def geo_section(o: Options) -> Section:
    sec = Section("geo", "Ingest of polygons",
                  "Field boundaries from `area_gen.py` (one owner, 200 users, 40 % re-processed "
                  "with jitter), written as GeoParquet by `geopandas.GeoDataFrame.to_parquet` and "
                  "as GeoJSON by `to_file` (pyogrio). usagectl ingests into a fresh database and "
                  "makes every geometry valid and polygonal; the peer reads the file with "
                  "geopandas and runs `shapely.make_valid` on every geometry, in a new process.")
    specs = (("geoparquet", o.polygons, "parquet", PEER_GEOPARQUET,
              "`geopandas.read_parquet(f)` + `shapely.make_valid`"),
             ("geojson", o.geojson_polygons, "geojson", PEER_GEOJSON,
              "`geopandas.read_file(f)` (pyogrio) + `shapely.make_valid`"))
    for fmt, n, suffix, peer_code, peer_what in specs:
        if n <= 0:
            continue
        file = o.workdir / f"polygons_{n}.{suffix}"
        events_gen.write_polygons(n, file, fmt)
        o.log(f"generated {file.name}: {n:,} polygons, {file.stat().st_size / 2**20:,.0f} MiB")
        db = o.workdir / f"geo_{fmt}.duckdb"
        c = compare(f"ingest {n:,} polygons as {'GeoParquet' if fmt == 'geoparquet' else 'GeoJSON'}",
                    _ingest_cmd(db, file), [PY, "-c", peer_code, str(file)],
                    runs=o.runs, warmup=o.warmup, timeout=o.timeout, cap_mib=o.cap_mib,
                    ours_what=f"`usagectl ingest {file.name}` into a fresh database",
                    peer_what=peer_what, target=GEO_TARGET,
                    before=lambda side, i, db=db: _rm_db(db), log=o.log)
        last = c.ours.runs[-1] if c.ours.runs else None
        if last is not None:
            c.note = "Accounting of the last run: " + _accounting(last.stdout, n, "accepted")
        sec.comparisons.append(c)
        _rm_db(db)
        file.unlink(missing_ok=True)
    return sec


def build_reports_db(o: Options, csv_file: Path, db: Path) -> str:
    """The fallback: usagectl's schema from a one-row ingest, then every other row by a direct
    DuckDB INSERT (values as usagectl stores them). Returns how the database was made."""
    import duckdb

    _rm_db(db)
    head = o.workdir / "one_row.csv"
    with open(csv_file, encoding="utf-8") as f, open(head, "w", encoding="utf-8") as g:
        g.write(f.readline())
        g.write(f.readline())
    import subprocess

    subprocess.run(_ingest_cmd(db, head), check=True, capture_output=True)
    head.unlink()
    con = duckdb.connect(str(db))
    try:
        (first,) = con.execute("SELECT event_id FROM events").fetchone()
        (ingest_id,) = con.execute("SELECT max(id) FROM ingests").fetchone()
        con.execute("""
INSERT INTO events BY NAME
SELECT owner_id, event_id, ts::TIMESTAMPTZ AS ts, user_id, product, 'process' AS action,
       status::VARCHAR AS status, status::VARCHAR LIKE '2%' AS succeeded, endpoint,
       CASE WHEN indicator_ids = '' OR indicator_ids IS NULL THEN NULL
            ELSE string_split(indicator_ids, ',') END AS indicator_ids,
       input_tokens, output_tokens, credits::DECIMAL(38, 9) AS credits,
       CASE WHEN note = '' OR note IS NULL THEN NULL ELSE json_object('note', note) END
         AS attributes,
       sha256(concat_ws('|', owner_id, event_id, ts, user_id, product, status, input_tokens,
                        output_tokens, credits)) AS content_hash,
       false AS repaired, ? AS ingest_id, 1 + row_number() OVER () AS source_line,
       now() AS ingested_at
FROM read_csv(?, types = {'status': 'VARCHAR', 'credits': 'DECIMAL(18, 4)',
                       'indicator_ids': 'VARCHAR', 'note': 'VARCHAR'})
WHERE event_id <> ?""", [ingest_id, str(csv_file), first])
        n = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.execute("UPDATE ingests SET rows_read = ?, accepted = ? WHERE id = ?",
                    [n, n, ingest_id])
    finally:
        con.close()
    return (f"built by a direct DuckDB INSERT into usagectl's schema ({n:,} events; the schema "
            "from a one-row `usagectl ingest`)")


def reports_db(o: Options, files: dict[str, Path], from_ingest: Path | None) -> tuple[Path, str]:
    db = o.workdir / "reports.duckdb"
    how = ""
    if from_ingest is not None and o.reports_from == "ingest":
        _rm_db(db)
        for p in from_ingest.parent.glob(from_ingest.name + "*"):
            p.rename(db.parent / p.name.replace(from_ingest.name, db.name, 1))
        how = "the database the CSV ingest benchmark wrote (then re-ingested: all duplicates)"
    else:
        o.log("building the reports database by a direct DuckDB INSERT")
        how = build_reports_db(o, files["csv"], db)
    contract = o.workdir / "contract.toml"
    contract.write_text(events_gen.CONTRACT, encoding="utf-8")
    import subprocess

    subprocess.run([*_usagectl(), "--db", str(db), "contracts", "load", str(contract), "-q"],
                   check=True, capture_output=True)
    return db, how


def reports_section(o: Options, db: Path, how: str) -> Section:
    sec = Section("reports", f"Reports: {o.rows:,} events",
                  f"Contract `{events_gen.CONTRACT_ID}` (annual 2026, UTC) with a `sum` meter "
                  "(input + output tokens of two products), a `count` meter and a `distinct` "
                  f"meter (user_id), every event in its period; database: {how}. usagectl runs "
                  f"`usagectl --db DB report -c {events_gen.CONTRACT_ID} --as-of {AS_OF} "
                  "--format json` with the view's options; the peer runs the same aggregates "
                  "(successful events of the owner in the period) as one query in a new "
                  "`python -c` process that opens the same database read-only.")
    for view, extra in VIEW_ARGS.items():
        ours = [*_usagectl(), "--db", str(db), "report", "-c", events_gen.CONTRACT_ID, *extra,
                "--as-of", AS_OF, "--format", "json"]
        peer = [PY, "-c", PEER_QUERY, str(db), PEER_SQL[view], json.dumps(PERIOD)]
        sec.comparisons.append(compare(
            f"report `{view}`", ours, peer, runs=o.runs, warmup=o.warmup, timeout=o.timeout,
            cap_mib=o.cap_mib, ours_what="`report " + " ".join([*extra, "--format json"]) + "`",
            peer_what="one SELECT (" + {"consolidated": "sum, count, count distinct",
                                        "users": "the same GROUP BY user_id",
                                        "series": "per UTC day, new users by first sighting",
                                        "top": "sum per user, ORDER BY … LIMIT 50"}[view] + ")",
            target=REPORT_TARGET, log=o.log))
    return sec


def export_section(o: Options, db: Path, how: str) -> Section:
    sec = Section("export", f"Log export: {o.rows:,} events",
                  "The target is memory: peak RSS under 500 MiB whatever the format (time is "
                  "shown beside a bare `COPY (SELECT …) TO` of the counted events, which writes "
                  "no first-sighting marks). Database: " + how + ". Every process is killed "
                  f"when its RSS passes {o.cap_mib:,.0f} MiB (`--mem-cap`). Runs: "
                  f"{o.export_runs} per side without a warm-up (`--export-runs`).")
    out = o.workdir / "out"
    out.mkdir(exist_ok=True)
    base = [*_usagectl(), "--db", str(db)]
    c_id = events_gen.CONTRACT_ID
    specs = (
        ("`report --view log --format json --out FILE`",
         [*base, "report", "-c", c_id, "--view", "log", "--as-of", AS_OF, "--format", "json",
          "--out", str(out / "log.json"), "-q"], "json"),
        ("`report --view log --format csv --out FILE`",
         [*base, "report", "-c", c_id, "--view", "log", "--as-of", AS_OF, "--format", "csv",
          "--out", str(out / "log.csv"), "-q"], "csv"),
        ("`export` (consolidated, users, daily, log)",
         [*base, "export", "-c", c_id, "--as-of", AS_OF, "--out-dir", str(out / "export"),
          "-q"], "csv"),
    )
    for work, ours, fmt in specs:
        peer_out = out / f"peer.{fmt}"
        sec.comparisons.append(compare(
            work, ours, [PY, "-c", PEER_COPY, str(db), LOG_SQL, json.dumps(PERIOD), str(peer_out),
                         fmt],
            runs=o.export_runs, warmup=0, timeout=o.timeout, cap_mib=o.cap_mib,
            ours_what=work, peer_what=f"`COPY (SELECT … ORDER BY ts, event_id) TO f` ({fmt})",
            target=EXPORT_TARGET, log=o.log))
    shutil.rmtree(out, ignore_errors=True)
    return sec


def startup_section(o: Options) -> Section:
    sec = Section("startup", "Start-up",
                  f"Median of {o.startup_runs} runs after a warm-up, alternating with "
                  "`python -c pass` of the interpreter usagectl runs on (its virtual "
                  "environment's). The target is a difference: "
                  "usagectl's median minus Python's ≤ +0.15 s; the *ratio* column shows it.")
    for work, argv in (("`usagectl --version`", ["--version"]),
                       ("`usagectl report --help`", ["report", "--help"])):
        sec.comparisons.append(compare(
            work, [*_usagectl(), *argv], [PY, "-c", "pass"], runs=o.startup_runs, warmup=1,
            timeout=o.timeout, cap_mib=o.cap_mib, ours_what=work, peer_what="`python -c pass`",
            target=STARTUP_TARGET, log=o.log))
    return sec
