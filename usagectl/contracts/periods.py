"""Contract periods and "now" (SPEC §5.5).

Period ``k`` of a contract is the half-open interval ``[start_k, start_{k+1})`` where ``start_k``
is local midnight, in the contract's time zone, of the date ``contract.start + k·cycle``:

* monthly/quarterly/annual add 1/3/12 calendar months to the *anchor* (the start date), clamping
  the day to the month's length: anchored on the 31st → 28/29 Feb → 31 Mar; anchored on 29 Feb →
  28 Feb in common years and 29 Feb again in leap years. Clamping never drifts because every
  period is computed from the anchor, not from the previous period;
* ``once`` is the single period ``[start, end)``;
* a recurring contract with an ``end`` has its last period cut at ``end``, and no period starts
  at or after ``end``.

Instants are computed by converting a *local* midnight with :mod:`zoneinfo` (never by adding
``timedelta(days=1)`` to an aware datetime), so a DST day lasts 23 or 25 hours. Where local
midnight does not exist (a zone whose DST jump happens at midnight, e.g. America/Santiago or
America/Havana), the period starts at the first instant after the gap (01:00 local on those
days). Where midnight occurs twice (clocks fall back across it) the first occurrence is used.
All comparisons are made in UTC, because Python compares two datetimes that share a tzinfo by
wall-clock time, which is wrong across a DST change.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from usagectl.contracts.model import Contract
from usagectl.errors import NotFoundError, UsageError, ValidationError

UTC = dt.timezone.utc
#: Calendar months per period for the recurring cycles (SPEC §4).
CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "annual": 12}
PERIOD_SPEC_FORMS = (
    "'current', 'previous', a period index (0, 1, ...) or a date inside the period (YYYY-MM-DD)"
)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INDEX = re.compile(r"\d+")
_MICROS_PER_DAY = Decimal(86_400 * 1_000_000)


def _utc(t: dt.datetime) -> dt.datetime:
    # Project rule (SPEC §3.1): a naive timestamp means UTC.
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Period:
    """One contract period, half-open ``[start, end)``; both ends aware, in the contract's zone."""

    index: int
    start: dt.datetime
    end: dt.datetime

    @property
    def duration(self) -> dt.timedelta:
        """Elapsed time from start to end (23 h on a spring-forward day, 25 h on a fall-back day)."""
        return _utc(self.end) - _utc(self.start)

    @property
    def days(self) -> Decimal:
        """Length in days as a Decimal: elapsed seconds / 86 400 (a 23-hour day is 23/24).

        Elapsed wall time, not calendar days, so projections over a month with a DST change use
        the hours that month actually has (SPEC §5.4 projection, §5.5).
        """
        return Decimal(_micros(self.duration)) / _MICROS_PER_DAY

    def contains(self, t: dt.datetime) -> bool:
        """True when ``start <= t < end`` (naive ``t`` is UTC)."""
        return _utc(self.start) <= _utc(t) < _utc(self.end)

    def elapsed_days(self, as_of: dt.datetime) -> Decimal:
        """Days elapsed from the period start to ``as_of``, clamped to the period (SPEC §5.4)."""
        t = min(max(_utc(as_of), _utc(self.start)), _utc(self.end))
        return Decimal(_micros(t - _utc(self.start))) / _MICROS_PER_DAY

    def to_dict(self, as_of: dt.datetime | None = None) -> dict[str, Any]:
        """``{"index", "start", "end", "as_of"}``, ISO 8601 with offset in the contract's zone (SPEC §7)."""
        zone = self.start.tzinfo
        return {
            "index": self.index,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": _utc(as_of).astimezone(zone).isoformat() if as_of is not None else None,
        }


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The instant a local calendar day begins in ``tz``, as an aware datetime in ``tz`` (SPEC §5.5).

    Normally local 00:00. When 00:00 falls in a DST gap, the first instant after the gap; when it
    occurs twice, the first occurrence. The gap is detected by a round trip through UTC.
    """
    naive = dt.datetime(day.year, day.month, day.day)
    # fold=0 is the earlier of two repeated wall times, and inside a gap it uses the offset in
    # force before the transition.
    first = naive.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return first.astimezone(UTC).astimezone(tz)
    # Midnight is in a gap. The transition instant T lies in (lo, hi]: before T, wall times are
    # below midnight; from T on, above it. Transitions fall on whole seconds, so bisect seconds.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first.astimezone(UTC)
    if lo > hi:
        lo, hi = hi, lo
    lo_s, hi_s = 0, int((hi - lo).total_seconds())
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        if (lo + dt.timedelta(seconds=mid)).astimezone(tz).replace(tzinfo=None) > naive:
            hi_s = mid
        else:
            lo_s = mid + 1
    return (lo + dt.timedelta(seconds=hi_s)).astimezone(tz)


def _add_months(anchor: dt.date, months: int) -> dt.date:
    # Always from the anchor, clamping the day: 31 Jan + 1 → 28/29 Feb, 31 Jan + 2 → 31 Mar.
    year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    month = month0 + 1
    return dt.date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))


def _months(contract: Contract) -> int:
    try:
        return CYCLE_MONTHS[contract.cycle]
    except KeyError:
        raise ValidationError(
            f"contract {contract.id!r} has an unknown cycle {contract.cycle!r}",
            details={"contract": contract.id, "cycle": contract.cycle},
        ) from None


def _start_date(contract: Contract, index: int) -> dt.date:
    return _add_months(contract.start, index * _months(contract))


def _last_index(contract: Contract) -> int | None:
    """Index of the last period of a recurring contract with an end, else None."""
    if contract.end is None:
        return None
    m = _months(contract)
    elapsed = (contract.end.year - contract.start.year) * 12 + contract.end.month - contract.start.month
    k = elapsed // m + 1
    while k > 0 and _start_date(contract, k) >= contract.end:
        k -= 1
    return k


def _beyond(contract: Contract, index: int, last: int) -> NotFoundError:
    count = last + 1
    return NotFoundError(
        f"contract {contract.id!r} has {count} period{'s' if count != 1 else ''} "
        f"(0..{last}, ending {contract.end}); there is no period {index}",
        details={"contract": contract.id, "index": index, "last_index": last},
    )


def period_at(contract: Contract, index: int) -> Period:
    """Period number ``index`` (0 = the first) of ``contract`` (SPEC §5.5).

    ValidationError for a negative index; NotFoundError for an index past the contract's end
    (a ``once`` contract has only period 0). Open-ended contracts have every index.
    """
    if index < 0:
        raise ValidationError(f"period index must be 0 or more, not {index}", details={"index": index})
    tz = contract.zone
    if contract.cycle == "once":
        if contract.end is None:
            raise ValidationError(
                f"contract {contract.id!r}: cycle 'once' requires an end date",
                details={"contract": contract.id},
            )
        if index != 0:
            raise _beyond(contract, index, 0)
        return Period(0, local_midnight(contract.start, tz), local_midnight(contract.end, tz))
    last = _last_index(contract)
    if last is not None and index > last:
        raise _beyond(contract, index, last)
    try:
        start = _start_date(contract, index)
        end = _start_date(contract, index + 1)
        if contract.end is not None and end > contract.end:
            end = contract.end
        return Period(index, local_midnight(start, tz), local_midnight(end, tz))
    except (ValueError, OverflowError):
        # datetime stops at year 9999.
        raise NotFoundError(
            f"period {index} of contract {contract.id!r} is past the last supported year (9999)",
            details={"contract": contract.id, "index": index},
        ) from None


def period_containing(contract: Contract, when: dt.datetime) -> Period | None:
    """The period with ``start <= when < end``; None before the start or at/after the end (SPEC §5.5).

    Constant time: the index is estimated from the local year and month of ``when``, then moved
    by at most a step or two to absorb day clamping and DST gaps. Naive ``when`` is UTC.
    """
    t = _utc(when)
    tz = contract.zone
    if contract.cycle == "once":
        only = period_at(contract, 0)
        return only if only.contains(t) else None
    if contract.end is not None and t >= _utc(local_midnight(contract.end, tz)):
        return None

    def starts(k: int) -> dt.datetime:
        return _utc(local_midnight(_start_date(contract, k), tz))

    local = t.astimezone(tz)
    elapsed = (local.year - contract.start.year) * 12 + local.month - contract.start.month
    k = max(elapsed // _months(contract), 0)
    while k > 0 and starts(k) > t:
        k -= 1
    # t is before the end, so the period after t starts after it and this stops within a step.
    while starts(k + 1) <= t:
        k += 1
    if starts(k) > t:
        return None
    return period_at(contract, k)


def resolve_period(contract: Contract, spec: str | None, as_of: dt.datetime) -> Period:
    """The period a ``--period`` option names, relative to ``as_of`` (SPEC §5.5, §6).

    * ``None`` or ``"current"``: the period containing ``as_of``; NotFoundError if ``as_of`` is
      before the contract starts; the last period if ``as_of`` is past a finite contract's end.
    * ``"previous"``: the period before the current one; NotFoundError when there is none.
    * ``"N"`` (digits): period N (see :func:`period_at`).
    * ``"YYYY-MM-DD"``: the period containing that date's local midnight in the contract's zone.

    Anything else is a UsageError (exit 2) listing the accepted forms.
    """
    text = "current" if spec is None else spec.strip().lower()
    if text == "current":
        return _current(contract, as_of)
    if text == "previous":
        current = _current(contract, as_of)
        if current.index == 0:
            raise NotFoundError(
                f"contract {contract.id!r} has no period before its first ({current.start.date()} to "
                f"{current.end.date()})",
                details={"contract": contract.id, "current_index": 0},
            )
        return period_at(contract, current.index - 1)
    if _INDEX.fullmatch(text):
        return period_at(contract, int(text))
    if _DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise UsageError(
                f"period {spec!r} is not a valid date; expected {PERIOD_SPEC_FORMS}",
                details={"option": "--period", "period": spec,
                         "accepted": ["current", "previous", "<index>", "YYYY-MM-DD"]},
            ) from None
        try:
            found = period_containing(contract, local_midnight(day, contract.zone))
        except (ValueError, OverflowError):  # its period would end after year 9999
            raise NotFoundError(
                f"contract {contract.id!r} has no period containing {day}: periods end by the "
                "last supported year (9999)", details={"contract": contract.id,
                                                        "date": day.isoformat()}) from None
        if found is None:
            raise NotFoundError(
                f"contract {contract.id!r} has no period containing {day} "
                f"(it runs from {contract.start}{f' to {contract.end}' if contract.end else ''})",
                details={"contract": contract.id, "date": day.isoformat()},
            )
        return found
    raise UsageError(
        f"period {spec!r} is not understood; expected {PERIOD_SPEC_FORMS}",
        details={"option": "--period", "period": spec,
                 "accepted": ["current", "previous", "<index>", "YYYY-MM-DD"]},
    )


def _current(contract: Contract, as_of: dt.datetime) -> Period:
    found = period_containing(contract, as_of)
    if found is not None:
        return found
    begins = local_midnight(contract.start, contract.zone)
    if _utc(as_of) < _utc(begins):
        raise NotFoundError(
            f"contract {contract.id!r} starts on {contract.start} ({begins.isoformat()}); "
            f"as of {_utc(as_of).isoformat()} it has no current period",
            details={
                "contract": contract.id,
                "start": contract.start.isoformat(),
                "as_of": _utc(as_of).isoformat(),
            },
        )
    # Past the end of a finite contract: its last period is the one still being reported on.
    last = 0 if contract.cycle == "once" else _last_index(contract)
    return period_at(contract, last or 0)


def parse_as_of(text: str | None, default_tz: str = "UTC") -> dt.datetime:
    """Read an ``--as-of`` value into an aware datetime (SPEC §5.5).

    ``None`` or ``"now"`` → the current time in UTC. ``YYYY-MM-DD`` → that day's local midnight in
    ``default_tz`` (gap rule of :func:`local_midnight`). An ISO 8601 date-time keeps its offset
    (``Z`` is accepted); a naive one is in ``default_tz`` (UTC unless told otherwise), a wall time
    in a DST gap moving forward by the gap. Anything else is a ValidationError.
    """
    try:
        tz = zoneinfo.ZoneInfo(default_tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            f"time zone {default_tz!r} is not an IANA time zone name", details={"timezone": default_tz}
        ) from None
    if text is None or text.strip().lower() == "now":
        return dt.datetime.now(UTC)
    value = text.strip()
    try:
        if _DATE.fullmatch(value):
            return local_midnight(dt.date.fromisoformat(value), tz)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"cannot read as-of time {text!r}: expected an ISO 8601 date (2026-03-01) or date-time "
            "(2026-03-01T12:00:00Z, 2026-03-01T06:00:00-06:00), or 'now'",
            details={"value": text},
        ) from None
    if parsed.tzinfo is None:
        # Normalise through UTC so a wall time inside a DST gap becomes a real instant.
        parsed = parsed.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    return parsed
