"""Options shared by the commands, declared once (STYLE.md §3: the same flags everywhere).

Global ones (``--db``, ``--format``, ``--quiet``) are accepted both before and after the command
name; the report options (``--contract``, ``--period``, ``--as-of``, ``--as-ingested-at``,
``--out``) mean the same on every command that takes them. The helpers below read option values
and turn a bad one into a usage error (exit 2) that lists what is accepted (docs/cli.md).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated

import typer

from usagectl.errors import UsageError, ValidationError

#: Output formats: most commands; ``report`` adds html; a few answer in a table or JSON only.
FORMATS = ("table", "json", "csv")
REPORT_FORMATS = ("table", "json", "csv", "html")
TABLE_JSON = ("table", "json")


def one_of(values: tuple[str, ...] | list[str]) -> str:
    """``a, b or c``."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def _format_help(choices: tuple[str, ...]) -> str:
    return f"Output format: {one_of(choices)}."


DbOption = Annotated[str | None, typer.Option(
    "--db", envvar="USAGECTL_DB", help="DuckDB file (default ./usage.duckdb).",
    show_default=False)]
FormatOption = Annotated[str | None, typer.Option(
    "--format", "-f", help=_format_help(FORMATS), show_default=False)]
ReportFormatOption = Annotated[str | None, typer.Option(
    "--format", "-f", help=_format_help(REPORT_FORMATS), show_default=False)]
TableJsonFormatOption = Annotated[str | None, typer.Option(
    "--format", "-f", help=_format_help(TABLE_JSON), show_default=False)]
GlobalFormatOption = Annotated[str | None, typer.Option(
    "--format", "-f", help="Output format: table, json or csv (report also html).",
    show_default=False)]
def _wait_seconds(value: str | None) -> float | None:
    from usagectl.store.lockwait import MAX_WAIT

    if value is None:
        return None
    try:
        return seconds(value, "--wait", MAX_WAIT)
    except UsageError as exc:  # Click reports it as a usage error (exit 2), JSON too
        raise typer.BadParameter(exc.message.removeprefix("--wait ")) from None


WaitOption = Annotated[float | None, typer.Option(
    "--wait", envvar="USAGECTL_WAIT", metavar="SECONDS", show_default=False,
    parser=_wait_seconds,
    help="While another process holds the database (an ingest committing, say), retry opening "
         "it for up to SECONDS before failing with database_locked (default 20; 0 fails at "
         "once).")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Print nothing on success except data asked for with --format "
                          "json/csv/html or --out; errors still go to stderr.")]

ContractOption = Annotated[str, typer.Option("--contract", "-c", help="Contract id.",
                                             show_default=False)]
PeriodOption = Annotated[str | None, typer.Option(
    "--period", help="current (default), previous, an index, or a date inside the period.")]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="The moment taken as now (ISO 8601; default: the current time).")]
AsIngestedOption = Annotated[str | None, typer.Option(
    "--as-ingested-at", help="Only events ingested by then (reproduce an earlier invoice).")]
OutOption = Annotated[str | None, typer.Option(
    "--out", "-o", help="Write the json, csv or html output to this file (atomically).")]
UserOption = Annotated[str | None, typer.Option(
    "--user", help="Only this user's events, in every view (limits and prices stay the owner's).",
    show_default=False)]
EngineOption = Annotated[str | None, typer.Option(
    "--engine", help="Where the meters are computed: local (default; DuckDB on this machine) or "
                     "spark (count, sum and distinct meters as Spark SQL; needs the spark "
                     "extra, docs/spark.md).", show_default=False)]
SparkMasterOption = Annotated[str | None, typer.Option(
    "--spark-master", metavar="URL",
    help="--engine spark: the Spark master (default local[*], or the Spark Connect server in "
         "SPARK_REMOTE).", show_default=False)]
EventsOption = Annotated[str | None, typer.Option(
    "--events", metavar="PATH",
    help="--engine spark: read the events from the dataset export --events wrote (a folder, or "
         "a URI Spark reads: s3a://…, abfss://…) instead of the database; with --contracts "
         "FILE no database is needed (docs/spark.md).", show_default=False)]

