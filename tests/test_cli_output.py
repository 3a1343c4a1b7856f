"""Where output goes: --out at FIFOs, links and full disks; stdout closed early by its reader
(docs/cli.md "Output files", "Errors")."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DATA
from tests.test_cli_export import mount_point  # noqa: F401 — the fixture, reused

AS_OF = "2026-11-20T12:00:00Z"
REPORT = ("report", "--contract", "lca-licence-2026", "--as-of", AS_OF, "--format", "json")


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:  # noqa: ANN001
    """The bundled sample, ingested once for this module."""
    from typer.testing import CliRunner

    from usagectl.cli import app

    db = tmp_path_factory.mktemp("sample") / "usage.duckdb"
    runner = CliRunner()
    for f in sorted(SAMPLE_DATA.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            assert runner.invoke(app, ["--db", str(db), "ingest", str(f), *owner, "-q"]).exit_code == 0
    loaded = runner.invoke(app, ["--db", str(db), "contracts", "load", str(SAMPLE_DATA / "contracts.toml")])
    assert loaded.exit_code == 0
    return db


@pytest.fixture
def sample(sample_db: Path, db_path: Path, cli):  # noqa: ANN001, ANN201
    """``cli`` on a fresh copy of the module's sample database."""
    shutil.copyfile(sample_db, db_path)
    return cli


# -- a reader that closes early (| head) -------------------------------------------------------


def _into_closed_pipe(db_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run usagectl with a stdout whose reader has already gone: every write gets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "usagectl", "--db", str(db_path), *args],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "120"})
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [
    ["report", "--contract", "terra-pro-monthly", "--as-of", AS_OF],           # a table
    ["--format", "json", "report", "--contract", "terra-pro-monthly", "--as-of", AS_OF,
     "--format", "table"],                                                         # JSON mode, a table
    ["report", "--contract", "terra-pro-monthly", "--as-of", AS_OF, "--format", "json"],
    ["ingests"],
    ["-f", "json", "ingests"],
])
def test_a_reader_that_closes_early_ends_the_command_quietly(sample, db_path: Path, args) -> None:
    r = _into_closed_pipe(db_path, *args)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr


# -- --out PATH -------------------------------------------------------------------------------


def test_out_into_a_fifo_writes_to_its_reader(sample, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = sample(*REPORT, "--out", fifo)
    reader.join(timeout=60)
    assert r.exit_code == 0, r.stderr
    assert json.loads(got[0])["contract"]["id"] == "lca-licence-2026"
    assert fifo.is_fifo()  # still the FIFO, not a regular file renamed over it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file


def test_out_through_a_link_to_a_fifo(sample, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "mystdout"
    link.symlink_to(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = sample(*REPORT, "--out", link)
    reader.join(timeout=60)
    assert r.exit_code == 0, r.stderr
    assert json.loads(got[0])["period"]["index"] == 0
    assert link.is_symlink() and fifo.is_fifo()


def test_out_through_a_link_to_a_file_replaces_the_file_and_keeps_the_link(sample, tmp_path: Path
                                                                            ) -> None:
    real = tmp_path / "reports" / "latest.json"
    real.parent.mkdir()
    real.write_text("old\n")
    old_inode = real.stat().st_ino
    link = tmp_path / "current.json"
    link.symlink_to(real)
    r = sample(*REPORT, "--out", link)
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert json.loads(real.read_text())["contract"]["id"] == "lca-licence-2026"
    assert real.stat().st_ino != old_inode  # replaced atomically, not rewritten in place
    assert not [p for p in real.parent.iterdir() if p.name != "latest.json"]  # no temp file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.json", "reports", "usage.duckdb"]


def test_out_at_a_folder_is_an_io_error(sample, tmp_path: Path) -> None:
    r = sample(*REPORT, "--out", tmp_path)
    assert r.exit_code == 1 and r.json()["error"]["code"] == "io_error"
    assert str(tmp_path) in r.json()["error"]["message"]


def test_geojson_into_a_fifo(sample, tmp_path: Path) -> None:
    fifo = tmp_path / "regions"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = sample("overlap", "-c", "acme-farms-2026", "--as-of", AS_OF, "--geojson", fifo,
               "--format", "json")
    reader.join(timeout=120)
    assert r.exit_code == 0, r.stderr
    assert json.loads(got[0])["type"] == "FeatureCollection" and fifo.is_fifo()


def test_out_on_a_full_disk_is_an_io_error_naming_the_path(sample, tmp_path: Path,
                                                           mount_point) -> None:  # noqa: F811
    full = mount_point("-t", "tmpfs", "-o", "size=64k", "tmpfs", target=tmp_path / "full")
    fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # take every block the tmpfs has
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    out = full / "r.json"
    r = sample(*REPORT, "--out", out)
    assert r.exit_code == 1, r.stderr
    err = r.json()["error"]
    assert err["code"] == "io_error" and str(out) in err["message"]
    assert "No space left on device" in err["message"]
    assert "wrote" not in r.stderr
    assert sorted(p.name for p in full.iterdir()) == ["filler"]  # no temp file, no partial file


def test_out_at_a_device_that_is_full_is_an_io_error(sample, tmp_path: Path) -> None:
    """What ``--out /dev/full`` did (renamed a file over the device and said "wrote"), on a
    device node of our own: the machine's /dev/full is never touched."""
    full = tmp_path / "full"
    try:
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # the "full" device: ENOSPC
        os.close(os.open(full, os.O_WRONLY))
    except OSError as exc:
        pytest.skip(f"cannot make or open a device node here ({exc.strerror}); needs root and a "
                    "folder not mounted nodev")
    r = sample(*REPORT, "--out", full)
    assert r.exit_code == 1, r.stderr
    err = r.json()["error"]
    assert err["code"] == "io_error" and str(full) in err["message"]
    assert "No space left on device" in err["message"] and "wrote" not in r.stderr
    assert stat.S_ISCHR(full.lstat().st_mode)  # still the device
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "usage.duckdb"]


def test_out_at_the_commands_own_stdout_appends_to_an_appended_log(sample, db_path: Path,
                                                                   tmp_path: Path) -> None:
    """`--out /dev/stdout >> log` in cron: the log keeps its lines (a link to /proc/self/fd/1 here,
    never the machine's /dev/stdout)."""
    link = tmp_path / "mystdout"
    link.symlink_to("/proc/self/fd/1")
    log = tmp_path / "cron.log"
    log.write_text("earlier line\n")
    with open(log, "a") as out:
        r = subprocess.run([sys.executable, "-m", "usagectl", "--db", str(db_path), *REPORT,
                            "--out", str(link)], stdout=out, stderr=subprocess.PIPE, text=True,
                           timeout=300)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert text.startswith("earlier line\n{\n") and json.loads(text[len("earlier line\n"):])
    assert link.is_symlink()
