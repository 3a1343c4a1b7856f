"""Projection and trend (SPEC §5.4): a closed period's trend, stock meters, alerts from a flat stock.

Areas are checked against pyproj's geodesic area of the same shapely boxes, independently of the
engine; dates are local dates of the contract's zone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from pyproj import Geod

from tests.conftest import write

ACRE = 4046.8564224
GEOD = Geod(ellps="WGS84")
F1 = shapely.box(-93.60, 42.00, -93.59, 42.01)
F2 = shapely.box(-93.50, 42.00, -93.49, 42.01)
F3 = shapely.box(-93.40, 42.00, -93.39, 42.01)


def acres(g) -> float:  # noqa: ANN001
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0]) / ACRE


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
