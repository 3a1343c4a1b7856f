"""Money rules (SPEC §5.4): a missing `included` is 0, the first tier's flat fee on an idle period,
the priced quantities shown in every output, and `check` telling one truth.

Every expected figure is worked out by hand in the comment beside it, in exact decimals.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import write
from usagectl.contracts import parse_contracts
from usagectl.meters.pricing import price, tiered_cents


def meter(body: str):  # noqa: ANN201
    """The one meter of a contract whose meter table is ``body``."""
    c = parse_contracts('[[contract]]\nid = "x"\nowner = "o"\nstart = 2026-01-01\ncycle = "monthly"\n'
                        '  [[contract.meter]]\n  name = "m"\n  aggregate = "count"\n' + body)[0]
    return c.meters[0]


def tiers(model: str, first_flat: int = 300, extra: str = "") -> str:
    # Tier 1: units 0–100 at 1 ¢ + a 300 ¢ flat fee; tier 2: above 100 at 0.5 ¢ + 200 ¢ flat.
    return (f'  pricing = "{model}"\n{extra}'
            f"    [[contract.meter.price]]\n    up_to = 100\n    cents_per_unit = 1\n"
            f"    flat_cents = {first_flat}\n"
            "    [[contract.meter.price]]\n    cents_per_unit = 0.5\n    flat_cents = 200\n")


def quantities(p) -> tuple:  # noqa: ANN001
    return p.included, p.overage, p.overage_units, p.overage_amount_cents


# --- 7. a per-unit price without `included` charges every unit ----------------------------------

def test_per_unit_price_without_included_charges_every_unit() -> None:
    m = meter("  overage_cents_per_unit = 25\n")
    # included 0 → overage = 7 → 7 units × 25 ¢ = 175 ¢
    assert quantities(price(m, Decimal(7))) == (0, 7, 7, 175)


def test_per_unit_price_and_a_one_tier_table_at_the_same_rate_bill_the_same() -> None:
    unit = meter("  overage_cents_per_unit = 25\n")
    table = meter('  pricing = "graduated"\n    [[contract.meter.price]]\n    cents_per_unit = 25\n')
    for billed in (Decimal(0), Decimal(1), Decimal(7), Decimal("7.5")):
        assert quantities(price(unit, billed)) == quantities(price(table, billed))
    # 7.5 started units → 8 × 25 ¢ = 200 ¢
    assert quantities(price(table, Decimal("7.5"))) == (0, Decimal("7.5"), 8, 200)


@pytest.mark.parametrize(("billed", "expected"), [
    (Decimal(0), (100, 0, 0, 0)),          # idle
    (Decimal(100), (100, 0, 0, 0)),        # exactly at included
    (Decimal(101), (100, 1, 1, 25)),       # one unit over: 1 × 25 ¢
    (Decimal("100.01"), (100, Decimal("0.01"), 1, 25)),  # a started unit counts whole
])
def test_included_edges_with_a_per_unit_price(billed: Decimal, expected: tuple) -> None:
    m = meter("  included = 100\n  overage_cents_per_unit = 25\n")
    assert quantities(price(m, billed)) == expected


def test_overage_unit_above_one() -> None:
    m = meter("  included = 1000\n  overage_unit = 1000\n  overage_cents_per_unit = 4\n")
    # 2001 − 1000 = 1001 over → ceil(1001 / 1000) = 2 units × 4 ¢ = 8 ¢
    assert quantities(price(m, Decimal(2001))) == (1000, 1001, 2, 8)
    # exactly 1000 over → 1 unit
    assert quantities(price(m, Decimal(2000))) == (1000, 1000, 1, 4)
    table = meter(tiers("graduated", extra="  overage_unit = 1000\n"))
    # no included: 150,001 tokens → ceil(150.001) = 151 units of 1000
    # graduated: 300 + 100 × 1 + 200 + 51 × 0.5 = 625.5 → 626 ¢ (half-up)
    assert quantities(price(table, Decimal(150001))) == (0, 150001, 151, 626)


# --- 8. the first tier's flat fee on an idle period ---------------------------------------------

@pytest.mark.parametrize(("model", "units", "cents"), [
    # graduated: each tier reached adds its flat fee; units priced in their tier
    ("graduated", 0, Decimal(300)),                 # idle: tier 1's flat fee only
    ("graduated", 1, Decimal(301)),                 # 300 + 1 × 1
    ("graduated", 100, Decimal(400)),               # 300 + 100 × 1 (tier 2 not reached)
    ("graduated", 101, Decimal("600.5")),           # 400 + 200 + 1 × 0.5
    ("graduated", 150, Decimal(625)),               # 400 + 200 + 50 × 0.5
    # volume: every unit at the tier the total reaches, plus that tier's flat fee
    ("volume", 0, Decimal(300)),                    # idle: the total (0) is in tier 1
    ("volume", 100, Decimal(400)),                  # 300 + 100 × 1
    ("volume", 101, Decimal("250.5")),              # 200 + 101 × 0.5
    ("volume", 150, Decimal(275)),                  # 200 + 150 × 0.5
])
def test_tier_flat_fees_graduated_and_volume(model: str, units: int, cents: Decimal) -> None:
    assert tiered_cents(Decimal(units), meter(tiers(model))) == cents


@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_idle_period_and_usage_within_included_still_pay_the_first_flat_fee(model: str) -> None:
    no_included = meter(tiers(model))
    assert quantities(price(no_included, Decimal(0))) == (0, 0, 0, 300)
    with_included = meter(tiers(model, extra="  included = 50\n"))
    # within the allotment: nothing over, the tier table prices 0 units → tier 1's flat fee
    assert quantities(price(with_included, Decimal(50))) == (50, 0, 0, 300)
    # 60 − 50 = 10 over → tier 1: 300 + 10 × 1 = 310 ¢ (graduated and volume agree inside tier 1)
    assert quantities(price(with_included, Decimal(60))) == (50, 10, 10, 310)


def test_a_table_without_included_reports_every_unit_as_priced() -> None:
    # The sample's tokens_graduated: 0 ¢ to 100,000; 0.003 ¢ to 300,000; then 0.002 ¢ + 500 ¢.
    m = meter('  pricing = "graduated"\n'
              "    [[contract.meter.price]]\n    up_to = 100000\n    cents_per_unit = 0\n"
              "    [[contract.meter.price]]\n    up_to = 300000\n    cents_per_unit = 0.003\n"
              "    [[contract.meter.price]]\n    cents_per_unit = 0.002\n    flat_cents = 500\n")
    # 200,000 × 0.003 + 135,339 × 0.002 + 500 = 600 + 270.678 + 500 = 1,370.678 → 1,371 ¢
    assert quantities(price(m, Decimal(435339))) == (0, 435339, 435339, 1371)


def test_unpriced_meter_reports_its_overage_at_zero_cents() -> None:
    m = meter("  limit = 100\n")
    assert quantities(price(m, Decimal(38))) == (0, 38, 38, 0)


# --- 9. the same quantities in every output ---------------------------------------------------

CONTRACTS = """
[[contract]]
id = "tok"
owner = "land"
start = 2026-03-01
cycle = "monthly"
tier = "pro"

  [[contract.meter]]
  name = "graduated"
  aggregate = "sum"
  fields = ["input_tokens"]
  limit = 1000
  pricing = "graduated"
    [[contract.meter.price]]
    up_to = 100
    cents_per_unit = 0
    flat_cents = 50
    [[contract.meter.price]]
    cents_per_unit = 2

  [[contract.meter]]
  name = "per_unit"
  aggregate = "sum"
  fields = ["input_tokens"]
  overage_cents_per_unit = 3

  [[contract.meter]]
  name = "idle"
  aggregate = "sum"
  fields = ["input_tokens"]
  products = ["NOTHING"]
  pricing = "volume"
    [[contract.meter.price]]
    cents_per_unit = 1
    flat_cents = 700
