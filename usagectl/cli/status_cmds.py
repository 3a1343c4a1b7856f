"""``usage``, ``check`` and ``alerts``: compact answers for scripts and cron (SPEC §6)."""

from __future__ import annotations

from typing import Annotated

import typer

from usagectl.cli import app, handle_errors, resolve
from usagectl.cli import options as opt
from usagectl.cli.options import (AsOfOption, ContractOption, DbOption, FormatOption, QuietOption,
                                  TableJsonFormatOption)
from usagectl.errors import ExitCode
from usagectl.renderers.output import emit, print_notes


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
    from usagectl.reports import notes, status
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    now = opt.moment(as_of)
    with session(db, read_only=True) as con:
        rows = status.usage(con, owner, now)
        usage_notes = ([] if env.quiet else
                       notes.contract_notes(con, status.current_windows(con, now, owner)))
    emit(env, "usage", rows, fmt, owner=owner)
    print_notes(env, usage_notes)


@app.command()
@handle_errors
def check(
    contract: ContractOption,
    meter: Annotated[str, typer.Option(help="The meter to check.", show_default=False)],
    amount: Annotated[str, typer.Option(help="Units the operation needs.", show_default=False)],
    as_of: AsOfOption = None,
    db: DbOption = None, fmt: TableJsonFormatOption = None, quiet: QuietOption = False,
) -> int:
    """Pre-flight check: can AMOUNT more units be used? Exit 3 when not.

    available = limit + prepaid − billed.

    Example: usagectl check --contract docuscan-team-monthly --meter credits --amount 2
    """
    from usagectl.reports import status
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet, allowed=opt.TABLE_JSON)
    needed = opt.amount(amount)
    with session(db, read_only=True) as con:
        doc = status.check(con, contract, meter, needed, opt.moment(as_of))
    emit(env, "check", doc, fmt, loud=not doc["can_proceed"])
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
    from usagectl.reports import notes, status
    from usagectl.store.db import session

    db, fmt, env = resolve(db, fmt, quiet)
    now = opt.moment(as_of)
    with session(db, read_only=True) as con:
        rows = status.alerts(con, now, contract)
        alert_notes = ([] if env.quiet else notes.contract_notes(
            con, status.current_windows(con, now, contract_id=contract)))
    emit(env, "alerts", rows, fmt, loud=bool(rows))
    print_notes(env, alert_notes)
    return int(ExitCode.CONDITION) if rows else 0
