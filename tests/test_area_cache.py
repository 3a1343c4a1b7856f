"""Per-tile area results stored in the database (usagectl.meters.area_cache).

A report stores each tile's figures with a fingerprint of the rows in it; a later report
recomputes only the tiles whose rows changed, and its numbers equal a computation from scratch.
"""

from __future__ import annotations

import duckdb
import pytest
import shapely

import usagectl.meters.area as area
from tests.conftest import HECTARE_AREA, write

CONTRACT = HECTARE_AREA
AS_OF = "2026-06-30T00:00:00Z"


def events(rows: list[tuple[str, str, str, shapely.Geometry]]) -> str:
    out = "event_id,ts,owner_id,user_id,product,geometry\n"
    for eid, ts, user, g in rows:
        out += f'{eid},{ts},acme,{user},FIELDS_BOUNDARY,"{g.wkt}"\n'
    return out


# Fields in four 0.1° tiles, one crossing a tile line; two users overlapping.
FIELDS = [
    ("e1", "2026-02-01T10:00:00Z", "a", shapely.box(5.01, 50.01, 5.03, 50.02)),
    ("e2", "2026-02-02T10:00:00Z", "b", shapely.box(5.02, 50.01, 5.04, 50.02)),
    ("e3", "2026-03-01T10:00:00Z", "a", shapely.box(5.09, 50.05, 5.12, 50.06)),
    ("e4", "2026-03-05T10:00:00Z", "b", shapely.box(5.31, 50.31, 5.33, 50.33)),
    ("e5", "2026-04-01T10:00:00Z", "a", shapely.box(5.51, 50.51, 5.52, 50.52)),
]


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[set]:
    """The tiles each computation was asked for (the real engine runs)."""
    calls: list[set] = []
    real = area.compute_tiles

    def spy(*args, only=None, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(set(only) if only is not None else {"all"})
        return real(*args, only=only, **kw)

    monkeypatch.setattr(area, "compute_tiles", spy)
    return calls


def figures(cli, *args: str) -> dict:  # noqa: ANN001
    r = cli("report", "-c", "c", "--as-of", AS_OF, "--format", "json", *args)
    assert r.exit_code == 0, r.stdout
    return r.json()


def meter(doc: dict) -> dict:
    return next(m for m in doc["meters"] if m["name"] == "area")


def test_a_second_report_recomputes_nothing_and_a_new_event_only_its_tile(
        cli, db_path, tmp_path, computed) -> None:  # noqa: ANN001
    assert cli("ingest", write(tmp_path / "a.csv", events(FIELDS))).exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    first = meter(figures(cli))
    assert len(computed) == 1 and len(computed[0]) == 4  # e3 crosses the 5.1° meridian
    with duckdb.connect(str(db_path), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM area_tiles").fetchone()[0]
    assert stored == 4

    again = meter(figures(cli))
    assert len(computed) == 1  # every tile from the store
    assert again == first

    # One more field in e4's tile: that tile alone is recomputed.
    extra = [("e6", "2026-04-02T10:00:00Z", "a", shapely.box(5.32, 50.32, 5.34, 50.34))]
    assert cli("ingest", write(tmp_path / "b.csv", events(extra))).exit_code == 0
    after = meter(figures(cli))
    assert computed[-1] == {(53, 503)}
    assert after["owner_total"] > first["owner_total"]

    # Equal to a computation from scratch.
    with duckdb.connect(str(db_path)) as con:
        con.execute("DELETE FROM area_tiles")
    scratch = meter(figures(cli))
    assert len(computed[-1]) == 4
    assert scratch == after


def test_views_agree_through_the_store(cli, tmp_path, computed) -> None:  # noqa: ANN001
    assert cli("ingest", write(tmp_path / "a.csv", events(FIELDS))).exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    consolidated = meter(figures(cli))
    daily = figures(cli, "--view", "daily")
    overlap = cli("overlap", "-c", "c", "--as-of", AS_OF, "--format", "json").json()
    users = figures(cli, "--view", "users")
    again = meter(figures(cli))
    assert again == consolidated
    rows = daily["days"] if "days" in daily else daily["rows"]
    owner_days = sum(r["meters"]["area"]["owner"] if "meters" in r else r["owner"] for r in rows)
    assert owner_days == pytest.approx(consolidated["owner_total"], abs=1e-5)
    assert overlap["owner_total"] == pytest.approx(consolidated["owner_total"], abs=1e-6)
    assert overlap["user_total"] == pytest.approx(consolidated["user_total"], abs=1e-6)
    total_users = sum(u["meters"]["area"] for u in users["users"])
    assert total_users == pytest.approx(consolidated["user_total"], abs=1e-5)


def test_daily_view_after_a_report_adds_only_the_daily_values(
        cli, db_path, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    asked: list[dict] = []
    real = area.compute_tiles

    def spy(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        asked.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(area, "compute_tiles", spy)
    assert cli("ingest", write(tmp_path / "a.csv", events(FIELDS))).exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACT)).exit_code == 0
    figures(cli)  # consolidated: owner and users stored per tile, no daily series
    daily = figures(cli, "--view", "daily")
    # Unions are not built again: only the daily values of the stored tiles are computed.
    assert [(kw.get("base", True), kw.get("daily")) for kw in asked[-1:]] == [(False, True)]
    assert len(asked[-1]["only"]) == 4
    with duckdb.connect(str(db_path)) as con:
        con.execute("DELETE FROM area_tiles")
    assert figures(cli, "--view", "daily") == daily  # equal to a computation from scratch
    n = len(asked)
    assert figures(cli, "--view", "daily") == daily and len(asked) == n  # then from the store
