"""``report --from/--to`` on every view: half-open ranges of dates or instants in the contract's
zone, one row per period ∩ range, ``--window`` (issue 13 item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import geodesic_acres, query, write

# America/Chicago: CST (UTC−6) until 2026-03-08 02:00 local (08:00Z), then CDT (UTC−5). A local
# midnight is 06:00Z up to 03-08 and 05:00Z from 03-09; 03-08 has 23 hours.
GATEWAY = "timestamp,X-User-ID,endpoint,status_code,dataset_id,input_tokens\n" + "".join([
    "2026-02-28T12:00:00Z,u1,/d,200,1,1\n",    # e1 before the contract: in no period
    "2026-03-07T05:30:00Z,u1,/d,200,1,2\n",    # e2 local 03-06 23:30 CST
    "2026-03-07T06:30:00Z,u1,/d,200,2,4\n",    # e3 local 03-07 00:30 CST
    "2026-03-08T07:30:00Z,u2,/d,200,1,8\n",    # e4 local 03-08 01:30 CST
    "2026-03-08T08:30:00Z,u2,/d,200,3,16\n",   # e5 local 03-08 03:30 CDT
    "2026-03-09T04:30:00Z,u1,/d,200,2,32\n",   # e6 local 03-08 23:30 CDT
    "2026-03-09T05:30:00Z,u2,/d,200,2,64\n",   # e7 local 03-09 00:30 CDT
    "2026-03-31T12:00:00Z,u1,/d,200,3,128\n",  # e8 March period
    "2026-04-01T12:00:00Z,u1,/d,200,3,256\n",  # e9 April period
    "2026-04-02T12:00:00Z,u2,/d,200,4,512\n",  # e10 April period
])
CONTRACTS = """
[[contract]]
id = "gw"
owner = "lic"
start = 2026-03-01
cycle = "monthly"
timezone = "America/Chicago"

  [[contract.meter]]
  name = "calls"
  aggregate = "count"
  limit = 5

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens"]

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
"""
AS_OF = "2026-05-01T00:00:00Z"


@pytest.fixture
def gw(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    r = cli("ingest", write(tmp_path / "g.csv", GATEWAY), "--owner", "lic", "--format", "json")
    assert r.json()["totals"]["accepted"] == 10, r.stdout
    return cli


def ranged(cli, *extra: str) -> dict:  # noqa: ANN001
    r = cli("report", "-c", "gw", "--as-of", AS_OF, "--format", "json", *extra)
    assert r.exit_code == 0, r.stdout + r.stderr
    return r.json()


def figures(row: dict) -> dict:
    """meter → (owner, Σ users, events)."""
    return {m["name"]: (m["owner_total"], m["user_total"], m["events"]) for m in row["meters"]}


def test_range_inside_one_period(gw) -> None:
    # [03-07 00:00 CST, 03-09 00:00 CDT) = [03-07T06:00Z, 03-09T05:00Z): e3, e4, e5, e6.
    doc = ranged(gw, "--from", "2026-03-07", "--to", "2026-03-09")
    assert doc["range"] == {"from": "2026-03-07T00:00:00-06:00", "to": "2026-03-09T00:00:00-05:00"}
    assert "pricing" in doc["note"] and len(doc["periods"]) == 1
    row = doc["periods"][0]
    assert row["period"]["index"] == 0 and (row["from"], row["to"]) == (
        "2026-03-07T00:00:00-06:00", "2026-03-09T00:00:00-05:00")
    assert figures(row) == {
        "calls": (4, 4, 4),
        "tokens": (4 + 8 + 16 + 32, 60, 4),
        # owner {2, 1, 3}; u1 {2}, u2 {1, 3}: Σ users 3, overlap 0
        "datasets": (3, 3, 4),
    }
    assert row["users"] == 2 and row["events_counted"] == 4
    assert "limit" not in row["meters"][0] and "status" not in row["meters"][0]


def test_dst_day_is_23_hours_and_dates_differ_from_utc_instants(gw) -> None:
    # Local 03-08 = [06:00Z, 03-09T05:00Z): e4, e5 and e6 (23:30 CDT); UTC 03-08: e4, e5 only.
    local = ranged(gw, "--from", "2026-03-08", "--to", "2026-03-09")["periods"][0]
    assert figures(local)["tokens"][0] == 8 + 16 + 32
    utc = ranged(gw, "--from", "2026-03-08T00:00:00Z", "--to", "2026-03-09T00:00:00Z")["periods"][0]
    assert figures(utc)["tokens"][0] == 8 + 16
    # An instant equal to the local midnight gives the same figures as the date.
    same = ranged(gw, "--from", "2026-03-08T06:00:00Z", "--to", "2026-03-09T00:00:00-05:00")
    assert figures(same["periods"][0]) == figures(local)
    # The Leaf daily summary: --view daily for that one day, owner and per user.
    daily = ranged(gw, "--view", "daily", "--from", "2026-03-08", "--to", "2026-03-09")
    assert [(d["date"], d["meters"]["tokens"]["owner"]) for d in daily["days"]] == [("2026-03-08", 56)]
    u1 = ranged(gw, "--view", "daily", "--user", "u1", "--from", "2026-03-08", "--to", "2026-03-09")
    assert [d["meters"]["tokens"]["owner"] for d in u1["days"]] == [32]
    assert gw("report", "-c", "gw", "--view", "daily", "--from", "2026-03-08T12:00:00Z",
              "--to", "2026-03-09").exit_code == 2  # the daily view lists whole days


def test_range_across_two_periods_is_one_row_each_equal_to_the_part_asked_alone(gw) -> None:
    doc = ranged(gw, "--from", "2026-03-31", "--to", "2026-04-03")
    march, april = doc["periods"]
    # March ∩ range: e8; April ∩ range: e9, e10. Dataset 3 counts in both: first sightings reset.
    assert figures(march) == {"calls": (1, 1, 1), "tokens": (128, 128, 1), "datasets": (1, 1, 1)}
    assert figures(april) == {"calls": (2, 2, 2), "tokens": (768, 768, 2), "datasets": (2, 2, 2)}
    alone_m = ranged(gw, "--from", "2026-03-31", "--to", "2026-04-01")["periods"]
    alone_a = ranged(gw, "--from", "2026-04-01", "--to", "2026-04-03")["periods"]
    assert [march, april] == alone_m + alone_a
    table = gw("report", "-c", "gw", "--as-of", AS_OF, "--from", "2026-03-31", "--to", "2026-04-03")
    assert table.exit_code == 0 and "#0" in table.stdout and "#1" in table.stdout
    assert "apply to a whole contract period" in table.stderr
    csv = gw("report", "-c", "gw", "--as-of", AS_OF, "--from", "2026-03-31", "--to", "2026-04-03",
             "--format", "csv").stdout.splitlines()
    assert csv[0].startswith("contract_id,range_from,range_to,as_of,window,period_index,from,to,name")
    assert len(csv) == 1 + 2 * 3  # two periods × three meters


def test_user_range(gw) -> None:
    # u1 in [03-07, 03-09) local: e3 (ds 2, 4 tokens) and e6 (ds 2, 32 tokens).
    doc = ranged(gw, "--user", "u1", "--from", "2026-03-07", "--to", "2026-03-09")
    assert doc["user"] == "u1"
    assert figures(doc["periods"][0]) == {"calls": (2, 2, 2), "tokens": (36, 36, 2),
                                          "datasets": (1, 1, 2)}
    users = ranged(gw, "--view", "users", "--from", "2026-03-07", "--to", "2026-03-09")
    assert users["range"]["from"] == "2026-03-07T00:00:00-06:00"
    assert {u["user_id"]: u["meters"]["tokens"] for u in users["users"]} == {"u1": 36, "u2": 24}
    assert {u["user_id"]: u["meters"]["datasets"] for u in users["users"]} == {"u1": 1, "u2": 2}


def test_window_week_over_a_month(gw) -> None:
    # ISO weeks start on Mondays: 03-02, 03-09, 03-16, 03-23, 03-30 (local).
    doc = ranged(gw, "--from", "2026-03-01", "--to", "2026-04-01", "--window", "week")
    spans = [(w["from"][:10], w["to"][:10], figures(w)["calls"][0]) for w in doc["windows"]]
    assert spans == [("2026-03-01", "2026-03-02", 0), ("2026-03-02", "2026-03-09", 5),  # e2–e6
                     ("2026-03-09", "2026-03-16", 1), ("2026-03-16", "2026-03-23", 0),  # e7
                     ("2026-03-23", "2026-03-30", 0), ("2026-03-30", "2026-04-01", 1)]  # e8
    assert figures(doc["periods"][0])["calls"][0] == 7
    days = ranged(gw, "--from", "2026-03-07", "--to", "2026-03-09", "--window", "day")["windows"]
    assert [figures(w)["tokens"][0] for w in days] == [4, 56]
    month = ranged(gw, "--from", "2026-03-15", "--to", "2026-04-15", "--window", "month")
    assert [(w["period_index"], figures(w)["calls"][0]) for w in month["windows"]] == [(0, 1), (1, 2)]


def test_empty_reversed_and_outside_ranges(gw) -> None:
    assert ranged(gw, "--from", "2026-03-10", "--to", "2026-03-10")["periods"] == []
    quiet = ranged(gw, "--from", "2026-03-10", "--to", "2026-03-12")["periods"][0]
    assert figures(quiet) == {"calls": (0, 0, 0), "tokens": (0, 0, 0), "datasets": (0, 0, 0)}
    bad = gw("report", "-c", "gw", "--from", "2026-03-05", "--to", "2026-03-03", "--format", "json")
    assert bad.exit_code == 2 and bad.json()["error"]["details"]["option"] == "--from"
    for view in ("consolidated", "users", "log"):
        assert gw("report", "-c", "gw", "--view", view, "--from", "2026-03-05",
                  "--to", "2026-03-03").exit_code == 2
    # Before the contract started (e1): no period, no rows; the one-period views refuse.
    assert ranged(gw, "--from", "2026-02-01", "--to", "2026-03-01")["periods"] == []
    assert gw("report", "-c", "gw", "--view", "users", "--from", "2026-02-01").exit_code == 2
    crossing = gw("report", "-c", "gw", "--view", "top", "--from", "2026-03-31", "--to", "2026-04-03")
    assert crossing.exit_code == 2 and "consolidated" in crossing.stderr
    for text in ("2026-03-01T00:00:00", "yesterday"):  # no offset, not a date
        assert gw("report", "-c", "gw", "--from", text).exit_code == 2
    assert gw("report", "-c", "gw", "--window", "year").exit_code == 2
    assert gw("report", "-c", "gw", "--view", "users", "--window", "day").exit_code == 2


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(0, 50), n=st.integers(0, 50), kind=st.sampled_from(["day", "week", "month"]))
def test_windows_add_up_to_the_range(gw, a: int, n: int, kind: str) -> None:
    from datetime import date, timedelta

    lo = date(2026, 2, 25) + timedelta(days=a)
    doc = ranged(gw, "--from", lo.isoformat(), "--to", (lo + timedelta(days=n)).isoformat(),
                 "--window", kind)
    for p in doc["periods"]:
        pieces = [w for w in doc["windows"] if w["period_index"] == p["period"]["index"]]
        whole = figures(p)
        for name in ("calls", "tokens"):  # count and sum: Σ windows = the period ∩ range
            assert sum(figures(w)[name][0] for w in pieces) == whole[name][0]
        for w in pieces:  # distinct: a window sees at most what its period ∩ range sees
            assert figures(w)["datasets"][0] <= whole["datasets"][0]


F1 = shapely.box(-93.60, 42.00, -93.59, 42.01)
F2 = shapely.box(-93.50, 42.00, -93.49, 42.01)
AREA = """
[[contract]]
id = "farm"
owner = "acme"
start = 2026-03-01
cycle = "monthly"

  [[contract.meter]]
  name = "fields"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
