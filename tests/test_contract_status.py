"""``contracts list/show`` show each meter's status as of ``--as-of``, the same one the
consolidated report computes (issue 13 item 8); ``export --views`` takes every report view."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import write

GATEWAY = "timestamp,X-User-ID,endpoint,status_code,dataset_id,input_tokens\n" + "".join([
    "2026-03-02T10:00:00Z,u1,/datasets,200,1,5\n",
    "2026-03-03T10:00:00Z,u1,/datasets,200,1,4\n",
    "2026-03-04T10:00:00Z,u2,/datasets,200,2,3\n",
    "2026-04-02T10:00:00Z,u2,/datasets,200,3,1\n",
])
CONTRACTS = """
[[contract]]
id = "gw"
owner = "lic"
start = 2026-03-01
cycle = "monthly"

  [[contract.meter]]
  name = "calls"
  aggregate = "count"
  limit = 4
  warn_at = 0.75

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens"]
  limit = 10

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  limit = 10
"""
# As of 2026-03-10 (March period): calls 3 ≥ 0.75·4 → warning; tokens 5+4+3 = 12 > 10 →
# exceeded; datasets {1, 2} = 2 → ok. As of 2026-04-10 (April): 1 call, 1 token, 1 dataset: ok.
MARCH = {"calls": "warning", "tokens": "exceeded", "datasets": "ok"}
APRIL = {"calls": "ok", "tokens": "ok", "datasets": "ok"}


@pytest.fixture
def gw(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    r = cli("ingest", write(tmp_path / "g.csv", GATEWAY), "--owner", "lic", "--format", "json")
    assert r.json()["totals"]["accepted"] == 4, r.stdout
    return cli


@pytest.mark.parametrize(("as_of", "expected"), [("2026-03-10", MARCH), ("2026-04-10", APRIL)])
def test_contracts_list_and_show_give_each_meters_status(gw, as_of: str, expected: dict) -> None:
    report = gw("report", "-c", "gw", "--as-of", as_of, "--format", "json").json()
    assert {m["name"]: m["status"] for m in report["meters"]} == expected  # the report's own
    listed = gw("contracts", "list", "--as-of", as_of, "--format", "json").json()
    assert listed[0]["meter_status"] == expected
    shown = gw("contracts", "show", "gw", "--as-of", as_of, "--format", "json").json()
    assert shown["meter_status"] == expected
    table = gw("contracts", "show", "gw", "--as-of", as_of)
    assert table.exit_code == 0
    for name, status in expected.items():
        line = next(x for x in table.stdout.splitlines() if f" {name} " in x)
        assert status in line, (name, line)
    rows = list(csv.DictReader(io.StringIO(gw("contracts", "list", "--as-of", as_of,
                                              "--format", "csv").stdout)))
    assert json.loads(rows[0]["meter_status"]) == expected


def test_no_current_period_has_no_status(gw) -> None:
    listed = gw("contracts", "list", "--as-of", "2025-12-01", "--format", "json").json()
    assert listed[0]["current_period"] is None and listed[0]["meter_status"] is None


def test_export_views_takes_every_report_view(gw, tmp_path: Path) -> None:
    from usagectl.reports import EXPORTABLE_VIEWS
    from usagectl.reports.report import VIEWS

    # One registry: a new view is exportable by being a view (overlap, a command, comes after).
    assert EXPORTABLE_VIEWS[:len(VIEWS)] == VIEWS
    out = tmp_path / "out"
    r = gw("export", "-c", "gw", "--as-of", "2026-03-10", "--out-dir", str(out),
           "--views", ",".join(VIEWS), "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert sorted(f["view"] for f in r.json()["files"]) == sorted(VIEWS)
    top = list(csv.DictReader((out / "gw.top.csv").open()))
    # top's default: the first meter (calls) per user_id: u1 2 calls, u2 1.
    assert [(x["key"], x["value"]) for x in top] == [("u1", "2"), ("u2", "1")]
    series = list(csv.DictReader((out / "gw.series.csv").open()))
    assert [x["meters_calls"] for x in series] == ["1", "1", "1"]
    bad = gw("export", "-c", "gw", "--out-dir", str(out), "--views", "nope", "--format", "json")
    assert bad.exit_code == 2 and bad.json()["error"]["details"]["valid"] == list(EXPORTABLE_VIEWS)
