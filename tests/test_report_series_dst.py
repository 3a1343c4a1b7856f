"""Hourly series across daylight-saving changes and in half-hour zones (SPEC §5.3 series).

A bucket is a local hour, and its start is an instant: on the fall-back day the repeated hour is
two buckets, each labelled in local time with its own offset. Σ buckets = the period value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write


def contracts(tz: str) -> str:
    return f"""
[[contract]]
id = "c"
owner = "o"
start = 2026-01-01
cycle = "annual"
timezone = "{tz}"
  [[contract.meter]]
  name = "n"
  aggregate = "count"
  [[contract.meter]]
  name = "tok"
  aggregate = "sum"
  fields = ["input_tokens"]
  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
  [[contract.meter]]
  name = "area"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  unit = "hectare"
  boundary_policy = "processed"
"""


def square(x: float) -> str:
    """A ~1.1 km × 1.1 km square (~100 ha near the equator) at longitude x."""
    return (f'"POLYGON(({x} 0,{x + 0.01} 0,{x + 0.01} 0.01,{x} 0.01,{x} 0))"')


def series(cli, tmp_path: Path, tz: str, stamps: list[str]) -> dict:  # noqa: ANN001
    assert cli("contracts", "load", write(tmp_path / "c.toml", contracts(tz))).exit_code == 0
    rows = "".join(f"e{i},{ts},o,u{i},FIELDS_BOUNDARY,{i + 1},{square(i * 0.1)}\n"
                   for i, ts in enumerate(stamps))
    f = write(tmp_path / "e.csv", "event_id,ts,owner_id,user_id,product,input_tokens,geometry\n"
              + rows)
    assert cli("ingest", f, "--format", "json").json()["totals"]["accepted"] == len(stamps)
    r = cli("report", "-c", "c", "--as-of", "2026-12-31T12:00:00Z", "--view", "series",
            "--bucket", "hour", "--format", "json")
    assert r.exit_code == 0, r.stderr
    return {row["start"]: row["meters"] for row in r.json()["series"]}


def totals(cli) -> dict:  # noqa: ANN001
    doc = cli("report", "-c", "c", "--as-of", "2026-12-31T12:00:00Z", "--format", "json").json()
    return {m["name"]: m["billed"] for m in doc["meters"]}


def check_sums(cli, got: dict) -> None:  # noqa: ANN001
    for name, total in totals(cli).items():
        assert sum(m[name] for m in got.values()) == pytest.approx(total, abs=1e-6), name


def test_the_repeated_fall_back_hour_is_two_buckets(cli, tmp_path: Path) -> None:
    # America/Chicago falls back on 2026-11-01 at 02:00 CDT: 01:30 happens at 06:30Z and 07:30Z.
    got = series(cli, tmp_path, "America/Chicago",
                 ["2026-11-01T05:10:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z",
                  "2026-11-01T07:59:59Z", "2026-11-01T08:00:00Z"])
    assert list(got) == ["2026-11-01T00:00:00-05:00", "2026-11-01T01:00:00-05:00",
                         "2026-11-01T01:00:00-06:00", "2026-11-01T02:00:00-06:00"]
    assert [m["n"] for m in got.values()] == [1, 1, 2, 1]
    assert [m["tok"] for m in got.values()] == [1, 2, 3 + 4, 5]
    assert [m["users"] for m in got.values()] == [1, 1, 2, 1]
    assert [round(m["area"]) for m in got.values()] == [123, 123, 246, 123]
    check_sums(cli, got)


def test_the_missing_spring_forward_hour_has_no_bucket(cli, tmp_path: Path) -> None:
    # 2026-03-08: 02:00 CST does not happen; 07:59Z is 01:59 CST, 08:00Z is 03:00 CDT.
    got = series(cli, tmp_path, "America/Chicago",
                 ["2026-03-08T07:59:00Z", "2026-03-08T08:00:00Z", "2026-03-08T08:59:00Z"])
    assert list(got) == ["2026-03-08T01:00:00-06:00", "2026-03-08T03:00:00-05:00"]
    assert [m["n"] for m in got.values()] == [1, 2]
    check_sums(cli, got)


def test_a_half_hour_zone_starts_buckets_on_its_local_hours(cli, tmp_path: Path) -> None:
    # Asia/Kolkata is UTC+05:30: 10:00Z and 10:29Z are 15:30 and 15:59 local, 10:30Z is 16:00.
    got = series(cli, tmp_path, "Asia/Kolkata",
                 ["2026-11-16T10:00:00Z", "2026-11-16T10:29:59Z", "2026-11-16T10:30:00Z"])
    assert list(got) == ["2026-11-16T15:00:00+05:30", "2026-11-16T16:00:00+05:30"]
    assert [m["n"] for m in got.values()] == [2, 1]
    check_sums(cli, got)


def test_day_buckets_on_the_fall_back_day_are_one_25_hour_day(cli, tmp_path: Path) -> None:
    series(cli, tmp_path, "America/Chicago",
           ["2026-11-01T05:10:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z",
            "2026-11-02T05:59:59Z", "2026-11-02T06:00:00Z"])
    r = cli("report", "-c", "c", "--as-of", "2026-12-31T12:00:00Z", "--view", "series",
            "--bucket", "day", "--format", "json")
    got = {row["start"]: row["meters"]["n"] for row in r.json()["series"]}
    assert got == {"2026-11-01T00:00:00-05:00": 4, "2026-11-02T00:00:00-06:00": 1}


def test_the_table_tells_the_two_repeated_hours_apart(cli, tmp_path: Path) -> None:
    series(cli, tmp_path, "America/Chicago", ["2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"])
    out = cli("report", "-c", "c", "--as-of", "2026-12-31T12:00:00Z", "--view", "series",
              "--bucket", "hour", "--meter", "n").stdout
    labels = [line.split("│")[1].strip() for line in out.splitlines() if line.count("│") >= 2]
    assert "2026-11-01T01:00-05:00" in labels and "2026-11-01T01:00-06:00" in labels