"""


def test_area_range_is_the_union_of_the_ranges_geometries_and_keyed_apart(cli, tmp_path: Path,
                                                                          db_path: Path) -> None:
    head = "event_id,ts,owner_id,user_id,product,action,resource_id,geometry\n"
    rows = [("b1", "2026-03-02T12:00:00Z", "u1", F1), ("b2", "2026-03-20T12:00:00Z", "u2", F2),
            ("b3", "2026-03-21T12:00:00Z", "u1", F2), ("b4", "2026-04-02T12:00:00Z", "u1", F2)]
    text = head + "".join(f'{e},{ts},acme,{u},FIELDS_BOUNDARY,process,{e},"{g.wkt}"\n'
                          for e, ts, u, g in rows)
    assert cli("contracts", "load", write(tmp_path / "c.toml", AREA)).exit_code == 0
    assert cli("ingest", write(tmp_path / "e.csv", text)).exit_code == 0
    a1, a2 = geodesic_acres(F1), geodesic_acres(F2)

    def fields(*extra: str) -> list:
        r = cli("report", "-c", "farm", "--as-of", AS_OF, "--format", "json", *extra)
        assert r.exit_code == 0, r.stdout + r.stderr
        return [m for p in r.json().get("periods", [r.json()]) for m in p["meters"]]

    whole = fields("--period", "0")[0]  # stores the period's tiles
    assert whole["owner_total"] == pytest.approx(a1 + a2, rel=1e-4)
    # [03-10, 04-10): March ∩ range has F2 twice (u2, u1) → owner F2, Σ users 2·F2, overlap F2;
    # April ∩ range: F2 again by u1, a first sighting in April.
    march, april = fields("--from", "2026-03-10", "--to", "2026-04-10")
    assert march["owner_total"] == pytest.approx(a2, rel=1e-4)
    assert march["user_total"] == pytest.approx(2 * a2, rel=1e-4)
    assert march["overlap"] == pytest.approx(a2, rel=1e-4)
    assert april["owner_total"] == pytest.approx(a2, rel=1e-4)
    assert fields("--period", "0")[0] == whole  # the period's figures are unchanged
    scopes = {s for (s,) in query(db_path, "SELECT DISTINCT scope FROM area_tiles")}
    assert any("|range=2026-03-10" in s for s in scopes), scopes
    assert any("range=" not in s for s in scopes), scopes


def test_a_bound_outside_the_calendar_is_a_usage_error(gw) -> None:
    # Years 1 and 9999 with an offset, or a period's end past 9999, once ended in an internal
    # error (Python's calendar overflowed); a bound lies between 1900 and 3000 (UTC).
    for view in ("consolidated", "daily", "users", "log", "top", "series"):
        for bound in ("9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00", "9999-12-30",
                      "0001-01-01", "1899-12-31", "3000-05-01"):
            for args in (["--from", bound], ["--from", "2026-03-01", "--to", bound]):
                r = gw("report", "-c", "gw", "--view", view, *args, "--as-of", AS_OF,
                       "--format", "json")
                assert r.exit_code == 2, (view, args, r.stdout)
                err = r.json()["error"]
                assert err["code"] == "validation_error" and "out of range" in err["message"]


def test_a_range_of_more_rows_than_a_report_computes_is_refused_before_computing(gw) -> None:
    # A monthly contract from 2026 to 3000 would be ~11,700 rows, each computed on its own: the
    # report refuses at once and says how to narrow it; ten years of days also passes the cap.
    for extra in (["--from", "1900-01-01", "--to", "2999-12-31"],
                  ["--from", "2026-03-01", "--to", "2036-03-15", "--window", "day"]):
        r = gw("report", "-c", "gw", *extra, "--as-of", AS_OF, "--format", "json")
        assert r.exit_code == 2, r.stdout
        assert "narrow --from/--to" in r.json()["error"]["message"]
        assert r.json()["error"]["details"]["max_rows"] == 3660
    # Twenty years of months (240 rows) is an ordinary request.
    doc = ranged(gw, "--from", "2026-03-01", "--to", "2046-03-01")
    assert len(doc["periods"]) == 240


@pytest.mark.parametrize("spec, exit_code, code", [
    ("abc", 2, "validation_error"),         # not a form --period takes: a usage error
    ("2026-02-30", 2, "validation_error"),  # not a date
    ("9999-12-31", 1, "not_found"),         # its period would end after 9999: was internal
])
def test_period_specs_that_name_no_period(gw, spec: str, exit_code: int, code: str) -> None:
    r = gw("report", "-c", "gw", "--period", spec, "--as-of", AS_OF, "--format", "json")
    assert (r.exit_code, r.json()["error"]["code"]) == (exit_code, code), r.stdout
    if exit_code == 2:
        assert "current" in r.json()["error"]["details"]["accepted"]
