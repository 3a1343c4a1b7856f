"""Terminal tables of the reports and status commands (SPEC §7; STYLE.md §3).

Each function takes the plain document ``--format json`` prints and draws it with Rich: numbers
right-aligned and never cut, a total row where the figures add up, data strings escaped
(:func:`usagectl.renderers.text.safe`). The CLI never builds a table itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from rich.table import Table

from usagectl.renderers.console import Env
from usagectl.renderers.numbers import WIDE
from usagectl.renderers.tables import print_first_fitting, print_fitting
from usagectl.renderers.text import safe

STATUS_STYLE = {"ok": "green", "warning": "yellow", "exceeded": "red"}
SPARKS = "▁▂▃▄▅▆▇█"


def exact(v: int | float | Decimal) -> Decimal:
    """A number as a Decimal with its own digits: a float by its shortest form (as JSON writes
    it), so ``2.675`` is 2.675, not the binary 2.67499999…"""
    return Decimal(repr(v)) if isinstance(v, float) else Decimal(v)


def _decimal_cell(d: Decimal, decimals: int) -> str:
    """``d`` with ``decimals`` places, rounded half-up, thousands separators, no "-0.00"."""
    try:
        q = d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP, context=WIDE)
    except ArithmeticError:  # more digits than any figure has: shown as it is
        q = d
    return format(q.copy_abs() if q.is_zero() else q, ",f")


def fmt(v: Any, decimals: int = 2) -> str:
    """A number for a table cell: thousands separators, — for nothing. Integers and whole
    decimals as integers; others with ``decimals`` places, rounded half-up from the value's own
    digits (never through a binary float)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (float, Decimal)):
        if isinstance(v, float) and not math.isfinite(v):
            return "—"
        d = exact(v)
        if not d.is_finite():
            return "—"
        if isinstance(v, Decimal) and d == d.to_integral_value():
            return f"{int(d):,}"
        return _decimal_cell(d, decimals)
    try:
        d = Decimal(str(v))
    except (ArithmeticError, ValueError):
        return safe(v)
    return fmt(d, decimals) if d.is_finite() else safe(v)


def money(cents: int) -> str:
    """Integer cents as dollars, exactly: ``$1,353.39``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${_decimal_cell(Decimal(abs(cents)).scaleb(-2), 2)}"


def sparkline(values: list[Any]) -> str:
    """Daily new consumption as block characters (▁ for nothing, █ for the busiest day)."""
    if not values:
        return ""
    exacts = [exact(v) for v in values]
    top = max(exacts)
    if top <= 0:
        return SPARKS[0] * len(values)
    steps = len(SPARKS) - 1
    return "".join(SPARKS[min(steps, int((v * steps / top).quantize(Decimal(1), ROUND_HALF_UP,
                                                                    context=WIDE)))]
                   if v > 0 else SPARKS[0] for v in exacts)


def header(env: Env, doc: dict[str, Any]) -> None:
    """The line above every report table: contract, owner, period and as-of."""
    c, p = doc["contract"], doc["period"]
    who = f" · user {safe(doc['user'])}" if doc.get("user") is not None else ""  # --user
    as_of = datetime.fromisoformat(p["as_of"]).isoformat(timespec="seconds")  # keeps the offset
    env.out.print(f"[bold]{safe(c['id'])}[/] · owner {safe(c['owner'])}{who} · period #{p['index']} "
                  f"{p['start'][:10]} → {p['end'][:10]} ({safe(c['timezone'])}) · as of {as_of}",
                  soft_wrap=True)


def consolidated_table(env: Env, doc: dict[str, Any]) -> None:
    header(env, doc)

    def build(cols: list[str]) -> Table:
        t = Table(title_justify="left")
        for col in cols:
            t.add_column(col, justify="left" if col in ("meter", "unit", "status") else "right",
                         no_wrap=True)
        for m in doc["meters"]:
            style = STATUS_STYLE.get(m["status"], "")
            cell = {"meter": safe(m["name"]), "unit": safe(m["unit"] or m["aggregate"]),
                    "owner": fmt(m["owner_total"]), "Σ users": fmt(m["user_total"]),
                    "overlap": fmt(m["overlap"]), "billed": fmt(m["billed"]),
                    "limit": fmt(m["limit"]), "included": fmt(m["included"]),
                    "overage": fmt(m["overage"]),
                    "amount": money(m["overage_amount_cents"]),
                    "status": f"[{style}]{m['status']}[/]",
                    "projected": fmt(m["projection"]["projected"]),
                    "last 14 days": sparkline(m.get("last_14_days") or [])}
            t.add_row(*[cell[c] for c in cols])
        # Meters have different units; only the money adds up across them.
        total = sum(m["overage_amount_cents"] for m in doc["meters"])
        t.add_row(*[("[bold]total[/]" if c == "meter" else f"[bold]{money(total)}[/]"
                     if c == "amount" else "") for c in cols])
        return t

    full = ["meter", "unit", "owner", "Σ users", "billed", "limit", "overage", "amount", "status",
            "projected", "last 14 days"]
    print_first_fitting(env, [lambda: build(full), lambda: build(full[:-1]),
                              lambda: build(["meter", "billed", "limit", "amount", "status"])],
                        ["", "the last 14 days' sparkline",
                         "unit, owner, Σ users, overage, projection and sparkline"])
    env.out.print(f"{doc['users']:,} users · {doc['events_counted']:,} events counted")


def _whole(v: Any) -> bool:
    """A count or another exact whole number (an area, a float, is never shown as one)."""
    if isinstance(v, bool) or isinstance(v, float):
        return False
    if isinstance(v, int):
        return True
    return isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value()


def total(values: list[Any]) -> Any:
    """Σ in the values' own kind: exact for counts and decimals, fsum for areas (floats)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, float) for v in present):
        return math.fsum(present)
    if all(isinstance(v, int) for v in present):
        return sum(present)
    acc = Decimal(0)
    for v in present:
        acc = WIDE.add(acc, exact(v))
    return acc


