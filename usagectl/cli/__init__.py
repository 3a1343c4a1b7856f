"""The ``usagectl`` command line: parse options, call the library, render, map errors.

Thin on purpose (STYLE.md §1): each command opens the database, calls one library function and
hands plain data to a renderer. Library errors become exit codes here and nowhere else
(:class:`usagectl.errors.ExitCode`; docs/cli.md).
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Annotated, Any

import typer
from typer import _click
from typer.core import TyperGroup

from usagectl import __version__
from usagectl.cli import coercion
from usagectl.cli.options import (DbOption, FormatOption, GlobalFormatOption, QuietOption,
                                  WaitOption, one_of)
from usagectl.errors import ExitCode, UsageError, UsagectlError
from usagectl.renderers import jsonout
from usagectl.renderers.console import STDOUT, Env
from usagectl.renderers.numbers import number_text

__all__ = ["CommandGroup", "DbOption", "FormatOption", "QuietOption", "app", "handle_errors", "resolve"]

coercion.install()  # values Click already typed skip Typer's pydantic step (start-up)

EXIT_CODES = "Exit codes: " + ", ".join(f"{int(c)} {c.meaning}" for c in ExitCode) + "."


class State:
    """Global options and the command line, shared with every command."""

    db: str | None = None
    format: str | None = None
    quiet: bool = False
    argv: list[str] = []


STATE = State()


def _wants_json(argv: Sequence[str]) -> bool:
    """True when the command line asks for JSON (errors are then JSON on stdout)."""
    if STATE.format == "json":
        return True
    for i, a in enumerate(argv):
        if a in ("--format", "-f") and i + 1 < len(argv) and argv[i + 1].lower() == "json":
            return True
        if a.lower() in ("--format=json", "-fjson", "-f=json"):
            return True
    return False


#: Integers beyond this lose digits in JSON readers that hold numbers as doubles (jq, JavaScript).
_SAFE_INTEGER = 2**53


def _as_given(value: Any) -> Any:
    """Error details as JSON readers keep them: a number they would round (an integer beyond
    2**53, a float of 1e16 or more) becomes a string of its plain digits, never ``1e+23``."""
    if isinstance(value, dict):
        return {k: _as_given(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_given(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) < 1e16:
            return value
        return format(Decimal(repr(value)), "f")
    if abs(value) > _SAFE_INTEGER:
        return number_text(value)
    return value


def _fail(err: UsagectlError, as_json: bool) -> int:
    if as_json:
        error = err.to_dict()
        error["error"]["details"] = _as_given(error["error"]["details"])
        # Part of a streamed document is already on stdout (docs/cli.md "Streaming large
        # outputs"): the error goes to stderr, and stdout's document stays unclosed, so no
        # reader takes it for the whole document.
        stream = sys.stderr if STDOUT.partial else sys.stdout
        stream.write(jsonout.dumps(error))
        stream.flush()
    else:
        err_console = Env().err
        err_console.print(f"usagectl: error: {err.message}", markup=False, highlight=False,
                          soft_wrap=True)
        for problem in err.details.get("problems") or []:
            err_console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    return int(err.exit_code)


def _missing_command(ctx: _click.Context) -> UsageError:
    """A group named without one of its commands (``usagectl contracts``)."""
    group = ctx.command
    names = group.list_commands(ctx) if isinstance(group, TyperGroup) else []
    return UsageError(f"{ctx.command_path} needs a command: {one_of(names)} "
                      f"(see {ctx.command_path} --help)", {"valid": names})


def _stdout_gone() -> None:
    """The reader of stdout went away (``| head``): send what is left to /dev/null, so the
    flush at exit does not fail again, and end quietly (the Python documentation's idiom)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout without a file descriptor (a test's buffer): nothing to flush at exit
    finally:
        os.close(devnull)


def reflow_help(text: str) -> str:
    """A docstring's prose as Rich should wrap it: the line breaks inside a paragraph (where the
    source wrapped at 100 columns) become spaces. Typer keeps them, so Rich, wrapping again at
    the terminal's width, left ragged half-lines. Paragraphs that hold a list (``- item``), an
    indented block or Click's ``\\b`` marker keep their lines."""
    paragraphs = text.split("\n\n")
    for i, para in enumerate(paragraphs):
        lines = para.split("\n")
        if para.startswith("\b") or any(ln.startswith((" ", "\t", "- ")) for ln in lines[1:]):
            continue
        paragraphs[i] = " ".join(ln.strip() for ln in lines)
    return "\n\n".join(paragraphs)


