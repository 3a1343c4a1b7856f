"""`usagectl demo` builds a database from the sample data and shows it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import SAMPLE_DATA


def test_demo_runs_on_the_bundled_sample(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = cli("demo", "--data", SAMPLE_DATA)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "geojson" in r.stdout and "parquet" in r.stdout and "1,972" in r.stdout
    assert "acme-farms-2026" in r.stdout and "lca-licence-2026" in r.stdout
    assert "rejected" in r.stdout and "current period" in r.stdout
    dbs = list(tmp_path.glob("usagectl-demo-*/demo.duckdb"))
    assert len(dbs) == 1 and os.path.getsize(dbs[0]) > 0


def test_demo_generates_data_when_none_is_given(cli, tmp_path: Path, monkeypatch) -> None:
    import tempfile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = cli("demo")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "1,972" in r.stdout  # every sample event accepted