def fmt_column(values: list[Any]) -> list[str]:
    """One column's cells: integers when every value is whole (counts), else two decimals on
    every row, rounded half-up from each value's own digits."""
    if all(v is None or _whole(v) for v in values):
        return [fmt(v) for v in values]
    return ["—" if v is None else _decimal_cell(exact(v), 2) for v in values]


def _columns(rows: list[list[Any]]) -> list[list[str]]:
    """Cells formatted column by column (the last row is usually the total)."""
    if not rows:
        return []
    cols = [fmt_column([r[i] for r in rows]) for i in range(len(rows[0]))]
    return [[c[i] for c in cols] for i in range(len(rows))]


def users_table(env: Env, doc: dict[str, Any]) -> None:
    header(env, doc)
    names = list(doc["users"][0]["meters"]) if doc["users"] else []
    values = [[u["meters"][n] for n in names] + [u["events"]] for u in doc["users"]]
    values.append([total([row[i] for row in values]) for i in range(len(names) + 1)])
    cells = _columns(values)
    paged = "total_count" in doc  # --limit/--offset: one page of the users

    def build(narrow: bool) -> Table:
        t = Table(title_justify="left")
        t.add_column("user", overflow="fold")
        if not narrow:
            t.add_column("org", overflow="fold")
        for n in names:
            t.add_column(safe(n), justify="right", no_wrap=True)
        t.add_column("events", justify="right", no_wrap=True)
        for u, row in zip(doc["users"], cells):
            t.add_row(safe(u["user_id"]), *([] if narrow else [safe(u["org_id"] or "")]), *row)
        t.add_row("[bold]Σ users[/]" if not paged else "[bold]Σ this page[/]",
                  *([] if narrow else [""]), *cells[-1])
        return t

    print_fitting(env, build, "org")
    _more(env, doc, "users", "users")


def _more(env: Env, doc: dict[str, Any], key: str, what: str) -> None:
    """The note under a page that is not the last: how many more, and the --offset to ask."""
    if doc.get("has_more"):
        shown = doc["offset"] + len(doc[key])
        env.note(f"{doc['total_count'] - shown:,} more {what}; use --offset {shown}")


