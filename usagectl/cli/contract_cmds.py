"""``contracts load | list | show``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from usagectl.cli import CommandGroup, app, handle_errors, resolve
from usagectl.cli import options as opt
from usagectl.cli.options import AsOfOption, DbOption, FormatOption, QuietOption, TableJsonFormatOption
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.console import Env
from usagectl.renderers.report_tables import fmt as number_cell
from usagectl.renderers.tables import print_fitting
from usagectl.renderers.text import safe

if TYPE_CHECKING:
    from usagectl.contracts import Contract

#: contracts list --format csv: the same columns whatever is stored.
LIST_COLUMNS = ("id", "owner", "cycle", "start", "end", "timezone", "tier", "meters", "period_index",
                "period_start", "period_end", "meter_status")

contracts_app = typer.Typer(help="Load, list and show contracts.", no_args_is_help=True,
                            rich_markup_mode="rich", cls=CommandGroup)
app.add_typer(contracts_app, name="contracts")

def _with_period(c: Contract, as_of_text: str | None, con: Any = None) -> dict[str, Any]:
    """The contract, its current period and, given the database, each meter's status then
    (the consolidated report's ``status``; ``meter_status`` is null when no period contains
    the moment)."""
    from usagectl.contracts import period_containing
    from usagectl.reports.status import meter_statuses

    as_of = opt.moment(as_of_text)
    period = period_containing(c, as_of)
    d = c.to_dict()
    d["current_period"] = period.to_dict(as_of) if period else None
    if con is not None:
        d["meter_status"] = meter_statuses(con, c, as_of)
    return d


def _not_ok(statuses: dict[str, str] | None) -> str:
    """The list table's status cell: the meters at warning or exceeded, or "all ok"."""
    if statuses is None:
        return "[dim]no period[/]"
    bad = [f"{safe(name)} {_status_cell(s)}" for name, s in statuses.items() if s != "ok"]
    return ", ".join(bad) if bad else "all [green]ok[/]"


def _status_cell(status: str) -> str:
    colour = {"ok": "green", "warning": "yellow", "exceeded": "red"}.get(status, "")
    return f"[{colour}]{status}[/]" if colour else status


