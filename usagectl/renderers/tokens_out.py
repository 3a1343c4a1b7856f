"""The tokens view (``report --view tokens``, usagectl.reports.tokens) as a table and as CSV rows.

CSV: one row per listed item; the columns are the JSON keys of an item after the contract head,
``group_by`` and ``label_from`` — fixed for a grouping, whatever the data holds (the key column
is named after the group column, the count ``message_count`` for a conversation).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich.table import Table

from usagectl.renderers.console import Env
from usagectl.renderers.report_tables import fmt, header
from usagectl.renderers.tables import print_first_fitting
from usagectl.renderers.text import safe

HEAD = ("contract_id", "period_index", "period_start", "period_end", "as_of")


def tokens_columns(group_by: str) -> list[str]:
    """The CSV columns of the tokens view grouped by ``group_by``."""
    from usagectl.reports.tokens import row_keys

    return [*HEAD, "group_by", "label_from", *row_keys(group_by)]


def tokens_rows(doc: dict[str, Any]) -> tuple[Iterable[dict[str, Any]], list[str]]:
    """(rows, columns); rows given as an iterator (streamed) stay an iterator."""
    p = doc["period"]
    head = {"contract_id": doc["contract"]["id"], "period_index": p["index"],
            "period_start": p["start"], "period_end": p["end"], "as_of": p["as_of"],
            "group_by": doc["group_by"], "label_from": doc["label_from"]}
    items = doc["rows"]
    rows: Iterable[dict[str, Any]]
    if isinstance(items, Iterator):
        rows = ({**head, **item} for item in items)
    else:
        rows = [{**head, **item} for item in items]
    return rows, tokens_columns(doc["group_by"])


#: Table headings of the group columns.
TITLES = {"resource_id": "file", "session_id": "conversation", "product": "product"}


def tokens_table(env: Env, doc: dict[str, Any]) -> None:
    """One row per listed item, newest first, then the page's total and the range's."""
    from usagectl.reports.tokens import count_key

    header(env, doc)
    group, count = doc["group_by"], count_key(doc["group_by"])
    labelled = doc["label_from"] is not None
    figures = ("input_tokens", "output_tokens", "thinking_tokens", "total_tokens", count)

    def build(times: tuple[str, ...]) -> Table:
        t = Table(title=f"Tokens per {TITLES[group]}", title_justify="left")
        t.add_column(group, overflow="fold", min_width=10)
        if labelled:
            t.add_column(safe(doc["label_from"]), overflow="fold", min_width=10)
        for col in ("input", "output", "thinking", "total",
                    "messages" if count == "message_count" else "events", *times):
            t.add_column(col, justify="left" if col in times else "right", no_wrap=True)
        for r in doc["rows"]:
            key = safe(r[group]) if r[group] is not None else "(none)"
            t.add_row(key, *([safe(r["label"] or "")] if labelled else []),
                      *(fmt(r[f]) for f in figures),
                      *(_minute(r[k.replace(" ", "_")]) for k in times))
        for name, totals in (("Σ page", doc["page_totals"]), ("Σ range", doc["totals"])):
            t.add_row(f"[bold]{name}[/]", *([""] if labelled else []),
                      *(f"[bold]{fmt(totals[f])}[/]" for f in figures), *("" for _ in times))
        return t

    variants = [("first seen", "last seen"), ("last seen",), ()]
    print_first_fitting(env, [lambda v=v: build(v) for v in variants],  # type: ignore[misc]
                        ["", "first seen", "first and last seen"])
    shown = doc["offset"] + len(doc["rows"])
    if doc["has_more"]:
        env.note(f"{doc['total_count'] - shown:,} more items; use --offset {shown}, or "
                 "--format csv or json for every item")


def _minute(instant: str) -> str:
    """An ISO instant in the contract's zone as ``YYYY-MM-DD HH:MM`` (the header names the zone)."""
    return instant[:10] + " " + instant[11:16]
