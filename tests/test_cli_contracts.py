"""`usagectl contracts load | list | show` (SPEC §4, §5.5)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SAMPLE_DATA, write

GOOD = """
[[contract]]
id = "acme-2026"
owner = "acme"
start = 2026-01-31
cycle = "monthly"
timezone = "America/Chicago"
tier = "growth"

  [[contract.meter]]
  name = "boundaries"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  limit = 50000
  included = 40000
  overage_cents_per_unit = 25
"""


def test_load_list_show(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "c.toml", GOOD)
    r = cli("contracts", "load", f, "--format", "json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["contracts"] == [{"id": "acme-2026", "owner": "acme", "action": "added",
                                      "meters": 1}]
    assert cli("contracts", "load", f, "--format", "json").json()["contracts"][0]["action"] == "unchanged"
    listed = cli("contracts", "list", "--as-of", "2026-03-01T12:00:00Z", "--format", "json").json()
    period = listed[0]["current_period"]
    # Anchored on the 31st: February's period runs to the last day of February, local midnight.
    assert (period["index"], period["start"], period["end"]) == (
        1, "2026-02-28T00:00:00-06:00", "2026-03-31T00:00:00-05:00")
    shown = cli("contracts", "show", "acme-2026", "--as-of", "2026-03-01T12:00:00Z", "--format", "json").json()
    assert shown["meters"][0]["name"] == "boundaries" and shown["tier"] == "growth"
    table = cli("contracts", "show", "acme-2026", "--as-of", "2026-03-01T12:00:00Z")
    assert table.exit_code == 0 and "boundaries" in table.stdout and "2026-02-28" in table.stdout


def test_changed_contract_is_reported_as_updated(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", GOOD))
    r = cli("contracts", "load", write(tmp_path / "d.toml", GOOD.replace("50000", "60000")),
            "--format", "json")
    assert r.json()["contracts"][0]["action"] == "updated"
    assert cli("contracts", "show", "acme-2026", "--format", "json").json()["meters"][0]["limit"] == 60000


def test_bad_file_lists_every_problem_and_loads_nothing(cli, tmp_path: Path) -> None:
    bad = GOOD.replace('cycle = "monthly"', 'cycle = "weekly"').replace(
        "America/Chicago", "America/Chicgo").replace("limit = 50000", "limt = 50000")
    bad += '\n[[contract]]\nid = "acme-2026"\nstart = 2026-01-01\ncycle = "once"\n'
    r = cli("contracts", "load", write(tmp_path / "bad.toml", bad), "--format", "json")
    assert r.exit_code == 1
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    problems = "\n".join(err["details"]["problems"])
    for needle in ("weekly", "America/Chicago", "did you mean 'limit'", "duplicate", "owner", "end"):
        assert needle in problems, needle
    assert cli("contracts", "list", "--format", "json").json() == []
    plain = cli("contracts", "load", tmp_path / "bad.toml")
    assert plain.exit_code == 1 and plain.stderr.count("\n  - ") >= 5


def test_unknown_contract_suggests(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", GOOD))
    r = cli("contracts", "show", "acme-2025", "--format", "json")
    assert r.exit_code == 1
    assert r.json()["error"]["code"] == "not_found" and "did you mean 'acme-2026'" in r.json()["error"]["message"]


def test_sample_contracts_load(cli) -> None:
    r = cli("contracts", "load", SAMPLE_DATA / "contracts.toml", "--format", "json")
    assert r.exit_code == 0, r.stdout
    assert len(r.json()["contracts"]) == 4


def test_an_id_differing_only_by_case_from_a_stored_one_is_refused(cli, tmp_path: Path) -> None:
    assert cli("contracts", "load", write(tmp_path / "a.toml", GOOD)).exit_code == 0
    r = cli("contracts", "load", write(tmp_path / "b.toml", GOOD.replace("acme-2026", "ACME-2026")),
            "--format", "json")
    assert r.exit_code == 1, r.stdout
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    [problem] = err["details"]["problems"]
    assert "'ACME-2026'" in problem and "'acme-2026'" in problem and "case" in problem
    assert [c["id"] for c in cli("contracts", "list", "--format", "json").json()] == ["acme-2026"]
    # The same id reloaded is still an update.
    assert cli("contracts", "load", tmp_path / "a.toml").exit_code == 0


SHOWN = """
[[contract]]
id = "api"
owner = "o"
start = 2026-01-01
cycle = "monthly"
  [[contract.meter]]
  name = "calls"
  aggregate = "count"
  limit = 100
  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  included = 12.5
"""


def test_contracts_show_says_what_every_other_output_says(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", SHOWN))
    table = cli("contracts", "show", "api", "--as-of", "2026-03-01", env={"COLUMNS": "150"}).stdout
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in table.splitlines() if line.startswith("│")}
    # meter → aggregate, what, billed on, limit, included, overage price
    assert rows["calls"][:5] == ["count", "requests", "owner", "100", "0"]
    assert rows["datasets"][:5] == ["distinct", "datasets", "owner", "—", "0"]
    assert rows["credits"][:5] == ["sum", "credits", "owner", "—", "12.50"]
    usage = cli("usage", "--owner", "o", "--as-of", "2026-03-01", "--format", "json").json()
    assert {u["meter"]: u["included"] for u in usage} == {"calls": 0, "datasets": 0, "credits": 12.5}
