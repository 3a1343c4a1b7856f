"""`report` and `overlap` for unique_area meters, end to end through the CLI (SPEC §5.1, §7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely

from tests.conftest import SAMPLE_DATA, geodesic_acres, write

F1 = shapely.box(-93.60, 42.00, -93.59, 42.01)
F2 = shapely.box(-93.595, 42.00, -93.585, 42.01)  # half of it is F1's east half
F3 = shapely.box(-93.50, 42.00, -93.49, 42.01)

acres = geodesic_acres


CONTRACTS = """
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
  limit = 1000
  included = 100
  overage_cents_per_unit = 25

  [[contract.meter]]
  name = "active"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  boundary_policy = "active"

  [[contract.meter]]
  name = "audit"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  mode = "audit"
  billed_on = "owner"
"""

HEADER = "event_id,ts,owner_id,user_id,product,action,resource_id,status,geometry\n"


def row(eid: str, ts: str, user: str, action: str = "process", rid: str = "", geom=None,  # noqa: ANN001
        status: str = "200", owner: str = "acme") -> str:
    wkt = f'"{geom.wkt}"' if geom is not None else ""
    return f"{eid},{ts},{owner},{user},FIELDS_BOUNDARY,{action},{rid},{status},{wkt}\n"


@pytest.fixture
def loaded(cli, tmp_path: Path):  # noqa: ANN201
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS))

    def ingest(*rows: str) -> None:
        f = tmp_path / f"e{len(list(tmp_path.glob('e*.csv')))}.csv"
        f.write_text(HEADER + "".join(rows))
        r = cli("ingest", f, "--format", "json")
        assert r.exit_code == 0 and r.json()["totals"]["rejected"] == 0, r.stdout

    return ingest


def meters(cli, as_of: str, period: str | None = None) -> dict:  # noqa: ANN001
    args = ["report", "--contract", "fields", "--as-of", as_of, "--format", "json"]
    if period:
        args += ["--period", period]
    r = cli(*args)
    assert r.exit_code == 0, r.stdout + r.stderr
    return {m["name"]: m for m in r.json()["meters"]}


def test_reprocessing_adds_nothing_and_sharing_counts_per_user(cli, loaded) -> None:
    loaded(row("e1", "2026-01-05T10:00:00Z", "u1", rid="b1", geom=F1),
           row("e2", "2026-01-06T10:00:00Z", "u1", rid="b1", geom=F1),  # re-processed
           row("e3", "2026-01-07T10:00:00Z", "u2", rid="b2", geom=F2),
           row("e4", "2026-01-08T10:00:00Z", "u2", rid="b3", geom=F3, status="500"),  # failed
           row("e5", "2026-01-08T10:00:00Z", "u3", rid="b4", geom=F3, owner="other"),  # other owner
           row("e6", "2026-02-01T10:00:00Z", "u3", rid="b5", geom=F3))  # after as_of
    m = meters(cli, "2026-01-31T12:00:00Z")["processed"]
    assert m["owner_total"] == pytest.approx(acres(shapely.union(F1, F2)), rel=1e-8)
    assert m["user_total"] == pytest.approx(acres(F1) + acres(F2), rel=1e-8)
    assert m["overlap"] == pytest.approx(acres(F1) + acres(F2) - acres(shapely.union(F1, F2)), rel=1e-6)
    assert m["billed_on"] == "user" and m["billed"] == m["user_total"]
    # §5.4 on the billed acres: overage over 100 included, 25 cents per started acre.
    overage = m["billed"] - 100
    assert m["overage"] == pytest.approx(overage, abs=1e-6)
    assert m["overage_units"] == -int(-overage // 1)
    assert m["overage_amount_cents"] == m["overage_units"] * 25
    assert m["status"] == "ok" and m["limit"] == 1000


def test_processed_vs_active_across_periods_and_deletes(cli, loaded) -> None:
    loaded(row("p1", "2026-02-10T10:00:00Z", "u1", rid="b1", geom=F1),
           row("p2", "2026-02-10T10:00:00Z", "u1", rid="b3", geom=F3),
           row("d1", "2026-03-20T10:00:00Z", "u1", action="delete", rid="b3"),  # same period
           row("d2", "2026-05-01T10:00:00Z", "u1", action="delete", rid="b1"))  # Q2
    q1 = meters(cli, "2026-03-31T12:00:00Z", "0")
    both = acres(F1) + acres(F3)
    # A delete never reduces the period it happens in, under either policy.
    assert q1["processed"]["owner_total"] == pytest.approx(both, rel=1e-8)
    assert q1["active"]["owner_total"] == pytest.approx(both, rel=1e-8)
    q2 = meters(cli, "2026-06-30T12:00:00Z", "1")
    assert q2["processed"]["owner_total"] == 0.0  # nothing processed in Q2
    assert q2["active"]["owner_total"] == pytest.approx(acres(F1), rel=1e-8)  # b1 existed until May
    q3 = meters(cli, "2026-09-30T12:00:00Z", "2")
    assert q3["active"]["owner_total"] == 0.0  # deleted before Q3


def test_audit_mode_follows_each_boundarys_latest_event(cli, loaded) -> None:
    loaded(row("a1", "2026-01-10T10:00:00Z", "u1", rid="b1", geom=F1),
           row("a2", "2026-02-10T10:00:00Z", "u1", action="delete", rid="b1"),
           row("a3", "2026-03-10T10:00:00Z", "u1", rid="b1", geom=F3),  # re-created elsewhere
           row("a4", "2026-01-10T10:00:00Z", "u2", rid="b9", geom=F2))
    before_delete = meters(cli, "2026-02-01T00:00:00Z")["audit"]
    assert before_delete["owner_total"] == pytest.approx(acres(shapely.union(F1, F2)), rel=1e-8)
    after_delete = meters(cli, "2026-02-15T00:00:00Z")["audit"]
    assert after_delete["owner_total"] == pytest.approx(acres(F2), rel=1e-8)
    recreated = meters(cli, "2026-06-01T00:00:00Z", "0")["audit"]  # audit ignores the period
    assert recreated["owner_total"] == pytest.approx(acres(F2) + acres(F3), rel=1e-8)


def test_views_agree_with_the_consolidated_totals(cli, loaded) -> None:
    loaded(row("e1", "2026-01-05T10:00:00Z", "u1", rid="b1", geom=F1),
           row("e2", "2026-01-06T05:00:00Z", "u2", rid="b2", geom=F2),  # Jan 5 in Chicago
           row("e3", "2026-01-09T10:00:00Z", "u1", rid="b3", geom=F3))
    as_of = "2026-01-31T12:00:00Z"
    m = meters(cli, as_of)["processed"]
    users = cli("report", "-c", "fields", "--as-of", as_of, "--view", "users", "--format", "json").json()
    assert sum(u["meters"]["processed"] for u in users["users"]) == pytest.approx(m["user_total"], rel=1e-8)
    assert [u["user_id"] for u in users["users"]] == ["u1", "u2"]
    daily = cli("report", "-c", "fields", "--as-of", as_of, "--view", "daily", "--format", "json").json()
    days = {d["date"]: d["meters"]["processed"] for d in daily["days"]}
    assert daily["days"][0]["date"] == "2026-01-01" and daily["days"][-1]["date"] == "2026-01-31"
    assert sum(d["owner"] for d in days.values()) == pytest.approx(m["owner_total"], rel=1e-6)
    assert sum(d["user"] for d in days.values()) == pytest.approx(m["user_total"], rel=1e-6)
    assert days["2026-01-05"]["user"] == pytest.approx(acres(F1) + acres(F2), rel=1e-8)
    assert days["2026-01-06"]["owner"] == 0.0
    ranged = cli("report", "-c", "fields", "--as-of", as_of, "--view", "daily", "--from",
                 "2026-01-05", "--to", "2026-01-10", "--format", "json").json()  # [from, to)
    assert [d["date"] for d in ranged["days"]] == [f"2026-01-0{i}" for i in range(5, 10)]
    ov = cli("overlap", "-c", "fields", "--as-of", as_of, "--format", "json").json()
    assert ov["owner_total"] == m["owner_total"] and ov["user_total"] == m["user_total"]
    by_user = {u["user_id"]: u for u in ov["users"]}
    half = acres(F1) + acres(F2) - acres(shapely.union(F1, F2))
    assert by_user["u2"]["shared_area"] == pytest.approx(half, rel=1e-6)
    assert by_user["u1"]["exclusive_area"] == pytest.approx(acres(F1) + acres(F3) - half, rel=1e-6)
    assert ov["pairs"] == [{"a": "u1", "b": "u2", "area": pytest.approx(half, rel=1e-6)}]


def test_overlap_geojson_lists_the_users_of_each_region(cli, loaded, tmp_path: Path) -> None:
    loaded(row("e1", "2026-01-05T10:00:00Z", "u1", rid="b1", geom=F1),
           row("e2", "2026-01-06T10:00:00Z", "u2", rid="b2", geom=F2))
    out = tmp_path / "ov.geojson"
    r = cli("overlap", "-c", "fields", "--as-of", "2026-01-31", "--geojson", out)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    (feature,) = doc["features"]
    assert feature["properties"]["users"] == ["u1", "u2"]
    region = shapely.geometry.shape(feature["geometry"])
    assert region.equals_exact(shapely.box(-93.595, 42.0, -93.59, 42.01), 1e-9) or \
        abs(region.area - shapely.box(-93.595, 42.0, -93.59, 42.01).area) < 1e-12


def test_sample_contract_reports_match_independent_figures(cli, tmp_path: Path) -> None:
    """The sample generator's README numbers were computed with shapely + pyproj alone."""
    r = cli("ingest", SAMPLE_DATA, "--format", "json")
    assert r.json()["totals"]["failed"] == 1  # licence_calls.csv needs --owner
    cli("contracts", "load", SAMPLE_DATA / "contracts.toml")
    doc = cli("report", "-c", "acme-farms-2026", "--as-of", "2026-11-20T12:00:00Z", "--format", "json").json()
    m = {x["name"]: x for x in doc["meters"]}
    assert m["boundaries"]["user_total"] == pytest.approx(7295.23, abs=0.01)
    assert m["boundaries"]["owner_total"] == pytest.approx(5497.20, abs=0.01)
    assert m["satellite"]["user_total"] == pytest.approx(4655.22, abs=0.01)
    assert m["unified"]["owner_total"] == pytest.approx(7354.76, abs=0.01)