def _values(items: list[dict[str, Any]]) -> str:
    """A list of values in one cell: how many, then the values (``3: 12345, 4242, 777``)."""
    return f"{len(items):,}: " + ", ".join(safe(i["value"]) for i in items) if items else "0"


def users_detail_table(env: Env, doc: dict[str, Any]) -> None:
    """Each user's values of the listed meters, then each organisation's."""
    header(env, doc)
    names = [d["meter"] for d in doc["detail_meters"]]
    for title, rows, key in (("Users", doc["users"], "user_id"),
                             ("Organisations", doc["orgs"], "org_id")):
        if key == "org_id" and not rows:
            continue
        t = Table(title=title, title_justify="left")
        t.add_column("user" if key == "user_id" else "org", overflow="fold")
        t.add_column("org" if key == "user_id" else "users", overflow="fold")
        for n in names:
            t.add_column(safe(n), overflow="fold")
        for r in rows:
            other = (safe(r["org_id"] or "") if key == "user_id"
                     else ", ".join(safe(u) for u in r["users"]))
            t.add_row(safe(r[key]), other, *[_values(r["detail"][n]) for n in names])
        env.out.print(t)
    _more(env, doc, "users", "users")


def daily_table(env: Env, doc: dict[str, Any]) -> None:
    header(env, doc)
    names = list(doc["days"][0]["meters"]) if doc["days"] else []
    values = [[d["meters"][n][level] for n in names for level in ("owner", "user")]
              for d in doc["days"]]
    values.append([total([row[i] for row in values]) for i in range(2 * len(names))])
    cells = _columns(values)

    def build(narrow: bool) -> Table:
        t = Table(title_justify="left")
        t.add_column("date", no_wrap=True)
        for n in names:
            t.add_column(f"{safe(n)} owner", justify="right", no_wrap=True)
            if not narrow:
                t.add_column(f"{safe(n)} Σ users", justify="right", no_wrap=True)
        labels = [d["date"] for d in doc["days"]] + ["[bold]total[/]"]
        for label, row in zip(labels, cells):
            t.add_row(label, *(row[::2] if narrow else row))
        return t

    print_fitting(env, build, "Σ-user columns")


def log_table(env: Env, doc: dict[str, Any]) -> None:
    header(env, doc)
    t = Table(title_justify="left")
    for col in ("ts", "user", "product", "endpoint", "dataset", "indicators", "new"):
        t.add_column(col, overflow="fold", no_wrap=col == "ts")
    for e in doc["events"]:
        new = []
        if e["new_user"]:
            new.append("user")
        if e["new_dataset"]:
            new.append("dataset")
        if e["new_indicators"]:
            new.append(f"{len(e['new_indicators'])} ind.")
        t.add_row(e["ts"][:19], safe(e["user_id"]), safe(e["product"]), safe(e["endpoint"] or ""),
                  safe(e["dataset_id"] or ""), safe(",".join(e["indicator_ids"] or [])),
                  ", ".join(new))
    env.out.print(t)
    more = doc["total_count"] - doc["offset"] - len(doc["events"])
    if more > 0:
        env.note(f"{more:,} more events; --format csv or json lists them all, or use "
                 f"--offset {doc['offset'] + len(doc['events'])}")


def series_table(env: Env, doc: dict[str, Any]) -> None:
    if doc.get("group_by") is not None:
        grouped_series_table(env, doc)
        return
    header(env, doc)
    names = list(doc["series"][0]["meters"]) if doc["series"] else []
    t = Table(title=f"New consumption per {doc['bucket']}", title_justify="left")
    t.add_column(doc["bucket"], no_wrap=True)
    for n in names:
        t.add_column(safe(n), justify="right", no_wrap=True)
    values = [[row["meters"][n] for n in names] for row in doc["series"]]
    values.append([total([row[i] for row in values]) for i in range(len(names))])
    cut = 16 if doc["bucket"] == "hour" else (7 if doc["bucket"] == "month" else 10)
    labels = [row["start"][:cut] for row in doc["series"]]
    # The hour repeated when clocks fall back is two buckets: show their offsets to tell them apart.
    labels = [label + row["start"][19:] if labels.count(label) > 1 else label
              for label, row in zip(labels, doc["series"])] + ["[bold]total[/]"]
    for label, row in zip(labels, _columns(values)):
        t.add_row(label, *row)
    env.out.print(t)


