"""CSV output safe for spreadsheets (SPEC §7, OWASP CSV injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with
``'`` so a spreadsheet shows it instead of evaluating it. Numbers are never touched, so a
negative number stays a number. Columns equal the JSON keys.
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