def test_unknown_view_and_contract_are_clear_errors(cli, loaded) -> None:
    r = cli("report", "-c", "fields", "--view", "nope", "--format", "json")
    assert r.exit_code == 2 and "choose one of" in r.json()["error"]["message"]
    r = cli("report", "-c", "felds", "--format", "json")
    assert r.json()["error"]["code"] == "not_found" and "did you mean 'fields'" in r.json()["error"]["message"]


def test_daily_values_add_up_to_the_total_for_stock_meters(cli, loaded) -> None:
    """Σ daily = period total under every policy: what an audit or active meter holds from before
    the period counts on the period's first day, and (audit, as of after the period) what came
    after the period's end on its last day."""
    loaded(row("s1", "2025-11-10T10:00:00Z", "u1", rid="b1", geom=F1),  # before Q1
           row("s2", "2026-02-10T10:00:00Z", "u2", rid="b2", geom=F2),  # in Q1
           row("s3", "2026-05-10T10:00:00Z", "u1", rid="b3", geom=F3))  # after Q1
    for as_of, period in (("2026-03-01T00:00:00Z", None), ("2026-06-01T00:00:00Z", "0")):
        args = ["report", "-c", "fields", "--as-of", as_of, "--format", "json"]
        args += ["--period", period] if period else []
        totals = {m["name"]: m for m in cli(*args).json()["meters"]}
        days = cli(*args, "--view", "daily").json()["days"]
        for name in ("processed", "active", "audit"):
            owner = sum(d["meters"][name]["owner"] for d in days)
            users = sum(d["meters"][name]["user"] for d in days)
            assert owner == pytest.approx(totals[name]["owner_total"], abs=2e-6), (as_of, name)
            assert users == pytest.approx(totals[name]["user_total"], abs=2e-6), (as_of, name)
    # The audit total as of June holds all three fields; Q1's daily view shows them all.
    assert totals["audit"]["owner_total"] == pytest.approx(acres(shapely.union(F1, F2)) + acres(F3),
                                                           rel=1e-8)