def grouped_series_table(env: Env, doc: dict[str, Any]) -> None:
    """``--view series --group-by``: one row per bucket and group value, and the totals."""
    header(env, doc)
    names = list(doc["series"][0]["meters"]) if doc["series"] else []
    t = Table(title=f"New consumption per {doc['bucket']} and {doc['group_by']}",
              title_justify="left")
    t.add_column(doc["bucket"], no_wrap=True)
    t.add_column(doc["group_by"], overflow="fold")
    for n in names:
        t.add_column(safe(n), justify="right", no_wrap=True)
    values = [[row["meters"][n] for n in names] for row in doc["series"]]
    values.append([total([row[i] for row in values]) for i in range(len(names))])
    cut = 16 if doc["bucket"] == "hour" else (7 if doc["bucket"] == "month" else 10)
    labels = [(row["start"][:cut] if doc["bucket"] != "hour" else row["start"][:16] +
               row["start"][19:]) for row in doc["series"]] + ["[bold]total[/]"]
    groups = [safe(row["group"]) if row["group"] is not None else "(none)"
              for row in doc["series"]] + [""]
    for label, group, row in zip(labels, groups, _columns(values)):
        t.add_row(label, group, *row)
    env.out.print(t)


def _rate(v: Any) -> str:
    return "—" if v is None else f"{fmt(exact(v) * 100, 2)} %"


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{safe(c)} {n:,}" for c, n in codes.items())


def _credits(v: Any) -> str:
    """Credits with their own places (up to 9), thousands separated: ``4.25``, ``1,200``."""
    d = exact(v).normalize(WIDE)
    return format(d, ",f") if d != d.to_integral_value() else f"{int(d):,}"


def requests_table(env: Env, doc: dict[str, Any]) -> None:
    """The requests summary on one line, and a row per --group-by value."""
    header(env, doc)
    s = doc["summary"]
    failed = f" ({_codes(s['failed_by_error_code'])})" if s["failed_by_error_code"] else ""
    env.out.print(f"{s['total']:,} requests · {s['successful']:,} successful · "
                  f"{s['failed']:,} failed{failed} · success rate {_rate(s['success_rate'])} · "
                  f"average response {fmt(s['avg_response_time_ms'], 3)} ms · credits "
                  f"{_credits(s['credits'])}", soft_wrap=True)
    if doc["group_by"] is None:
        return

    def build(narrow: bool) -> Table:
        t = Table(title=f"Requests by {doc['group_by']}", title_justify="left")
        t.add_column(doc["group_by"], overflow="fold")
        for col in ("requests", "ok", "failed", "success", "avg ms", "credits"):
            t.add_column(col, justify="right", no_wrap=True)
        if not narrow:
            t.add_column("failed by error_code", no_wrap=True)
        for r in doc["rows"]:
            t.add_row(safe(r["key"]) if r["key"] is not None else "(none)", fmt(r["total"]),
                      fmt(r["successful"]), fmt(r["failed"]), _rate(r["success_rate"]),
                      fmt(r["avg_response_time_ms"], 3), _credits(r["credits"]),
                      *([] if narrow else [_codes(r["failed_by_error_code"])]))
        return t

    print_fitting(env, build, "failed by error_code")
    if doc.get("has_more"):
        shown = doc["offset"] + len(doc["rows"])
        env.note(f"{doc['total_count'] - shown:,} more rows; use --offset {shown}")