"""
EVENTS = ("event_id,ts,owner_id,user_id,product,input_tokens\n"
          "t1,2026-03-02T10:00:00Z,land,u1,API_TOKENS,600\n"
          "t2,2026-03-03T10:00:00Z,land,u2,API_TOKENS,300\n")
# 900 tokens. graduated: 50 (tier 1 flat) + 800 × 2 = 1,650 ¢; per_unit: 900 × 3 = 2,700 ¢;
# idle: nothing counted, the volume table's only tier charges its 700 ¢ flat fee.
EXPECTED = {"graduated": (0, 900, 900, 1650), "per_unit": (0, 900, 900, 2700),
            "idle": (0, 0, 0, 700)}


@pytest.fixture
def tok(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    assert cli("ingest", write(tmp_path / "t.csv", EVENTS), "--format", "json").json()[
        "totals"]["accepted"] == 2
    return cli


AS_OF = "2026-03-10T00:00:00Z"


def test_consolidated_json_and_csv_show_the_priced_quantities(tok) -> None:
    doc = tok("report", "-c", "tok", "--as-of", AS_OF, "--format", "json").json()
    got = {m["name"]: (m["included"], m["overage"], m["overage_units"], m["overage_amount_cents"])
           for m in doc["meters"]}
    assert got == EXPECTED
    rows = list(csv.DictReader(io.StringIO(tok("report", "-c", "tok", "--as-of", AS_OF,
                                               "--format", "csv").stdout)))
    got = {r["name"]: tuple(int(r[k]) for k in ("included", "overage", "overage_units",
                                                 "overage_amount_cents")) for r in rows}
    assert got == EXPECTED


def test_consolidated_table_shows_the_priced_quantities(tok) -> None:
    out = tok("report", "-c", "tok", "--as-of", AS_OF, env={"COLUMNS": "220"}).stdout
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "$16.50" in lines["graduated"] and "900" in lines["graduated"].split("│")[7]
    assert "$27.00" in lines["per_unit"] and "$7.00" in lines["idle"]
    assert "$50.50" in out  # 1,650 + 2,700 + 700 ¢


def test_usage_shows_the_priced_quantities(tok) -> None:
    rows = tok("usage", "--owner", "land", "--as-of", AS_OF, "--format", "json").json()
    got = {r["meter"]: (r["included"], r["overage"], r["overage_amount_cents"]) for r in rows}
    assert got == {k: (v[0], v[1], v[3]) for k, v in EXPECTED.items()}
    for r in rows:  # token meters repeat them under token names
        assert (r["tokens_used"], r["tokens_included"], r["tokens_overage"]) == (
            r["used"], r["included"], r["overage"])
    table = tok("usage", "--owner", "land", "--as-of", AS_OF, env={"COLUMNS": "200"}).stdout
    assert "$16.50" in table and "$27.00" in table and "$7.00" in table


def test_alerts_agree_with_the_consolidated_view(tok) -> None:
    # 900 of 1,000 = 90 % ≥ the 80 % warning line
    (alert,) = tok("alerts", "--as-of", AS_OF, "--format", "json").json()
    doc = tok("report", "-c", "tok", "--as-of", AS_OF, "--format", "json").json()
    m = {x["name"]: x for x in doc["meters"]}["graduated"]
    assert (alert["meter"], alert["status"], alert["billed"], alert["percent_used"]) == (
        "graduated", "warning", m["billed"], m["percent_used"])
    assert alert["projected"] == m["projection"]["projected"]


# --- 10. `check` over the limit: the message states the number the JSON holds -----------------

def test_check_within_the_limit(tok) -> None:
    r = tok("check", "-c", "tok", "--meter", "graduated", "--amount", "2", "--as-of", AS_OF,
            "--format", "json")
    assert r.exit_code == 0 and r.json()["available"] == 100  # 1,000 − 900
    assert r.json()["message"] == "Operation requires 2 tokens, and 100 are available"


def test_check_message_and_available_agree_when_usage_is_over(cli, tmp_path: Path) -> None:
    cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS.replace(
        "  limit = 1000\n", "  limit = 1000\n  prepaid = 100\n")))
    cli("ingest", write(tmp_path / "t.csv", EVENTS + "t3,2026-03-04T10:00:00Z,land,u1,API_TOKENS,1200\n"))
    r = cli("check", "-c", "tok", "--meter", "graduated", "--amount", "2", "--as-of", AS_OF,
            "--format", "json")
    doc = r.json()
    # available = limit + prepaid − billed = 1,000 + 100 − 2,100 = −1,000
    assert r.exit_code == 3 and doc["available"] == -1000 and doc["can_proceed"] is False
    assert doc["message"] == ("Operation requires 2 tokens, but only -1000 available "
                              "(usage is 1000 over the limit plus prepaid)")
    table = cli("check", "-c", "tok", "--meter", "graduated", "--amount", "2", "--as-of", AS_OF)
    assert "-1000 available" in table.stdout and "only 0" not in table.stdout


# --- docs/meters.md: the worked examples on the bundled sample --------------------------------

def test_the_worked_examples_of_docs_meters_md(cli) -> None:
    from tests.conftest import SAMPLE_DATA

    for name in ("fields_boundaries.geojson", "machine_files.csv", "satellite_images.csv",
                 "requests.jsonl", "token_usage.parquet"):
        assert cli("ingest", SAMPLE_DATA / name, "-q").exit_code == 0
    assert cli("ingest", SAMPLE_DATA / "licence_calls.csv", "--owner", "lca-institute", "-q").exit_code == 0
    assert cli("contracts", "load", SAMPLE_DATA / "contracts.toml", "-q").exit_code == 0
    as_of = "2026-11-20T12:00:00Z"

    def report(contract: str, *extra: str) -> dict:
        return cli("report", "-c", contract, "--as-of", as_of, "--format", "json", *extra).json()

    acme = report("acme-farms-2026")
    m = {x["name"]: x for x in acme["meters"]}
    b = m["boundaries"]
    assert (b["user_total"], b["owner_total"], b["overlap"]) == (7295.231827, 5497.197778, 1798.034049)
    assert quantities_of(b) == (6000, 1295.231827, 1296, 32400) and b["status"] == "ok"
    assert quantities_of(m["unified"]) == (0, 7354.758771, 7355, 0)
    # The operations meter derives its area from machine files (74.590874 acres, recomputed
    # with shapely + pyproj in test_sample_data.py); no allotment and no price, as unified.
    assert quantities_of(m["operations"]) == (0, 74.590874, 75, 0)
    # 258 events with a geometry of their own + the 2 operations of the quarter that derive one.
    assert (acme["users"], acme["events_counted"]) == (6, 260)

    lca = {x["name"]: x for x in report("lca-licence-2026")["meters"]}
    assert [lca[n]["owner_total"] for n in ("users", "datasets", "indicators")] == [12, 40, 60]
    assert lca["datasets"]["status"] == "warning"
    assert report("lca-licence-2026", "--view", "log")["total_count"] == 265

    terra = {x["name"]: x for x in report("terra-pro-monthly")["meters"]}
    assert quantities_of(terra["tokens"]) == (300000, 135339, 136, 544)
    assert (terra["tokens"]["status"], terra["tokens"]["remaining"]) == ("exceeded", -35339)
    assert quantities_of(terra["tokens_graduated"]) == (0, 435339, 435339, 1371)
    usage = {r["meter"]: r for r in cli("usage", "--owner", "terra-tokens", "--as-of", as_of,
                                         "--format", "json").json()}
    assert (usage["tokens_graduated"]["tokens_included"],
            usage["tokens_graduated"]["tokens_overage"]) == (0, 435339)
    check = cli("check", "-c", "terra-pro-monthly", "--meter", "tokens", "--amount", "2",
                "--as-of", as_of, "--format", "json")
    assert check.exit_code == 3 and check.json()["available"] == -35339
    assert check.json()["message"] == ("Operation requires 2 tokens, but only -35339 available "
                                       "(usage is 35339 over the limit)")

    docu = {x["name"]: x for x in report("docuscan-team-monthly")["meters"]}
    assert docu["credits"]["billed"] == 27.31 and quantities_of(docu["credits"]) == (50, 0, 0, 0)
    assert docu["requests"]["billed"] == 38 and quantities_of(docu["requests"]) == (0, 38, 38, 0)
    check = cli("check", "-c", "docuscan-team-monthly", "--meter", "credits", "--amount", "2",
                "--as-of", as_of, "--format", "json").json()
    assert check["message"] == "Operation requires 2 credits, and 47.69 are available"

    # The page shows exactly these figures (formatted as it writes them).
    from tests.conftest import REPO

    page = (REPO / "docs" / "meters.md").read_text(encoding="utf-8")
    shown = [f"{b['user_total']:,.6f}", f"{b['owner_total']:,.6f}", f"{b['overlap']:,.6f}",
             f"{b['overage_units']:,} units", f"{b['overage_amount_cents']:,} ¢",
             f"{m['unified']['overage']:,.6f}", f"{acme['events_counted']} events",
             f"{terra['tokens']['billed']:,}", f"{terra['tokens']['overage_amount_cents']} ¢",
             f"{terra['tokens_graduated']['overage_amount_cents']:,} ¢",
             str(terra["tokens"]["remaining"]).replace("-", "−").replace("35339", "35,339"),
             f"{docu['credits']['billed']}", f"{check['available']}"]
    missing = [x for x in shown if x not in page]
    assert missing == [], missing


def quantities_of(m: dict) -> tuple:
    return m["included"], m["overage"], m["overage_units"], m["overage_amount_cents"]
