"""The ``usagectl`` command line: parse options, call the library, render, map errors.

Thin on purpose (STYLE.md §1): each command opens the database, calls one library function and
hands plain data to a renderer. Library errors become exit codes here and nowhere else.

Exit codes: 0 success · 1 error · 2 usage error · 3 a check/alert condition holds · 130 Ctrl-C.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from usagectl import __version__
from usagectl.errors import ExitCode, UsagectlError
from usagectl.cli.options import DbOption, FormatOption, QuietOption
from usagectl.renderers import jsonout
from usagectl.renderers.console import Env

app = typer.Typer(
    name="usagectl",
    help=(
        "Recompute usage-based bills from raw event logs, exactly.\n\n"
        "Ingest usage logs (CSV, Parquet, GeoJSON, JSON Lines) into a local DuckDB file, load "
        "contracts, and report what each contract period counts.\n\n"
        "Exit codes: 0 success, 1 error, 2 usage error, 3 a check or alert condition holds."
    ),
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

FORMATS = ("table", "json", "csv", "html")


class State:
    """Global options, shared with every command through the Typer context."""

    db: str | None = None
    format: str | None = None
    quiet: bool = False


STATE = State()


def _version(value: bool) -> None:
    if value:
        print(f"usagectl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    db: DbOption = None,
    fmt: FormatOption = None,
    quiet: QuietOption = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    STATE.db, STATE.format, STATE.quiet = db, fmt, quiet


def resolve(db: str | None, fmt: str | None, quiet: bool = False,
            allowed: tuple[str, ...] = ("table", "json", "csv")) -> tuple[str | None, str, Env]:
    """Merge a command's own --db/--format/--quiet with the global ones."""
    chosen = (fmt or STATE.format or "table").lower()
    if chosen not in allowed:
        from usagectl.errors import UsageError

        raise UsageError(f"--format {chosen!r} is not available here; choose one of "
                         f"{', '.join(allowed)}")
    STATE.format = chosen
    return db or STATE.db, chosen, Env(quiet=quiet or STATE.quiet)


def _wants_json(argv: list[str]) -> bool:
    for i, a in enumerate(argv):
        if a in ("--format", "-f") and i + 1 < len(argv) and argv[i + 1] == "json":
            return True
        if a == "--format=json":
            return True
    return STATE.format == "json"


def _fail(err: UsagectlError, as_json: bool) -> int:
    if as_json:
        sys.stdout.write(jsonout.dumps(err.to_dict()))
        sys.stdout.flush()
    else:
        err_console = Env().err
        err_console.print(f"usagectl: error: {err.message}", markup=False, highlight=False,
                          soft_wrap=True)
        for problem in err.details.get("problems") or []:
            err_console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    return int(err.exit_code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command: library errors become exit codes, never tracebacks (SPEC §6).

    A command returns nothing or an exit code. In JSON mode an error is printed on stdout as
    ``{"error": {"code", "message", "details"}}`` so that ``jq`` sees it; otherwise on stderr.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            rv = fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except UsagectlError as err:
            raise typer.Exit(_fail(err, _wants_json(sys.argv))) from None
        except KeyboardInterrupt:
            Env().err.print("usagectl: interrupted", markup=False)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None
        except Exception as exc:  # a bug: say so plainly; USAGECTL_DEBUG=1 shows the traceback
            if os.environ.get("USAGECTL_DEBUG"):
                raise
            from usagectl.errors import InternalError

            raise typer.Exit(_fail(InternalError(
                f"internal error ({type(exc).__name__}: {exc}); this is a bug in usagectl "
                f"{__version__}. Re-run with USAGECTL_DEBUG=1 for the traceback and report it."),
                _wants_json(sys.argv))) from None
        finally:
            STATE.format = None
        if isinstance(rv, int) and rv:
            raise typer.Exit(rv)

    return wrapper


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="usagectl")


# Commands register themselves on `app` when imported.
from usagectl.cli import ingest_cmds  # noqa: E402,F401
from usagectl.cli import contract_cmds  # noqa: E402,F401
from usagectl.cli import report_cmds  # noqa: E402,F401
from usagectl.cli import demo_cmd  # noqa: E402,F401
from usagectl.cli import status_cmds  # noqa: E402,F401
from usagectl.cli import export_cmds  # noqa: E402,F401