def top_table(env: Env, doc: dict[str, Any]) -> None:
    header(env, doc)
    t = Table(title=f"{safe(doc['meter'])} by {doc['group_by']}", title_justify="left")
    t.add_column(doc["group_by"], overflow="fold")
    t.add_column("value", justify="right", no_wrap=True)
    has_events = any("events" in r for r in doc["rows"])
    if has_events:
        t.add_column("events", justify="right", no_wrap=True)
    for r in doc["rows"]:
        cells = [safe(r["key"] if r["key"] is not None else "(none)"), fmt(r["value"])]
        if has_events:
            cells.append(fmt(r.get("events")))
        t.add_row(*cells)
    env.out.print(t)
    if doc.get("has_more"):
        shown = doc["offset"] + len(doc["rows"])
        env.note(f"{doc['total_count'] - shown:,} more rows; use --offset {shown}")


def overlap_table(env: Env, doc: dict[str, Any]) -> None:
    header(env, doc)
    env.out.print(f"meter {safe(doc['meter'])} ({safe(doc['unit'])}): owner {fmt(doc['owner_total'])}"
                  f" · Σ users {fmt(doc['user_total'])} · overlap {fmt(doc['overlap'])}")
    t = Table(title="Users", title_justify="left")
    for col in ("user", "area", "exclusive", "shared"):
        t.add_column(col, justify="left" if col == "user" else "right", no_wrap=col != "user")
    for u in doc["users"]:
        t.add_row(safe(u["user_id"]), fmt(u["area"]), fmt(u["exclusive_area"]),
                  fmt(u["shared_area"]))
    env.out.print(t)
    if doc["pairs"]:
        t = Table(title="Most overlapping pairs", title_justify="left")
        for col in ("user a", "user b", "shared area"):
            t.add_column(col, justify="right" if col == "shared area" else "left")
        for p in doc["pairs"]:
            t.add_row(safe(p["a"]), safe(p["b"]), fmt(p["area"]))
        env.out.print(t)


def reconcile_table(env: Env, doc: dict[str, Any]) -> None:
    env.out.print(f"{safe(doc['contract']['id'])} · meter {safe(doc['meter'])} · by {doc['by']} · "
                  f"{doc['compared']} compared · tolerance {safe(doc['tolerance'])}")
    if not doc["differences"]:
        env.out.print("[green]no differences beyond the tolerance[/]")
        return
    t = Table(title="Differences", title_justify="left")
    for col in (doc["by"], "ours", "theirs", "difference"):
        t.add_column(col, justify="left" if col == doc["by"] else "right", no_wrap=True)
    for r in doc["differences"]:
        t.add_row(safe(r["key"]), fmt(r["ours"], 6), fmt(r["theirs"], 6), fmt(r["difference"], 6))
    env.out.print(t)


def usage_table(env: Env, rows: list[dict[str, Any]], owner: str = "") -> None:
    numbers = ("used", "included", "overage", "amount")

    def build(cols: list[str]) -> Table:
        t = Table(title=f"Usage of {safe(owner)}", title_justify="left")
        for col in cols:
            if col in numbers or col == "period":
                t.add_column(col, justify="right" if col in numbers else "left", no_wrap=True)
            else:  # names fold onto a second line rather than push a number off the table
                t.add_column(col, overflow="fold", min_width=10)
        for r in rows:
            period = f"{r['period_start'][:10]} → {r['period_end'][:10]}" if r["period_start"] else "—"
            cell = {"contract": safe(r["contract"] or "—"), "meter": safe(r["meter"] or "—"),
                    "tier": safe(r["tier"] or "—"), "used": fmt(r["used"]),
                    "included": fmt(r["included"]), "overage": fmt(r["overage"]),
                    "amount": money(r["overage_amount_cents"]), "period": period}
            t.add_row(*[cell[c] for c in cols])
        return t

    full = ["contract", "meter", "tier", "used", "included", "overage", "amount", "period"]
    print_first_fitting(env, [lambda: build(full),
                              lambda: build([c for c in full if c not in ("tier", "period")])],
                        ["", "tier and period"])


def check_line(env: Env, doc: dict[str, Any]) -> None:
    style = "green" if doc["can_proceed"] else "red"
    env.out.print(f"[{style}]{'can proceed' if doc['can_proceed'] else 'cannot proceed'}[/]: "
                  f"{safe(doc['message'])}", soft_wrap=True)


