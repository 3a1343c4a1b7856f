"""Exit codes, the JSON error shape and messages that say what to do (SPEC §6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from usagectl import __version__
from usagectl.errors import ExitCode


def test_exit_codes_are_one_enum() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130]


def test_version(cli) -> None:
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"usagectl {__version__}"


def test_no_database_is_not_found_with_a_hint(cli, tmp_path: Path) -> None:
    r = cli("ingests", "--format", "json", db=tmp_path / "missing.duckdb")
    assert r.exit_code == 1
    err = r.json()["error"]
    assert err["code"] == "not_found" and "usagectl ingest" in err["message"]
    assert set(r.json()) == {"error"} and set(err) == {"code", "message", "details"}


def test_plain_error_goes_to_stderr(cli, tmp_path: Path) -> None:
    r = cli("ingests", db=tmp_path / "missing.duckdb")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("usagectl: error: no database at")


def test_usage_error_exits_2(cli) -> None:
    r = cli("ingest")
    assert r.exit_code == 2
    r = cli("ingests", "--no-such-flag")
    assert r.exit_code == 2


def test_bad_option_values_are_usage_errors(cli, tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("event_id,ts,owner_id,user_id,product\n")
    for args, needle in ((["--tz", "Mars/Olympus"], "IANA"), (["--crs", "EPSG:999999"], "--crs"),
                         (["--map", "nonsense"], "canonical=source"),
                         (["--map", "usr=x"], "not a canonical column")):
        r = cli("ingest", f, *args, "--format", "json")
        assert r.exit_code == 2, args
        assert r.json()["error"]["code"] == "validation_error" and needle in r.json()["error"]["message"]
    r = cli("ingests", "--format", "yaml")
    assert r.exit_code == 2


def test_not_a_usagectl_database(cli, tmp_path: Path) -> None:
    import duckdb

    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE t (x INT)").close()
    r = cli("ingests", db=other)
    assert r.exit_code == 1 and "not a usagectl database" in r.stderr


def test_console_script_help_works_without_test_extras() -> None:
    r = subprocess.run([sys.executable, "-m", "usagectl", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "ingest" in r.stdout
