"""``report --view users --detail``: which values each user (and organisation) accessed — the
licence API's user detail summary (docs/requests.md "Users in detail").

The users view gives each user's *count* of datasets and indicators (distinct meters); the
detail lists the values themselves. For every ``distinct`` meter of the view (``--meter`` picks
some) except one of ``user_id`` (whose list would be the user), each user gets the values the
meter counted for them, each with the events it was seen in and when first and last: a value
row per ``(user, value)`` of :func:`usagectl.meters.scan.distinct_values_sql` — the selection
the meter's own user values come from — so a user's list is exactly as long as the users view's
count for that meter, whatever the filters, the ``--from/--to`` range or ``--user`` say.

Organisations: every ``org_id`` that the counted events carry (an event without one belongs to
no organisation), with its users and, per meter, its own distinct values and their count, read
from the events that carry it — not from the user's latest org the users view shows.

Values are text, in :func:`value_order`: whole numbers (ASCII digits) first, by number
(``55, 777, 4242, 12345``), then the other values by code point; users by ``user_id``;
``--limit/--offset`` page the users (``orgs`` are always the whole range's).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from usagectl.contracts import Meter
from usagectl.errors import UsageError
from usagectl.meters.scan import distinct_values_sql
from usagectl.meters.select import Window

if TYPE_CHECKING:
    from usagectl.engines import ScalarEngine

#: Distinct fields whose values are not listed: a user's own id.
UNLISTED_FIELDS = ("user_id",)


def listed_meters(window: Window, meter_names: list[str] | None) -> tuple[Meter, ...]:
    """The distinct meters whose values the detail lists; a usage error naming the valid ones
    when the view's meters have none."""
    c = window.contract
    valid = [m.name for m in c.meters
             if m.aggregate == "distinct" and m.field not in UNLISTED_FIELDS]
    picked = [c.meter(n) for n in meter_names] if meter_names else list(c.meters)
    listed = tuple(m for m in picked if m.name in valid)
    if listed:
        return listed
    if meter_names and valid:
        raise UsageError(f"--detail lists the values of distinct meters (datasets, indicators, "
                         f"…); --meter {', '.join(meter_names)} has none: choose from "
                         f"{', '.join(valid)}", {"option": "--meter", "valid": valid})
    raise UsageError(f"--detail lists the values of distinct meters (datasets, indicators, …) "
                     f"other than of user_id; contract {c.id!r} has none",
                     {"option": "--detail", "valid": valid})


def value_order(value: str) -> tuple[int, int, str]:
    """The order values are listed in: numeric ids by number, then the rest by code point
    (``007`` and ``7`` are one number: their text orders them, so the order is total)."""
    if value.isascii() and value.isdigit():
        return (0, int(value), value)
    return (1, 0, value)


def _when(ts: datetime, window: Window) -> str:
    return ts.astimezone(window.contract.zone).isoformat()


def _items(con: duckdb.DuckDBPyConnection, m: Meter, window: Window, key: str,
           keys: list[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Per user (``key`` user_id) or organisation (``org_id``): the meter's values, sorted, each
    with its events, first and last seen. ``keys``: only these users (a page)."""
    if key not in ("user_id", "org_id"):  # an identifier: only from this list
        raise ValueError(f"cannot list by {key!r}")
    source, params = distinct_values_sql(m, window, ("org_id", "event_id"))
    if key == "user_id":
        extra = " AND list_contains(?, user_id)" if keys is not None else ""
    else:
        extra = " AND org_id IS NOT NULL"
    # An event whose list holds a value twice (964,964) is one event of that value.
    sql = (f"SELECT {key}, v, count(DISTINCT event_id), min(ts), max(ts) FROM {source} "
           f"WHERE v IS NOT NULL{extra} GROUP BY {key}, v")
    rows = con.execute(sql, params + ([keys] if keys is not None and key == "user_id" else [])
                       ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for k, v, n, first, last in sorted(rows, key=lambda r: (r[0], value_order(r[1]))):
        out.setdefault(k, []).append({"value": v, "events": int(n),
                                      "first_seen": _when(first, window),
                                      "last_seen": _when(last, window)})
    return out


def _org_users(con: duckdb.DuckDBPyConnection, meters: tuple[Meter, ...], window: Window
               ) -> dict[str, list[str]]:
    """Each organisation's users: those with a value of a listed meter in its events."""
    users: dict[str, set[str]] = {}
    for m in meters:
        source, params = distinct_values_sql(m, window, ("org_id",))
        for org, user in con.execute(
                f"SELECT DISTINCT org_id, user_id FROM {source} WHERE v IS NOT NULL AND "
                "org_id IS NOT NULL", params).fetchall():
            users.setdefault(org, set()).add(user)
    return {org: sorted(u) for org, u in users.items()}


def users_detail(con: duckdb.DuckDBPyConnection, window: Window,
                 meter_names: list[str] | None = None, limit: int | None = None,
                 offset: int = 0, *, scalars: ScalarEngine | None = None) -> dict[str, Any]:
    """The users view, paged, with each user's values of the listed meters (``detail``), and
    the organisations' (``orgs``); keys in docs/requests.md."""
    from usagectl.reports import views
    from usagectl.reports.report import page

    listed = listed_meters(window, meter_names)
    doc = page(views.users_view(con, window, meter_names, scalars=scalars), "users", limit,
               offset)
    # Only the page's users are read (every user when the page is the whole list).
    shown = (None if limit is None and not offset else [u["user_id"] for u in doc["users"]])
    per_user = {m.name: _items(con, m, window, "user_id", shown) for m in listed}
    for u in doc["users"]:
        u["detail"] = {m.name: per_user[m.name].get(u["user_id"], []) for m in listed}
    per_org = {m.name: _items(con, m, window, "org_id", None) for m in listed}
    org_users = _org_users(con, listed, window)
    orgs = [{"org_id": org, "users": org_users[org],
             "meters": {m.name: len(per_org[m.name].get(org, [])) for m in listed},
             "detail": {m.name: per_org[m.name].get(org, []) for m in listed}}
            for org in sorted(org_users)]
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "users":
            out["detail_meters"] = [{"meter": m.name, "field": m.field, "unit": m.unit_label}
                                    for m in listed]
            out["users"] = value
            out["orgs"] = orgs
        else:
            out[key] = value
    return out
