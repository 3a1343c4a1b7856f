"""Ingest option values are checked before the database is opened (SPEC §6, exit 2).

A bad ``--map``, ``--tz``, ``--crs`` or ``--source-format`` is a usage error listing what is
valid; nothing is written: a new database file is not created, an existing one is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CSV = "event_id,ts,owner_id,user_id,product\ne1,2026-11-16T10:00:00Z,o,u,P\n"

BAD_OPTIONS = [
    (["--map", "bogus=svc"], "--map", "event_id"),
    (["--map", "product"], "--map", "event_id"),
    (["--map", "product=a", "--map", "product=b"], "twice", "event_id"),
    (["--tz", "Mars/Base"], "--tz", "America/Chicago"),
    (["--tz", "america/chicago"], "--tz", "America/Chicago"),  # a did-you-mean
    # Files of the machine's tz database that DuckDB does not know (it computes the reports).
    (["--tz", "right/UTC"], "--tz", "'UTC'"),
    (["--tz", "posix/America/Chicago"], "--tz", "'America/Chicago'"),
    (["--tz", "localtime"], "--tz", "UTC"),
    (["--crs", "garbage"], "--crs", "EPSG:"),
    (["--crs", "EPSG:999999"], "--crs", "EPSG:"),
    (["--source-format", "xls"], "--source-format", "csv, tsv, parquet, geojson or jsonl"),
]


@pytest.mark.parametrize(("args", "needle", "valid"), BAD_OPTIONS,
                         ids=[" ".join(a) for a, _, _ in BAD_OPTIONS])
def test_bad_ingest_option_is_usage_error_before_the_database(cli, db_path: Path, tmp_path: Path,
                                                             args, needle, valid) -> None:
    f = tmp_path / "a.csv"
    f.write_text(CSV)
    r = cli("ingest", f, *args)
    assert r.exit_code == 2, r.stderr
    assert r.stderr.startswith("usagectl: error:") and needle in r.stderr and valid in r.stderr
    assert not db_path.exists()  # refused before the database was opened or created

    r = cli("ingest", f, *args, "--format", "json")
    assert r.exit_code == 2
    err = r.json()["error"]
    assert err["code"] == "validation_error" and needle in err["message"] and valid in err["message"]
    assert not db_path.exists()


def test_bad_ingest_option_leaves_an_existing_database_unchanged(cli, db_path: Path,
                                                                  tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text(CSV)
    assert cli("ingest", f, "--quiet").exit_code == 0
    before = cli("ingests", "--format", "json").json()
    for args, _, _ in BAD_OPTIONS:
        assert cli("ingest", f, *args, "--quiet").exit_code == 2, args
    assert cli("ingests", "--format", "json").json() == before  # no failed ingest recorded


def test_option_details_list_the_valid_values(cli, tmp_path: Path) -> None:
    from usagectl.sources.columns import CANONICAL
    from usagectl.sources.readers import FORMATS

    f = tmp_path / "a.csv"
    f.write_text(CSV)
    err = cli("ingest", f, "--source-format", "xls", "--format", "json").json()["error"]
    assert err["details"] == {"option": "--source-format", "value": "xls", "valid": list(FORMATS)}
    err = cli("ingest", f, "--map", "usr=x", "--format", "json").json()["error"]
    assert err["details"]["option"] == "--map" and err["details"]["valid"] == list(CANONICAL)


def test_source_format_is_case_insensitive(cli, tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text(CSV)
    r = cli("ingest", f, "--source-format", "CSV", "--format", "json")
    assert r.exit_code == 0 and r.json()["totals"]["accepted"] == 1


def test_library_checks_options_too(db_path: Path, tmp_path: Path) -> None:
    """ingest_paths refuses bad options itself (a library caller gets the same usage error)."""
    from usagectl.errors import UsageError
    from usagectl.store.db import session
    from usagectl.store.ingest import IngestOptions, ingest_paths

    f = tmp_path / "a.csv"
    f.write_text(CSV)
    with session(str(db_path)) as con:
        for opts in (IngestOptions(tz="right/UTC"), IngestOptions(format="xls"),
                     IngestOptions(crs="garbage")):
            with pytest.raises(UsageError):
                ingest_paths(con, [str(f)], opts)
        assert con.execute("SELECT count(*) FROM ingests").fetchone()[0] == 0
