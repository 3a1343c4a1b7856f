"""Which events a contract's meters counted (SPEC §5.2 log, §7 ``users``, ``events_counted``).

One definition shared by the consolidated counts, the users view's ``events``, the consumption
log and ``late_events``, so that they agree with each other and with each meter's ``events``:

* ``count``, ``sum`` and ``distinct`` meters count the events their filters select;
* a ``unique_area`` meter counts the events whose geometry it counts
  (:func:`usagectl.meters.unique_area._event_sql`): never a ``delete``, never an event without a
  geometry; an audit-mode boundary processed before the period, or an ``active`` boundary carried
  over from an earlier period, is counted; with ``derive_operations``, the operations that got an
  area are counted and those that got none are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from usagectl.contracts import Meter
from usagectl.meters.select import Window, meter_filter


def counted_where(con: duckdb.DuckDBPyConnection, meters: tuple[Meter, ...], window: Window,
                  values: Mapping[str, Any] | None = None, alias: str = "e"
                  ) -> tuple[str, list[Any]]:
    """SQL conditions on ``events AS alias`` true for the events any of ``meters`` counted.

    ``values`` (meter name → computed value) gives the operations a ``derive_operations`` meter
    linked to an area; without it they are derived again.
    """
    p = alias + "."
    parts: list[str] = []
    params: list[Any] = []
    for m in meters:
        if m.aggregate != "unique_area":
            where, more = meter_filter(m, window, alias=alias)
            parts.append(f"({where})")
            params += more
            continue
        from usagectl.meters.unique_area import _event_sql

        sql, more = _event_sql(m, window)
        parts.append(f"{p}event_id IN (SELECT event_id FROM ({sql}))")
        params += more
        if m.derive_operations:
            value = (values or {}).get(m.name)
            if value is not None:
                ids = list(value.derived_event_ids)
            else:
                from usagectl.meters.operations import derive_operations

                ids = derive_operations(con, m, window).event_ids
            if ids:
                parts.append(f"{p}event_id IN (SELECT unnest(?))")
                params.append(ids)
    if not parts:
        return "false", []
    # Event ids are unique within an owner only: every condition is the contract owner's.
    return f"{p}owner_id = ? AND ({' OR '.join(parts)})", [window.contract.owner, *params]
