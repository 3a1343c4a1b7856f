"""Cron exports, reconciliation, reproducible past invoices, byte-identical reruns (SPEC §5.5, §6, §7)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import duckdb
import pytest

from tests.conftest import SAMPLE_DATA, write

AS_OF = "2026-11-20T12:00:00Z"


@pytest.fixture
def sample(cli):  # noqa: ANN201
    cli("ingest", SAMPLE_DATA, "--quiet")
    cli("ingest", SAMPLE_DATA / "licence_calls.csv", "--owner", "lca-institute", "--quiet")
    assert cli("contracts", "load", SAMPLE_DATA / "contracts.toml").exit_code == 0
    return cli


def test_export_writes_every_contract_and_view_with_a_manifest(sample, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    r = sample("export", "--all", "--out-dir", out, "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == r.json()
    names = sorted(f["name"] for f in manifest["files"])
    assert len(names) == 16 and "acme-farms-2026.consolidated.csv" in names
    for f in manifest["files"]:
        data = (out / f["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        assert len(rows) == f["rows"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    cons = list(csv.DictReader(io.StringIO((out / "terra-pro-monthly.consolidated.csv").read_text())))
    # CSV columns are the JSON keys (nested objects joined with _).
    assert cons[0]["name"] == "tokens" and cons[0]["overage_amount_cents"] == "544"
    assert "projection_daily_average" in cons[0]


def test_export_rerun_is_byte_identical_and_replaces_files(sample, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    sample("export", "--contract", "acme-farms-2026", "--out-dir", out, "--as-of", AS_OF)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    inode = (out / "acme-farms-2026.users.csv").stat().st_ino
    sample("export", "--contract", "acme-farms-2026", "--out-dir", out, "--as-of", AS_OF)
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert first == second
    assert (out / "acme-farms-2026.users.csv").stat().st_ino != inode  # replaced, not rewritten


def test_json_and_csv_are_byte_identical_across_runs(sample) -> None:
    for view in ("consolidated", "users", "daily", "log"):
        for fmt in ("json", "csv"):
            args = ("report", "-c", "acme-farms-2026", "--as-of", AS_OF, "--view", view, "--format", fmt)
            assert sample(*args).stdout == sample(*args).stdout


def test_export_needs_contract_or_all(sample, tmp_path: Path) -> None:
    r = sample("export", "--out-dir", tmp_path, "--format", "json")
    assert r.exit_code == 1 and "--contract ID or --all" in r.json()["error"]["message"]


def test_reconcile_lists_differences_beyond_tolerance(sample, tmp_path: Path) -> None:
    users = sample("report", "-c", "acme-farms-2026", "--as-of", AS_OF, "--view", "users",
                   "--format", "json").json()["users"]
    exact = {u["user_id"]: u["meters"]["boundaries"] for u in users}
    lines = ["user_id,value"] + [f"{u},{v}" for u, v in exact.items()]
    same = write(tmp_path / "same.csv", "\n".join(lines) + "\n")
    r = sample("reconcile", "-c", "acme-farms-2026", "--against", same, "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 0 and r.json()["differences"] == [] and r.json()["compared"] == 6
    off = dict(exact)
    off["agri-ames"] = round(off["agri-ames"] * 1.0005, 6)   # within 0.1 %
    off["agri-polk"] = round(off["agri-polk"] * 1.01, 6)     # beyond
    lines = ["user_id,value"] + [f"{u},{v}" for u, v in off.items()] + ["ghost,1"]
    r = sample("reconcile", "-c", "acme-farms-2026", "--against", write(tmp_path / "off.csv", "\n".join(lines)),
               "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 3
    assert [(d["key"], d["only_in"]) for d in r.json()["differences"]] == [("agri-polk", None), ("ghost", "theirs")]
    daily = sample("report", "-c", "acme-farms-2026", "--as-of", AS_OF, "--view", "daily", "--meter",
                   "boundaries", "--format", "json").json()
    lines = ["date,value"] + [f"{d['date']},{d['meters']['boundaries']['user']}" for d in daily["days"]]
    r = sample("reconcile", "-c", "acme-farms-2026", "--against", write(tmp_path / "d.csv", "\n".join(lines)),
               "--as-of", AS_OF, "--tolerance", "0.000001", "--format", "json")
    assert r.exit_code == 0, r.json()["differences"][:3]


def test_as_ingested_at_reproduces_an_earlier_invoice(cli, db_path: Path, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", """
[[contract]]
id = "c"
owner = "o"
start = 2026-01-01
cycle = "monthly"
  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
"""))
    header = "event_id,ts,owner_id,user_id,product,credits\n"
    cli("ingest", write(tmp_path / "a.csv", header + "a,2026-01-10T10:00:00Z,o,u,p,5\n"))
    con = duckdb.connect(str(db_path), read_only=True)
    (invoice_time,) = con.execute("SELECT max(ingested_at) FROM events").fetchone()
    con.close()
    cli("ingest", write(tmp_path / "b.csv", header + "b,2026-01-20T10:00:00Z,o,u,p,3\n"))  # late
    args = ("report", "-c", "c", "--period", "0", "--as-of", "2026-03-01", "--format", "json")
    now = cli(*args).json()["meters"][0]
    then = cli(*args, "--as-ingested-at", invoice_time.isoformat()).json()["meters"][0]
    assert (now["owner_total"], then["owner_total"]) == (8, 5)
    assert now["late_events"] == 2 and then["late_events"] == 1


def test_export_survives_a_kill_mid_write(sample, db_path: Path, tmp_path: Path) -> None:
    """Killed at any moment, every file present is a complete one; a rerun leaves no temp files."""
    import os
    import signal
    import subprocess
    import sys
    import time

    reference = tmp_path / "ref"
    sample("export", "--all", "--out-dir", reference, "--as-of", AS_OF)
    expected = {p.name: p.read_bytes() for p in reference.iterdir()}
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "usagectl", "--db", str(db_path), "export", "--all", "--out-dir",
           str(out), "--as-of", AS_OF, "--quiet"]
    env = {**os.environ, "COLUMNS": "120"}
    for delay in (0.6, 1.0, 1.4, 1.8, 2.4):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for f in out.glob("*") if out.exists() else []:
            if f.name.startswith("."):
                continue  # a temp file: never the published name
            assert f.read_bytes() == expected[f.name], (delay, f.name)
    assert subprocess.run(cmd, env=env, timeout=300).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)  # no temp files left
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected
