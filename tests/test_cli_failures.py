"""Failures that must never read "internal error … this is a bug" (SPEC §6; docs/cli.md).

Time zones DuckDB does not know, the end of time, huge offsets, Ctrl-C inside a query, another
program's DuckDB file, and a database locked by another program.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

CONTRACT = """
[[contract]]
id = "c"
owner = "o"
start = 2026-01-01
cycle = "monthly"
timezone = "{tz}"
  [[contract.meter]]
  name = "requests"
  aggregate = "count"
"""


def test_time_zones_duckdb_does_not_know_are_refused_at_load(cli, tmp_path: Path) -> None:
    text = CONTRACT.format(tz="right/UTC") + CONTRACT.format(tz="localtime").replace('"c"', '"d"')
    f = write(tmp_path / "c.toml", text)
    r = cli("contracts", "load", f, "--format", "json")
    assert r.exit_code == 1
    problems = r.json()["error"]["details"]["problems"]
    assert len(problems) == 2, problems
    assert "'right/UTC'" in problems[0] and "DuckDB" in problems[0] and "'UTC'" in problems[0]
    assert "'localtime'" in problems[1] and "DuckDB" in problems[1]
    # The what-if file of a report is checked the same way.
    cli("contracts", "load", write(tmp_path / "ok.toml", CONTRACT.format(tz="UTC")))
    r = cli("report", "-c", "c", "--contracts", f, "--as-of", "2026-03-01")
    assert r.exit_code == 1 and "right/UTC" in r.stderr and "internal error" not in r.stderr
    ok = cli("contracts", "load", write(tmp_path / "ny.toml", CONTRACT.format(tz="America/New_York")))
    assert ok.exit_code == 0, ok.stderr


@pytest.mark.parametrize("args", [
    ["report", "-c", "c", "--as-of", "9999-12-31T23:59:59Z"],
    ["report", "-c", "c", "--as-of", "0001-01-01"],
    ["contracts", "list", "--as-of", "9999-12-31T23:59:59Z"],
    ["usage", "--owner", "o", "--as-of", "9999-12-31T23:59:59Z"],
    ["alerts", "--as-of", "9999-12-31T23:59:59Z"],
    ["report", "-c", "c", "--view", "log", "--offset", "1e20"],
    ["report", "-c", "c", "--view", "log", "--offset", str(2**64)],
    ["report", "-c", "c", "--view", "top", "--limit", str(2**64)],
    ["rejects", "--offset", str(2**64)],
    ["rejects", "--limit", "-1"],
])
def test_out_of_range_values_are_usage_errors_not_bugs(cli, tmp_path: Path, args: list[str]) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT.format(tz="UTC")))
    r = cli(*args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "internal error" not in r.stderr and r.stderr.startswith(("usagectl: error:", "Usage:"))


# -- Ctrl-C ----------------------------------------------------------------------------------

EVENTS_SQL = """
INSERT INTO events (owner_id, event_id, ts, user_id, product, action, succeeded, dataset_id,
                    indicator_ids, endpoint, content_hash, ingest_id, ingested_at)
SELECT 'o', 'e' || i, TIMESTAMPTZ '2026-03-01 00:00:00+00' + to_microseconds(i * 997 % 2000000000000),
       'u' || (i % 500000), 'p', 'process', true, 'd' || (i % 700001),
       list_transform(range(12), lambda x: 'i' || ((i * 12 + x) % 9000011)), '/datasets', 'h', 1, now()
