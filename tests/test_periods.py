"""Contract periods: anchors, DST, boundaries and period specs (SPEC §5.5)."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from usagectl.contracts import (
    Contract,
    Period,
    local_midnight,
    parse_as_of,
    period_at,
    period_containing,
    resolve_period,
)
from usagectl.contracts import periods as periods_module
from usagectl.errors import NotFoundError, ValidationError

UTC = dt.timezone.utc
US = dt.timedelta(microseconds=1)


def contract(
    start: dt.date, cycle: str = "monthly", tz: str = "UTC", end: dt.date | None = None
) -> Contract:
    return Contract(id="c", owner="o", start=start, cycle=cycle, end=end, timezone=tz)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def hours(p: Period) -> float:
    return p.duration.total_seconds() / 3600


def start_dates(c: Contract, n: int) -> list[str]:
    return [period_at(c, k).start.date().isoformat() for k in range(n)]


# -- anchors -------------------------------------------------------------------------------------


def test_monthly_anchor_31_clamps_then_returns() -> None:
    c = contract(dt.date(2026, 1, 31))
    assert start_dates(c, 14) == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31", "2026-06-30",
        "2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31",
        "2027-01-31", "2027-02-28",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("anchor", "feb", "mar"),
    [
        (dt.date(2026, 1, 29), "2026-02-28", "2026-03-29"),
        (dt.date(2026, 1, 30), "2026-02-28", "2026-03-30"),
        (dt.date(2026, 1, 31), "2026-02-28", "2026-03-31"),
        (dt.date(2028, 1, 29), "2028-02-29", "2028-03-29"),
        (dt.date(2028, 1, 30), "2028-02-29", "2028-03-30"),
        (dt.date(2028, 1, 31), "2028-02-29", "2028-03-31"),
    ],
)
def test_monthly_anchors_29_30_31(anchor: dt.date, feb: str, mar: str) -> None:
    c = contract(anchor)
    assert start_dates(c, 3) == [anchor.isoformat(), feb, mar]
    # Every month of the year goes back to the anchor day, or to its last day when shorter.
    for k in range(24):
        start = period_at(c, k).start
        assert start.day == min(anchor.day, calendar.monthrange(start.year, start.month)[1])


def test_quarterly_anchor_on_the_30th() -> None:
    c = contract(dt.date(2025, 11, 30), cycle="quarterly")
    assert start_dates(c, 5) == ["2025-11-30", "2026-02-28", "2026-05-30", "2026-08-30", "2026-11-30"]


def test_annual_anchor_on_29_february() -> None:
    c = contract(dt.date(2024, 2, 29), cycle="annual")
    assert start_dates(c, 5) == ["2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]
    assert period_at(c, 0).days == 365  # 2024-02-29 → 2025-02-28
    assert period_at(c, 3).days == 366  # 2027-02-28 → 2028-02-29


def test_finite_contract_truncates_its_last_period() -> None:
    c = contract(dt.date(2026, 1, 15), end=dt.date(2026, 3, 20))
    spans = [period_at(c, k) for k in range(3)]
    assert [(p.start.date().isoformat(), p.end.date().isoformat()) for p in spans] == [
        ("2026-01-15", "2026-02-15"),
        ("2026-02-15", "2026-03-15"),
        ("2026-03-15", "2026-03-20"),
    ]
    beyond = r"has 3 periods \(0..2, ending 2026-03-20\); there is no period 3"
    with pytest.raises(NotFoundError, match=beyond):
        period_at(c, 3)
    assert period_containing(c, utc(2026, 3, 19, 23, 59)).index == 2  # type: ignore[union-attr]
    assert period_containing(c, utc(2026, 3, 20)) is None
    assert period_containing(c, utc(2026, 1, 14, 23, 59)) is None


def test_end_on_a_period_boundary_adds_no_empty_period() -> None:
    c = contract(dt.date(2026, 1, 1), cycle="quarterly", end=dt.date(2027, 1, 1))
    assert start_dates(c, 4) == ["2026-01-01", "2026-04-01", "2026-07-01", "2026-10-01"]
    assert period_at(c, 3).end == local_midnight(dt.date(2027, 1, 1), UTC)
    with pytest.raises(NotFoundError):
        period_at(c, 4)


def test_once_has_a_single_period() -> None:
    c = contract(dt.date(2026, 2, 15), cycle="once", end=dt.date(2026, 3, 15))
    p = period_at(c, 0)
    assert (p.start, p.end, p.days) == (utc(2026, 2, 15), utc(2026, 3, 15), 28)
    with pytest.raises(NotFoundError, match="there is no period 1"):
        period_at(c, 1)
    assert period_containing(c, utc(2026, 3, 1)) == p
    assert period_containing(c, utc(2026, 3, 15)) is None
    assert period_containing(c, utc(2026, 2, 15) - US) is None


def test_negative_index_is_a_validation_error() -> None:
    with pytest.raises(ValidationError):
        period_at(contract(dt.date(2026, 1, 1)), -1)


# -- DST -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "expected_hours"),
    [
        ("America/Chicago", dt.date(2026, 3, 8), 23),
        ("America/Chicago", dt.date(2026, 11, 1), 25),
        ("America/Chicago", dt.date(2026, 3, 9), 24),
        ("Europe/Berlin", dt.date(2026, 3, 29), 23),
        ("Europe/Berlin", dt.date(2026, 10, 25), 25),
        ("Europe/Berlin", dt.date(2026, 3, 28), 24),
    ],
)
def test_dst_days_last_23_or_25_hours(tz: str, day: dt.date, expected_hours: int) -> None:
    c = contract(day, cycle="once", tz=tz, end=day + dt.timedelta(days=1))
    p = period_at(c, 0)
    assert (p.start.hour, p.end.hour) == (0, 0)
    assert hours(p) == expected_hours
    assert p.days == Decimal(expected_hours) / 24


def test_once_contract_across_a_dst_change() -> None:
    c = contract(dt.date(2026, 3, 7), cycle="once", tz="America/Chicago", end=dt.date(2026, 3, 10))
    p = period_at(c, 0)
    assert p.to_dict() == {
        "index": 0,
        "start": "2026-03-07T00:00:00-06:00",
        "end": "2026-03-10T00:00:00-05:00",
        "as_of": None,
    }
    assert hours(p) == 71


@pytest.mark.parametrize(
    ("tz", "march", "october"),
    [
        ("America/Chicago", ("2026-03-01T00:00:00-06:00", "2026-04-01T00:00:00-05:00"), 744),
        ("Europe/Berlin", ("2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"), 745),
    ],
)
def test_monthly_period_hours_across_dst(tz: str, march: tuple[str, str], october: int) -> None:
    c = contract(dt.date(2026, 1, 1), tz=tz)
    p = period_at(c, 2)
    assert (p.start.isoformat(), p.end.isoformat()) == march
    assert hours(p) == 31 * 24 - 1
    # October gains its hour in Berlin (25 Oct); Chicago's fall-back is on 1 November.
    assert hours(period_at(c, 9)) == october
    assert hours(period_at(c, 10)) == (30 * 24 + 1 if tz == "America/Chicago" else 30 * 24)


def test_midnight_in_a_dst_gap_starts_after_the_gap() -> None:
    # America/Santiago jumps from 00:00 to 01:00 on 6 September 2026; Havana on 8 March 2026.
    santiago = contract(dt.date(2026, 1, 6), tz="America/Santiago")
    p = period_at(santiago, 8)
    assert p.start.isoformat() == "2026-09-06T01:00:00-03:00"
    assert p.start.astimezone(UTC) == utc(2026, 9, 6, 4)
    assert period_at(santiago, 7).end == p.start
    assert period_containing(santiago, utc(2026, 9, 6, 4)) == p
    assert period_containing(santiago, utc(2026, 9, 6, 4) - US).index == 7  # type: ignore[union-attr]

    havana = contract(dt.date(2026, 3, 8), cycle="once", tz="America/Havana", end=dt.date(2026, 3, 9))
    assert period_at(havana, 0).start.isoformat() == "2026-03-08T01:00:00-04:00"
    assert hours(period_at(havana, 0)) == 23


def test_repeated_midnight_uses_the_first_occurrence() -> None:
    # Havana falls back from 01:00 to 00:00 on 1 November 2026: midnight happens twice.
    day = local_midnight(dt.date(2026, 11, 1), ZoneInfo("America/Havana"))
    assert day.isoformat() == "2026-11-01T00:00:00-04:00"
    c = contract(dt.date(2026, 11, 1), cycle="once", tz="America/Havana", end=dt.date(2026, 11, 2))
    assert hours(period_at(c, 0)) == 25


# -- boundaries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "boundary"),
    [
        ("UTC", utc(2026, 3, 1)),
        ("America/Chicago", utc(2026, 3, 1, 6)),  # 00:00 CST
        ("America/Chicago", utc(2026, 4, 1, 5)),  # 00:00 CDT
        ("Europe/Berlin", utc(2026, 3, 31, 22)),  # 1 April 00:00 CEST
    ],
)
def test_boundary_instant_belongs_to_the_later_period(tz: str, boundary: dt.datetime) -> None:
    c = contract(dt.date(2026, 1, 1), tz=tz)
    later = period_containing(c, boundary)
    earlier = period_containing(c, boundary - US)
    assert later is not None and earlier is not None
    assert later.index == earlier.index + 1
    assert later.start == boundary == earlier.end
    assert later.contains(boundary) and not earlier.contains(boundary)
    assert earlier.contains(boundary - US) and not later.contains(boundary - US)
    assert resolve_period(c, "current", boundary) == later
    assert resolve_period(c, None, boundary - US) == earlier


def test_naive_instants_are_utc() -> None:
    c = contract(dt.date(2026, 1, 1), tz="America/Chicago")
    assert period_containing(c, dt.datetime(2026, 3, 1, 5, 59)).index == 1  # type: ignore[union-attr]
    assert period_containing(c, dt.datetime(2026, 3, 1, 6, 0)).index == 2  # type: ignore[union-attr]


def test_period_containing_does_not_walk_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = periods_module.local_midnight

    def counting(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
        nonlocal calls
        calls += 1
        return real(day, tz)

    monkeypatch.setattr(periods_module, "local_midnight", counting)
    c = contract(dt.date(1970, 1, 31), tz="Europe/Berlin")
    p = period_containing(c, utc(2090, 3, 15))
    assert p is not None and p.start.date() == dt.date(2090, 2, 28)
    assert p.index == (2090 - 1970) * 12 + 1
    assert calls <= 8


# -- resolve_period ------------------------------------------------------------------------------------


def test_resolve_period_forms() -> None:
    c = contract(dt.date(2026, 1, 31), tz="America/Chicago")
    as_of = utc(2026, 4, 10, 12)
    current = resolve_period(c, None, as_of)
    assert current.start.date() == dt.date(2026, 3, 31)
    assert resolve_period(c, "current", as_of) == current
    assert resolve_period(c, " Current ", as_of) == current
    assert resolve_period(c, "previous", as_of) == period_at(c, current.index - 1)
    assert resolve_period(c, "0", as_of) == period_at(c, 0)
    assert resolve_period(c, "7", as_of) == period_at(c, 7)  # a future period is fine
    assert resolve_period(c, "2026-02-28", as_of) == period_at(c, 1)
    assert resolve_period(c, "2026-02-27", as_of) == period_at(c, 0)


def test_resolve_current_before_the_start() -> None:
    c = contract(dt.date(2026, 1, 31), tz="America/Chicago")
    with pytest.raises(NotFoundError, match="starts on 2026-01-31"):
        resolve_period(c, None, utc(2026, 1, 31, 5, 59))
    assert resolve_period(c, None, utc(2026, 1, 31, 6)).index == 0


def test_resolve_previous_of_the_first_period() -> None:
    c = contract(dt.date(2026, 1, 1))
    with pytest.raises(NotFoundError, match="no period before its first"):
        resolve_period(c, "previous", utc(2026, 1, 20))


def test_resolve_after_a_finite_contract_ends() -> None:
    c = contract(dt.date(2026, 1, 15), end=dt.date(2026, 3, 20))
    late = utc(2027, 6, 1)
    assert resolve_period(c, None, late).index == 2
    assert resolve_period(c, "previous", late).index == 1
    once = contract(dt.date(2026, 1, 1), cycle="once", end=dt.date(2026, 2, 1))
    assert resolve_period(once, None, late).index == 0
    with pytest.raises(NotFoundError, match="no period containing 2026-04-01"):
        resolve_period(c, "2026-04-01", late)
    with pytest.raises(NotFoundError):
        resolve_period(c, "3", late)


@pytest.mark.parametrize("spec", ["last", "-1", "1.5", "2026-13-01", "2026/03/01", ""])
def test_resolve_rejects_unknown_forms(spec: str) -> None:
    with pytest.raises(ValidationError) as info:
        resolve_period(contract(dt.date(2026, 1, 1)), spec, utc(2026, 5, 1))
    assert "'current', 'previous', a period index" in info.value.message
    assert "YYYY-MM-DD" in info.value.message


# -- Period and parse_as_of ------------------------------------------------------------------------------


def test_period_to_dict_renders_as_of_in_the_contract_zone() -> None:
    p = period_at(contract(dt.date(2026, 1, 1), tz="America/Chicago"), 2)
    assert p.to_dict(utc(2026, 3, 10, 12)) == {
        "index": 2,
        "start": "2026-03-01T00:00:00-06:00",
        "end": "2026-04-01T00:00:00-05:00",
        "as_of": "2026-03-10T07:00:00-05:00",
    }


def test_period_days_and_elapsed_days() -> None:
    p = period_at(contract(dt.date(2026, 1, 1), tz="Europe/Berlin"), 2)
    assert p.days == Decimal(743) / 24
    assert p.elapsed_days(utc(2026, 2, 1)) == 0
    assert p.elapsed_days(utc(2026, 3, 2, 23)) == 2  # 3 March 00:00 CET
    assert p.elapsed_days(utc(2026, 5, 1)) == p.days


def test_parse_as_of() -> None:
    assert parse_as_of("2026-03-01") == utc(2026, 3, 1)
    assert parse_as_of("2026-03-01T12:00:00Z") == utc(2026, 3, 1, 12)
    assert parse_as_of("2026-03-01T12:00:00") == utc(2026, 3, 1, 12)
    assert parse_as_of(" 2026-03-01 12:00:00.5 ") == utc(2026, 3, 1, 12, 0, 0, 500000)
    offset = parse_as_of("2026-03-01T06:00:00-06:00")
    assert offset == utc(2026, 3, 1, 12) and offset.utcoffset() == dt.timedelta(hours=-6)
    chicago = parse_as_of("2026-03-01", default_tz="America/Chicago")
    assert chicago.isoformat() == "2026-03-01T00:00:00-06:00"
    assert parse_as_of("2026-03-01T12:00", default_tz="America/Chicago") == utc(2026, 3, 1, 18)
    # A naive wall time inside the spring-forward gap becomes a real instant.
    assert parse_as_of("2026-03-08T02:30", default_tz="America/Chicago") == utc(2026, 3, 8, 8, 30)


def test_parse_as_of_now() -> None:
    before = dt.datetime.now(UTC)
    for value in (None, "now"):
        now = parse_as_of(value)
        assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)
        assert before <= now <= dt.datetime.now(UTC)


@pytest.mark.parametrize("junk", ["yesterday", "2026-02-30", "2026-03-01T25:00", "12", ""])
def test_parse_as_of_rejects_junk(junk: str) -> None:
    with pytest.raises(ValidationError, match="ISO 8601"):
        parse_as_of(junk)


def test_parse_as_of_rejects_a_bad_zone() -> None:
    with pytest.raises(ValidationError, match="Mars/Base"):
        parse_as_of("2026-03-01", default_tz="Mars/Base")


# -- invariants ------------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "America/Chicago",
    "Europe/Berlin",
    "America/Santiago",  # DST gap at midnight
    "America/Havana",  # gap and repeated midnight
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +12:45/+13:45
    "Pacific/Apia",  # skipped 30 Dec 2011 entirely
    "America/St_Johns",
]

contracts = st.builds(
    contract,
    start=st.dates(min_value=dt.date(2005, 1, 1), max_value=dt.date(2030, 12, 31)),
    cycle=st.sampled_from(["monthly", "quarterly", "annual"]),
    tz=st.sampled_from(ZONES),
)
instants = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2060, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(c=contracts, t=instants)
@example(c=Contract(id="x", owner="o", start=dt.date(2005, 9, 6), cycle="annual",
                    timezone="America/Santiago"),
         t=dt.datetime(2044, 1, 1, tzinfo=UTC))  # a period starting inside a DST gap
def test_period_containing_contains_the_instant(c: Contract, t: dt.datetime) -> None:
    p = period_containing(c, t)
    first = period_at(c, 0)
    if t < first.start:
        assert p is None
        return
    assert p is not None and p.contains(t)
    assert p == period_at(c, p.index)
    # The instant just before the period's start belongs to the previous period.
    before = period_containing(c, p.start.astimezone(UTC) - US)  # UTC: wall-clock maths breaks in a DST gap
    assert (before is None) if p.index == 0 else (before is not None and before.index == p.index - 1)


def nominal_start(c: Contract, k: int) -> dt.date:
    """The calendar date period k starts on, computed independently of the module."""
    months = {"monthly": 1, "quarterly": 3, "annual": 12}[c.cycle] * k
    year = c.start.year + (c.start.month - 1 + months) // 12
    month = (c.start.month - 1 + months) % 12 + 1
    return dt.date(year, month, min(c.start.day, calendar.monthrange(year, month)[1]))


@settings(max_examples=200, deadline=None)
@given(c=contracts, k=st.integers(min_value=0, max_value=300))
def test_periods_are_contiguous_and_increasing(c: Contract, k: int) -> None:
    a, b = period_at(c, k), period_at(c, k + 1)
    assert a.start.astimezone(UTC) < a.end.astimezone(UTC)
    assert a.end.astimezone(UTC) == b.start.astimezone(UTC)
    assert b.start.astimezone(UTC) < b.end.astimezone(UTC)
    # A period starts at the first instant of its nominal date in the contract's zone: local
    # midnight, or the end of a DST gap that swallowed midnight.
    day = nominal_start(c, k)
    assert (a.start.astimezone(UTC) - US).astimezone(c.zone).date() < day <= a.start.astimezone(c.zone).date()
    if a.start.date() == day:
        assert a.start.time() < dt.time(3)


@settings(max_examples=200, deadline=None)
@given(
    c=contracts,
    length=st.integers(min_value=1, max_value=2000),
    t=instants,
)
def test_finite_contracts_cover_exactly_start_to_end(c: Contract, length: int, t: dt.datetime) -> None:
    finite = contract(c.start, c.cycle, c.timezone, end=c.start + dt.timedelta(days=length))
    begin = local_midnight(finite.start, finite.zone)
    stop = local_midnight(finite.end, finite.zone)  # type: ignore[arg-type]
    p = period_containing(finite, t)
    assert (p is not None) == (begin <= t < stop)
    if p is not None:
        assert p.contains(t) and p.end <= stop
    last = resolve_period(finite, None, stop + dt.timedelta(days=400))
    assert last.end == stop
    with pytest.raises(NotFoundError):
        period_at(finite, last.index + 1)
