"""The tokens view (``report --view tokens``): tokens per file, per conversation, per product.

The v2 usage API's per-file and per-conversation token reports (SPEC §5.3: ``resource_id`` = per
file, ``session_id`` = per conversation). docs/tokens.md is the user's description.

**Which events.** The token events of the contract's owner in the window (period, ``--as-of``,
``--as-ingested-at``, ``--user``, ``--from/--to`` as the window's period clipped to the range):
events that carry at least one of ``input_tokens``, ``output_tokens``, ``thinking_tokens`` —
a boundary or a request without any token field is not an item of this view. Successful events
only, as every meter counts by default; ``--meter M`` (repeatable) narrows them to the events
M's own filters select (products, endpoints, operations, required fields, and failed events
when M says ``include_failed``).

**Items.** One per value of the ``--group-by`` column (``resource_id``, ``session_id``, or
``product``, the default): ``input_tokens``, ``output_tokens``, ``thinking_tokens`` (a missing
field adds 0), ``total_tokens`` (their sum), the number of events (``message_count`` for a
conversation, ``events`` otherwise), ``first_seen``/``last_seen`` (in the contract's zone) and
``label``: with ``--label KEY``, the value of the events' extra column ``KEY`` (kept in
``attributes``) from the item's **most recent event where it is not blank** (latest ``ts``, then
largest ``event_id``), else ``null``. Events without a value of the group column are one item
whose key is ``null``, listed last, so the items always add up to the whole range.

**Order and pages.** Newest first: ``last_seen`` descending, ties by key ascending (code-point
order), the ``null`` item last — a total order, so ``--limit/--offset`` pages never overlap nor
skip an item. ``page_totals`` are the figures of the listed items, ``totals`` those of every
item of the range; ``total_count`` counts the items. Everything is computed in DuckDB (exact
integer sums) with bound values; identifiers only from :data:`TOKEN_GROUPS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb

from usagectl.meters.select import Window, meter_conditions, window_conditions

#: The ``--group-by`` values of the tokens view (identifiers: only from this list).
TOKEN_GROUPS = ("resource_id", "session_id", "product")
#: The grouping without ``--group-by``: tokens per product (processing vs chat).
DEFAULT_GROUP = "product"
TOKEN_FIELDS = ("input_tokens", "output_tokens", "thinking_tokens")
#: The name of the events count of an item and of the totals, per grouping.
COUNT_KEY = {"session_id": "message_count"}


def count_key(group_by: str) -> str:
    """``message_count`` for a conversation, ``events`` otherwise."""
    return COUNT_KEY.get(group_by, "events")


def row_keys(group_by: str) -> tuple[str, ...]:
    """The keys of one item, in order (the JSON keys and the CSV columns)."""
    return (group_by, "label", *TOKEN_FIELDS, "total_tokens", count_key(group_by), "first_seen",
            "last_seen")


def total_keys(group_by: str) -> tuple[str, ...]:
    """The keys of ``page_totals`` and ``totals``."""
    return (*TOKEN_FIELDS, "total_tokens", count_key(group_by))


def attribute_pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of a top-level attribute: any key, bound as a value."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def tokens_where(window: Window, meter_names: list[str] | None = None) -> tuple[str, list[Any]]:
    """SQL conditions on ``events`` for the token events the view covers, and their parameters."""
    conds, params = window_conditions(window)
    conds.append("(" + " OR ".join(f"{f} IS NOT NULL" for f in TOKEN_FIELDS) + ")")
    if meter_names:
        parts = []
        for name in meter_names:
            own, more = meter_conditions(window.contract.meter(name))
            parts.append("(" + (" AND ".join(own) or "true") + ")")
            params += more
        conds.append("(" + " OR ".join(parts) + ")")
    else:
        conds.append("succeeded")
    return " AND ".join(conds), params


def _items_sql(where: str, group_by: str, label: str | None) -> tuple[str, list[Any]]:
    """One row per item: key, label, the three sums, total, events, first and last seen."""
    if group_by not in TOKEN_GROUPS:  # identifiers only from the allowlist
        raise ValueError(f"cannot group tokens by {group_by!r}")
    sums = ", ".join(f"coalesce(sum({f}), 0) AS {f}" for f in TOKEN_FIELDS)
    total = " + ".join(f"coalesce(sum({f}), 0)" for f in TOKEN_FIELDS)
    if label is None:
        label_sql, lbl, params = "CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)", []
    else:
        label_sql = "arg_max(lbl, (ts, event_id)) FILTER (WHERE trim(lbl) <> '')"
        lbl, params = "json_extract_string(attributes, ?)", [attribute_pointer(label)]
    return (f"SELECT k, {label_sql} AS label, {sums}, {total} AS total_tokens, count(*) AS n, "
            f"min(ts) AS first_seen, max(ts) AS last_seen FROM ("
            f"SELECT {group_by} AS k, ts, event_id, {', '.join(TOKEN_FIELDS)}, {lbl} AS lbl "
            f"FROM events WHERE {where}) GROUP BY k", params)


#: The items' order: newest first, ties by key, the item without a key last.
ORDER = "ORDER BY k IS NULL, last_seen DESC, k ASC"


def tokens_view(con: duckdb.DuckDBPyConnection, window: Window,
                meter_names: list[str] | None = None, group_by: str | None = None,
                label: str | None = None, limit: int | None = None, offset: int = 0, *,
                batch_size: int | None = None) -> dict[str, Any]:
    """The view's document: header, ``meters``, ``group_by``, ``label_from``, ``rows`` (one
    page), ``total_count``, ``limit``, ``offset``, ``has_more``, ``page_totals``, ``totals``.

    ``batch_size`` makes ``rows`` an iterator fetching that many items at a time from DuckDB
    (the totals are computed before it starts: nothing else may run on ``con`` until it is
    consumed).
    """
    from usagectl.reports.views import _header

    group_by = group_by or DEFAULT_GROUP
    if limit is not None and limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    names = [window.contract.meter(n).name for n in meter_names or []]
    where, params = tokens_where(window, names)
    items, item_params = _items_sql(where, group_by, label)
    all_params = [*item_params, *params]
    figures = ", ".join(f"coalesce(sum({f}), 0)" for f in (*TOKEN_FIELDS, "total_tokens", "n"))
    whole = con.execute(f"SELECT count(*), {figures} FROM ({items})", all_params).fetchone()
    total_count = int(whole[0]) if whole else 0
    page = limit if limit is not None else total_count
    part = con.execute(f"SELECT {figures} FROM ({items} {ORDER} LIMIT ? OFFSET ?)",
                       [*all_params, page, offset]).fetchone()
    keys = total_keys(group_by)
    shown = max(0, min(page, total_count - offset))
    tz = window.contract.zone

    def make(r: tuple[Any, ...]) -> dict[str, Any]:
        return {**dict(zip(row_keys(group_by)[:7], (r[0], r[1], *(int(v) for v in r[2:7])))),
                "first_seen": r[7].astimezone(tz).isoformat(),
                "last_seen": r[8].astimezone(tz).isoformat()}

    sql = f"{items} {ORDER} LIMIT ? OFFSET ?"
    rows: list[dict[str, Any]] | Iterator[dict[str, Any]]
    if batch_size is None:
        rows = [make(r) for r in con.execute(sql, [*all_params, page, offset]).fetchall()]
    else:
        from usagectl.store.streaming import run_streamed

        rows = run_streamed(con, sql, [*all_params, page, offset], make, batch_size)
    return {**_header(window), "meters": names, "group_by": group_by, "label_from": label,
            "rows": rows, "total_count": total_count, "limit": limit, "offset": offset,
            "has_more": offset + shown < total_count,
            "page_totals": {k: int(v) for k, v in zip(keys, part or (0,) * 5)},
            "totals": {k: int(v) for k, v in zip(keys, (whole or (0,) * 6)[1:])}}


def tokens_monthly(con: duckdb.DuckDBPyConnection, window: Window,
                   start: datetime | None = None, end: datetime | None = None,
                   meter_names: list[str] | None = None) -> dict[str, Any]:
    """Tokens per calendar month: the tokens view grouped by product over each month of
    ``[start, end)`` (default: the window's period) in the contract's zone.

    A range may cross contract periods, as the consolidated range does
    (:func:`usagectl.reports.ranges.consolidated_range`): a month that a period boundary cuts is
    two entries, one per period, each the tokens view of ``period ∩ month ∩ range`` — exactly
    ``report --view tokens --from A --to B`` over that piece. ``totals`` adds up the entries.
    """
    from usagectl.reports import views
    from usagectl.reports.ranges import check_order, range_plan

    c = window.contract
    names = [c.meter(n).name for n in meter_names or []]
    start = start if start is not None else window.period.start
    end = end if end is not None else window.period.end
    check_order(start, end)
    months: list[dict[str, Any]] = []
    keys = total_keys(DEFAULT_GROUP)
    totals = dict.fromkeys(keys, 0)
    for p, _, pieces in range_plan(window, start, end, "month"):
        for piece in pieces:
            a, b = piece.period.start, piece.period.end
            if b <= a:
                continue
            doc = tokens_view(con, piece, names, DEFAULT_GROUP)
            months.append({"month": a.astimezone(c.zone).strftime("%Y-%m"),
                           "period_index": p.index,
                           "from": a.astimezone(c.zone).isoformat(),
                           "to": b.astimezone(c.zone).isoformat(),
                           "products": doc["rows"], "totals": doc["totals"]})
            for k in keys:
                totals[k] += doc["totals"][k]
    out: dict[str, Any] = {"contract": views.contract_header(c),
                           "range": {"from": start.astimezone(c.zone).isoformat(),
                                     "to": end.astimezone(c.zone).isoformat()},
                           "as_of": window.as_of.astimezone(c.zone).isoformat()}
    if window.user is not None:
        out["user"] = window.user
    out.update({"meters": names, "group_by": DEFAULT_GROUP, "months": months,
                "totals": totals})
    return out
