"""`derive_operations = true`: an operation without geometry counts its machine file ∩ the same
user's boundaries active at the file's time (SPEC §5.1; decisions in docs/area.md).

Every database is built through `usagectl ingest` and `usagectl contracts load`; expected areas
are pyproj Geod areas of shapely intersections computed here, independently of the engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from pyproj import Geod

from tests.conftest import write

GEOD = Geod(ellps="WGS84")
# Near the equator: the file is 0.02° × 0.01°, the boundary covers its east half.
FILE = shapely.box(10.00, 0.00, 10.02, 0.01)
EAST = shapely.box(10.01, 0.00, 10.03, 0.01)
WEST = shapely.box(9.99, 0.00, 10.01, 0.01)
FAR = shapely.box(11.00, 0.00, 11.01, 0.01)
OWN = shapely.box(12.00, 0.00, 12.01, 0.01)


def m2(g) -> float:  # noqa: ANN001
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(g))[0])


CONTRACTS = """
[[contract]]
id = "ops"
owner = "acme"
start = 2026-01-01
cycle = "quarterly"
timezone = "UTC"

  [[contract.meter]]
  name = "ops"
  aggregate = "unique_area"
  products = ["OPERATIONS_OPERATION"]
  derive_operations = true
  unit = "m2"

  [[contract.meter]]
  name = "plain"
  aggregate = "unique_area"
  products = ["OPERATIONS_OPERATION"]
  unit = "m2"

  [[contract.meter]]
  name = "audit"
  aggregate = "unique_area"
  products = ["OPERATIONS_OPERATION"]
  derive_operations = true
  mode = "audit"
  unit = "m2"
