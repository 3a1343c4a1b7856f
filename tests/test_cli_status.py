"""`usage`, `check`, `alerts`, the log view's marks, late events (SPEC §5.2, §5.4, §6, §7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write

CONTRACTS = """
[[contract]]
id = "lic"
owner = "lca"
start = 2026-07-01
cycle = "annual"
tier = "academic"

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
  endpoints = ["/datasets"]
  require = ["indicator_ids"]
  limit = 2

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  endpoints = ["/datasets"]
  require = ["indicator_ids"]

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
  endpoints = ["/datasets"]
  require = ["indicator_ids"]

[[contract]]
id = "credits"
owner = "doc"
start = 2026-01-31
cycle = "monthly"
timezone = "America/New_York"

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  limit = 10
  prepaid = 1
  included = 5
  overage_cents_per_unit = 12.5

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens"]
  included = 1000
  overage_unit = 1000
  overage_cents_per_unit = 3
"""

LICENCE = "timestamp,X-User-ID,endpoint,status_code,dataset_id,indicator_ids,product\n" + "".join(
    # SPEC §5.2: user-a fetching dataset 123 with 5 indicators 10 times = 1 user, 1 dataset, 5 indicators.
    f'2026-08-{1 + i:02d}T10:00:00Z,user-a,/datasets,200,123,"964,897,962,901,933",DATASETS\n'
    for i in range(10)) + (
    '2026-08-20T10:00:00Z,user-b,/datasets,500,124,"1,2",DATASETS\n'       # failed
    '2026-08-20T11:00:00Z,user-b,/datasets/search,200,125,"3",DATASETS\n'  # other endpoint
    '2026-08-20T12:00:00Z,user-c,/datasets,200,126,,DATASETS\n'            # no indicators
    '2026-08-21T12:00:00Z,user-b,/datasets,200,123,"964,1000",DATASETS\n')


@pytest.fixture
def db(cli, tmp_path: Path):  # noqa: ANN201
    loaded = cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS), "--format", "json")
    assert loaded.exit_code == 0, loaded.stdout
    r = cli("ingest", write(tmp_path / "lic.csv", LICENCE), "--owner", "lca", "--format", "json")
    assert r.json()["totals"]["accepted"] == 14
    return cli


def test_licence_rule_and_log_marks(db) -> None:
    doc = db("report", "-c", "lic", "--as-of", "2026-09-01", "--format", "json").json()
    m = {x["name"]: x for x in doc["meters"]}
    assert (m["users"]["owner_total"], m["datasets"]["owner_total"], m["indicators"]["owner_total"]) == (2, 1, 6)
    assert m["users"]["status"] == "warning"  # 2 of 2 ≥ 80 %
    log = db("report", "-c", "lic", "--as-of", "2026-09-01", "--view", "log", "--format", "json").json()
    events = log["events"]
    assert log["total_count"] == 11 and len(events) == 11 and log["has_more"] is False
    assert sum(e["new_user"] for e in events) == 2
    assert sum(e["new_dataset"] for e in events) == 1
    assert sum(len(e["new_indicators"]) for e in events) == 6
    assert events[0]["new_indicators"] == sorted(["964", "897", "962", "901", "933"])
    assert events[-1]["user_id"] == "user-b" and events[-1]["new_indicators"] == ["1000"]
    page = db("report", "-c", "lic", "--as-of", "2026-09-01", "--view", "log", "--limit", "4",
              "--offset", "8", "--format", "json").json()
    assert (len(page["events"]), page["limit"], page["offset"], page["has_more"]) == (3, 4, 8, False)
    first = db("report", "-c", "lic", "--as-of", "2026-09-01", "--view", "log", "--limit", "4",
               "--format", "json").json()
    assert first["has_more"] is True


def test_usage_for_an_owner_with_and_without_a_contract(db, tmp_path: Path) -> None:
    f = write(tmp_path / "doc.csv", "event_id,ts,owner_id,user_id,product,credits,input_tokens,output_tokens\n"
              "d1,2026-03-05T12:00:00Z,doc,u1,chat,4.5,1500,700\n"
              "d2,2026-03-06T12:00:00Z,doc,u2,chat,3.25,10,0\n")
    db("ingest", f)
    rows = db("usage", "--owner", "doc", "--as-of", "2026-03-10", "--format", "json").json()
    by = {r["meter"]: r for r in rows}
    assert by["credits"]["used"] == 7.75 and by["credits"]["overage"] == 2.75
    # 3 started units over 5 included at 12.5 cents = 37.5 → 38 cents (half-up).
    assert by["credits"]["overage_amount_cents"] == 38
    assert by["tokens"]["tokens_used"] == 2210 and by["tokens"]["tokens_overage"] == 1210
    assert by["tokens"]["overage_amount_cents"] == 6  # 2 started thousands × 3 cents
    assert by["credits"]["period_start"] == "2026-02-28T00:00:00-05:00"
    nobody = db("usage", "--owner", "nobody", "--format", "json").json()
    assert nobody == [{"contract": None, "meter": None, "tier": None, "used": 0, "included": 0,
                       "overage": 0, "overage_amount_cents": 0, "period_start": None, "period_end": None}]


def test_check_exit_codes_and_message(db, tmp_path: Path) -> None:
    db("ingest", write(tmp_path / "doc.csv", "event_id,ts,owner_id,user_id,product,credits\n"
                       "d1,2026-03-05T12:00:00Z,doc,u1,chat,10\n"))
    ok = db("check", "-c", "credits", "--meter", "credits", "--amount", "1", "--as-of", "2026-03-10",
            "--format", "json")
    assert ok.exit_code == 0 and ok.json()["can_proceed"] is True and ok.json()["available"] == 1
    no = db("check", "-c", "credits", "--meter", "credits", "--amount", "2", "--as-of", "2026-03-10",
            "--format", "json")
    assert no.exit_code == 3
    doc = no.json()
    assert doc["message"] == "Operation requires 2 credits, but only 1 available"
    assert (doc["current_usage"], doc["limit"], doc["required"], doc["prepaid"]) == (10, 10, 2, 1)
    assert doc["reset_date"] == "2026-03-31T00:00:00-04:00"
    bad = db("check", "-c", "credits", "--meter", "credits", "--amount", "lots", "--format", "json")
    assert bad.exit_code == 2 and bad.json()["error"]["code"] == "validation_error"


def test_alerts_exit_3_and_list_the_meters(db) -> None:
    r = db("alerts", "--as-of", "2026-09-01", "--format", "json")
    assert r.exit_code == 3
    assert [(a["contract"], a["meter"], a["status"]) for a in r.json()] == [("lic", "users", "warning")]
    quiet = db("alerts", "--contract", "credits", "--as-of", "2026-03-10", "--format", "json")
    assert quiet.exit_code == 0 and quiet.json() == []


def test_late_events_count_what_arrived_after_the_period_closed(db, tmp_path: Path) -> None:
    db("ingest", write(tmp_path / "late.csv", "event_id,ts,owner_id,user_id,product,credits\n"
                       "old,2026-03-05T12:00:00Z,doc,u1,chat,1\n"))
    doc = db("report", "-c", "credits", "--period", "1", "--as-of", "2026-11-01", "--format", "json").json()
    # Period 1 (Feb 28 – Mar 31 2026) closed long before this ingest ran.
    assert {m["name"]: m["late_events"] for m in doc["meters"]}["credits"] == 1


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 4),
                                st.lists(st.integers(1, 9), max_size=4),
                                st.sampled_from(["/datasets", "/datasets", "/other"]),
                                st.sampled_from([200, 200, 200, 500]), st.integers(1, 28)),
                      min_size=1, max_size=25))
def test_log_marks_always_sum_to_the_distinct_counts(cli, tmp_path_factory, calls) -> None:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("marks")
    db = tmp / "u.duckdb"
    assert cli("contracts", "load", write(tmp / "c.toml", CONTRACTS), db=db).exit_code == 0
    rows = "".join(f'2026-08-{day:02d}T{i % 24:02d}:00:00Z,{u},{ep},{st_},{ds},"{",".join(map(str, ind))}",DATASETS\n'
                   for i, (u, ds, ind, ep, st_, day) in enumerate(calls))
    cli("ingest", write(tmp / "l.csv", LICENCE.splitlines()[0] + "\n" + rows), "--owner", "lca", db=db)
    doc = cli("report", "-c", "lic", "--as-of", "2026-09-01", "--format", "json", db=db).json()
    counts = {m["name"]: m["owner_total"] for m in doc["meters"]}
    log = cli("report", "-c", "lic", "--as-of", "2026-09-01", "--view", "log", "--format", "json", db=db).json()
    assert sum(e["new_user"] for e in log["events"]) == counts["users"]
    assert sum(e["new_dataset"] for e in log["events"]) == counts["datasets"]
    assert sum(len(e["new_indicators"]) for e in log["events"]) == counts["indicators"]
    assert log["total_count"] == len(log["events"]) == doc["events_counted"]


def test_terminal_output_escapes_markup_and_control_characters(cli, tmp_path: Path) -> None:
    nasty = "[/bold][link=http://x]evil[/link]"
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS))
    cli("ingest", write(tmp_path / "n.csv", "timestamp,X-User-ID,endpoint,status_code,dataset_id,"
                        f'indicator_ids,product\n2026-08-01T10:00:00Z,"{nasty}",/datasets,200,1,"5",DATASETS\n'),
        "--owner", "lca")
    # Ingest now rejects control characters in ids; a database written before may hold them.
    import duckdb

    con = duckdb.connect(str(tmp_path / "usage.duckdb"))
    con.execute("UPDATE events SET user_id = user_id || ?", ["\x1b[31mred"])
    con.close()
    r = cli("report", "-c", "lic", "--as-of", "2026-09-01", "--view", "users", env={"NO_COLOR": "1"})
    assert r.exit_code == 0, r.stderr
    assert "[/bold][link=http://x]evil[/link]" in r.stdout  # shown literally, not as markup
    assert "\x1b" not in r.stdout  # no escape sequence from the data, no colour with NO_COLOR
    r = cli("report", "-c", "lic", "--as-of", "2026-09-01")
    assert r.exit_code == 0 and "total" in r.stdout
