"""The one-scan computation of a report's scalar meters equals the per-meter queries
(docs/meters.md "Speed"): same owner, per-user and per-day values, events, late events,
fields, request summaries, counted events and series, on generated events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usagectl.contracts import parse_contracts, resolve_period
from usagectl.meters import billed_series
from usagectl.meters.scalar import compute_scalar_meter
from usagectl.meters.scan import local_order_kept, scan_scalar_meters
from usagectl.meters.select import Window
from usagectl.reports import breakdown, views
from usagectl.reports.counted import counted_where
from usagectl.store.db import connect

METERS = """
  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens"]
  products = ["API_TOKENS"]

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits", "response_time_ms"]
  billed_on = "user"
  include_failed = true

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  endpoints = ["/v1/*", "/datasets"]

  [[contract.meter]]
  name = "everything"
  aggregate = "count"
  include_failed = true

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  billed_on = "user"
  endpoints = ["/datasets"]

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
  require = ["indicator_ids"]
"""


def contract(tz: str, start: str = "2026-03-01", cycle: str = "monthly"):  # noqa: ANN201
    (c,) = parse_contracts(f'[[contract]]\nid = "c"\nowner = "o"\nstart = {start}\n'
                           f'cycle = "{cycle}"\ntimezone = "{tz}"\n' + METERS)
    return c


EVENT = st.tuples(
    st.sampled_from(["o", "o", "o", "other"]),
    st.integers(0, 40 * 24 * 4),                 # quarter hours after the period start
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.sampled_from(["API_TOKENS", "DATASETS", None]),
    st.booleans(),                               # succeeded
    st.sampled_from(["/v1/chat", "/v1/embed", "/datasets", "/search", None]),
    st.sampled_from(["d1", "d2", "d3", None]),
    st.sampled_from([None, [], ["i1"], ["i1", "i2"], ["i3"]]),
    st.one_of(st.none(), st.integers(0, 10**6)),
    st.one_of(st.none(), st.decimals(0, 1000, places=9, allow_nan=False)),
    st.one_of(st.none(), st.floats(0, 5000, allow_nan=False)),
    st.sampled_from(["E1", "E2", None]),
    st.integers(0, 3),                           # late: ingested this many months later
    st.sampled_from(["org1", "org2", None]),
)


def insert(con: duckdb.DuckDBPyConnection, start: datetime, events: list[tuple]) -> None:
    con.execute("DELETE FROM events")
    rows = []
    for n, (owner, q, user, product, ok, endpoint, ds, ind, tok, credits, rt, code, late,
            org) in enumerate(events):
        ts = start + timedelta(minutes=15 * q) - timedelta(days=2)
        rows.append((owner, f"e{n}", ts, user, org, product, "process", ok, code if not ok else None,
                     endpoint, ds, ind, tok, tok and tok // 3, credits, rt, f"h{n}", 1,
                     ts + timedelta(days=31 * late)))
    if rows:
        con.executemany(
            "INSERT INTO events (owner_id, event_id, ts, user_id, org_id, product, action, "
            "succeeded, error_code, endpoint, dataset_id, indicator_ids, input_tokens, "
            "output_tokens, credits, response_time_ms, content_hash, ingest_id, ingested_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    c = connect(Path(tmp_path_factory.mktemp("scan")) / "scan.duckdb")
    yield c
    c.close()


def window_for(tz: str, as_of_day: int, start: str = "2026-03-01",
               user: str | None = None) -> Window:
    c = contract(tz, start)
    period = resolve_period(c, "0", datetime(2027, 1, 1, tzinfo=UTC))
    as_of = period.start + timedelta(days=as_of_day, hours=7)
    return Window(c, period, as_of, None, user)


def recent_days(w: Window) -> tuple[date, date]:
    return w.last_day - timedelta(days=13), w.last_day


def per_meter_daily(con: duckdb.DuckDBPyConnection, meter, w: Window,  # noqa: ANN001
                    days: tuple[date, date]) -> dict[date, Decimal]:
    v = compute_scalar_meter(con, meter, w, daily=True)
    series = billed_series(meter.billed_on, v.daily_owner, v.daily_users)
    return {d: x for d, x in series.items() if days[0] <= d <= days[1] and x}


SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(events=st.lists(EVENT, max_size=60), as_of_day=st.integers(0, 45),
       tz=st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"]),
       user=st.sampled_from([None, None, "u2"]))
def test_one_scan_equals_each_meter_alone(con, events, as_of_day, tz, user) -> None:  # noqa: ANN001
    w = window_for(tz, as_of_day, user=user)
    insert(con, w.period.start, events)
    meters = w.contract.meters
    days = recent_days(w)
    owner = scan_scalar_meters(con, meters, w, by_user=False, days=days, extras=True,
                               counted=True)
    users = scan_scalar_meters(con, meters, w, by_user=True, counted=True)
    for m in meters:
        ref = compute_scalar_meter(con, m, w)
        for got in (owner.values[m.name], users.values[m.name]):
            assert (got.owner, got.user_total, got.events) == (ref.owner, ref.user_total,
                                                               ref.events), m.name
        assert users.values[m.name].users == ref.users, m.name
        daily = {d: x for d, x in (owner.values[m.name].billed_daily or {}).items() if x}
        assert daily == per_meter_daily(con, m, w, days), m.name
        assert owner.late[m.name] == views.late_events(con, m, w, ref)
        if m.aggregate == "sum":
            assert owner.fields[m.name] == breakdown.sum_fields(con, m, w)
        if m.aggregate == "count":
            summary = breakdown.request_summary(con, m, w)
            assert owner.requests[m.name] == summary
            assert (list(owner.requests[m.name]["failed_by_error_code"])
                    == list(summary["failed_by_error_code"]))  # the same order in JSON
    where, params = counted_where(con, meters, w)
    n_users, n_events = con.execute(
        f"SELECT count(DISTINCT e.user_id), count(*) FROM events e WHERE {where}", params).fetchone()
    assert (owner.counted_users, owner.counted_events) == (n_users, n_events)
    assert (users.counted_users, users.counted_events) == (n_users, n_events)
    stats = con.execute(
        f"SELECT user_id, arg_max(org_id, ts) FILTER (WHERE org_id IS NOT NULL), count(*), "
        f"min(ts), max(ts) FROM events e WHERE {where} GROUP BY user_id", params).fetchall()
    assert users.user_stats == {u: (org, n, first, last) for u, org, n, first, last in stats}


@SETTINGS
@given(events=st.lists(EVENT, max_size=60), as_of_day=st.integers(0, 45),
       tz=st.sampled_from(["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
       bucket=st.sampled_from(breakdown.BUCKETS))
def test_series_of_all_meters_equals_each_meter_alone(con, events, as_of_day, tz, bucket  # noqa: ANN001
                                                      ) -> None:
    # March–April holds New York's spring-forward and Lord Howe's half-hour fall-back.
    w = window_for(tz, as_of_day)
    insert(con, w.period.start, events)
    meters = w.contract.meters
    together = breakdown.series_of_meters(con, meters, w, bucket)
    for m in meters:
        assert together[m.name] == breakdown.series(con, m, w, bucket), m.name


def test_first_sightings_where_local_time_goes_back_across_midnight(con) -> None:  # noqa: ANN001
    # Sitka, 1867: the clock went from +14:58:47 to −09:01:13, so a later instant had an earlier
    # local date. A value seen before and after the change is first seen on the earlier date,
    # which the date of its first instant would get wrong.
    w = window_for("America/Sitka", 30, start="1867-10-01")
    assert not local_order_kept("America/Sitka", w.period.start, w.until, "day")
    assert w.as_of > datetime(1867, 10, 19, tzinfo=UTC)
    first = datetime(1867, 10, 19, 0, 0, tzinfo=UTC)   # Oct 19 local (LMT +14:58)
    later = datetime(1867, 10, 19, 1, 0, tzinfo=UTC)   # Oct 18 local (−09:01): the day before
    con.execute("DELETE FROM events")
    for n, (ts, ds) in enumerate([(first, "d1"), (later, "d1"), (later, "d2")]):
        con.execute("INSERT INTO events (owner_id, event_id, ts, user_id, product, action, "
                    "succeeded, endpoint, dataset_id, content_hash, ingest_id, ingested_at) "
                    "VALUES ('o', ?, ?, 'u1', 'DATASETS', 'process', true, '/datasets', ?, ?, 1, ?)",
                    [f"e{n}", ts, ds, f"h{n}", ts])
    m = w.contract.meter("datasets")
    days = (date(1867, 10, 10), date(1867, 10, 25))
    got = scan_scalar_meters(con, (m,), w, by_user=False, days=days).values[m.name].billed_daily
    assert got == per_meter_daily(con, m, w, days) == {date(1867, 10, 18): 2}
    for bucket in ("day", "month"):
        assert (breakdown.series_of_meters(con, (m,), w, bucket)[m.name]
                == breakdown.series(con, m, w, bucket))


@pytest.mark.parametrize(("tz", "bucket", "kept"), [
    ("UTC", "day", True), ("America/New_York", "day", True), ("America/New_York", "hour", True),
    ("Asia/Kolkata", "hour", True),
    # Lord Howe moves its clock by half an hour: an hour bucket can start earlier than the last.
    ("Australia/Lord_Howe", "hour", False), ("Australia/Lord_Howe", "day", True),
])
def test_local_order_kept(tz: str, bucket: str, kept: bool) -> None:
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert local_order_kept(tz, start, end, bucket) is kept


MIXED = """
[[contract]]
id = "mix"
owner = "acme"
start = 2026-01-01
cycle = "annual"
timezone = "America/Chicago"

  [[contract.meter]]
  name = "area"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  include_failed = true

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  billed_on = "user"
"""


def test_a_contract_mixing_area_and_scalar_meters(cli, tmp_path: Path) -> None:
    from tests.conftest import write

    box = "POLYGON((-93.6 42, -93.59 42, -93.59 42.01, -93.6 42.01, -93.6 42))"
    rows = [f'b1,2026-03-01T10:00:00Z,acme,u1,FIELDS_BOUNDARY,,ok,"{box}"',
            f'b2,2026-03-02T10:00:00Z,acme,u2,FIELDS_BOUNDARY,,ok,"{box}"',
            "d1,2026-03-03T10:00:00Z,acme,u2,DATASETS,ds1,ok,",
            "d2,2026-03-04T10:00:00Z,acme,u3,DATASETS,ds1,error,",
            "x1,2026-03-04T11:00:00Z,other,u9,DATASETS,ds9,ok,"]
    assert cli("contracts", "load", write(tmp_path / "c.toml", MIXED)).exit_code == 0
    csv = "event_id,ts,owner_id,user_id,product,dataset_id,status,geometry\n" + "\n".join(rows)
    assert cli("ingest", write(tmp_path / "e.csv", csv + "\n")).exit_code == 0
    args = ("report", "-c", "mix", "--as-of", "2026-06-01", "--format", "json")
    doc = cli(*args).json()
    m = {b["name"]: b for b in doc["meters"]}
    assert m["area"]["owner_total"] > 0 and m["area"]["events"] == 2
    assert (m["requests"]["owner_total"], m["requests"]["events"]) == (4, 4)
    assert m["requests"]["requests"]["failed_by_error_code"] == {"(none)": 1}
    # ds1 by u2 (successful); u3's event failed: one dataset, billed per user.
    assert (m["datasets"]["owner_total"], m["datasets"]["user_total"]) == (1, 1)
    assert (doc["users"], doc["events_counted"]) == (3, 4)
    users = {u["user_id"]: u for u in cli(*args, "--view", "users").json()["users"]}
    assert {u: r["events"] for u, r in users.items()} == {"u1": 1, "u2": 2, "u3": 1}
    assert users["u2"]["meters"]["requests"] == 2 and users["u2"]["meters"]["datasets"] == 1
    assert users["u3"]["meters"] == {"area": 0.0, "requests": 1, "datasets": 0}
