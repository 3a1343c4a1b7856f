"""Issue 13 item 5: ``--view plan`` (the v2 plan endpoint) — billing period, per-meter usage and
projection, and the cheapest plan among ``--alternatives FILE`` — on events whose figures are
computed by hand below."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write

# Owner o, April 2026 (UTC). Day d has n_d events, at 01:00, 02:00, … (one hour apart), each
# with 0.5 credits: days 1-5 two events each (10), days 6-15 five each (50): 60 events,
# 30 credits, all before 2026-04-16.
PER_DAY = {d: 2 if d <= 5 else 5 for d in range(1, 16)}
EVENTS = "event_id,timestamp,user_id,product,credits\n" + "".join(
    f"e{d:02d}{h},2026-04-{d:02d}T{h:02d}:00:00Z,u{h % 2},api,0.5\n"
    for d, n in PER_DAY.items() for h in range(1, n + 1))

# The current plan, "basic": requests (count) limit 100, 50 included, 10 cents per request
# over; credits (sum) limit 100, 100 included, 40 cents per credit over.
CURRENT = """
[[contract]]
id = "basic"
owner = "o"
start = 2026-01-01
cycle = "monthly"
timezone = "UTC"
tier = "basic"

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  limit = 100
  included = 50
  overage_cents_per_unit = 10

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  limit = 100
  included = 100
  overage_cents_per_unit = 40
"""

# Alternatives for the same owner:
# * "pro", monthly: requests priced by a graduated table whose first tier is a 250-cent fee
#   for up to 150 requests, then 5 cents each; credits as in basic.
# * "annual", annual: 1000 requests a year included, 8 cents each over; 1000 credits included.
# * "same": basic's terms under another id (a tie with the current plan).
ALTERNATIVES = """
[[contract]]
id = "pro"
owner = "o"
start = 2026-01-01
cycle = "monthly"
tier = "pro"

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  limit = 500
  pricing = "graduated"

    [[contract.meter.price]]
    up_to = 150
    cents_per_unit = 0
    flat_cents = 250

    [[contract.meter.price]]
    cents_per_unit = 5

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  limit = 100
  included = 100
  overage_cents_per_unit = 40

[[contract]]
id = "annual"
owner = "o"
start = 2026-01-01
cycle = "annual"
tier = "annual"

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  included = 1000
  overage_cents_per_unit = 8

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  included = 1000
  overage_cents_per_unit = 40
