"""Cron exports, reconciliation, reproducible past invoices, byte-identical reruns (SPEC §5.5, §6, §7)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

AS_OF = "2026-11-20T12:00:00Z"


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
    assert r.exit_code == 2 and "--contract ID or --all" in r.json()["error"]["message"]


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


# -- file names from data, the folder lock, I/O failures (docs/cli.md "export") ----------------

SMALL = """
[[contract]]
id = "ok-id"
owner = "o"
start = 2026-01-01
cycle = "monthly"
  [[contract.meter]]
  name = "requests"
  aggregate = "count"
"""


def _store_contract_as(db_path: Path, tmp_path: Path, cli, ids: list[str]) -> None:  # noqa: ANN001
    """Contracts under ids the loader refuses, as a database from an older usagectl holds them."""
    assert cli("contracts", "load", write(tmp_path / "ok.toml", SMALL)).exit_code == 0
    cli("ingest", write(tmp_path / "e.csv", "event_id,ts,owner_id,user_id,product\n"
                        "e1,2026-03-02T10:00:00Z,o,u,chat\n"))
    con = duckdb.connect(str(db_path))
    (definition,) = con.execute("SELECT definition FROM contracts WHERE id = 'ok-id'").fetchone()
    for cid in ids:
        d = json.loads(definition)
        d["id"] = cid
        con.execute("INSERT INTO contracts SELECT ?, owner, ?, source, sha256, loaded_at FROM contracts "
                    "WHERE id = 'ok-id'", [cid, json.dumps(d)])
    con.close()


def test_contract_ids_that_would_make_bad_file_names_are_refused_at_load(cli, tmp_path: Path) -> None:
    bad = ["../../x", "/abs/x", ".hidden", "a b", "x" * 101, "-dash"]
    text = "".join(SMALL.replace('"ok-id"', json.dumps(cid)) for cid in bad) + SMALL
    r = cli("contracts", "load", write(tmp_path / "bad.toml", text), "--format", "json")
    assert r.exit_code == 1
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    problems = err["details"]["problems"]
    for i, cid in enumerate(bad):
        hits = [p for p in problems if p.startswith(f"contract[{i}]") and "id" in p]
        assert len(hits) == 1, (cid, problems)
        assert "letters, digits" in hits[0]  # says what to do
    assert cli("contracts", "list", "--format", "json").json() == []  # nothing loaded


def test_export_file_names_stay_inside_the_folder(cli, db_path: Path, tmp_path: Path) -> None:
    evil = ["../../escaped", "/abs/escaped", "a/b", "a_b", ".hidden", "ok/../../x"]
    _store_contract_as(db_path, tmp_path, cli, evil)
    out = tmp_path / "deep" / "exp"
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--views", "users",
            "--format", "json")
    assert r.exit_code == 0, r.stdout
    names = [f["name"] for f in r.json()["files"]]
    assert len(names) == len(set(names)) == len(evil) + 1  # no two contracts share a file
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "manifest.json"])
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.users\.csv", name), name
        assert (out / name).resolve().parent == out.resolve()
    assert {f["contract"] for f in r.json()["files"]} == {*evil, "ok-id"}
    assert "ok-id.users.csv" in names and "a_b.users.csv" in names
    strays = [p for p in tmp_path.rglob("*escaped*") if p.parent != out] + list(Path("/abs").glob("*"))
    assert strays == []


def _export_cmd(db_path: Path, out: Path, as_of: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "usagectl", "--db", str(db_path), "export", "--all", "--out-dir",
            str(out), "--as-of", as_of, "--quiet", *extra]


def test_two_exports_into_one_folder_at_once(sample, db_path: Path, tmp_path: Path) -> None:
    """Two real processes: the second waits for the first; the manifest matches the files."""
    out = tmp_path / "exp"
    env = {**os.environ, "COLUMNS": "120"}
    for _ in range(2):
        procs = [subprocess.Popen(_export_cmd(db_path, out, as_of), env=env, stderr=subprocess.PIPE,
                                  text=True)
                 for as_of in ("2026-11-20T12:00:00Z", "2026-11-10T12:00:00Z")]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        manifest = json.loads((out / "manifest.json").read_text())
        assert len(manifest["files"]) == 16
        for f in manifest["files"]:
            assert hashlib.sha256((out / f["name"]).read_bytes()).hexdigest() == f["sha256"], f["name"]
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [f["name"] for f in manifest["files"]] + ["manifest.json"])  # no temp or lock file


HOLD = """
import fcntl, sys, time
with open(sys.argv[1], "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_an_export_waits_while_another_process_holds_the_folder(sample, db_path: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out / ".usagectl-export.lock"), "4"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    export = subprocess.Popen(_export_cmd(db_path, out, AS_OF), stderr=subprocess.PIPE, text=True)
    written_while_held = []
    while holder.poll() is None:
        written_while_held += [p.name for p in out.iterdir() if not p.name.startswith(".")]
        time.sleep(0.1)
    _, err = export.communicate(timeout=300)
    assert export.returncode == 0, err
    assert written_while_held == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["files"]) == 16


