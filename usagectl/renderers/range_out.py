"""The consolidated view over a range (``report --from/--to``, usagectl.reports.ranges) as a
table and as CSV rows: one row per meter of each period ∩ range, then of each ``--window``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.table import Table

from usagectl.renderers.console import Env
from usagectl.renderers.report_tables import fmt
from usagectl.renderers.text import safe

#: CSV columns: fixed, whatever the data holds.
RANGE_COLUMNS = ["contract_id", "range_from", "range_to", "as_of", "window", "period_index",
                 "from", "to", "name", "aggregate", "unit", "billed_on", "owner_total",
                 "user_total", "overlap", "billed", "events"]


def _items(doc: dict[str, Any]) -> Iterator[tuple[str | None, int, dict[str, Any]]]:
    for row in doc["periods"]:
        yield None, row["period"]["index"], row
    for row in doc.get("windows", []):
        yield doc["window"], row["period_index"], row


def range_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV rows: the period rows (``window`` empty), then the window rows."""
    head = {"contract_id": doc["contract"]["id"], "range_from": doc["range"]["from"],
            "range_to": doc["range"]["to"], "as_of": doc["as_of"]}
    rows = []
    for kind, index, row in _items(doc):
        for m in row["meters"]:
            rows.append({**head, "window": kind, "period_index": index, "from": row["from"],
                         "to": row["to"], **{k: m.get(k) for k in RANGE_COLUMNS[8:]}})
    return rows, RANGE_COLUMNS


def _short(instant: str) -> str:
    """A bound as its date when it is a local midnight, else date and time."""
    return instant[:10] if instant[11:19] == "00:00:00" else instant[:16]


def range_table(env: Env, doc: dict[str, Any]) -> None:
    c, r = doc["contract"], doc["range"]
    who = f" · user {safe(doc['user'])}" if doc.get("user") is not None else ""
    env.out.print(f"[bold]{safe(c['id'])}[/] · owner {safe(c['owner'])}{who} · range "
                  f"{r['from']} → {r['to']} ({safe(c['timezone'])}) · as of {doc['as_of']}",
                  soft_wrap=True)
    t = Table(title="Usage of the range" + (f", per {doc['window']}" if "window" in doc else ""),
              title_justify="left")
    for col in ("period", "from → to", "meter", "owner", "Σ users", "overlap", "events"):
        t.add_column(col, justify="left" if col in ("from → to", "meter") else "right",
                     no_wrap=col != "meter", overflow="fold", min_width=8 if col == "meter" else None)
    for n, (kind, index, row) in enumerate(_items(doc)):
        if kind is not None and n == len(doc["periods"]):
            t.add_section()  # the periods above, their --window pieces below
        span = f"{_short(row['from'])} → {_short(row['to'])}"
        for k, m in enumerate(row["meters"]):
            t.add_row(f"#{index}" if k == 0 else "", span if k == 0 else "", safe(m["name"]),
                      fmt(m["owner_total"]), fmt(m["user_total"]), fmt(m["overlap"]),
                      fmt(m["events"]))
    env.out.print(t)
    if not doc["periods"]:
        env.note("note: the range meets no period of the contract")
    env.note(f"note: {doc['note']}")
