"""Token, credit and request meters: period edges, pricing tables, series, top, what-if."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write
from usagectl.contracts import parse_contracts
from usagectl.meters.pricing import price, tiered_cents

TOKENS = """
[[contract]]
id = "tok"
owner = "land"
start = 2026-01-31
cycle = "monthly"
timezone = "America/New_York"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  limit = 1000
  included = 100
  overage_unit = 10
  overage_cents_per_unit = 7
"""
HEADER = "event_id,ts,owner_id,user_id,product,input_tokens,output_tokens,thinking_tokens,endpoint,session_id\n"


def edge_events() -> str:
    # Period edges: local midnight New York of Feb 28, Mar 31 (after the DST change on Mar 8), Apr 30.
    edges = ["2026-02-28T05:00:00Z", "2026-03-31T04:00:00Z", "2026-04-30T04:00:00Z"]
    rows = []
    for i, edge in enumerate(edges):
        from datetime import datetime, timedelta

        t = datetime.fromisoformat(edge.replace("Z", "+00:00"))
        for tag, ts in (("before", t - timedelta(seconds=1)), ("after", t)):
            rows.append(f"{tag}{i},{ts.isoformat()},land,k{i % 2},API_TOKENS,{10 ** i},1,0,/v1/chat,s{i}\n")
    return HEADER + "".join(rows)


@pytest.fixture
def tok(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", TOKENS)).exit_code == 0
    assert cli("ingest", write(tmp_path / "t.csv", edge_events()), "--format", "json").json()[
        "totals"]["accepted"] == 6
    return cli


@pytest.mark.parametrize(("period", "start", "expected"), [
    # Period 1 = [Feb 28, Mar 31): "after0" (10^0 + 1) and "before1" (10^1 + 1) are inside.
    ("1", "2026-02-28T00:00:00-05:00", 2 + 11),
    # Period 2 = [Mar 31, Apr 30): after1 (11) + before2 (101); the DST change is inside period 1.
    ("2", "2026-03-31T00:00:00-04:00", 11 + 101),
    ("0", "2026-01-31T00:00:00-05:00", 2),
])
def test_events_one_second_either_side_of_period_edges(tok, period: str, start: str, expected: int) -> None:
    doc = tok("report", "-c", "tok", "--period", period, "--as-of", "2026-06-01", "--format", "json").json()
    assert doc["period"]["start"] == start
    (m,) = doc["meters"]
    assert m["owner_total"] == expected


def test_token_split_series_top_and_what_if(tok, tmp_path: Path) -> None:
    doc = tok("report", "-c", "tok", "--period", "2", "--as-of", "2026-06-01", "--format", "json").json()
    (m,) = doc["meters"]
    assert m["fields"] == {"input_tokens": 110, "output_tokens": 2, "thinking_tokens": 0}
    # 112 billed, 100 included: 12 over, 2 started units of 10 at 7 cents.
    assert (m["overage"], m["overage_units"], m["overage_amount_cents"]) == (12, 2, 14)
    series = tok("report", "-c", "tok", "--period", "2", "--as-of", "2026-06-01", "--view", "series",
                 "--bucket", "day", "--format", "json").json()
    assert sum(r["meters"]["tokens"] for r in series["series"]) == 112
    assert [r["start"][:10] for r in series["series"]] == ["2026-03-31", "2026-04-29"]
    top = tok("report", "-c", "tok", "--period", "2", "--as-of", "2026-06-01", "--view", "top",
              "--group-by", "session_id", "--format", "json").json()
    assert [(r["key"], r["value"]) for r in top["rows"]] == [("s2", 101), ("s1", 11)]
    what_if = write(tmp_path / "what.toml", TOKENS.replace("overage_cents_per_unit = 7",
                                                           "overage_cents_per_unit = 9"))
    other = tok("report", "-c", "tok", "--period", "2", "--as-of", "2026-06-01", "--contracts",
                what_if, "--format", "json").json()
    assert other["meters"][0]["overage_amount_cents"] == 18
    assert tok("contracts", "show", "tok", "--format", "json").json()["meters"][0][
        "overage_cents_per_unit"] == 7  # the stored terms are unchanged


def _meter(toml_meter: str):  # noqa: ANN202
    c = parse_contracts('[[contract]]\nid = "x"\nowner = "o"\nstart = 2026-01-01\ncycle = "monthly"\n'
                        + toml_meter)[0]
    return c.meters[0]


TIERS = """
  [[contract.meter]]
  name = "m"
  aggregate = "count"
  pricing = "{model}"
    [[contract.meter.price]]
    up_to = 100
    cents_per_unit = 0
    [[contract.meter.price]]
    up_to = 1000
    cents_per_unit = 0.5
    flat_cents = 100
    [[contract.meter.price]]
    cents_per_unit = 0.25