@contracts_app.command("load")
@handle_errors
def load(
    file: Annotated[str, typer.Argument(help="Contracts TOML file.", show_default=False)],
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> None:
    """Validate a contracts TOML file and store its contracts.

    The whole file is checked first and every problem is listed; nothing is loaded when any
    is found. A contract id that is already stored is replaced.

    Example: usagectl contracts load contracts.toml
    """
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    with session(db) as con:
        outcome = contracts_repo.load_file(con, file)
    if fmt == "json":
        env.write(jsonout.dumps({"file": file, "contracts": outcome}))
    elif fmt == "csv":
        env.write(csvout.render(outcome, ("id", "owner", "action", "meters")))
    else:
        table = Table(title=f"Contracts loaded from {safe(file)}", title_justify="left")
        for col in ("id", "owner", "meters", "action"):
            table.add_column(col, justify="right" if col == "meters" else "left")
        for o in outcome:
            table.add_row(safe(o["id"]), safe(o["owner"]), str(o["meters"]), o["action"])
        env.out.print(table)


def contracts_table(env: Env, rows: list[dict[str, Any]], title: str = "Contracts") -> None:
    """The contracts list as a Rich table (also used by the demo)."""

    def build(narrow: bool) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column("id", no_wrap=True)
        table.add_column("owner", no_wrap=True)
        if not narrow:
            table.add_column("cycle", no_wrap=True)
            table.add_column("time zone", no_wrap=True)
            table.add_column("tier", no_wrap=True)
            table.add_column("meters", justify="right", no_wrap=True)
        table.add_column("current period", no_wrap=True)
        status = any("meter_status" in d for d in rows)
        if status:
            table.add_column("status", overflow="fold")
        for d in rows:
            p = d["current_period"]
            period = f"#{p['index']} {p['start'][:10]} → {p['end'][:10]}" if p else "[dim]none[/]"
            cells = [safe(d["id"]), safe(d["owner"])]
            if not narrow:
                cells += [d["cycle"], safe(d["timezone"]), safe(d["tier"] or ""),
                          str(len(d["meters"]))]
            if status:
                cells.append(period)
                period = _not_ok(d.get("meter_status"))
            table.add_row(*cells, period)
        return table

    print_fitting(env, build, "cycle, time zone, tier and meters")


@contracts_app.command("list")
@handle_errors
def list_(
    owner: Annotated[str | None, typer.Option(help="Only this owner's contracts.")] = None,
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> None:
    """List contracts with their current period.

    Example: usagectl contracts list --as-of 2026-11-20
    """
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    with session(db, read_only=True) as con:
        rows = [_with_period(c, as_of, con) for c in contracts_repo.list_contracts(con, owner)]
    if fmt == "json":
        env.write(jsonout.dumps(rows))
    elif fmt == "csv":
        flat = [{"id": d["id"], "owner": d["owner"], "cycle": d["cycle"], "start": d["start"],
                 "end": d["end"], "timezone": d["timezone"], "tier": d["tier"],
                 "meters": len(d["meters"]),
                 "period_index": (d["current_period"] or {}).get("index"),
                 "period_start": (d["current_period"] or {}).get("start"),
                 "period_end": (d["current_period"] or {}).get("end"),
                 # one JSON cell, meter → status, in contract order (empty: no current period)
                 "meter_status": (json.dumps(d["meter_status"]) if d["meter_status"] is not None
                                  else None)} for d in rows]
        env.write(csvout.render(flat, LIST_COLUMNS))
    else:
        contracts_table(env, rows)


@contracts_app.command("show")
@handle_errors
def show(
    contract_id: Annotated[str, typer.Argument(metavar="ID", help="Contract id.",
                                               show_default=False)],
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: TableJsonFormatOption = None, quiet: QuietOption = False,
) -> None:
    """Show one contract: terms, meters and the current period.

    Example: usagectl contracts show acme-fields-2026 --format json
    """
    from usagectl.store import contracts_repo
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet, allowed=opt.TABLE_JSON)
    with session(db, read_only=True) as con:
        contract = contracts_repo.get_contract(con, contract_id)
        d = _with_period(contract, as_of, con)
    if fmt == "json":
        env.write(jsonout.dumps(d))
        return
    p = d["current_period"]
    env.out.print(f"[bold]{safe(d['id'])}[/] · owner {safe(d['owner'])} · {d['cycle']} from "
                  f"{d['start']}" + (f" to {d['end']}" if d["end"] else "")
                  + f" · {safe(d['timezone'])}" + (f" · tier {safe(d['tier'])}" if d["tier"] else ""))
    if p:
        env.out.print(f"current period #{p['index']}: {p['start']} → {p['end']} (as of {p['as_of']})")
    else:
        env.out.print("no current period (the contract has not started or has ended)")
    table = Table(title="Meters", title_justify="left")
    statuses = d["meter_status"] or {}
    for col in ("meter", "aggregate", "what", "billed on", "limit", "included", "overage price",
                "status"):
        table.add_column(col, justify="right" if col in ("limit", "included") else "left",
                         overflow="fold")
    for meter in contract.meters:
        # The unit word every other output uses; a missing `included` is 0 there too (SPEC §5.4).
        what = meter.unit_label
        if meter.products:
            what += " of " + ", ".join(meter.products)
        price = ""
        if meter.pricing:
            price = f"{meter.pricing} ({len(meter.price)} tiers)"
        elif meter.overage_cents_per_unit is not None:
            price = f"{number_cell(meter.overage_cents_per_unit)}¢ per {number_cell(meter.overage_unit)}"
        table.add_row(safe(meter.name), meter.aggregate, safe(what), meter.billed_on,
                      number_cell(meter.limit),
                      number_cell(meter.included if meter.included is not None else 0),
                      safe(price), _status_cell(statuses.get(meter.name, "")))
    env.out.print(table)
