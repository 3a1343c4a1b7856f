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


def test_demo_shows_one_example_of_each_new_view(cli, tmp_path: Path, monkeypatch) -> None:
    """Issue 13: requests, a range split by --window, series by product, tokens, plan, users
    --detail and the contracts' status."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = cli("demo", "--data", SAMPLE_DATA)
    assert r.exit_code == 0, r.stdout + r.stderr
    out = r.stdout
    # Each example is introduced by the command that prints the same table.
    for command in (
        "usagectl report --contract docuscan-team-monthly --view requests --group-by product",
        "usagectl report --contract terra-pro-monthly --from 2026-10-15 --to 2026-11-15 "
        "--window week",
        "usagectl report --contract docuscan-team-monthly --view series --group-by product",
        "usagectl contracts list",
    ):
        assert command in out, command
    # The contracts table has each contract's status: terra's tokens are over the limit.
    assert "status" in out and "exceeded" in out
    # The requests view's figures, the range's weeks, the series' products.
    assert "success" in out and "error_code" not in out.split("--view requests")[0]
    assert "2026-10-31" in out.split("--window week")[1]
    assert "upload" in out.split("--view series")[1]
    # Tokens per conversation with their titles, the plan with its recommendation (the sample's
    # plan_alternatives.toml: business costs $10.00 against pro's $31.26 projected), and users
    # --detail listing values, each after its command.
    for command in (
        "usagectl report --contract terra-pro-monthly --view tokens --group-by session_id "
        "--label title --limit 5",
        "usagectl report --contract terra-pro-monthly --view plan --alternatives "
        "sample_data/plan_alternatives.toml",
        "usagectl report --contract lca-licence-2026 --view users --detail --limit 3",
    ):
        assert command in out, command
    tokens = out.split("--view tokens")[1].split("$ usagectl")[0]
    assert "Tokens per conversation" in tokens and "Σ range" in tokens
    plan = out.split("--view plan")[1].split("$ usagectl")[0]
    assert "recommendation: terra-business-monthly" in plan and "2,126 cents less" in plan
    detail = out.split("--view users --detail")[1]
    assert "Organisations" in detail and "1: 123" in detail
