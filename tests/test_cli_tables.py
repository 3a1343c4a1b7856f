"""Terminal tables: numbers never cut, exact digits, a compact table when the full one does not
fit (docs/cli.md "Tables"); JSON and CSV numbers of extreme floats (docs/cli.md "Numbers")."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import write
from tests.test_cli_output import sample, sample_db  # noqa: F401 — the fixtures, reused
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.numbers import number_text
from usagectl.renderers.report_tables import fmt, money

AS_OF = "2026-11-20T12:00:00Z"


def _cells(table: str) -> set[str]:
    """Every cell of a Rich table's rows, stripped."""
    return {c.strip() for line in table.splitlines() if line.startswith("│")
            for c in line.split("│")[1:-1]}


def _headers(table: str) -> set[str]:
    return {c.strip() for line in table.splitlines() if line.startswith("┃")
            for c in line.split("┃")[1:-1]}


def _numbers_whole(rows: list[dict], table: str, columns: dict[str, str]) -> set[str]:
    """Every JSON number of every column the table shows is in it, whole; returns the headers."""
    cells, headers = _cells(table), _headers(table)
    assert "…" not in table, table
    for header, key in columns.items():
        if header not in headers:
            continue
        for row in rows:
            if row.get(key) is not None:
                text = money(row[key]) if key == "overage_amount_cents" else fmt(
                    row[key], 1 if key == "percent_used" else 2)
                assert text in cells, (key, row[key], table)
    return headers


@pytest.mark.parametrize("owner", ["terra-tokens", "docuscan", "lca-institute", "acme-farms"])
def test_usage_tables_never_cut_a_number_at_80_columns(sample, owner: str) -> None:  # noqa: F811
    rows = sample("usage", "--owner", owner, "--as-of", AS_OF, "--format", "json").json()
    r = sample("usage", "--owner", owner, "--as-of", AS_OF, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80, r.stdout
    shown = _numbers_whole(rows, r.stdout, {"used": "used", "included": "included",
                                            "overage": "overage", "amount": "overage_amount_cents"})
    assert {"contract", "meter", "used", "included", "overage", "amount"} <= shown  # every number
    wide = sample("usage", "--owner", owner, "--as-of", AS_OF, env={"COLUMNS": "200"})
    assert "period" in wide.stdout and wide.stderr == ""  # the full table where it fits
    if "period" not in r.stdout:
        assert "period" in r.stderr and "--format json" in r.stderr  # says what it left out


def test_alerts_table_never_cuts_a_number_at_80_columns(sample) -> None:  # noqa: F811
    rows = sample("alerts", "--as-of", AS_OF, "--format", "json").json()
    r = sample("alerts", "--as-of", AS_OF, env={"COLUMNS": "80"})
    assert r.exit_code == 3 and rows, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80, r.stdout
    shown = _numbers_whole(rows, r.stdout, {"billed": "billed", "limit": "limit",
                                            "used %": "percent_used", "projected": "projected"})
    assert {"contract", "meter", "status", "billed", "limit"} <= shown
    for row in rows:  # every alert is there
        assert any(row["status"] in line and row["meter"] in line for line in r.stdout.splitlines())
    assert "--format json" in r.stderr  # the note of what the compact table leaves out
    wide = sample("alerts", "--as-of", AS_OF, env={"COLUMNS": "200"})
    assert _numbers_whole(rows, wide.stdout, {"billed": "billed", "limit": "limit",
                                              "used %": "percent_used", "projected": "projected"}
                          ) >= {"used %", "projected", "exceeds on"} and wide.stderr == ""


# -- exact digits ------------------------------------------------------------------------------

BIG = """
[[contract]]
id = "big"
owner = "o"
start = 2026-01-01
cycle = "monthly"
  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens"]
  overage_cents_per_unit = 1
  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
"""
MAX_INT = 9223372036854775807


@pytest.fixture
def big(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", BIG)).exit_code == 0
    events = ("event_id,ts,owner_id,user_id,product,input_tokens,credits\n"
              f"a,2026-03-02T10:00:00Z,o,u1,chat,{MAX_INT},12345678901234567.005\n"
              f"b,2026-03-03T10:00:00Z,o,u2,chat,{MAX_INT},0.12\n")
    assert cli("ingest", write(tmp_path / "e.csv", events)).exit_code == 0
    return cli


def test_tables_show_integers_and_decimals_with_their_own_digits(big) -> None:
    args = ("report", "-c", "big", "--as-of", "2026-03-20")
    wide = {"COLUMNS": "250"}
    doc = big(*args, "--format", "json").json()
    tokens = {m["name"]: m for m in doc["meters"]}["tokens"]
    assert tokens["billed"] == 2 * MAX_INT and tokens["overage_amount_cents"] == 2 * MAX_INT
    cells = _cells(big(*args, env=wide).stdout)
    assert "18,446,744,073,709,551,614" in cells  # not ...616 from a float
    assert "$184,467,440,737,095,516.14" in cells  # the money, to the cent
    # 12345678901234567.005 + 0.12, rounded half-up to the column's 2 decimals
    assert "12,345,678,901,234,567.13" in cells
    top = _cells(big(*args, "--view", "top", "--meter", "tokens", env=wide).stdout)
    assert "9,223,372,036,854,775,807" in top  # not ...808
    users = _cells(big(*args, "--view", "users", env=wide).stdout)
    assert {"9,223,372,036,854,775,807", "18,446,744,073,709,551,614",
            "12,345,678,901,234,567.01", "0.12", "12,345,678,901,234,567.13"} <= users


def test_a_decimal_cell_rounds_half_up() -> None:
    assert fmt(Decimal("0.125")) == "0.13" and fmt(Decimal("2.675")) == "2.68"
    assert fmt(Decimal("-0.125")) == "-0.13" and fmt(Decimal("1234.5"), 1) == "1,234.5"
    assert fmt(Decimal("27.310000000")) == "27.31" and fmt(Decimal("5.000")) == "5"
    assert fmt(2.675) == "2.68"  # a float by its shortest digits, as JSON writes it
    assert money(2 * MAX_INT) == "$184,467,440,737,095,516.14" and money(-5) == "-$0.05"


# -- floats at the edges in JSON and CSV -------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    (1e308, "1e+308"),
    (1.5e16, "1.5e+16"),
    (-2e16, "-2e+16"),
    (1234567890123456.0, "1234567890123456.0"),
    (9.1e-05, "0.000091"),
    (0.1, "0.1"),
    (-0.0, "0.0"),
])
def test_float_numbers_use_their_shortest_form(value: float, text: str) -> None:
    assert number_text(value) == text
    assert jsonout.dumps({"x": value}) == f'{{\n  "x": {text}\n}}\n'
    assert csvout.render([{"x": value}], ("x",)) == f"x\n{text}\n"  # CSV reads as JSON does
    assert float(text) == value
    assert len(text) < 25 and not re.search(r"0{20}", text)


def test_a_table_too_wide_for_the_terminal_is_printed_whole(big) -> None:
    """Even the compact table does not fit 40 columns: it is printed wider, never cut."""
    for args in (("usage", "--owner", "o"), ("report", "-c", "big")):
        r = big(*args, "--as-of", "2026-03-20", env={"COLUMNS": "40"})
        assert r.exit_code == 0 and "…" not in r.stdout, r.stdout
        assert "18,446,744,073,709,551,614" in _cells(r.stdout), r.stdout
        assert "$184,467,440,737,095,516.14" in _cells(r.stdout), r.stdout
