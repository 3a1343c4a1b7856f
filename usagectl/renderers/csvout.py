"""CSV output safe for spreadsheets (SPEC §7, OWASP CSV injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with
``'`` so a spreadsheet shows it instead of evaluating it. Numbers are never touched, so a
negative number stays a number. Columns equal the JSON keys: :func:`rows_of` flattens each
command's document into rows (nested objects joined with ``_``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """One CSV cell: neutralised text, untouched numbers, ISO dates, JSON for lists/dicts."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    text = str(value)
    if text.startswith(_DANGEROUS):
        return "'" + text
    return text


def render(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows → CSV text with a header; ``\\n`` line endings for byte-stable output."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([cell(row.get(c)) for c in columns])
    return buf.getvalue()


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become ``parent_child`` keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}_"))
        else:
            out[prefix + k] = v
    return out


#: Where each report view keeps its rows.
VIEW_ITEMS = {"consolidated": "meters", "users": "users", "daily": "days", "log": "events",
              "series": "series", "top": "rows"}


def view_rows(view: str, doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """A report view as CSV rows whose columns are the JSON keys (nested objects joined with _)."""
    head = {"contract_id": doc["contract"]["id"], "period_index": doc["period"]["index"],
            "period_start": doc["period"]["start"], "period_end": doc["period"]["end"],
            "as_of": doc["period"]["as_of"]}
    items = doc.get(VIEW_ITEMS[view]) or []
    rows = [{**head, **flatten(item)} for item in items]
    cols = list(head)
    for r in rows:
        cols += [k for k in r if k not in cols]
    return rows, cols


USAGE_KEYS = ("contract", "meter", "tier", "used", "included", "overage", "overage_amount_cents",
              "period_start", "period_end")
ALERT_KEYS = ("contract", "owner", "meter", "status", "billed", "limit", "percent_used",
              "projected", "will_exceed_limit", "exceeds_on", "period_end")
OVERLAP_KEYS = ("user_id", "area", "exclusive_area", "shared_area")
RECONCILE_KEYS = ("key", "ours", "theirs", "difference", "within_tolerance", "only_in")


def rows_of(kind: str, doc: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, columns) of any document that has a CSV form."""
    if kind in VIEW_ITEMS:
        return view_rows(kind, doc)
    if kind == "overlap":
        return doc["users"], list(OVERLAP_KEYS)
    if kind == "reconcile":
        return doc["differences"], list(RECONCILE_KEYS)
    if kind == "usage":
        return doc, list(USAGE_KEYS) + [k for k in ("tokens_used", "tokens_included", "tokens_overage")
                                        if any(k in r for r in doc)]
    if kind == "alerts":
        return doc, list(ALERT_KEYS)
    raise ValueError(f"no CSV form for {kind!r}")