"""


@pytest.mark.parametrize(("model", "units", "cents"), [
    ("graduated", 100, 0), ("graduated", 101, Decimal("100.5")),
    ("graduated", 1000, Decimal("550")), ("graduated", 1001, Decimal("550.25")),
    ("volume", 100, 0), ("volume", 101, Decimal("150.5")),
    ("volume", 1000, Decimal("600")), ("volume", 1001, Decimal("250.25")),
])
def test_tier_edges(model: str, units: int, cents: Decimal) -> None:
    meter = _meter(TIERS.format(model=model))
    assert tiered_cents(Decimal(units), meter) == cents


def test_half_up_rounding_of_fractional_cents() -> None:
    meter = _meter('  [[contract.meter]]\n  name = "m"\n  aggregate = "count"\n  included = 0\n'
                   '  overage_cents_per_unit = 0.5\n  limit = 10\n')
    assert price(meter, Decimal(1)).overage_amount_cents == 1   # 0.5 → 1
    assert price(meter, Decimal(3)).overage_amount_cents == 2   # 1.5 → 2
    assert price(meter, Decimal(5)).overage_amount_cents == 3   # 2.5 → 3 (not banker's 2)
    p = price(meter, Decimal(11))
    assert (p.status, p.remaining, p.percent_used) == ("exceeded", Decimal(-1), Decimal(110))
    assert price(meter, Decimal(8)).status == "warning" and price(meter, Decimal(7)).status == "ok"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 50), st.sampled_from("abc")),
                       min_size=1, max_size=30))
def test_series_buckets_add_up_and_owner_le_users(cli, tmp_path_factory, counts) -> None:  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("s")
    db = tmp / "u.duckdb"
    cli("contracts", "load", write(tmp / "c.toml", TOKENS + """
  [[contract.meter]]
  name = "sessions"
  aggregate = "distinct"
  field = "session_id"
"""), db=db)
    rows = [f"e{i},2026-04-{1 + d:02d}T12:00:00Z,land,{u},API_TOKENS,{n},0,0,/x,s{n % 7}\n"
            for i, (d, n, u) in enumerate(counts)]
    cli("ingest", write(tmp / "t.csv", HEADER + "".join(rows)), db=db)
    doc = cli("report", "-c", "tok", "--period", "2", "--as-of", "2026-06-01", "--format", "json", db=db).json()
    m = {x["name"]: x for x in doc["meters"]}
    series = cli("report", "-c", "tok", "--period", "2", "--as-of", "2026-06-01", "--view", "series",
                 "--format", "json", db=db).json()
    for name in ("tokens", "sessions"):
        assert sum(r["meters"][name] for r in series["series"]) == m[name]["owner_total"]
        assert m[name]["owner_total"] <= m[name]["user_total"]


def test_trend_on_hand_made_series() -> None:
    from datetime import UTC, date, datetime

    from usagectl.meters.pricing import trend, week_sums

    as_of = datetime(2026, 3, 15, 12, tzinfo=UTC)
    daily = {date(2026, 3, d): Decimal(v) for d, v in
             [(1, 100), (2, 50), (8, 10), (9, 10), (14, 5), (15, 7)]}
    # last 7 days = Mar 9..15 → 10 + 5 + 7 = 22; the 7 before = Mar 2..8 → 50 + 10 = 60
    assert week_sums(daily, as_of, UTC) == (Decimal(22), Decimal(60))
    assert trend(Decimal(22), Decimal(60)) == "decreasing"
    assert trend(Decimal(66), Decimal(60)) == "stable"      # +10 % exactly is stable
    assert trend(Decimal("66.01"), Decimal(60)) == "increasing"
    assert trend(Decimal(54), Decimal(60)) == "stable"      # −10 % exactly is stable
    assert trend(Decimal(1), Decimal(0)) == "increasing" and trend(Decimal(0), Decimal(0)) == "stable"


def test_projection_and_exceeds_on() -> None:
    from datetime import UTC, date, datetime

    from usagectl.contracts import period_at
    from usagectl.meters.pricing import project

    c = parse_contracts('[[contract]]\nid = "x"\nowner = "o"\nstart = 2026-04-01\ncycle = "monthly"\n'
                        '  [[contract.meter]]\n  name = "m"\n  aggregate = "count"\n  limit = 300\n')[0]
    period = period_at(c, 0)  # April: 30 days
    p = project(c.meters[0], Decimal(100), period, datetime(2026, 4, 11, tzinfo=UTC), (Decimal(0), Decimal(0)))
    assert p.daily_average == 10 and p.projected == 300
    assert p.will_exceed_limit is False and p.exceeds_on is None  # lands exactly on the limit
    p = project(c.meters[0], Decimal(150), period, datetime(2026, 4, 11, tzinfo=UTC), (Decimal(0), Decimal(0)))
    assert p.projected == 450 and p.will_exceed_limit is True and p.exceeds_on == date(2026, 4, 21)
