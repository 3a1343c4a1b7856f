"""CSV output, the only CSV writer of usagectl (SPEC §7; docs/cli.md "CSV").

Safe for spreadsheets (OWASP CSV injection):

* a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
  ``'`` so a spreadsheet shows it instead of evaluating it;
* a cell holding a line break (CR, LF or CRLF) is always quoted — Python's ``csv`` module with
  ``\\n`` line endings leaves a bare CR unquoted, and LibreOffice then splits the row there —
  and every line after a break that starts with ``=``, ``+``, ``-``, ``@`` or tab gets the
  ``'`` too, so even a reader that splits rows at a bare CR never sees a formula.

Numbers are never prefixed, so a negative number stays a number; they are written by
:func:`usagectl.renderers.numbers.number_text`, exactly as in JSON. Lists and objects become one
cell of JSON (objects with sorted keys). Columns equal the JSON keys (nested objects joined with
``_``) and are fixed per view: they never depend on the data.

:func:`chunks` writes rows given as an iterator (the log's events, ``rejects``) a batch of whole
lines at a time, with the same text as :func:`render`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from usagectl.renderers.jsonout import inline
from usagectl.renderers.numbers import number_text

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LINE_FORMULA_START = ("=", "+", "-", "@", "\t")
_BREAK = re.compile(r"(\r\n|\r|\n)")
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def neutralise(text: str) -> str:
    """The OWASP ``'`` before a formula start: at the cell's start and after every line break."""
    if "\r" in text or "\n" in text:
        parts = _BREAK.split(text)
        for i in range(2, len(parts), 2):
            if parts[i].startswith(_LINE_FORMULA_START):
                parts[i] = "'" + parts[i]
        text = "".join(parts)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return text


def cell(value: Any) -> str:
    """One CSV cell's text (before quoting)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return number_text(value) or ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return inline(list(value))
    if isinstance(value, dict):
        return inline(value, sort_keys=True)
    return neutralise(str(value))


def _quoted(text: str) -> str:
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _line(cells: Iterable[str]) -> str:
    out = [_quoted(c) for c in cells]
    if out == [""]:
        out = ['""']  # a lone empty field would read back as a blank line
    return ",".join(out) + "\n"