"""

HEADER = "event_id,ts,owner_id,user_id,product,action,resource_id,status,file_id,geometry\n"


def ev(eid: str, ts: str, product: str, rid: str = "", geom=None, *, user: str = "u1",  # noqa: ANN001
       action: str = "process", status: str = "200", file_id: str = "") -> str:
    wkt = f'"{geom.wkt}"' if geom is not None else ""
    return f"{eid},{ts},acme,{user},{product},{action},{rid},{status},{file_id},{wkt}\n"


def boundary(eid: str, ts: str, rid: str, geom=None, **kw) -> str:  # noqa: ANN001
    return ev(eid, ts, "FIELDS_BOUNDARY", rid, geom, **kw)


def mfile(eid: str, ts: str, rid: str, geom=FILE, **kw) -> str:  # noqa: ANN001
    return ev(eid, ts, "OPERATIONS_FILE", rid, geom, **kw)


def op(eid: str, ts: str, rid: str = "", geom=None, **kw) -> str:  # noqa: ANN001
    return ev(eid, ts, "OPERATIONS_OPERATION", rid, geom, **kw)


@pytest.fixture
def loaded(cli, tmp_path: Path):  # noqa: ANN201
    assert cli("contracts", "load", write(tmp_path / "c.toml", CONTRACTS)).exit_code == 0

    def ingest(*rows: str) -> None:
        f = write(tmp_path / f"e{len(list(tmp_path.glob('e*.csv')))}.csv", HEADER + "".join(rows))
        r = cli("ingest", f, "--format", "json")
        assert r.exit_code == 0 and r.json()["totals"]["rejected"] == 0, r.stdout + r.stderr

    return ingest


def report(cli, as_of: str = "2026-03-31T00:00:00Z", *args: str) -> dict:  # noqa: ANN001
    r = cli("report", "--contract", "ops", "--as-of", as_of, "--format", "json", *args)
    assert r.exit_code == 0, r.stdout + r.stderr
    return {m["name"]: m for m in r.json()["meters"]}


def test_file_half_covered_by_a_boundary_counts_the_half(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T12:00:00Z", "file-1"))
    expected = m2(shapely.intersection(FILE, EAST))
    assert expected == pytest.approx(m2(FILE) / 2, rel=1e-6)  # the test geometry is what it says
    m = report(cli)
    ops = m["ops"]
    assert ops["owner_total"] == pytest.approx(expected, rel=1e-9)
    assert ops["user_total"] == pytest.approx(expected, rel=1e-9)
    assert ops["events"] == 1 and ops["unlinked_operations"] == 0
    # Without the option the operation has no area, and the meter says nothing about operations.
    assert m["plain"]["owner_total"] == 0.0 and "unlinked_operations" not in m["plain"]
    # The derived area is consumed on the operation's local day, not the file's.
    daily = cli("report", "-c", "ops", "--as-of", "2026-03-31T00:00:00Z", "--view", "daily",
                "--meter", "ops", "--format", "json").json()
    days = {d["date"]: d["meters"]["ops"]["owner"] for d in daily["days"]}
    assert days["2026-01-06"] == pytest.approx(expected, rel=1e-9)
    assert sum(days.values()) == pytest.approx(expected, rel=1e-9)
    users = cli("report", "-c", "ops", "--as-of", "2026-03-31T00:00:00Z", "--view", "users",
                "--format", "json").json()["users"]
    assert [(u["user_id"], u["meters"]["ops"]) for u in users] == [("u1", pytest.approx(expected, rel=1e-9))]
    series = cli("report", "-c", "ops", "--as-of", "2026-03-31T00:00:00Z", "--view", "series",
                 "--bucket", "month", "--meter", "ops", "--format", "json").json()["series"]
    assert [(s["start"][:10], s["meters"]["ops"]) for s in series] == [
        ("2026-01-01", pytest.approx(expected, rel=1e-9))]


def test_boundary_deleted_before_the_file_time_counts_nothing(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           boundary("b2", "2026-01-04T00:00:00Z", "field-1", action="delete"),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"))
    ops = report(cli)["ops"]
    assert ops["owner_total"] == 0.0 and ops["events"] == 0 and ops["unlinked_operations"] == 1


def test_boundary_reprocessed_after_the_file_time_keeps_the_old_geometry(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           boundary("b2", "2026-01-05T00:00:01Z", "field-1", WEST),  # a second after the file
           boundary("b3", "2026-01-10T00:00:00Z", "field-2", FILE),  # a new field, later
           op("o1", "2026-01-20T00:00:00Z", "file-1"))
    assert report(cli)["ops"]["owner_total"] == pytest.approx(
        m2(shapely.intersection(FILE, EAST)), rel=1e-9)


def test_several_active_boundaries_count_as_their_union(cli, loaded) -> None:
    inner = shapely.box(10.005, 0.0, 10.015, 0.01)  # overlaps both halves and EAST
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           boundary("b2", "2026-01-02T00:00:00Z", "field-2", inner),
           boundary("b3", "2026-01-02T00:00:00Z", "", FAR),  # no resource_id: a boundary of its own
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"))
    expected = m2(shapely.intersection(FILE, shapely.union(EAST, inner)))
    assert report(cli)["ops"]["owner_total"] == pytest.approx(expected, rel=1e-9)


def test_boundary_of_another_user_counts_nothing(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST, user="u2"),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"))
    ops = report(cli)["ops"]
    assert ops["owner_total"] == 0.0 and ops["unlinked_operations"] == 1


def test_file_of_another_user_is_not_linked(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1", user="u2"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"))
    assert report(cli)["ops"]["unlinked_operations"] == 1


def test_operation_with_its_own_geometry_keeps_it(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1", OWN))
    m = report(cli)
    assert m["ops"]["owner_total"] == pytest.approx(m2(OWN), rel=1e-9)
    assert m["ops"]["owner_total"] == m["plain"]["owner_total"]
    assert m["ops"]["events"] == 1 and m["ops"]["unlinked_operations"] == 0


def test_file_after_as_of_counts_nothing_and_a_later_file_before_it_counts(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           op("o1", "2026-01-06T00:00:00Z", "file-1"),
           mfile("f1", "2026-01-20T00:00:00Z", "file-1"))  # processed after the operation
    before = report(cli, "2026-01-15T00:00:00Z")["ops"]
    assert before["owner_total"] == 0.0 and before["unlinked_operations"] == 1
    after = report(cli, "2026-01-25T00:00:00Z")["ops"]
    assert after["owner_total"] == pytest.approx(m2(shapely.intersection(FILE, EAST)), rel=1e-9)
    assert after["unlinked_operations"] == 0


def test_latest_file_version_at_or_before_the_operation_counts(cli, loaded) -> None:
    second = shapely.box(10.00, 0.00, 10.02, 0.005)  # south half of the first version
    third = shapely.box(10.00, 0.005, 10.02, 0.01)
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           mfile("f2", "2026-01-07T00:00:00Z", "file-1", second),
           op("o1", "2026-01-08T00:00:00Z", "file-1"),
           mfile("f3", "2026-01-09T00:00:00Z", "file-1", third))
    assert report(cli)["ops"]["owner_total"] == pytest.approx(
        m2(shapely.intersection(second, EAST)), rel=1e-9)


def test_linking_by_resource_id_and_by_a_file_id_attribute(cli, loaded) -> None:
    other = shapely.box(10.00, 0.02, 10.02, 0.03)
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           boundary("b2", "2026-01-02T00:00:00Z", "field-2", other),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           mfile("f2", "2026-01-05T00:00:00Z", "file-2", other),
           # The operation's own id is its resource_id; file_id (an attribute) names the file.
           op("o1", "2026-01-06T00:00:00Z", "op-1", file_id="file-2"),
           op("o2", "2026-01-06T00:00:00Z", "file-1"))
    ops = report(cli)["ops"]
    expected = m2(shapely.intersection(FILE, EAST)) + m2(other)
    assert ops["owner_total"] == pytest.approx(expected, rel=1e-9)
    assert ops["events"] == 2 and ops["unlinked_operations"] == 0


def test_file_id_attribute_from_json_lines(cli, loaded, tmp_path: Path) -> None:
    """JSON sources keep unknown keys in attributes too; a numeric file_id matches its text."""
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "42"))
    f = write(tmp_path / "ops.jsonl",
              '{"event_id": "o1", "ts": "2026-01-06T00:00:00Z", "owner_id": "acme", '
              '"user_id": "u1", "product": "OPERATIONS_OPERATION", "action": "process", '
              '"resource_id": "op-1", "status": 200, "file_id": 42}\n')
    assert cli("ingest", f).exit_code == 0
    assert report(cli)["ops"]["owner_total"] == pytest.approx(
        m2(shapely.intersection(FILE, EAST)), rel=1e-9)


def test_same_file_counts_once_per_user_and_users_overlap(cli, loaded) -> None:
    part = shapely.box(10.00, 0.00, 10.02, 0.004)  # u2's boundary: the file's southern strip
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           boundary("b2", "2026-01-02T00:00:00Z", "field-9", part, user="u2"),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           mfile("f2", "2026-01-05T00:00:00Z", "file-1", user="u2"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"),
           op("o2", "2026-02-06T00:00:00Z", "file-1"),  # the same file again: adds nothing
           op("o3", "2026-01-07T00:00:00Z", "file-1", user="u2"))
    u1, u2 = shapely.intersection(FILE, EAST), shapely.intersection(FILE, part)
    ops = report(cli)["ops"]
    assert ops["events"] == 3
    assert ops["user_total"] == pytest.approx(m2(u1) + m2(u2), rel=1e-9)
    assert ops["owner_total"] == pytest.approx(m2(shapely.union(u1, u2)), rel=1e-9)
    shared = m2(shapely.intersection(u1, u2))
    assert shared > 0 and ops["overlap"] == pytest.approx(shared, rel=1e-6)
    ov = cli("overlap", "-c", "ops", "--meter", "ops", "--as-of", "2026-03-31T00:00:00Z",
             "--format", "json").json()
    assert ov["pairs"] == [{"a": "u1", "b": "u2", "area": pytest.approx(shared, rel=1e-6)}]
    daily = cli("report", "-c", "ops", "--as-of", "2026-03-31T00:00:00Z", "--view", "daily",
                "--meter", "ops", "--format", "json").json()
    users = {d["date"]: d["meters"]["ops"]["user"] for d in daily["days"]}
    assert users["2026-02-06"] == 0.0  # the second operation of the same file adds nothing
    assert sum(users.values()) == pytest.approx(m2(u1) + m2(u2), rel=1e-9)


def test_failed_file_event_is_ignored(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", shapely.box(9.9, -0.1, 10.1, 0.1)),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1", EAST),
           mfile("f2", "2026-01-06T00:00:00Z", "file-1", status="500"),  # latest, but failed
           mfile("f3", "2026-01-05T00:00:00Z", "file-2", status="500"),
           op("o1", "2026-01-07T00:00:00Z", "file-1"),
           op("o2", "2026-01-07T00:00:00Z", "file-2"))
    ops = report(cli)["ops"]
    assert ops["owner_total"] == pytest.approx(m2(EAST), rel=1e-9)
    assert ops["unlinked_operations"] == 1


def test_boundary_recreated_before_the_file_time_and_operations_after_as_of(cli, loaded) -> None:
    loaded(mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"),
           boundary("b1", "2026-01-01T00:00:00Z", "field-1", EAST),
           boundary("b2", "2026-01-03T00:00:00Z", "field-1", action="delete"),
           boundary("b3", "2026-01-04T00:00:00Z", "field-1", WEST),
           op("o2", "2026-02-06T00:00:00Z", "file-1"))
    early = report(cli, "2026-01-10T00:00:00Z")["ops"]
    assert early["owner_total"] == pytest.approx(m2(shapely.intersection(FILE, WEST)), rel=1e-9)
    assert early["events"] == 1  # o2 is after as_of


def test_failed_operations_and_periods_follow_the_meter(cli, loaded) -> None:
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1", status="500"),  # failed: never counts
           op("o2", "2026-04-06T00:00:00Z", "file-1"))  # Q2: the file and boundary are from Q1
    q1 = report(cli, "2026-03-31T00:00:00Z", "--period", "0")["ops"]
    assert q1["owner_total"] == 0.0 and q1["unlinked_operations"] == 0
    q2 = report(cli, "2026-06-30T00:00:00Z", "--period", "1")["ops"]
    assert q2["owner_total"] == pytest.approx(m2(shapely.intersection(FILE, EAST)), rel=1e-9)


def test_audit_mode_counts_the_latest_operation_of_each_resource(cli, loaded) -> None:
    second = shapely.box(10.00, 0.00, 10.02, 0.005)
    loaded(boundary("b1", "2025-06-02T00:00:00Z", "field-1", EAST),
           mfile("f1", "2025-06-05T00:00:00Z", "file-1"),
           mfile("f2", "2025-06-05T00:00:00Z", "file-2", second),
           op("o1", "2025-06-06T00:00:00Z", "op-1", file_id="file-1"),
           op("o2", "2025-06-07T00:00:00Z", "op-1", file_id="file-2"),  # same operation, redone
           op("o3", "2025-06-08T00:00:00Z", "op-3", file_id="nope"))
    audit = report(cli)["audit"]  # audit ignores the contract's dates
    assert audit["owner_total"] == pytest.approx(m2(shapely.intersection(second, EAST)), rel=1e-9)
    assert audit["events"] == 1 and audit["unlinked_operations"] == 1


def test_as_ingested_at_hides_later_ingests(cli, loaded) -> None:
    import time
    from datetime import UTC, datetime

    loaded(mfile("f1", "2026-01-05T00:00:00Z", "file-1"),
           op("o1", "2026-01-06T00:00:00Z", "file-1"))
    time.sleep(0.01)
    cut = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    loaded(boundary("b1", "2026-01-02T00:00:00Z", "field-1", EAST))  # ingested after the cut
    assert report(cli)["ops"]["owner_total"] == pytest.approx(
        m2(shapely.intersection(FILE, EAST)), rel=1e-9)
    then = report(cli, "2026-03-31T00:00:00Z", "--as-ingested-at", cut)["ops"]
    assert then["owner_total"] == 0.0 and then["unlinked_operations"] == 1
