"""What the meters counted: the consolidated counts, the users view and the consumption log agree
with each other and with the meters (SPEC §5.2 log, §7; issue 10 item 11).

For area meters an event is counted when the meter counts its geometry: a delete, or an operation
that got no area, is not; an audit-mode boundary processed before the period is.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from tests.conftest import write

F1 = shapely.box(-93.60, 42.00, -93.59, 42.01)
F2 = shapely.box(-93.50, 42.00, -93.49, 42.01)
F3 = shapely.box(-93.40, 42.00, -93.39, 42.01)

CONTRACTS = """
[[contract]]
id = "farm"
owner = "acme"
start = 2026-01-01
cycle = "quarterly"

  [[contract.meter]]
  name = "processed"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]

  [[contract.meter]]
  name = "audit"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  mode = "audit"
  billed_on = "owner"

  [[contract.meter]]
  name = "ops"
  aggregate = "unique_area"
  products = ["OPERATIONS_OPERATION"]
  derive_operations = true
"""
HEADER = "event_id,ts,owner_id,user_id,product,action,resource_id,geometry\n"


def ev(eid: str, ts: str, user: str, product: str, rid: str, geom=None, action: str = "process") -> str:  # noqa: ANN001
    wkt = f'"{geom.wkt}"' if geom is not None else ""
    return f"{eid},{ts},acme,{user},{product},{action},{rid},{wkt}\n"


EVENTS = HEADER + "".join([
    ev("e1", "2026-01-10T10:00:00Z", "u1", "FIELDS_BOUNDARY", "b1", F1),   # Q1: audit carry-over
    ev("e2", "2026-04-05T10:00:00Z", "u2", "FIELDS_BOUNDARY", "b2", F2),   # processed + audit
    ev("e3", "2026-04-06T10:00:00Z", "u3", "FIELDS_BOUNDARY", "b3", F3),   # processed only …
    ev("d1", "2026-04-20T10:00:00Z", "u3", "FIELDS_BOUNDARY", "b3", action="delete"),  # … b3 gone
    ev("f1", "2026-04-10T10:00:00Z", "u1", "OPERATIONS_FILE", "file1", F1),  # an input, not counted
    ev("o1", "2026-04-11T10:00:00Z", "u4", "OPERATIONS_OPERATION", "nofile"),  # no file: no area
    ev("o2", "2026-04-12T10:00:00Z", "u1", "OPERATIONS_OPERATION", "file1"),  # file1 ∩ b1: area
])
# Counted: processed {e2, e3}; audit {e1, e2} (b3's latest event is its delete); ops {o2}.
COUNTED = ["e1", "e2", "e3", "o2"]
AS_OF = "2026-05-01T00:00:00Z"


@pytest.fixture
def farm(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    r = cli("ingest", write(tmp_path / "e.csv", EVENTS), "--format", "json")
    assert r.json()["totals"]["accepted"] == 7, r.stdout
    return cli


def report(cli, view: str, *extra: str) -> dict:  # noqa: ANN001
    r = cli("report", "-c", "farm", "--as-of", AS_OF, "--view", view, "--format", "json", *extra)
    assert r.exit_code == 0, r.stdout + r.stderr
    return r.json()


def test_counts_reflect_what_the_meters_counted(farm) -> None:
    doc = report(farm, "consolidated")
    events = {m["name"]: m["events"] for m in doc["meters"]}
    assert events == {"processed": 2, "audit": 2, "ops": 1}
    assert (doc["users"], doc["events_counted"]) == (3, 4)  # u1, u2, u3; e1, e2, e3, o2


def test_the_log_lists_exactly_the_counted_events(farm) -> None:
    log = report(farm, "log")
    assert [e["event_id"] for e in log["events"]] == COUNTED
    assert log["total_count"] == 4 == report(farm, "consolidated")["events_counted"]
    # First sightings among counted events only: u4 (whose one operation got no area) is absent.
    assert [e["event_id"] for e in log["events"] if e["new_user"]] == ["e1", "e2", "e3"]


def test_the_users_view_counts_the_same_events(farm) -> None:
    users = {u["user_id"]: u for u in report(farm, "users")["users"]}
    assert {u: r["events"] for u, r in users.items()} == {"u1": 2, "u2": 1, "u3": 1}
    assert users["u1"]["first_seen"].startswith("2026-01-10")  # the audit carry-over
    assert sum(r["events"] for r in users.values()) == report(farm, "consolidated")["events_counted"]


def test_a_meter_subset_counts_only_its_events(farm) -> None:
    doc = report(farm, "consolidated", "--meter", "audit")
    assert (doc["users"], doc["events_counted"]) == (2, 2)  # e1 (u1), e2 (u2)
    log = report(farm, "log", "--meter", "ops")
    assert [e["event_id"] for e in log["events"]] == ["o2"]
