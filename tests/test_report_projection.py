"""Projection and trend (SPEC §5.4): a closed period's trend, stock meters, alerts from a flat stock.

Areas are checked against pyproj's geodesic area of the same shapely boxes, independently of the
engine; dates are local dates of the contract's zone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from tests.conftest import geodesic_acres, write

F1 = shapely.box(-93.60, 42.00, -93.59, 42.01)
F2 = shapely.box(-93.50, 42.00, -93.49, 42.01)
F3 = shapely.box(-93.40, 42.00, -93.39, 42.01)

acres = geodesic_acres


TOKENS = """
[[contract]]
id = "tok"
owner = "land"
start = 2026-02-01
cycle = "monthly"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens"]
"""


def test_closed_period_trend_ends_on_the_period_s_last_day(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", TOKENS))
    cli("ingest", write(tmp_path / "t.csv", "event_id,ts,owner_id,user_id,product,input_tokens\n"
                        "a,2026-02-10T10:00:00Z,land,u1,API_TOKENS,100\n"
                        "b,2026-02-20T10:00:00Z,land,u1,API_TOKENS,300\n"
                        "c,2026-02-27T10:00:00Z,land,u1,API_TOKENS,50\n"))
    doc = cli("report", "-c", "tok", "--period", "previous", "--as-of", "2026-03-10T00:00:00Z",
              "--format", "json").json()
    (m,) = doc["meters"]
    assert doc["period"]["start"].startswith("2026-02-01")
    # The 14 days end on Feb 28: Feb 15 … Feb 28; 300 on Feb 20 (index 5), 50 on Feb 27 (12).
    assert m["last_14_days"] == [0, 0, 0, 0, 0, 300, 0, 0, 0, 0, 0, 0, 50, 0]
    # last 7 days (Feb 22–28) 50 vs the 7 before (Feb 15–21) 300: decreasing
    assert m["projection"]["trending"] == "decreasing"


AREA = """
[[contract]]
id = "fields"
owner = "acme"
start = 2026-01-01
cycle = "quarterly"
timezone = "America/Chicago"

  [[contract.meter]]
  name = "processed"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  billed_on = "owner"
"""
HEADER = "event_id,ts,owner_id,user_id,product,action,resource_id,geometry\n"


def row(eid: str, ts: str, user: str, geom=None, action: str = "process", rid: str = "",  # noqa: ANN001
        product: str = "FIELDS_BOUNDARY") -> str:
    wkt = f'"{geom.wkt}"' if geom is not None else ""
    return f"{eid},{ts},acme,{user},{product},{action},{rid or eid},{wkt}\n"


def test_closed_period_area_trend_ends_on_the_period_s_last_day(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", AREA))
    cli("ingest", write(tmp_path / "e.csv", HEADER + row("a", "2026-03-20T18:00:00Z", "u1", F1)
                        + row("b", "2026-03-27T18:00:00Z", "u1", F2)))
    doc = cli("report", "-c", "fields", "--period", "previous", "--as-of", "2026-04-10T00:00:00Z",
              "--format", "json").json()
    (m,) = doc["meters"]
    # Q1 ends on Mar 31: the 14 days are Mar 18 … Mar 31; F1 on Mar 20 (2), F2 on Mar 27 (9).
    recent = m["last_14_days"]
    assert [i for i, v in enumerate(recent) if v] == [2, 9]
    assert recent[2] == pytest.approx(acres(F1), rel=1e-8)
    assert recent[9] == pytest.approx(acres(F2), rel=1e-8)


STOCK = """
[[contract]]
id = "stock"
owner = "acme"
start = 2026-01-01
cycle = "quarterly"
timezone = "America/Chicago"

  [[contract.meter]]
  name = "audit"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  mode = "audit"
  billed_on = "owner"
  limit = 600

  [[contract.meter]]
  name = "active"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  boundary_policy = "active"
  limit = 600
