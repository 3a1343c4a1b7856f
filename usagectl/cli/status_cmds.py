"""``usage``, ``check`` and ``alerts``: compact answers for scripts and cron (SPEC §6)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from rich.table import Table

from usagectl.cli import DbOption, FormatOption, QuietOption, app, handle_errors, resolve
from usagectl.cli.report_cmds import STATUS_STYLE, AsOfOption, ContractOption, _fmt
from usagectl.contracts import parse_as_of
from usagectl.errors import ExitCode, ValidationError
from usagectl.renderers import csvout, jsonout
from usagectl.renderers.text import safe
from usagectl.reports import status
from usagectl.store.db import session

USAGE_KEYS = ("contract", "meter", "tier", "used", "included", "overage", "overage_amount_cents",
              "period_start", "period_end")


@app.command()
@handle_errors
def usage(
    owner: Annotated[str, typer.Option(help="The owner (contract holder).", show_default=False)],
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> None:
    """Current-period totals per meter for an owner: used, included, overage and cents.

    An owner without a contract gets tier null and zeros, not an error.

    Example: usagectl usage --owner terra-tokens --format json
    """
    db, fmt, env = resolve(db, fmt, quiet)
    with session(db, read_only=True) as con:
        rows = status.usage(con, owner, parse_as_of(as_of))
    if fmt == "json":
        env.write(jsonout.dumps(rows))
        return
    if fmt == "csv":
        cols = list(USAGE_KEYS) + [k for k in ("tokens_used", "tokens_included", "tokens_overage")
                                   if any(k in r for r in rows)]
        env.write(csvout.render(rows, cols))
        return
    t = Table(title=f"Usage of {safe(owner)}", title_justify="left")
    for col in ("contract", "meter", "tier", "used", "included", "overage", "amount", "period"):
        t.add_column(col, justify="right" if col in ("used", "included", "overage", "amount") else "left",
                     no_wrap=True)
    for r in rows:
        period = f"{r['period_start'][:10]} → {r['period_end'][:10]}" if r["period_start"] else "—"
        t.add_row(safe(r["contract"] or "—"), safe(r["meter"] or "—"), safe(r["tier"] or "—"),
                  _fmt(r["used"]), _fmt(r["included"]), _fmt(r["overage"]),
                  f"${r['overage_amount_cents'] / 100:,.2f}", period)
    env.out.print(t)


@app.command()
@handle_errors
def check(
    contract: ContractOption,
    meter: Annotated[str, typer.Option(help="The meter to check.", show_default=False)],
    amount: Annotated[str, typer.Option(help="Units the operation needs.", show_default=False)],
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> int:
    """Pre-flight check: can AMOUNT more units be used? Exit 3 when not.

    available = limit + prepaid − billed.

    Example: usagectl check --contract docuscan-team-monthly --meter credits --amount 2
    """
    db, fmt, env = resolve(db, fmt, quiet, allowed=("table", "json"))
    try:
        needed = Decimal(amount)
    except InvalidOperation:
        raise ValidationError(f"--amount {amount!r} is not a number") from None
    if not needed.is_finite() or needed < 0:
        raise ValidationError(f"--amount {amount!r} must be a non-negative number")
    with session(db, read_only=True) as con:
        doc = status.check(con, contract, meter, needed, parse_as_of(as_of))
    if fmt == "json":
        env.write(jsonout.dumps(doc))
    else:
        style = "green" if doc["can_proceed"] else "red"
        env.out.print(f"[{style}]{'can proceed' if doc['can_proceed'] else 'cannot proceed'}[/]: "
                      f"{safe(doc['message'])}", soft_wrap=True)
    return 0 if doc["can_proceed"] else int(ExitCode.CONDITION)


@app.command()
@handle_errors
def alerts(
    contract: Annotated[str | None, typer.Option("--contract", "-c", help="Only this contract.")] = None,
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: FormatOption = None, quiet: QuietOption = False,
) -> int:
    """Every meter at warning or exceeded, or projected to exceed its limit. Exit 3 when any.

    Made for cron: silent exit 0 when all is well (with --quiet).

    Example: usagectl alerts --format json || notify-finance
    """
    db, fmt, env = resolve(db, fmt, quiet)
    with session(db, read_only=True) as con:
        rows = status.alerts(con, parse_as_of(as_of), contract)
    if fmt == "json":
        env.write(jsonout.dumps(rows))
    elif fmt == "csv":
        cols = ["contract", "owner", "meter", "status", "billed", "limit", "percent_used",
                "projected", "will_exceed_limit", "exceeds_on", "period_end"]
        env.write(csvout.render(rows, cols))
    elif not rows:
        env.note("no alerts: every meter is within its limits and projected to stay there")
    else:
        t = Table(title="Alerts", title_justify="left")
        for col in ("contract", "meter", "status", "billed", "limit", "used %", "projected", "exceeds on"):
            t.add_column(col, justify="right" if col in ("billed", "limit", "used %", "projected") else "left",
                         no_wrap=True)
        for r in rows:
            st = STATUS_STYLE.get(r["status"], "")
            t.add_row(safe(r["contract"]), safe(r["meter"]), f"[{st}]{r['status']}[/]",
                      _fmt(r["billed"]), _fmt(r["limit"]),
                      _fmt(r["percent_used"], 1) if r["percent_used"] is not None else "—",
                      _fmt(r["projected"]), r["exceeds_on"] or "—")
        env.out.print(t)
    return int(ExitCode.CONDITION) if rows else 0
