"""Short locks across real processes (docs/ingest.md "Locks", docs/cli.md "Locks").

An ingest reads, types and stages a file into its own staging file beside the database and
opens the database read-write only to record the ingest and to commit it; every command retries
opening a database another process holds for up to ``--wait`` seconds. Processes are paused
with SIGSTOP at the moment under test (the staging file exists; the commit holds the lock), so
the tests synchronise on states, not on sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import HECTARE_AREA, write

USAGECTL = [sys.executable, "-m", "usagectl"]

pytestmark = pytest.mark.skipif(not Path("/proc/locks").exists(),
                                reason="watches locks in /proc/locks (Linux)")

CONTRACT = """
[[contract]]
id = "c"
owner = "acme"
start = 2026-01-01
cycle = "annual"
timezone = "UTC"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens"]

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
"""
AS_OF = "2026-12-31T00:00:00Z"

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("USAGECTL_WAIT", None)
    return env


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(USAGECTL + list(map(str, args)), capture_output=True, text=True,
                          env=_env(), timeout=timeout)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(USAGECTL + list(map(str, args)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _events_csv(path: Path, first: int, last: int) -> Path:
    """Rows first..last-1 of one owner's token log, written by DuckDB (fast at 1M rows)."""
    con = duckdb.connect()
    con.execute(f"""
COPY (SELECT 'e' || i AS event_id, TIMESTAMPTZ '2026-03-01 00:00:00+00' + to_seconds(i % 86400)
             AS ts, 'acme' AS owner_id, 'u' || (i % 97) AS user_id, 'P' AS product,
             i % 1000 AS input_tokens
      FROM range({int(first)}, {int(last)}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()
    return path


def _until(check: Callable[[], bool], what: str, proc: subprocess.Popen | None = None,
           timeout: float = 240) -> None:
    """Poll (tightly: the states last seconds) until ``check()`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _staging_files(db: Path) -> list[Path]:
    return sorted(db.parent.glob(db.name + ".staging-*"))


def _staging_db(db: Path) -> bool:
    return any(p.name.endswith(".duckdb") for p in _staging_files(db))


def _writer(db: Path) -> int | None:
    """The pid of the process holding the database's write lock, from /proc/locks (reading it
    takes no lock, so polling never disturbs the processes under test)."""
    ino = os.stat(db).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "POSIX" and parts[3] == "WRITE" \
                and parts[5].rsplit(":", 1)[-1] == str(ino):
            return int(parts[4])
    return None


def _locked(db: Path) -> bool:
    """True while another process holds the database read-write."""
    return _writer(db) is not None


def _waiting(proc: subprocess.Popen) -> None:
    """Block until ``proc`` says on stderr that it waits for the database."""
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "waiting up to" in line, line + proc.stderr.read()


def _query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _report(db: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run(*extra, "--db", db, "report", "-c", "c", "--as-of", AS_OF, "--format", "json")


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    """A database with the contract and 1,000 events (e0…e999)."""
    db = tmp_path / "u.duckdb"
    r = _run("--db", db, "ingest", _events_csv(tmp_path / "first.csv", 0, 1000), "-q")
    assert r.returncode == 0, r.stderr
    assert _run("--db", db, "contracts", "load", write(tmp_path / "c.toml", CONTRACT)).returncode == 0
    return db


def _tokens(doc: dict) -> float:
    return next(m for m in doc["meters"] if m["name"] == "tokens")["owner_total"]


#: Rows of the file ingested beside the reports: enough that its commit takes a moment.
BIG = 200_000


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """BIG events after those of ``loaded``."""
    return _events_csv(tmp_path / "big.csv", 1000, 1000 + BIG)


def test_a_report_runs_while_a_1m_row_ingest_is_staging(loaded: Path, tmp_path: Path) -> None:
    big = _events_csv(tmp_path / "big.csv", 1000, 1_001_000)  # staging takes seconds
    before = _report(loaded)
    assert before.returncode == 0, before.stdout + before.stderr
    ingest = _start("--db", loaded, "ingest", big, "--format", "json")
    try:
        _until(lambda: _staging_db(loaded), "the staging file", ingest)
        ingest.send_signal(signal.SIGSTOP)  # frozen while staging: the database must be free
        assert not _locked(loaded)
        during = _report(loaded, "--wait", "0")  # no waiting at all: the file is not held
        assert during.returncode == 0, during.stdout + during.stderr
        assert json.loads(during.stdout) == json.loads(before.stdout)
        # Another command that writes runs too, and leaves the live ingest's row alone.
        assert _run("--wait", "0", "--db", loaded, "contracts", "load",
                    loaded.parent / "c.toml").returncode == 0
        assert _query(loaded, "SELECT status FROM ingests WHERE path = "
                      f"'{big}'") == [("running",)]
    finally:
        ingest.send_signal(signal.SIGCONT)
    out, err = ingest.communicate(timeout=600)
    assert ingest.returncode == 0, err
    assert json.loads(out)["totals"]["accepted"] == 1_000_000
    after = _report(loaded)
    assert _tokens(json.loads(after.stdout)) > _tokens(json.loads(before.stdout))
    assert _staging_files(loaded) == []


def test_a_report_during_the_commit_waits_and_succeeds(loaded: Path, big: Path) -> None:
    ingest = _start("--db", loaded, "ingest", big, "--format", "json")
    report = None
    try:
        _until(lambda: _staging_db(loaded), "the staging file", ingest)
        _until(lambda: _locked(loaded), "the commit", ingest)
        ingest.send_signal(signal.SIGSTOP)  # frozen while holding the write lock
        if _locked(loaded):  # (else the commit had already ended: the report just runs)
            report = _start("--db", loaded, "report", "-c", "c", "--as-of", AS_OF,
                            "--format", "json")
            _waiting(report)  # it met the lock and waits
    finally:
        ingest.send_signal(signal.SIGCONT)
    assert ingest.wait(timeout=600) == 0
    if report is None:
        r = _report(loaded)
        out, err, code = r.stdout, r.stderr, r.returncode
    else:
        out, err = report.communicate(timeout=300)
        code = report.returncode
    assert code == 0, out + err  # the default --wait outlasts the commit
    doc = json.loads(out)
    assert doc["events_counted"] in (1000, 1000 + BIG)  # before or after the file, never between


def test_wait_0_fails_at_once_with_database_locked(loaded: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(loaded)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        r = _report(loaded, "--wait", "0")
        assert r.returncode == 1
        err = json.loads(r.stdout)["error"]
        assert err["code"] == "database_locked" and err["details"]["pid"] == holder.pid
        assert "Traceback" not in r.stderr
        r = _run("--wait", "0.5", "--db", loaded, "ingests")  # waits half a second, then says so
        assert r.returncode == 1 and "locked by process" in r.stderr
        assert "waited 0.5 s" in r.stderr and "Traceback" not in r.stderr
        r = _run("--wait", "0", "--db", loaded, "ingest", loaded.parent / "first.csv")
        assert r.returncode == 1 and "locked by process" in r.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    assert _query(loaded, "SELECT count(*) FROM ingests") == [(1,)]  # nothing recorded


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "1e9"])
def test_wait_must_be_a_number_of_seconds(loaded: Path, value: str) -> None:
    r = _run("--wait", value, "--db", loaded, "ingests", "--format", "json")
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "validation_error" and err["details"]["option"] == "--wait"
    assert "0 to 86400" in err["message"]


def test_two_concurrent_ingests_of_overlapping_files(tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    assert _run("--db", db, "ingest", _events_csv(tmp_path / "seed.csv", 0, 10), "-q").returncode == 0
    a = _events_csv(tmp_path / "a.csv", 0, 300_000)
    b = _events_csv(tmp_path / "b.csv", 150_000, 450_000)
    procs = [_start("--db", db, "ingest", f, "--format", "json") for f in (a, b)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err + out
        results.append(json.loads(out)["totals"])
    assert sum(r["accepted"] for r in results) == 450_000 - 10
    assert sum(r["duplicates"] for r in results) == 150_000 + 10
    assert _query(db, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(450_000, 450_000)]
    assert _query(db, "SELECT path, status FROM ingests WHERE id > 1 ORDER BY path") == [
        (str(a), "ok"), (str(b), "ok")]
    assert _staging_files(db) == []


def _after_kill(db: Path, big: Path, tmp_path: Path) -> None:
    """The database is as before the killed file; the next writer records it failed and
    removes its staging file."""
    assert _query(db, "SELECT count(*) FROM events") == [(1000,)]
    assert _staging_files(db)  # left behind by the kill
    r = _run("--db", db, "ingest", write(tmp_path / "empty.csv", "event_id,ts,owner_id,user_id\n"))
    assert r.returncode == 0, r.stderr
    rows = _query(db, f"SELECT status, accepted, error FROM ingests WHERE path = '{big}'")
    assert len(rows) == 1 and rows[0][:2] == ("failed", 0) and "interrupted" in rows[0][2]
    assert _query(db, "SELECT count(*) FROM events") == [(1000,)]
    assert _staging_files(db) == []


def test_kill_during_staging(loaded: Path, big: Path, tmp_path: Path) -> None:
    ingest = _start("--db", loaded, "ingest", big)
    _until(lambda: _staging_db(loaded), "the staging file", ingest)
    ingest.send_signal(signal.SIGSTOP)
    assert not _locked(loaded)  # staging, not committing
    ingest.kill()
    ingest.wait()
    _after_kill(loaded, big, tmp_path)


def test_kill_during_commit(loaded: Path, big: Path, tmp_path: Path) -> None:
    ingest = _start("--db", loaded, "ingest", big)
    _until(lambda: _staging_db(loaded), "the staging file", ingest)
    _until(lambda: _locked(loaded), "the commit", ingest)
    ingest.kill()
    ingest.wait()
    if _query(loaded, "SELECT count(*) FROM events") == [(1000 + BIG,)]:
        pytest.skip("the commit ended before the kill landed")  # whole, never partial
    _after_kill(loaded, big, tmp_path)


@pytest.fixture
def fields(cli, tmp_path: Path, db_path: Path) -> list:  # noqa: ANN001
    """A database of boundaries in a few area tiles; the arguments of its area report."""
    rows = "event_id,ts,owner_id,user_id,product,geometry\n" + "".join(
        f'f{i},2026-02-{1 + i % 27:02d}T10:00:00Z,acme,u{i % 3},FIELDS_BOUNDARY,'
        f'"POLYGON(({x} {y},{x + 0.02} {y},{x + 0.02} {y + 0.01},{x} {y + 0.01},{x} {y}))"\n'
        for i, (x, y) in enumerate((5.01 + 0.013 * k, 50.01 + 0.07 * (k % 5)) for k in range(60)))
    assert cli("ingest", write(tmp_path / "f.csv", rows)).exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "a.toml", HECTARE_AREA)).exit_code == 0
    return ["--db", db_path, "report", "-c", "c", "--as-of", "2026-06-30T00:00:00Z",
            "--format", "json"]


def _clear_cache(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM area_tiles")  # so that the next report writes the cache again
    con.close()


def test_reports_at_once_while_one_writes_the_area_cache(fields: list, db_path: Path) -> None:
    """Each report stores area tiles when it closes (a short write): the others still open."""
    for _ in range(3):
        _clear_cache(db_path)
        procs = [_start(*fields) for _ in range(3)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, out + err
            outs.append(json.loads(out))
        assert outs[0] == outs[1] == outs[2]


def test_a_report_opens_while_another_writes_the_area_cache(fields: list, db_path: Path) -> None:
    """Report A is frozen inside its cache write (holding the write lock); report B, started
    then, waits for it and both succeed with the same figures."""
    args = fields
    for _ in range(10):  # the write lasts milliseconds: catch it (polling takes no lock)
        _clear_cache(db_path)
        a = _start(*args)
        while a.poll() is None and _writer(db_path) != a.pid:
            pass
        if a.poll() is None:
            a.send_signal(signal.SIGSTOP)
            break
        a.communicate()
    else:
        pytest.skip("never caught a cache write in progress")
    try:
        assert _writer(db_path) == a.pid
        b = _start(*args)
        _waiting(b)
    finally:
        a.send_signal(signal.SIGCONT)
    out_a, err_a = a.communicate(timeout=300)
    out_b, err_b = b.communicate(timeout=300)
    assert a.returncode == 0, out_a + err_a
    assert b.returncode == 0, out_b + err_b
    assert json.loads(out_a) == json.loads(out_b)
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM area_tiles").fetchone()[0] > 0  # A wrote it


def test_a_report_waits_for_a_short_writer(loaded: Path) -> None:
    """A writer that holds the file for a moment (a cache write, a commit) delays a report
    started meanwhile; it does not fail it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(loaded)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    report = _start("--db", loaded, "report", "-c", "c", "--as-of", AS_OF, "--format", "json")
    _waiting(report)  # the report met the lock
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait()
    out, err = report.communicate(timeout=300)
    assert report.returncode == 0, out + err
    assert json.loads(out)["events_counted"] == 1000


def test_the_staging_table_has_the_events_types(tmp_path: Path) -> None:
    """The staging table's types come from store.db, the same list that writes the schema."""
    from usagectl.store import db as store_db

    con = store_db.connect(tmp_path / "u.duckdb")
    try:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'events'").fetchall())
        check = duckdb.connect()
        for name, typ in store_db.EVENT_TYPES.items():
            check.execute(f"CREATE TABLE t_{name} (x {typ})")
            (declared,) = check.execute("SELECT data_type FROM information_schema.columns "
                                        f"WHERE table_name = 't_{name}'").fetchone()
            assert declared == types[name], name
        assert list(store_db.EVENT_TYPES) == list(types)
    finally:
        con.close()