"""
SMALL = shapely.box(-93.30, 42.00, -93.298, 42.002)  # about 9 acres


@pytest.fixture
def stock(cli, tmp_path: Path):  # noqa: ANN201
    cli("contracts", "load", write(tmp_path / "c.toml", STOCK))
    # Two boundaries from Q1 (one on Mar 25, inside the 14 days before Q2) and nothing else yet.
    r = cli("ingest", write(tmp_path / "q1.csv", HEADER + row("b1", "2026-01-10T18:00:00Z", "u1", F1)
                            + row("b2", "2026-03-25T18:00:00Z", "u1", F2)), "--format", "json")
    assert r.json()["totals"]["accepted"] == 2
    return cli


def stock_meters(cli, as_of: str) -> dict:  # noqa: ANN001
    doc = cli("report", "-c", "stock", "--as-of", as_of, "--format", "json").json()
    assert doc["period"]["index"] == 1  # Q2: Apr 1 – Jul 1, 91 days, no DST change inside
    return {m["name"]: m for m in doc["meters"]}


def test_a_flat_stock_projects_its_standing_value_and_raises_no_alert(stock) -> None:
    carried = acres(F1) + acres(F2)  # about 455 of a 600 limit: 76 %, below the warning line
    # 2026-05-16 05:00Z is local midnight: 45 days of Q2's 91 have elapsed, nothing new.
    m = stock_meters(stock, "2026-05-16T05:00:00Z")
    for name in ("audit", "active"):
        p = m[name]["projection"]
        assert m[name]["billed"] == pytest.approx(carried, rel=1e-8)
        assert m[name]["status"] == "ok"
        # Growth would project 455 / 45 × 91 ≈ 920 > 600; a stock projects what it holds.
        assert p["projected"] == pytest.approx(carried, rel=1e-8)
        assert p["daily_average"] == 0 and p["will_exceed_limit"] is False
        assert p["exceeds_on"] is None and p["carried_over"] == pytest.approx(carried, rel=1e-8)
    r = stock("alerts", "--contract", "stock", "--as-of", "2026-05-16T05:00:00Z", "--format", "json")
    assert r.exit_code == 0 and r.json() == []


def test_a_stock_projects_its_standing_value_plus_the_trend_of_what_is_new(stock, tmp_path: Path) -> None:
    stock("ingest", write(tmp_path / "q2.csv", HEADER + row("b3", "2026-05-10T18:00:00Z", "u1", SMALL)))
    carried, new = acres(F1) + acres(F2), acres(SMALL)
    m = stock_meters(stock, "2026-05-16T05:00:00Z")
    for name in ("audit", "active"):
        p = m[name]["projection"]
        assert m[name]["billed"] == pytest.approx(carried + new, rel=1e-8)
        # daily_average = new / 45 elapsed days; projected = carried + daily_average × 91
        assert p["daily_average"] == pytest.approx(new / 45, abs=1e-6)  # 6 decimals
        assert p["projected"] == pytest.approx(carried + new / 45 * 91, rel=1e-6)
        assert p["will_exceed_limit"] is False
        # The 14 days end on as_of's local day, May 16: May 3 … May 16; SMALL on May 10.
        assert [i for i, v in enumerate(m[name]["last_14_days"]) if v] == [7]
        assert m[name]["last_14_days"][7] == pytest.approx(new, rel=1e-6)


def test_what_was_there_before_the_period_is_not_new_in_the_trend(stock) -> None:
    # As of Apr 5 the 14 days are Mar 23 … Apr 5: b2 (Mar 25) is before the period, and the
    # active meter dates its carried-over boundaries on Apr 1; neither is new consumption.
    m = stock_meters(stock, "2026-04-05T17:00:00Z")
    for name in ("audit", "active"):
        assert m[name]["last_14_days"] == [0.0] * 14, name
        assert m[name]["projection"]["trending"] == "stable"
        assert m[name]["projection"]["projected"] == pytest.approx(acres(F1) + acres(F2), rel=1e-8)


def test_a_stock_over_its_limit_exceeds_from_the_period_s_first_day(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", STOCK.replace("limit = 600", "limit = 300")))
    cli("ingest", write(tmp_path / "q1.csv", HEADER + row("b1", "2026-01-10T18:00:00Z", "u1", F1)
                        + row("b2", "2026-03-25T18:00:00Z", "u1", F2)))
    m = stock_meters(cli, "2026-05-16T05:00:00Z")
    for name in ("audit", "active"):
        assert m[name]["status"] == "exceeded"
        p = m[name]["projection"]
        assert p["will_exceed_limit"] is True and p["exceeds_on"] == "2026-04-01"
