"""The plan view (``report --view plan``, usagectl.reports.plan) as a table and as CSV rows: a row
per meter, then a row per plan priced (``row`` says which), the billing period on every row."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from usagectl.renderers.console import Env
from usagectl.reports.plan import METER_KEYS, PLAN_KEYS
from usagectl.renderers.report_tables import STATUS_STYLE, fmt, header, money
from usagectl.renderers.tables import print_first_fitting
from usagectl.renderers.text import safe

HEAD = ["contract_id", "period_index", "period_start", "period_end", "as_of"]
PERIOD = ["days_in_period", "days_remaining", "renewal_date"]
METER = list(METER_KEYS[1:])  # after name
PLAN = [*PLAN_KEYS[1:], "recommended", "cents_saved", "reason"]  # after the contract's id
#: CSV columns: fixed, whatever the data holds.
PLAN_COLUMNS = [*HEAD, *PERIOD, "row", "name", *METER, *PLAN]


def plan_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV rows: each meter (``row`` = meter), then each plan (``row`` = plan, ``name`` its
    contract id; ``recommended`` true on the recommended one, empty without a recommendation;
    ``cents_saved`` and ``reason`` on that row)."""
    p, b = doc["period"], doc["billing_period"]
    head = {"contract_id": doc["contract"]["id"], "period_index": p["index"],
            "period_start": p["start"], "period_end": p["end"], "as_of": p["as_of"],
            **{k: b[k] for k in PERIOD}}
    rows = [{**head, "row": "meter", **m} for m in doc["meters"]]
    rec = doc["recommendation"]
    for plan in doc["plans"]:
        row = {**head, "row": "plan", "name": plan["contract"],
               **{k: plan[k] for k in PLAN_KEYS[1:]}}
        if rec is not None:
            row["recommended"] = plan["contract"] == rec["contract"]
            if row["recommended"]:
                row.update(cents_saved=rec["cents_saved"], reason=rec["reason"])
        rows.append(row)
    return rows, PLAN_COLUMNS


def _percent(v: Any) -> str:
    return "—" if v is None else f"{fmt(v, 1)} %"


def plan_table(env: Env, doc: dict[str, Any]) -> None:
    """The billing period on one line, a row per meter, the plans compared, the advice."""
    header(env, doc)
    b = doc["billing_period"]
    renews = (f"renews {b['renewal_date']}" if b["renewal_date"] is not None
              else "no renewal (the contract's last period)")
    env.out.print(f"billing period {b['start'][:10]} → {b['end'][:10]}: {b['days_in_period']} days, "
                  f"{b['days_remaining']} remaining, {renews}", soft_wrap=True)

    def build(cols: list[str]) -> Table:
        t = Table(title="Meters", title_justify="left")
        widest = max((len(m["name"]) for m in doc["meters"]), default=5)
        for col in cols:
            t.add_column(col, justify="left" if col in ("meter", "unit", "trending", "status")
                         else "right", no_wrap=col != "meter", overflow="fold",
                         min_width=min(widest, 20) if col == "meter" else None)
        for m in doc["meters"]:
            style = STATUS_STYLE.get(m["status"], "")
            cell = {"meter": safe(m["name"]), "unit": safe(m["unit"]), "used": fmt(m["used"]),
                    "limit": fmt(m["limit"]), "left": fmt(m["remaining"]),
                    "used %": _percent(m["usage_percentage"]), "projected": fmt(m["projected"]),
                    "proj. %": _percent(m["projected_usage_percentage"]),
                    "will exceed": ("[red]yes[/]" if m["will_exceed_limit"] else "no"),
                    "trending": m["trending"], "status": f"[{style}]{m['status']}[/]"}
            t.add_row(*[cell[c] for c in cols])
        return t

    full = ["meter", "unit", "used", "limit", "left", "used %", "projected", "proj. %",
            "will exceed", "trending", "status"]
    narrow = ["meter", "used", "limit", "projected", "will exceed"]
    print_first_fitting(env, [lambda: build(full), lambda: build(narrow)],
                        ["", "unit, left, percentages, trending and status"])
    plans, rec = doc["plans"], doc["recommendation"]
    if rec is None:
        env.out.print(f"projected cost of this plan: {money(plans[0]['projected_cost_cents'])} "
                      "(no --alternatives: no recommendation)", soft_wrap=True)
        return
    t = Table(title="Plans priced on the projected usage", title_justify="left")
    for col in ("plan", "tier", "cycle", "days", "cost of its period", "cost of this period"):
        t.add_column(col, justify="left" if col in ("plan", "tier", "cycle") else "right",
                     no_wrap=col != "plan", overflow="fold")
    for p in plans:
        mark = " (current)" if p["current"] else ""
        t.add_row(safe(p["contract"]) + mark, safe(p["tier"] or ""), safe(p["cycle"]),
                  fmt(p["period_days"]), money(p["projected_cost_cents"]),
                  money(p["cost_for_current_period_cents"]))
    env.out.print(t)
    env.out.print(f"recommendation: {safe(rec['reason'])}", soft_wrap=True)