def test_export_gives_up_when_another_holds_the_folder(sample, db_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out / ".usagectl-export.lock"), "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = subprocess.run(_export_cmd(db_path, out, AS_OF, "--wait", "1", "--format", "json"),
                           capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1, r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "io_error" and "another export" in err["message"]
    assert str(out) in err["message"] and "--wait" in err["message"]
    assert [p.name for p in out.iterdir()] == [".usagectl-export.lock"]  # nothing written


@pytest.fixture
def mount_point(tmp_path: Path):  # noqa: ANN201
    """Mount helpers for I/O failure tests: needs root and mount(8), else the test is skipped."""
    mounted: list[Path] = []

    def mount(*args: str, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount ({r.stderr.strip() or 'mount failed'}); needs root")
        mounted.append(target)
        return target

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to make a full or read-only folder")
    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_a_read_only_export_folder_is_an_io_error_naming_it(sample, tmp_path: Path, mount_point) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    mount_point("--bind", "-o", "ro", str(ro), target=ro)
    r = sample("export", "--all", "--out-dir", ro, "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 1, r.stdout
    err = r.json()["error"]
    assert err["code"] == "io_error" and str(ro) in err["message"]
    assert "Read-only file system" in err["message"] and "internal error" not in err["message"]
    nested = ro / "sub"
    r = sample("export", "--all", "--out-dir", nested, "--as-of", AS_OF)
    assert r.exit_code == 1 and str(nested) in r.stderr and "internal error" not in r.stderr


def test_a_full_disk_lists_each_failed_file(sample, tmp_path: Path, mount_point) -> None:
    full = mount_point("-t", "tmpfs", "-o", "size=40k", "tmpfs", target=tmp_path / "full")
    r = sample("export", "--all", "--out-dir", full, "--as-of", AS_OF, "--format", "json")
    assert r.exit_code == 1, r.stdout
    doc = r.json()
    failures = doc["error"]["details"]["failures"] if "error" in doc else doc["failures"]
    assert failures, doc
    for f in failures:
        assert "No space left on device" in f["error"] and str(full) in f["error"], f
    if "error" in doc:  # the manifest itself did not fit
        assert doc["error"]["code"] == "io_error" and "manifest.json" in doc["error"]["message"]
    assert not [p for p in full.iterdir() if p.name.startswith(".")]  # no temp files left
    text = sample("export", "--all", "--out-dir", full, "--as-of", AS_OF)
    assert text.exit_code == 1 and "No space left on device" in text.stderr
    assert "internal error" not in text.stderr + text.stdout


# -- links, FIFOs and other things already in the folder (docs/cli.md "export") ---------------


def _small(cli, db_path: Path, tmp_path: Path) -> None:  # noqa: ANN001
    _store_contract_as(db_path, tmp_path, cli, [])  # contract ok-id with one event


def test_the_export_lock_never_follows_a_link(cli, db_path: Path, tmp_path: Path) -> None:
    _small(cli, db_path, tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    victim = write(tmp_path / "v.txt", "precious\n")
    lock = out / ".usagectl-export.lock"
    lock.symlink_to(victim)
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--format", "json")
    assert r.exit_code == 1, r.stdout
    err = r.json()["error"]
    assert err["code"] == "io_error" and str(lock) in err["message"]
    assert "symbolic link" in err["message"]
    assert victim.read_text() == "precious\n"  # neither truncated nor written through
    assert lock.is_symlink() and sorted(p.name for p in out.iterdir()) == [lock.name]
    lock.unlink()
    os.mkfifo(lock)  # a FIFO (or anything that is not a regular file) is refused too
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10")
    assert r.exit_code == 1 and str(lock) in r.stderr and "FIFO" in r.stderr
    assert lock.is_fifo()


def test_a_linked_export_entry_is_a_failure_of_that_file_only(cli, db_path: Path, tmp_path: Path) -> None:
    _small(cli, db_path, tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    victim = write(tmp_path / "victim2.txt", "precious\n")
    entry = out / "ok-id.consolidated.csv"
    entry.symlink_to(victim)
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--format", "json")
    assert r.exit_code == 1, r.stdout
    doc = r.json()
    assert [f["name"] for f in doc["files"]] == ["ok-id.users.csv", "ok-id.daily.csv", "ok-id.log.csv"]
    [failure] = doc["failures"]
    assert failure["file"] == entry.name and failure["view"] == "consolidated"
    assert str(entry) in failure["error"] and "symbolic link" in failure["error"]
    assert victim.read_text() == "precious\n" and entry.is_symlink()  # the link is left alone
    assert json.loads((out / "manifest.json").read_text()) == doc
    text = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10")
    assert text.exit_code == 1 and "symbolic link" in text.stderr
    assert "internal error" not in text.stderr


def test_a_linked_manifest_is_an_io_error_and_left_alone(cli, db_path: Path, tmp_path: Path) -> None:
    _small(cli, db_path, tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    victim = write(tmp_path / "m.txt", "precious\n")
    (out / "manifest.json").symlink_to(victim)
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--format", "json")
    assert r.exit_code == 1, r.stdout
    err = r.json()["error"]
    assert err["code"] == "io_error" and "manifest.json" in err["message"]
    assert victim.read_text() == "precious\n" and (out / "manifest.json").is_symlink()


def test_an_export_entry_that_is_a_fifo_is_written_into(cli, db_path: Path, tmp_path: Path) -> None:
    import threading

    _small(cli, db_path, tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    fifo = out / "ok-id.users.csv"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--views", "users",
            "--format", "json")
    reader.join(timeout=60)
    assert r.exit_code == 0, r.stdout
    [f] = r.json()["files"]
    assert hashlib.sha256(got[0]).hexdigest() == f["sha256"] and got[0].startswith(b"contract_id,")
    assert fifo.is_fifo()


def test_repeated_views_are_written_once(cli, db_path: Path, tmp_path: Path) -> None:
    _small(cli, db_path, tmp_path)
    out = tmp_path / "o"
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--views",
            "consolidated,users,consolidated", "--format", "json")
    assert r.exit_code == 0, r.stdout
    assert [f["name"] for f in r.json()["files"]] == ["ok-id.consolidated.csv", "ok-id.users.csv"]
    # A later run with other views leaves the earlier run's files; its manifest lists its own.
    r = cli("export", "--all", "--out-dir", out, "--as-of", "2026-03-10", "--views", "log",
            "--format", "json")
    assert [f["name"] for f in r.json()["files"]] == ["ok-id.log.csv"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json", "ok-id.consolidated.csv", "ok-id.users.csv", "ok-id.log.csv"])


def test_a_file_name_depends_only_on_its_own_contract_id(cli, db_path: Path, tmp_path: Path) -> None:
    """Even in an old database holding ids that differ only by case (now refused at load)."""
    _store_contract_as(db_path, tmp_path, cli, ["a", "A", "CON", "aux.txt", "lpt9"])
    names = {}
    for cid in ("ok-id", "a", "A", "CON", "aux.txt", "lpt9"):
        r = cli("export", "--contract", cid, "--out-dir", tmp_path / cid.replace(".", "_"),
                "--as-of", "2026-03-10", "--views", "users", "--format", "json")
        assert r.exit_code == 0, r.stdout
        names[cid] = r.json()["files"][0]["name"]
    r = cli("export", "--all", "--out-dir", tmp_path / "all", "--as-of", "2026-03-10", "--views",
            "users", "--format", "json")
    assert {f["contract"]: f["name"] for f in r.json()["files"]} == names
    assert names["ok-id"] == "ok-id.users.csv" and names["A"] == "A.users.csv"
    assert len({n.casefold() for n in names.values()}) == len(names)  # no clash, whatever the case
    for cid in ("CON", "aux.txt", "lpt9"):  # Windows device names: never the start of a name
        stem = names[cid].split(".")[0]
        assert stem.upper() not in {"CON", "AUX", "LPT9"} and stem.startswith(cid.split(".")[0]), names