def alerts_table(env: Env, rows: list[dict[str, Any]]) -> None:
    if not rows:
        env.note("no alerts: every meter is within its limits and projected to stay there")
        return
    numbers = ("billed", "limit", "used %", "projected")

    def build(cols: list[str]) -> Table:
        t = Table(title="Alerts", title_justify="left")
        for col in cols:
            if col in ("contract", "meter"):  # names fold; numbers, statuses and dates never cut
                t.add_column(col, overflow="fold", min_width=10)
            else:
                t.add_column(col, justify="right" if col in numbers else "left", no_wrap=True)
        for r in rows:
            st = STATUS_STYLE.get(r["status"], "")
            cell = {"contract": safe(r["contract"]), "meter": safe(r["meter"]),
                    "status": f"[{st}]{r['status']}[/]", "billed": fmt(r["billed"]),
                    "limit": fmt(r["limit"]),
                    "used %": fmt(r["percent_used"], 1) if r["percent_used"] is not None else "—",
                    "projected": fmt(r["projected"]), "exceeds on": r["exceeds_on"] or "—"}
            t.add_row(*[cell[c] for c in cols])
        return t

    full = ["contract", "meter", "status", "billed", "limit", "used %", "projected", "exceeds on"]
    variants = [full, [c for c in full if c != "used %"],
                [c for c in full if c not in ("used %", "projected")],
                ["contract", "meter", "status", "billed", "limit"]]
    print_first_fitting(env, [lambda cols=cols: build(cols) for cols in variants],  # type: ignore[misc]
                        ["", "used %", "used % and projected",
                         "used %, projected and the day it exceeds the limit"])


def export_table(env: Env, doc: dict[str, Any], out_dir: str = "") -> None:
    t = Table(title=f"Exported to {safe(out_dir)}", title_justify="left")
    for col in ("file", "rows", "sha256"):
        t.add_column(col, justify="right" if col == "rows" else "left", no_wrap=col != "file")
    for f in doc["files"]:
        t.add_row(safe(f["name"]), f"{f['rows']:,}", f["sha256"][:16])
    env.out.print(t)
    for f in doc["failures"]:
        env.err.print(f"[red]failed[/] {safe(f['contract'])} {safe(f['view'] or '')}: {safe(f['error'])}")
    for f in doc.get("skipped", []):
        env.note(f"skipped {safe(f['contract'])} {safe(f['view'])}: {safe(f['reason'])}")


def export_events_table(env: Env, doc: dict[str, Any]) -> None:
    t = Table(title=f"Events dataset {safe(doc['path'])}: {doc['rows']:,} events",
              title_justify="left")
    for col in ("owner", "folder", "events", "months"):
        t.add_column(col, justify="right" if col == "events" else "left")
    for o in doc["owners"]:
        months = o["months"]
        span = f"{months[0]} … {months[-1]} ({len(months)})" if len(months) > 1 else "".join(months)
        t.add_row(safe(o["owner_id"]), safe(o["folder"]), f"{o['rows']:,}", span)
    env.out.print(t)


def plan_table(env: Env, doc: dict[str, Any]) -> None:
    from usagectl.renderers.plan_out import plan_table as draw

    draw(env, doc)


#: The table renderer of each document kind.
def range_table(env: Env, doc: dict[str, Any]) -> None:
    from usagectl.renderers.range_out import range_table as draw

    draw(env, doc)


def tokens_table(env: Env, doc: dict[str, Any]) -> None:
    from usagectl.renderers.tokens_out import tokens_table as draw

    draw(env, doc)


TABLES: dict[str, Callable[..., None]] = {
    "range": range_table,
    "consolidated": consolidated_table, "users": users_table, "daily": daily_table,
    "users-detail": users_detail_table,
    "log": log_table, "series": series_table, "top": top_table, "overlap": overlap_table,
    "requests": requests_table, "plan": plan_table, "tokens": tokens_table,
    "reconcile": reconcile_table, "usage": usage_table, "check": check_line,
    "alerts": alerts_table, "export": export_table,
    "export-events": export_events_table,
}