"""
SAME = CURRENT.replace('id = "basic"', 'id = "same"')
HALF = "2026-04-16T00:00:00Z"  # 15 of April's 30 days gone


@pytest.fixture
def plan(cli, tmp_path: Path):  # noqa: ANN201
    r = cli("ingest", write(tmp_path / "e.csv", EVENTS), "--owner", "o", "--format", "json")
    assert r.json()["totals"]["accepted"] == 60, r.stdout
    assert cli("contracts", "load", write(tmp_path / "c.toml", CURRENT)).exit_code == 0
    write(tmp_path / "alt.toml", ALTERNATIVES)
    write(tmp_path / "same.toml", SAME)

    def report(*args: str, code: int = 0, as_of: str = HALF):  # noqa: ANN202
        r = cli("report", "-c", "basic", "--as-of", as_of, "--view", "plan", *args)
        assert r.exit_code == code, r.stdout + r.stderr
        return r

    report.dir = tmp_path  # type: ignore[attr-defined]
    return report


def doc(plan, *args: str, **kw) -> dict:  # noqa: ANN001, ANN003
    return plan(*args, "--format", "json", **kw).json()


def test_billing_period_half_gone(plan) -> None:
    d = doc(plan)
    # April: [04-01, 05-01) UTC, 30 days; as of 04-16 00:00, 04-16 to 04-30 remain (15 days).
    assert d["billing_period"] == {
        "start": "2026-04-01T00:00:00+00:00", "end": "2026-05-01T00:00:00+00:00",
        "days_in_period": 30, "days_remaining": 15, "renewal_date": "2026-05-01"}


def test_meters_one_will_exceed_one_will_not(plan) -> None:
    requests, credits = doc(plan)["meters"]
    # requests: 60 used of 100 (60 %); 60 / 15 days × 30 days = 120 projected (120 %) > 100.
    # Last 7 local days up to 04-16 (04-10..16): 6 × 5 = 30; the 7 before (04-03..09):
    # 3 × 2 + 4 × 5 = 26; 30/26 − 1 = +15 % > +10 %: increasing.
    assert requests == {
        "name": "requests", "aggregate": "count", "unit": "requests", "used": 60, "limit": 100,
        "remaining": 40, "usage_percentage": 60.0, "projected": 120,
        "projected_usage_percentage": 120.0, "will_exceed_limit": True,
        # The line 4 a day crosses 100 after 25 days: 04-26.
        "exceeds_on": "2026-04-26", "trending": "increasing", "status": "ok"}
    # credits: 60 × 0.5 = 30 of 100; projected 30 / 15 × 30 = 60 (60 %): will not exceed.
    assert credits["used"] == 30 and credits["remaining"] == 70
    assert credits["usage_percentage"] == 30.0
    assert credits["projected"] == 60 and credits["projected_usage_percentage"] == 60.0
    assert credits["will_exceed_limit"] is False and credits["exceeds_on"] is None


def test_the_projection_is_the_consolidated_one(cli, plan) -> None:  # noqa: ANN001
    consolidated = {m["name"]: m for m in cli("report", "-c", "basic", "--as-of", HALF,
                                               "--format", "json").json()["meters"]}
    for m in doc(plan)["meters"]:
        c = consolidated[m["name"]]
        assert m["projected"] == c["projection"]["projected"]
        assert m["will_exceed_limit"] == c["projection"]["will_exceed_limit"]
        assert m["trending"] == c["projection"]["trending"]
        assert m["used"] == c["billed"] and m["usage_percentage"] == c["percent_used"]


def test_without_alternatives_no_recommendation(plan) -> None:
    d = doc(plan)
    assert d["recommendation"] is None
    # The current plan on the projected usage: requests 120 − 50 included = 70 × 10 = 700
    # cents; credits 60 ≤ 100 included: 0.
    assert d["plans"] == [{
        "contract": "basic", "tier": "basic", "cycle": "monthly", "current": True,
        "period_days": 30,
        "meters": [{"name": "requests", "projected": 120, "cost_cents": 700},
                   {"name": "credits", "projected": 60, "cost_cents": 0}],
        "projected_cost_cents": 700, "cost_for_current_period_cents": 700}]


def test_the_cheaper_alternative_is_recommended(plan) -> None:
    d = doc(plan, "--alternatives", str(plan.dir / "alt.toml"))
    basic, pro, annual = d["plans"]
    assert [p["contract"] for p in d["plans"]] == ["basic", "pro", "annual"]
    # pro: 120 requests in the first tier (up to 150): its flat 250 cents, 0 per request;
    # credits 0. Same period length: 250 cents.
    assert pro["period_days"] == 30 and pro["meters"][0] == {
        "name": "requests", "projected": 120, "cost_cents": 250}
    assert (pro["projected_cost_cents"], pro["cost_for_current_period_cents"]) == (250, 250)
    # annual: its year laid from 04-01 is [2026-04-01, 2027-04-01), 365 days. Same pace,
    # 4 requests a day × 365 = 1460: 460 over the 1000 included × 8 = 3680 cents; credits
    # 2 a day × 365 = 730 ≤ 1000: 0. Over April's 30 days: 3680 × 30 / 365 = 302.47 → 302.
    assert annual["period_days"] == 365
    assert annual["meters"] == [{"name": "requests", "projected": 1460, "cost_cents": 3680},
                                {"name": "credits", "projected": 730, "cost_cents": 0}]
    assert (annual["projected_cost_cents"], annual["cost_for_current_period_cents"]) == (3680, 302)
    assert basic["cost_for_current_period_cents"] == 700
    # Cheapest: pro, 700 − 250 = 450 cents less than basic.
    assert d["recommendation"] == {
        "contract": "pro", "tier": "pro", "change": True, "current_cost_cents": 700,
        "recommended_cost_cents": 250, "cents_saved": 450,
        "reason": "pro would cost $2.50 instead of $7.00 for this period's projected usage: "
                  "450 cents less"}


def test_a_tie_keeps_the_current_plan(plan) -> None:
    d = doc(plan, "--alternatives", str(plan.dir / "same.toml"))
    assert [p["cost_for_current_period_cents"] for p in d["plans"]] == [700, 700]
    rec = d["recommendation"]
    assert (rec["contract"], rec["change"], rec["cents_saved"]) == ("basic", False, 0)


def test_an_entry_with_the_current_id_is_not_listed_twice(plan) -> None:
    both = write(plan.dir / "both.toml", CURRENT + ALTERNATIVES)
    d = doc(plan, "--alternatives", str(both))
    assert [p["contract"] for p in d["plans"]] == ["basic", "pro", "annual"]


def test_alternatives_of_another_owner_are_refused(plan) -> None:
    other = write(plan.dir / "other.toml", ALTERNATIVES.replace('owner = "o"\nstart = 2026-01-01\n'
                                                                'cycle = "annual"',
                                                                'owner = "x"\nstart = 2026-01-01\n'
                                                                'cycle = "annual"'))
    r = plan("--alternatives", str(other), "--format", "json", code=1)
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["details"]["contracts"] == ["annual"]
    assert "not for owner 'o'" in err["message"]


def test_as_of_the_first_day(plan) -> None:
    d = doc(plan, as_of="2026-04-01T12:00:00Z")
    assert d["billing_period"]["days_remaining"] == 30  # 04-01 (today) to 04-30
    requests = d["meters"][0]
    # 2 events by 12:00 (01:00, 02:00) in half a day: 2 / 0.5 × 30 = 120 projected.
    assert (requests["used"], requests["projected"], requests["will_exceed_limit"]) == (2, 120, True)


def test_as_of_the_last_day(plan) -> None:
    d = doc(plan, as_of="2026-04-30T12:00:00Z")
    assert d["billing_period"]["days_remaining"] == 1
    assert d["billing_period"]["renewal_date"] == "2026-05-01"
    requests = d["meters"][0]
    # All 60 events in 29.5 days: 60 / 29.5 × 30 = 61.016949… (6 places in JSON): under 100.
    assert requests["used"] == 60 and requests["projected"] == 61.016949
    assert requests["will_exceed_limit"] is False and requests["projected_usage_percentage"] == 61.016949


def test_the_last_period_of_a_contract_has_no_renewal(plan) -> None:
    ending = write(plan.dir / "ending.toml", CURRENT.replace('cycle = "monthly"',
                                                             'cycle = "monthly"\nend = 2026-05-01'))
    d = doc(plan, "--contracts", str(ending))
    assert d["billing_period"]["renewal_date"] is None
    assert d["billing_period"]["days_in_period"] == 30


def test_a_closed_period_has_no_days_remaining(plan) -> None:
    d = doc(plan, "--period", "3", as_of="2026-05-10T00:00:00Z")  # April, seen from May
    assert d["billing_period"]["days_remaining"] == 0
    # The whole period elapsed: projected = used.
    assert d["meters"][0]["used"] == d["meters"][0]["projected"] == 60


def test_meter_picks_the_meters_listed_not_the_plans_priced(plan) -> None:
    d = doc(plan, "--meter", "credits", "--alternatives", str(plan.dir / "alt.toml"))
    assert [m["name"] for m in d["meters"]] == ["credits"]
    assert d["recommendation"]["cents_saved"] == 450  # every meter of each plan is priced


def test_user_is_that_users_usage_against_the_owners_terms(plan) -> None:
    d = doc(plan, "--user", "u1")
    # u1 has the odd hours: days 1-5 one event each (01:00), days 6-15 three (01, 03, 05):
    # 5 + 30 = 35 requests; projected 35 / 15 × 30 = 70, under the owner's limit of 100.
    assert d["user"] == "u1"
    requests = d["meters"][0]
    assert (requests["used"], requests["projected"], requests["will_exceed_limit"]) == (35, 70, False)
    # 70 − 50 included = 20 × 10 cents.
    assert d["plans"][0]["projected_cost_cents"] == 200


def test_a_missing_alternatives_file_is_an_io_error(plan) -> None:
    r = plan("--alternatives", str(plan.dir / "nope.toml"), "--format", "json", code=1)
    assert r.json()["error"]["code"] == "io_error"


def test_a_dst_month_has_its_calendar_days_and_its_hours(plan) -> None:
    chicago = write(plan.dir / "chicago.toml", CURRENT.replace('timezone = "UTC"',
                                                               'timezone = "America/Chicago"'))
    d = doc(plan, "--contracts", str(chicago), as_of="2026-03-20T12:00:00Z")
    # March 2026 in Chicago: 31 calendar days, but 8 March has 23 hours: 743 / 24 = 30.958333
    # days of elapsed time, which the projection (and so a plan's period) counts.
    assert d["billing_period"]["days_in_period"] == 31
    assert d["billing_period"]["start"] == "2026-03-01T00:00:00-06:00"
    assert d["billing_period"]["end"] == "2026-04-01T00:00:00-05:00"
    # As of 20 March 07:00 local: 20..31 March remain, today included: 12.
    assert d["billing_period"]["days_remaining"] == 12
    assert d["plans"][0]["period_days"] == 30.958333


@pytest.mark.parametrize("option", [("--from", "2026-04-02"), ("--to", "2026-04-03"),
                                    ("--limit", "1"), ("--offset", "1"),
                                    ("--group-by", "endpoint"), ("--window", "day")])
def test_options_that_do_not_apply_are_refused(plan, option) -> None:  # noqa: ANN001
    r = plan(*option, "--format", "json", code=2)
    assert r.json()["error"]["details"]["option"] == option[0]


def test_alternatives_apply_only_to_the_plan_view(cli, plan) -> None:  # noqa: ANN001
    r = cli("report", "-c", "basic", "--as-of", HALF, "--alternatives",
            str(plan.dir / "alt.toml"), "--format", "json")
    assert r.exit_code == 2
    assert r.json()["error"]["details"] == {"option": "--alternatives", "views": ["plan"]}


def test_csv_has_a_row_per_meter_and_per_plan(plan) -> None:
    text = plan("--alternatives", str(plan.dir / "alt.toml"), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["row"], r["name"]) for r in rows] == [
        ("meter", "requests"), ("meter", "credits"),
        ("plan", "basic"), ("plan", "pro"), ("plan", "annual")]
    assert {r["days_remaining"] for r in rows} == {"15"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["requests"]["will_exceed_limit"] == "true"
    assert by_name["annual"]["cost_for_current_period_cents"] == "302"
    assert [r["recommended"] for r in rows[2:]] == ["false", "true", "false"]
    assert by_name["pro"]["cents_saved"] == "450"


def test_table_shows_the_period_meters_and_recommendation(plan) -> None:
    out = plan("--alternatives", str(plan.dir / "alt.toml")).stdout
    assert "30 days, 15 remaining, renews 2026-05-01" in out
    assert "requests" in out and "120" in out
    assert "recommendation: pro would cost $2.50 instead of $7.00" in out


# -------------------------------------------------------------------- the recommendation's rule

TIER = st.builds(lambda up, cents, flat: (up, cents, flat), st.integers(1, 200),
                 st.integers(0, 20), st.integers(0, 1000))
ALT = st.fixed_dictionaries({
    "cycle": st.sampled_from(["monthly", "quarterly", "annual"]),
    "included": st.integers(0, 300), "cents": st.integers(0, 30),
    "tiers": st.one_of(st.none(), st.lists(TIER, min_size=1, max_size=3)),
    "volume": st.booleans()})


def _alt(k: int, a: dict) -> str:
    meter = (f'  [[contract.meter]]\n  name = "requests"\n  aggregate = "count"\n'
             f'  included = {a["included"]}\n')
    if a["tiers"]:
        meter += f'  pricing = "{"volume" if a["volume"] else "graduated"}"\n'
        ups = sorted({t[0] for t in a["tiers"]})
        for up, (_, cents, flat) in zip(ups, a["tiers"], strict=False):
            meter += (f"    [[contract.meter.price]]\n    up_to = {up}\n"
                      f"    cents_per_unit = {cents}\n    flat_cents = {flat}\n")
        meter += "    [[contract.meter.price]]\n    cents_per_unit = 1\n"
    else:
        meter += f'  overage_cents_per_unit = {a["cents"]}\n'
    return (f'[[contract]]\nid = "alt{k}"\nowner = "o"\nstart = 2026-01-01\n'
            f'cycle = "{a["cycle"]}"\n{meter}')


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(alts=st.lists(ALT, min_size=1, max_size=4))
def test_the_recommended_plan_is_never_dearer_than_another(plan, alts) -> None:  # noqa: ANN001
    from usagectl.contracts import parse_contracts
    from usagectl.reports.plan import plan_view
    from usagectl.reports.window import open_window
    from usagectl.store.db import session

    contracts = parse_contracts("\n".join(_alt(k, a) for k, a in enumerate(alts)))
    with session(plan.dir / "usage.duckdb", read_only=True) as con:
        d = plan_view(con, open_window(con, "basic", None, HALF), None, contracts)
    costs = {p["contract"]: p["cost_for_current_period_cents"] for p in d["plans"]}
    for k, a in enumerate(alts):  # a per-unit price, by hand: 4 requests a day over its days
        if not a["tiers"]:
            days = {"monthly": 30, "quarterly": 91, "annual": 365}[a["cycle"]]  # from 04-01
            cost = max(0, 4 * days - a["included"]) * a["cents"]
            assert costs[f"alt{k}"] == (cost * 30 * 2 + days) // (2 * days)  # × 30/days, half-up
    rec = d["recommendation"]
    assert all(costs[rec["contract"]] <= c for c in costs.values())
    assert rec["cents_saved"] == costs["basic"] - costs[rec["contract"]] >= 0
    assert rec["change"] == (rec["contract"] != "basic")
    if not rec["change"]:  # ties keep the current plan
        assert all(c >= costs["basic"] for c in costs.values())
