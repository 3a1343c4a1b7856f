"""Options shared by the commands, declared once (STYLE.md §3: the same flags everywhere).

Global ones (``--db``, ``--format``, ``--quiet``) are accepted both before and after the command
name; the report options (``--contract``, ``--period``, ``--as-of``, ``--as-ingested-at``,
``--out``) mean the same on every command that takes them.
"""

from __future__ import annotations

from typing import Annotated

import typer

DbOption = Annotated[str | None, typer.Option(
    "--db", envvar="USAGECTL_DB", help="DuckDB file (default ./usage.duckdb).",
    show_default=False)]
FormatOption = Annotated[str | None, typer.Option(
    "--format", "-f", help="Output format: table, json or csv.", show_default=False)]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes on stderr.")]

ContractOption = Annotated[str, typer.Option("--contract", "-c", help="Contract id.",
                                             show_default=False)]
PeriodOption = Annotated[str | None, typer.Option(
    "--period", help="current (default), previous, an index, or a date inside the period.")]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="The moment taken as now (ISO 8601; default: the current time).")]
AsIngestedOption = Annotated[str | None, typer.Option(
    "--as-ingested-at", help="Only events ingested by then (reproduce an earlier invoice).")]
OutOption = Annotated[str | None, typer.Option("--out", "-o", help="Write to this file.")]
UserOption = Annotated[str | None, typer.Option(
    "--user", help="Only this user's events, in every view (limits and prices stay the owner's).",
    show_default=False)]
