"""Sums are exact decimals whatever the field, and never overflow into an internal error
(SPEC §5.4; docs/meters.md "Sums are exact")."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write

CONTRACTS = """
[[contract]]
id = "fx"
owner = "fx"
start = 2026-11-01
cycle = "monthly"
  [[contract.meter]]
  name = "rt"
  aggregate = "sum"
  fields = ["response_time_ms"]
  overage_unit = 0.1
  overage_cents_per_unit = 100
  limit = 0.3
  [[contract.meter]]
  name = "rt2"
  aggregate = "sum"
  fields = ["response_time_ms"]
  included = 0.3
  overage_cents_per_unit = 100
  [[contract.meter]]
  name = "cr"
  aggregate = "sum"
  fields = ["credits"]
  billed_on = "user"
  [[contract.meter]]
  name = "tok"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens"]
"""
AS_OF = "2026-11-20T12:00:00Z"


def event(i: int, ts: str, user: str, **values: str) -> str:
    fields = "".join(f',"{k}":{v}' for k, v in values.items())
    return f'{{"event_id":"f{i}","ts":"{ts}","user_id":"{user}","owner_id":"fx"{fields}}}\n'


@pytest.fixture
def fx(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    events = (event(1, "2026-11-16T10:00:00Z", "a", response_time_ms="0.1")
              + event(2, "2026-11-17T11:00:00Z", "b", response_time_ms="0.2"))
    r = cli("ingest", write(tmp_path / "f.jsonl", events), "--format", "json")
    assert r.json()["totals"]["accepted"] == 2
    return cli


def meters(cli) -> dict:  # noqa: ANN001
    doc = cli("report", "-c", "fx", "--as-of", AS_OF, "--format", "json").json()
    return {m["name"]: m for m in doc["meters"]}


def test_a_sum_of_response_times_is_exact(fx) -> None:
    m = meters(fx)
    rt, rt2 = m["rt"], m["rt2"]
    # 0.1 + 0.2 is 0.3 exactly (binary floats give 0.30000000000000004).
    assert (rt["billed"], rt["remaining"], rt["overage"]) == (0.3, 0, 0.3)
    assert (rt["overage_units"], rt["overage_amount_cents"], rt["status"]) == (3, 300, "warning")
    assert rt["fields"] == {"response_time_ms": 0.3}
    assert (rt2["overage"], rt2["overage_units"], rt2["overage_amount_cents"]) == (0, 0, 0)
    assert rt2["status"] == "ok"


def test_check_with_nothing_left_says_zero_available(fx) -> None:
    r = fx("check", "-c", "fx", "--meter", "rt", "--amount", "0", "--as-of", AS_OF,
           "--format", "json")
    assert r.json()["available"] == 0, r.stdout
    text = fx("check", "-c", "fx", "--meter", "rt", "--amount", "0", "--as-of", AS_OF).stdout
    assert "e-" not in text.lower() and "0000000" not in text


def test_breakdowns_of_a_response_time_sum_are_exact(fx) -> None:
    base = ("report", "-c", "fx", "--as-of", AS_OF, "--meter", "rt", "--format", "json")
    daily = fx(*base, "--view", "daily").json()
    values = [d["meters"]["rt"]["owner"] for d in daily["days"] if d["meters"]["rt"]["owner"]]
    assert values == [0.1, 0.2]
    series = fx(*base, "--view", "series", "--bucket", "month").json()
    assert [s["meters"]["rt"] for s in series["series"]] == [0.3]
    top = fx(*base, "--view", "top", "--group-by", "user_id").json()
    assert [(r["key"], r["value"]) for r in top["rows"]] == [("b", 0.2), ("a", 0.1)]


def test_python_sees_exact_decimals_from_every_sum_query(fx, db_path: Path) -> None:
    """No binary float reaches Decimal(): the library values are Decimals of exactly 0.3."""
    from usagectl.contracts.periods import parse_as_of, resolve_period
    from usagectl.reports import breakdown
    from usagectl.reports.views import compute_meter, make_window
    from usagectl.store.contracts_repo import get_contract
    from usagectl.store.db import session

    with session(str(db_path), read_only=True) as con:
        contract = get_contract(con, "fx")
        as_of = parse_as_of(AS_OF)
        period = resolve_period(contract, None, as_of)
        window = make_window(contract, period, as_of)
        rt = contract.meter("rt")
        value = compute_meter(con, rt, window, daily=True)
        assert value.owner == Decimal("0.3") and isinstance(value.owner, Decimal)
        assert sum(value.daily_owner.values()) == Decimal("0.3")
        assert breakdown.sum_fields(con, rt, window) == {"response_time_ms": Decimal("0.3")}
        (_, month), = breakdown.series(con, rt, window, "month")
        assert month == Decimal("0.3")


# ----------------------------------------------------------------------- no overflow (REDTEAM 4)

def test_two_int64_token_counts_sum_exactly(cli, tmp_path: Path) -> None:
    big = 2**63 - 1
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    events = (event(1, "2026-11-16T10:00:00Z", "a", input_tokens=str(big))
              + event(2, "2026-11-16T11:00:00Z", "a", output_tokens=str(big)))
    assert cli("ingest", write(tmp_path / "t.jsonl", events), "--format", "json").json()[
        "totals"]["accepted"] == 2
    tok = meters(cli)["tok"]
    assert tok["billed"] == 2 * big and tok["fields"] == {"input_tokens": big, "output_tokens": big}


CREDITS_MAX = "999999999999999999.999999999"  # 18 integer digits: the most one event may carry


def test_credits_sums_beyond_28_digits_stay_exact(cli, tmp_path: Path) -> None:
    """Eleven of the largest credits add up to 29 significant digits; Python's default decimal
    context (28 digits) would round the Σ of users."""
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    events = "".join(event(i, "2026-11-16T10:00:00Z", f"u{i}", credits=f'"{CREDITS_MAX}"')
                     for i in range(11))
    assert cli("ingest", write(tmp_path / "c.jsonl", events), "--format", "json").json()[
        "totals"]["accepted"] == 11
    r = cli("report", "-c", "fx", "--as-of", AS_OF, "--meter", "cr", "--format", "json")
    (cr,) = r.json()["meters"]
    exact = "10999999999999999999.999999989"
    raw = r.stdout
    assert raw.count(exact) >= 4  # owner_total, user_total, billed, overage
    assert cr["overlap"] == 0


@pytest.mark.parametrize(("value", "ok"), [
    (f'"{CREDITS_MAX}"', True),
    ('"1000000000000000000"', False),  # 19 integer digits
    ('"99999999999999999999999999999.999999999"', False),
])
def test_credits_are_bounded_at_ingest(cli, tmp_path: Path, value: str, ok: bool) -> None:
    r = cli("ingest", write(tmp_path / "c.jsonl", event(1, "2026-11-16T10:00:00Z", "a",
                                                          credits=value)), "--format", "json")
    assert r.json()["totals"]["accepted"] == int(ok)
    if not ok:
        (reject,) = cli("rejects", "--format", "json").json()
        assert "18 integer digits" in reject["reason"] and "10 billion" in reject["reason"]


@pytest.mark.parametrize(("value", "ok"), [
    ("1e12", True), ("999999999999.999", True), ("1000000000000.001", False), ("1e308", False),
])
def test_response_times_are_bounded_at_ingest(cli, tmp_path: Path, value: str, ok: bool) -> None:
    r = cli("ingest", write(tmp_path / "r.jsonl", event(1, "2026-11-16T10:00:00Z", "a",
                                                          response_time_ms=value)),
            "--format", "json")
    assert r.json()["totals"]["accepted"] == int(ok)
    if not ok:
        (reject,) = cli("rejects", "--format", "json").json()
        assert "1e12" in reject["reason"] or "1,000,000,000,000" in reject["reason"]


@pytest.mark.parametrize(("column", "value"), [
    ("credits", "99999999999999999999999999999.999999999"),
    ("response_time_ms", "1e300"),
])
def test_an_overflow_from_an_older_database_is_a_clear_error(cli, db_path: Path, tmp_path: Path,
                                                             column: str, value: str) -> None:
    """A database written before the bounds may hold values whose sum does not fit: every
    report names the meter instead of failing with an internal error."""
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0
    events = (event(1, "2026-11-16T10:00:00Z", "a", credits="1", response_time_ms="1")
              + event(2, "2026-11-16T11:00:00Z", "a", credits="1", response_time_ms="1"))
    cli("ingest", write(tmp_path / "e.jsonl", events))
    con = duckdb.connect(str(db_path))
    con.execute(f"UPDATE events SET {column} = ?", [value])  # column from the fixed list above
    con.close()
    meter = "cr" if column == "credits" else "rt"
    for view in ("consolidated", "users", "daily", "series", "top"):
        r = cli("report", "-c", "fx", "--as-of", AS_OF, "--meter", meter, "--view", view,
                "--format", "json")
        assert r.exit_code == 1, (view, r.stdout)
        err = r.json()["error"]
        assert err["code"] == "validation_error", (view, err)
        assert f"meter {meter!r}" in err["message"] and column in err["message"], err
    r = cli("usage", "--owner", "fx", "--as-of", AS_OF)
    assert r.exit_code == 1 and "internal error" not in r.stderr


def test_check_available_keeps_every_digit(cli, tmp_path: Path) -> None:
    """available = limit + prepaid − billed needs 29 significant digits here: Python's default
    28-digit context would round it and the message would claim 1e20 available."""
    terms = """
[[contract]]
id = "big"
owner = "fx"
start = 2026-11-01
cycle = "monthly"
  [[contract.meter]]
  name = "cr"
  aggregate = "sum"
  fields = ["credits"]
  limit = 100000000000000000000
"""
    assert cli("contracts", "load", write(tmp_path / "big.toml", terms)).exit_code == 0
    r = cli("ingest", write(tmp_path / "c.jsonl", event(1, "2026-11-16T10:00:00Z", "a",
                                                          credits='"0.000000001"')), "--format", "json")
    assert r.json()["totals"]["accepted"] == 1
    doc = cli("check", "-c", "big", "--meter", "cr", "--amount", "1", "--as-of", AS_OF,
              "--format", "json").json()
    assert doc["message"] == ("Operation requires 1 credits, and 99999999999999999999.999999999 "
                              "are available")