FROM range(?) t(i)
"""


def _wait_until_open(pid: int, path: Path, timeout: float = 60.0) -> None:
    """Until process ``pid`` holds ``path`` open: on a loaded machine the imports alone can take
    longer than a fixed sleep, and a signal during the imports tests nothing of the query."""
    fds = Path(f"/proc/{pid}/fd")
    if not fds.exists():
        time.sleep(3)  # no /proc: the fixed delay that suits an idle machine
        return
    deadline = time.monotonic() + timeout
    target = str(path.resolve())
    while time.monotonic() < deadline:
        try:
            if any(os.path.realpath(fd) == target for fd in fds.iterdir()):
                return
        except OSError:  # an fd closed while listing, or the process ended
            pass
        time.sleep(0.05)
    pytest.fail(f"the report did not open {path} within {timeout:.0f} s")


def test_ctrl_c_inside_a_query_exits_130(cli, db_path: Path, tmp_path: Path) -> None:
    """SIGINT while DuckDB runs the log's first-sighting query: exit 130, no traceback.

    500k events with 12 indicators each keep that query busy for about 9 s on one thread here;
    the signal comes 1 s after the process has opened the database (on a loaded machine the
    imports alone took longer than the fixed 3 s this test used to wait).
    """
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT.format(tz="UTC")))
    con = duckdb.connect(str(db_path))
    con.execute(EVENTS_SQL, [500_000])
    con.close()
    cmd = [sys.executable, "-m", "usagectl", "--db", str(db_path), "report", "-c", "c", "--view",
           "log", "--limit", "1", "--as-of", "2026-03-31", "--format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "USAGECTL_THREADS": "1"})
    _wait_until_open(proc.pid, db_path)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the report finished before the signal: this machine is too fast for the test")
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "internal error" not in err + out and "Traceback" not in err


# -- another program's DuckDB file -----------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_another_programs_duckdb_file_is_refused_and_left_untouched(cli, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE invoices (id INTEGER, total DECIMAL(10, 2))")
    con.execute("INSERT INTO invoices VALUES (1, 9.99)")
    con.close()
    before = _digest(other)
    events = write(tmp_path / "e.csv", "event_id,ts,owner_id,user_id,product\ne1,2026-03-02T10:00:00Z,o,u,p\n")
    for args in (["ingest", events], ["contracts", "load", write(tmp_path / "c.toml", CONTRACT.format(tz="UTC"))],
                 ["ingests"], ["report", "-c", "c"]):
        r = cli(*args, "--format", "json", db=other)
        assert r.exit_code == 1, (args, r.stdout)
        err = r.json()["error"]
        assert err["code"] == "validation_error" and "not a usagectl database" in err["message"], args
        assert "invoices" in err["message"] or args[0] in ("ingests", "report")
    assert _digest(other) == before
    con = duckdb.connect(str(other), read_only=True)
    assert [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()] == ["invoices"]
    con.close()


def test_an_empty_database_file_is_fine(cli, tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", "event_id,ts,owner_id,user_id,product\ne1,2026-03-02T10:00:00Z,o,u,p\n")
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()  # a new DuckDB file without tables
    assert cli("ingest", events, db=empty).exit_code == 0
    zero = tmp_path / "zero.duckdb"
    zero.touch()  # e.g. made by mktemp
    r = cli("ingest", events, "--format", "json", db=zero)
    assert r.exit_code == 0 and r.json()["totals"]["accepted"] == 1


def test_a_sqlite_file_at_db_is_refused_without_the_network(cli, tmp_path: Path) -> None:
    """DuckDB would try to download its SQLite extension; usagectl never touches the network."""
    import sqlite3

    other = tmp_path / "app.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()
    before = _digest(other)
    events = write(tmp_path / "e.csv", "event_id,ts,owner_id,user_id,product\ne1,2026-03-02T10:00:00Z,o,u,p\n")
    for args in (["ingests"], ["ingest", events], ["report", "-c", "c"]):
        r = cli(*args, "--format", "json", db=other)
        assert r.exit_code == 1, (args, r.stdout)
        err = r.json()["error"]
        assert err["code"] == "validation_error", err
        assert str(other) in err["message"] and "SQLite" in err["message"], err["message"]
        assert "http" not in r.stdout and "extension" not in r.stdout, err["message"]
    garbage = write(tmp_path / "notes.duckdb", "not a database at all, just some text\n")
    r = cli("ingests", "--format", "json", db=garbage)
    assert r.exit_code == 1 and "not a DuckDB database" in r.json()["error"]["message"]
    assert _digest(other) == before


def test_every_connection_has_extension_autoloading_off(tmp_path: Path) -> None:
    from usagectl.store.db import connect

    for read_only in (False, True):
        con = connect(tmp_path / "x.duckdb", read_only=read_only)
        settings = dict(con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
        con.close()
        assert settings == {"autoinstall_known_extensions": "false",
                            "autoload_known_extensions": "false"}


# -- a database locked by another program ----------------------------------------------------

HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("ready", flush=True)
time.sleep(60)
"""


def test_database_locked_names_the_holding_program_as_duckdb_does(cli, db_path: Path, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT.format(tz="UTC")))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        r = cli("contracts", "list", "--format", "json")  # the default wait (20 s), then fails
        plain = cli("--wait", "1", "contracts", "list")
    finally:
        holder.kill()
        holder.wait()
    assert r.exit_code == 1
    err = r.json()["error"]
    assert err["code"] == "database_locked" and err["details"]["pid"] == holder.pid
    assert f"(PID {holder.pid})" in err["message"]
    assert "Conflicting lock is held in" in err["message"]  # DuckDB's own words, verbatim
    assert "usagectl command" not in err["message"]  # the holder is a plain Python program
    assert plain.exit_code == 1 and f"PID {holder.pid}" in plain.stderr
