"""CLI start-up does not load the geometry or Arrow stacks (issue: fast start-up)."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner


class Colour(str, enum.Enum):
    red = "red"
    blue = "blue"


def test_cli_import_does_not_load_heavy_libraries() -> None:
    code = ("import sys, usagectl.cli; "
            "print(sorted(m for m in ('shapely', 'pyproj', 'pyarrow', 'geopandas', 'jinja2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


HEAVY = ("duckdb", "pyarrow", "shapely", "pyproj", "pandas", "jinja2", "numpy", "pyspark", "py4j",
         "fastapi", "uvicorn", "starlette", "pydantic")
# pydantic: Typer converts option values through pydantic; usagectl.cli.coercion skips that step
# for values Click already typed (an absent option, a string), ~80 ms of every command.


@pytest.mark.parametrize("args", [["--version"], ["report", "--help"], ["--help"]])
def test_version_and_help_do_not_import_heavy_libraries(args: list[str]) -> None:
    # Start-up (docs/cli.md "Start-up"): printing the version or a command's help loads typer
    # and rich only; DuckDB, Arrow, the geometry stack, pandas and jinja2 load in the commands
    # that use them. ``-X importtime`` lists every module the process imported.
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "usagectl", *args],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "100"})
    assert out.returncode == 0, out.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "usagectl.cli" in imported  # the listing is complete
    loaded = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert loaded == [], f"usagectl {' '.join(args)} imported {loaded[:10]}"


def _imported(args: list[str], tmp: str | None = None) -> tuple[set[str], str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "usagectl", *args],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "COLUMNS": "100"})
    assert out.returncode == 0, out.stderr[-2000:]
    return ({line.split("|")[-1].strip() for line in out.stderr.splitlines()
             if line.startswith("import time:")}, out.stdout)


def test_a_report_with_string_options_does_not_import_pydantic(sample, db_path) -> None:
    # -c, --as-of, --format and --db are strings Click delivers as they are: no pydantic step.
    imported, stdout = _imported(["--db", str(db_path), "report", "-c", "acme-farms-2026", "--as-of",
                                  "2026-06-30T00:00:00Z", "--format", "json"])
    assert "usagectl.reports.report" in imported  # the report ran
    assert not any(m.split(".")[0] == "pydantic" for m in imported)
    assert sample("report", "-c", "acme-farms-2026", "--as-of", "2026-06-30T00:00:00Z",
                  "--format", "json").stdout == stdout


def test_typer_still_converts_and_checks_every_other_value() -> None:
    # The lazy step hands every value that is not an absent option or a plain string to Typer's
    # own conversion: numbers (with their bounds), choices, lists, flags and paths as before.
    import usagectl.cli  # noqa: F401 — installs usagectl.cli.coercion

    seen: dict = {}
    toy = typer.Typer()

    @toy.command()
    def run(name: Annotated[str | None, typer.Option()] = None,
            n: Annotated[int, typer.Option(min=1)] = 3,
            colour: Annotated[Colour, typer.Option()] = Colour.red,
            tag: Annotated[list[str] | None, typer.Option()] = None,
            path: Annotated[Path | None, typer.Option()] = None,
            upper: Annotated[str | None, typer.Option(parser=str.upper)] = None,
            flag: bool = False) -> None:
        seen.update(name=name, n=n, colour=colour, tag=tag, path=path, upper=upper, flag=flag)

    runner = CliRunner()
    ok = runner.invoke(toy, ["--name", "x y", "--n", "7", "--colour", "blue", "--tag", "a",
                             "--tag", "b", "--path", "p/q", "--upper", "abc", "--flag"])
    assert ok.exit_code == 0, ok.output
    assert seen == {"name": "x y", "n": 7, "colour": Colour.blue, "tag": ["a", "b"],
                    "path": Path("p/q"), "upper": "ABC", "flag": True}
    seen.clear()
    assert runner.invoke(toy, []).exit_code == 0
    assert not seen.pop("tag")  # no --tag: empty, as Typer gives it
    assert seen == {"name": None, "n": 3, "colour": Colour.red, "path": None, "upper": None,
                    "flag": False}
    for bad in (["--n", "0"], ["--n", "1.5"], ["--colour", "green"]):
        assert runner.invoke(toy, bad).exit_code == 2, bad
