"""Behaviour across processes: the machine's time zone, a second writer, a kill mid-ingest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

USAGECTL = [sys.executable, "-m", "usagectl"]
HEADER = "event_id,timestamp,owner_id,user_id,product,input_tokens\n"


def _run(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run(USAGECTL + args, capture_output=True, text=True, env=full_env,
                          timeout=300, **kw)


@pytest.mark.parametrize("machine_tz", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_naive_timestamps_do_not_depend_on_the_machine_zone(tmp_path: Path, machine_tz: str) -> None:
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "e1,2026-01-01 10:00:00,acme,u1,P,1\n"
                 "e2,2026-07-01T00:30:00,acme,u1,P,1\n")
    db = tmp_path / "u.duckdb"
    r = _run(["--db", str(db), "ingest", str(f), "--format", "json"], env={"TZ": machine_tz})
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    stamps = [t for (t,) in con.execute("SELECT epoch(ts) FROM events ORDER BY event_id").fetchall()]
    con.close()
    assert stamps == [1767261600.0, 1782865800.0]  # both read as UTC


def test_naive_timestamps_follow_tz_option(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "e1,2026-01-01 10:00:00,acme,u1,P,1\n")
    db = tmp_path / "u.duckdb"
    r = _run(["--db", str(db), "ingest", str(f), "--tz", "Asia/Tokyo"], env={"TZ": "UTC"})
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT epoch(ts) FROM events").fetchone() == (1767261600.0 - 9 * 3600,)
    con.close()


def test_second_writer_gets_database_locked_not_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "e1,2026-01-01T10:00:00Z,acme,u1,P,1\n")
    assert _run(["--db", str(db), "ingest", str(f)]).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c",
                               "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        r = _run(["--db", str(db), "ingest", str(f), "--format", "json"])
        assert r.returncode == 1
        err = json.loads(r.stdout)["error"]
        assert err["code"] == "database_locked"
        assert str(holder.pid) in err["message"] and "locked" in err["message"]
        assert "Traceback" not in r.stderr
        r = _run(["--db", str(db), "--wait", "1", "ingests"])  # the first waited the default
        assert r.returncode == 1 and "locked by process" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_kill_mid_ingest_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "u.duckdb"
    first = tmp_path / "first.csv"
    first.write_text(HEADER + "keep,2026-01-01T10:00:00Z,acme,u1,P,1\n")
    assert _run(["--db", str(db), "ingest", str(first)]).returncode == 0
    big = tmp_path / "big.csv"
    with big.open("w") as out:
        out.write(HEADER)
        for i in range(400_000):
            out.write(f"b{i},2026-01-01T10:00:00Z,acme,u{i % 50},P,{i}\n")
    proc = subprocess.Popen(USAGECTL + ["--db", str(db), "ingest", str(big)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = _run(["--db", str(db), "ingests", "--format", "json"])  # read-only: sees the raw state
    assert r.returncode == 0, r.stderr
    # A writer marks the interrupted ingest failed; nothing of the big file is stored.
    again = tmp_path / "again.csv"
    again.write_text(HEADER)
    assert _run(["--db", str(db), "ingest", str(again)]).returncode == 0
    ingests = json.loads(_run(["--db", str(db), "ingests", "--format", "json"]).stdout)
    big_rows = [i for i in ingests if i["path"] == str(big)]
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT count(*) FROM events").fetchone()[0]
    staging = con.execute("SELECT count(*) FROM information_schema.tables "
                          "WHERE table_name LIKE 'staging_%'").fetchone()[0]
    con.close()
    if big_rows and big_rows[0]["status"] == "ok":  # the machine was fast enough to finish
        assert stored == 400_001
    else:
        assert stored == 1
        assert not big_rows or (big_rows[0]["status"] == "failed" and big_rows[0]["accepted"] == 0
                                and "interrupted" in big_rows[0]["error"])
    assert staging == 0


def test_json_output_is_clean_for_jq(tmp_path: Path) -> None:
    """Nothing but the JSON document reaches stdout (no progress bar, no notes)."""
    f = tmp_path / "a.csv"
    with f.open("w") as out:
        out.write(HEADER)
        for i in range(50_000):
            out.write(f"e{i},2026-01-01T10:00:00Z,acme,u{i % 9},P,{i}\n")
        out.write("bad,not-a-time,acme,u1,P,1\n")
    r = _run(["--db", str(tmp_path / "u.duckdb"), "ingest", str(f), "--format", "json"])
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["totals"]["accepted"] == 50_000 and doc["totals"]["rejected"] == 1