class CommandGroup(TyperGroup):
    """A group of commands (the root, ``contracts``): named alone in JSON mode, it answers with
    the JSON error object instead of printing its help (which Rich writes on stdout)."""

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None and command.help and not getattr(command, "_reflowed", False):
            command.help = reflow_help(inspect.cleandoc(command.help))
            command._reflowed = True  # type: ignore[attr-defined]
        return command

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing and _wants_json(
                STATE.argv):
            raise _click.exceptions.UsageError("Missing command.", ctx=ctx)
        return super().parse_args(ctx, args)


class UsagectlGroup(CommandGroup):
    """The root command: in JSON mode, a command line Click cannot parse is a JSON error too;
    a closed stdout ends the command quietly (exit 0); nothing ever prints a traceback."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        STATE.db, STATE.format, STATE.quiet, STATE.argv = None, None, False, argv
        STDOUT.partial = False
        try:
            if not standalone_mode or not _wants_json(argv):
                return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
            self._main_json(argv, prog_name, complete_var, **extra)
        except BrokenPipeError:
            _stdout_gone()
            sys.exit(0)

    def _main_json(self, argv: list[str], prog_name: str | None, complete_var: str | None,
                   **extra: Any) -> None:
        try:
            rv = super().main(argv, prog_name, complete_var, False, **extra)
        except _click.exceptions.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            if ctx is not None and exc.format_message() == "Missing command.":
                sys.exit(_fail(_missing_command(ctx), True))
            details: dict[str, Any] = {}
            param = getattr(exc, "param", None)
            if param is not None and getattr(param, "opts", None):
                details["option"] = param.opts[0]
            sys.exit(_fail(UsageError(exc.format_message(), details), True))
        except typer.Abort:
            sys.exit(int(ExitCode.INTERRUPTED))
        except BrokenPipeError:
            raise
        except Exception as exc:  # a bug outside any command: still the JSON object, no traceback
            if os.environ.get("USAGECTL_DEBUG"):
                raise
            sys.exit(_fail(_internal(exc), True))
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    name="usagectl",
    cls=UsagectlGroup,
    help=(
        "Recompute usage-based bills from raw event logs, exactly.\n\n"
        "Ingest usage logs (CSV, Parquet, GeoJSON, JSON Lines) into a local DuckDB file, load "
        "contracts, and report what each contract period counts.\n\n" + EXIT_CODES
    ),
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"usagectl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    db: DbOption = None,
    fmt: GlobalFormatOption = None,
    quiet: QuietOption = False,
    wait: WaitOption = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    from usagectl.store import lockwait

    STATE.db, STATE.format, STATE.quiet = db, fmt, quiet
    lockwait.set_lock_wait(wait, _note_wait)  # checked by its parser: 0 to MAX_WAIT seconds


def _note_wait(note: str) -> None:
    if not STATE.quiet:
        Env().err.print(f"usagectl: {note}", markup=False, highlight=False, soft_wrap=True)


def resolve(db: str | None, fmt: str | None, quiet: bool = False,
            allowed: tuple[str, ...] = ("table", "json", "csv")) -> tuple[str | None, str, Env]:
    """Merge a command's own --db/--format/--quiet with the global ones."""
    chosen = (fmt or STATE.format or "table").lower()
    if chosen not in allowed:
        raise UsageError(f"--format {chosen!r} is not available here; choose one of "
                         f"{one_of(allowed)}", {"option": "--format", "value": chosen,
                                                "valid": list(allowed)})
    STATE.format = chosen
    STATE.quiet = quiet or STATE.quiet  # a command's own -q silences notes from the library too
    return db or STATE.db, chosen, Env(quiet=STATE.quiet)


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C: Python's KeyboardInterrupt, or DuckDB's when it lands inside a query."""
    import duckdb

    if isinstance(exc, (KeyboardInterrupt, duckdb.InterruptException)):
        return True
    # DuckDB turns a SIGINT during a query into RuntimeError('Query interrupted').
    return isinstance(exc, RuntimeError) and str(exc).strip() == "Query interrupted"


def _internal(exc: BaseException) -> UsagectlError:
    from usagectl.errors import InternalError

    return InternalError(
        f"internal error ({type(exc).__name__}: {exc}); this is a bug in usagectl "
        f"{__version__}. Re-run with USAGECTL_DEBUG=1 for the traceback and report it.")


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
            raise typer.Exit(_fail(err, _wants_json(STATE.argv))) from None
        except BrokenPipeError:
            _stdout_gone()
            raise typer.Exit(0) from None
        except BaseException as exc:
            if _interrupted(exc):
                Env().err.print("usagectl: interrupted", markup=False)
                raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
            if not isinstance(exc, Exception) or os.environ.get("USAGECTL_DEBUG"):
                raise  # SystemExit and the like; USAGECTL_DEBUG=1 shows a bug's traceback
            raise typer.Exit(_fail(_internal(exc), _wants_json(STATE.argv))) from None
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
from usagectl.cli import serve_cmd  # noqa: E402,F401
