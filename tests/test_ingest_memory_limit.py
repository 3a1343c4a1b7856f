"""An ingest runs under a lower DuckDB memory limit (usagectl.store.ingest.INGEST_MEMORY_LIMIT),
so that its peak memory stops growing with the file; an operator that cannot work within it
makes the ingest run that step again under the session's limit, never fail."""

from __future__ import annotations

import pytest

import usagectl.store.ingest as ingest_mod
from tests.conftest import SAMPLE_DATA


def _counts(run) -> tuple:  # noqa: ANN001
    (res,) = run.json()["files"]
    return res["status"], res["rows_read"], res["accepted"], res["duplicates"], res["rejected"]


@pytest.mark.parametrize("name", ["machine_files.csv", "fields_boundaries.geojson", "requests.jsonl",
                                  "token_usage.parquet"])
def test_out_of_memory_under_the_ingest_limit_retries_under_the_session_limit(
        cli, tmp_path, monkeypatch, name):
    path = SAMPLE_DATA / name
    if not path.exists():
        pytest.skip(f"{name} is not in the sample")
    expected = _counts(cli("ingest", path, "--format", "json", db=tmp_path / "normal.duckdb"))
    assert expected[0] == "ok"
    monkeypatch.setattr(ingest_mod, "INGEST_MEMORY_LIMIT", "1MB")  # nothing fits
    got = cli("ingest", path, "--format", "json", db=tmp_path / "tiny.duckdb")
    assert _counts(got) == expected
    again = cli("ingest", path, "--format", "json", db=tmp_path / "tiny.duckdb")
    assert _counts(again) == (expected[0], expected[1], 0, expected[1] - expected[4],
                              expected[4])


def test_a_memory_limit_the_user_set_is_left_alone(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_mod, "INGEST_MEMORY_LIMIT", "1MB")
    monkeypatch.setenv("USAGECTL_MEMORY_LIMIT", "1GB")
    run = cli("ingest", SAMPLE_DATA / "machine_files.csv", "--format", "json")
    assert _counts(run)[0] == "ok"