#: Moments usagectl computes periods for: a period must end before the year 10000.
FIRST_YEAR, LAST_YEAR = 1900, 9998
#: --limit and --offset beyond this are refused (DuckDB binds them as 64-bit integers).
MAX_ROWS = 2**62


def moment(text: str | None, option: str = "--as-of") -> dt.datetime:
    """An ``--as-of``-style value: ISO 8601 date or date-time, or ``now`` (SPEC §5.5)."""
    from usagectl.contracts import parse_as_of

    try:
        value = parse_as_of(text)
    except ValidationError:
        raise UsageError(
            f"{option} {text!r} is not a moment: write an ISO 8601 date (2026-03-01), a date-time "
            "(2026-03-01T12:00:00Z, 2026-03-01T06:00:00-06:00) or 'now'",
            {"option": option, "value": text}) from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise UsageError(
            f"{option} {text!r} is out of range: usagectl computes periods for moments from "
            f"{FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31", {"option": option, "value": text})
    return value


def moment_text(text: str | None, option: str = "--as-of") -> str | None:
    """Check an ``--as-of``-style value and hand it on unchanged (None stays None)."""
    if text is not None:
        moment(text, option)
    return text


def day(text: str | None, option: str) -> dt.date | None:
    """A ``--from``/``--to`` day (YYYY-MM-DD)."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a day: write YYYY-MM-DD, e.g. 2026-03-01",
                         {"option": option, "value": text}) from None


def seconds(text: str, option: str, most: float) -> float:
    """A number of seconds from 0 to ``most`` (``--wait``): 0, 2.5, 30."""
    import math

    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= most:
        raise UsageError(f"{option} {text!r} is not a number of seconds: write a number from 0 "
                         f"to {most:g} (0 fails at once when the database is busy)",
                         {"option": option, "value": text, "valid": f"0 to {most:g}"})
    return value


def rows(value: int | None, option: str) -> int | None:
    """A ``--limit``/``--offset`` count: 0 ≤ value ≤ 2**62."""
    if value is not None and not 0 <= value <= MAX_ROWS:
        raise UsageError(f"{option} must be >= 0 and <= {MAX_ROWS}, not {value}",
                         {"option": option, "value": value})
    return value


#: The most rows a terminal table of the log or of rejects lists (``--limit``): a table is built
#: whole before it is printed, and is for reading; JSON and CSV stream any number of rows.
TABLE_MAX_ROWS = 1000


def table_rows(limit: int | None, default: int, most: int = TABLE_MAX_ROWS) -> int:
    """The rows a terminal table lists: ``default`` without ``--limit``, at most ``most``
    (docs/cli.md "Streaming large outputs")."""
    if limit is None:
        return default
    if limit > most:
        raise UsageError(f"--limit {limit} is more than a table shows (at most {most:,} rows); "
                         f"page with --offset, or use --format csv or json for every row",
                         {"option": "--limit", "value": limit, "most": most})
    return limit


def choice(value: str, option: str, valid: tuple[str, ...]) -> str:
    """A value from a fixed list, or a usage error listing the list."""
    if value not in valid:
        raise UsageError(f"{option} {value!r} is not available; choose one of {', '.join(valid)}",
                         {"option": option, "value": value, "valid": list(valid)})
    return value


#: A quantity typed on the command line: plain digits, at most 29 before the point and 9 after —
#: the range of a stored credits value (DECIMAL(38, 9)), so no arithmetic on it can overflow.
QUANTITY = re.compile(r"(?P<int>[0-9]{1,29})(?:\.(?P<frac>[0-9]{1,9}))?")
QUANTITY_FORM = "plain digits, at most 29 digits before the point and 9 after"


def amount(text: str, option: str = "--amount") -> Decimal:
    """A number of units ≥ 0 (``check --amount``): 2, 0.5, up to 29 + 9 digits, exactly."""
    if not QUANTITY.fullmatch(text.strip()):
        raise UsageError(f"{option} {text!r} is not a number of units: write a number >= 0 in "
                         f"{QUANTITY_FORM} (e.g. 2 or 0.5)",
                         {"option": option, "value": text, "valid": QUANTITY_FORM})
    return Decimal(text.strip())