def lines(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> Iterator[str]:
    """The header, then one line per row, each ending with ``\\n``."""
    yield _line(cell(c) for c in columns)
    for row in rows:
        yield _line(cell(row.get(c)) for c in columns)


def render(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows → CSV text with a header; ``\\n`` line endings for byte-stable output."""
    return "".join(lines(rows, columns))


#: Characters of CSV text gathered before :func:`chunks` hands them on.
CHUNK_CHARS = 1 << 16


class StreamRows(Iterator[dict[str, Any]]):
    """The rows of a streamed result (:class:`usagectl.store.streaming.Batches`) with the
    values of ``fixed`` in every row (``{**fixed, **row}``): :func:`chunks` writes them a
    record batch at a time (:mod:`usagectl.renderers.columnar`); taken one by one they are
    those dicts. ``on_rows`` is told how many rows each batch wrote."""

    def __init__(self, stream: Any, fixed: dict[str, Any]) -> None:
        self.stream, self.fixed = stream, fixed
        self.on_rows: Callable[[int], None] | None = None

    def __next__(self) -> dict[str, Any]:
        row = {**self.fixed, **flatten(next(self.stream), keep=JSON_CELLS)}
        if self.on_rows is not None:
            self.on_rows(1)
        return row


def _stream_chunks(rows: StreamRows, columns: Sequence[str]) -> Iterator[str]:
    from usagectl.renderers.columnar import csv_lines

    header = _line(cell(c) for c in columns)
    for text, n in csv_lines(rows.stream, columns, rows.fixed):
        if rows.on_rows is not None:
            rows.on_rows(n)
        yield header + text
        header = ""
    if header:
        yield header


def chunks(rows: Iterable[dict[str, Any]], columns: Sequence[str], size: int = CHUNK_CHARS
           ) -> Iterator[str]:
    """:func:`render`'s text in pieces of whole lines, about ``size`` characters each; an
    iterator of rows is consumed as the pieces are taken (a streamed result's a record batch
    at a time, each batch one piece)."""
    from usagectl.store.streaming import Batches

    if isinstance(rows, Batches):
        rows = StreamRows(rows, {})
    if isinstance(rows, StreamRows) and rows.stream.untouched:
        yield from _stream_chunks(rows, columns)
        return
    buf: list[str] = []
    n = 0
    for text in lines(rows, columns):
        buf.append(text)
        n += len(text)
        if n >= size:
            yield "".join(buf)
            buf, n = [], 0
    if buf:
        yield "".join(buf)


def flatten(d: dict[str, Any], prefix: str = "", keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Nested objects become ``parent_child`` keys; the keys in ``keep`` stay one (JSON) cell."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and prefix + k not in keep:
            out.update(flatten(v, f"{prefix}{k}_", keep))
        else:
            out[prefix + k] = v
    return out


# -- the columns of each view: fixed, whatever the data ----------------------------------------

HEAD = ("contract_id", "period_index", "period_start", "period_end", "as_of")
#: Where each report view keeps its rows.
VIEW_ITEMS = {"consolidated": "meters", "users": "users", "daily": "days", "log": "events",
              "series": "series", "top": "rows", "requests": "rows", "plan": "meters",
              "tokens": "rows"}
#: Objects whose keys come from the data: one JSON cell with sorted keys, not one column each.
JSON_CELLS = frozenset({"requests_failed_by_error_code", "failed_by_error_code"})


def _consolidated_columns() -> list[str]:
    from usagectl.contracts.model import SUM_FIELDS

    return ["name", "aggregate", "unit", "billed_on", "owner_total", "user_total", "overlap",
            "billed", "limit", "included", "remaining", "percent_used", "overage",
            "overage_units", "overage_amount_cents", "status", "projection_daily_average",
            "projection_projected", "projection_will_exceed_limit", "projection_exceeds_on",
            "projection_trending", "events", "last_14_days", "unlinked_operations", "late_events",
            *(f"fields_{f}" for f in SUM_FIELDS),
            "requests_total", "requests_successful", "requests_failed",
            "requests_failed_by_error_code", "requests_avg_response_time_ms"]


def _log_columns() -> list[str]:
    from usagectl.reports.log import LOG_FIELDS

    return ["ts", *LOG_FIELDS, "new_user", "new_dataset", "new_indicators"]


def view_columns(view: str, meters: Sequence[str]) -> list[str]:
    """The CSV columns of a report view: fixed per view and the contract's meters."""
    if view == "consolidated":
        body = _consolidated_columns()
    elif view == "users":
        body = ["user_id", "org_id", *(f"meters_{m}" for m in meters), "events", "first_seen",
                "last_seen"]
    elif view == "daily":
        body = ["date", *(f"meters_{m}_{level}" for m in meters for level in ("owner", "user"))]
    elif view == "log":
        body = _log_columns()
    elif view == "series":
        body = ["bucket", "start", *(f"meters_{m}" for m in meters)]
    elif view == "top":
        body = ["meter", "group_by", "key", "value", "events"]
    elif view == "requests":
        from usagectl.reports.requests import FIGURES

        body = ["group_by", "key", *FIGURES]
    elif view == "tokens":  # the default grouping's; a doc's own: renderers.tokens_out
        from usagectl.renderers.tokens_out import tokens_columns
        from usagectl.reports.tokens import DEFAULT_GROUP

        return tokens_columns(DEFAULT_GROUP)
    else:
        raise ValueError(f"unknown view {view!r}")
    return [*HEAD, *body]


def view_rows(view: str, doc: dict[str, Any], meters: Sequence[str]
              ) -> tuple[list[dict[str, Any]] | Iterator[dict[str, Any]], list[str]]:
    """A report view as CSV rows whose columns are the JSON keys (nested objects joined with _).

    Items given as an iterator (a streamed log) give an iterator of rows, made as it is read.
    """
    if view == "plan":  # rows of two kinds: meters and plans (usagectl.renderers.plan_out)
        from usagectl.renderers.plan_out import plan_rows

        return plan_rows(doc)
    if view == "tokens":
        from usagectl.renderers.tokens_out import tokens_rows

        return tokens_rows(doc)
    p = doc["period"]
    head = {"contract_id": doc["contract"]["id"], "period_index": p["index"],
            "period_start": p["start"], "period_end": p["end"], "as_of": p["as_of"]}
    # Top-level scalars of the document that describe every row (series' bucket, top's meter).
    shared = {k: doc[k] for k in ("bucket", "meter", "group_by") if k in doc}

    def row_of(item: dict[str, Any]) -> dict[str, Any]:
        return {**head, **shared, **flatten(item, keep=JSON_CELLS)}

    items = doc.get(VIEW_ITEMS[view]) or []
    columns = view_columns(view, meters)
    if view == "requests" and doc["group_by"] is None:
        items = [doc["summary"]]  # not grouped: the one row is the summary (key empty)
    if view == "series" and doc.get("group_by") is not None:  # --group-by product|operation
        at = columns.index("start")
        columns[at:at] = ["group_by", "group"]
    from usagectl.store.streaming import Batches

    if isinstance(items, Batches) and items.untouched:
        return StreamRows(items, {**head, **shared}), columns
    rows = (row_of(item) for item in items) if isinstance(items, Iterator) else [
        row_of(item) for item in items]
    return rows, columns


USAGE_KEYS = ("contract", "meter", "tier", "used", "included", "overage", "overage_amount_cents",
              "period_start", "period_end", "tokens_used", "tokens_included", "tokens_overage")
ALERT_KEYS = ("contract", "owner", "meter", "status", "billed", "limit", "percent_used",
              "projected", "will_exceed_limit", "exceeds_on", "period_end")
OVERLAP_KEYS = ("user_id", "area", "exclusive_area", "shared_area")
RECONCILE_KEYS = ("key", "ours", "theirs", "difference", "within_tolerance", "only_in")
#: ``report --view users --detail``: one row per user × value, then per organisation × value.
DETAIL_KEYS = ("level", "user_id", "org_id", "meter", "field", "value", "events", "first_seen",
               "last_seen")


def detail_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The users detail flat: a row per user and value of each listed meter (a user without
    any value: one row with ``meter`` empty, so every user of the page is there), then a row
    per organisation and value (``level`` org, ``user_id`` empty)."""
    p = doc["period"]
    head = {"contract_id": doc["contract"]["id"], "period_index": p["index"],
            "period_start": p["start"], "period_end": p["end"], "as_of": p["as_of"]}
    fields = {d["meter"]: d["field"] for d in doc["detail_meters"]}
    rows: list[dict[str, Any]] = []
    for level, items in (("user", doc["users"]), ("org", doc["orgs"])):
        for it in items:
            who = {"level": level, "user_id": it["user_id"] if level == "user" else None,
                   "org_id": it["org_id"]}
            before = len(rows)
            for meter, values in it["detail"].items():
                rows += [{**head, **who, "meter": meter, "field": fields[meter], **v}
                         for v in values]
            if level == "user" and len(rows) == before:
                rows.append({**head, **who})
    return rows, [*HEAD, *DETAIL_KEYS]


def rows_of(kind: str, doc: Any, meters: Sequence[str] = ()
            ) -> tuple[Iterable[dict[str, Any]], list[str]]:
    """(rows, columns) of any document that has a CSV form."""
    if kind in VIEW_ITEMS:
        return view_rows(kind, doc, meters)
    if kind == "users-detail":
        return detail_rows(doc)
    if kind == "range":  # report --from/--to, consolidated
        from usagectl.renderers.range_out import range_rows

        return range_rows(doc)
    if kind == "overlap":
        return doc["users"], list(OVERLAP_KEYS)
    if kind == "reconcile":
        return doc["differences"], list(RECONCILE_KEYS)
    if kind == "usage":
        return doc, list(USAGE_KEYS)
    if kind == "alerts":
        return doc, list(ALERT_KEYS)
    raise ValueError(f"no CSV form for {kind!r}")
