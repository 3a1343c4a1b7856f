"""CLI start-up does not load the geometry or Arrow stacks (issue: fast start-up)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def test_cli_import_does_not_load_heavy_libraries() -> None:
    code = ("import sys, usagectl.cli; "
            "print(sorted(m for m in ('shapely', 'pyproj', 'pyarrow', 'geopandas', 'jinja2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


HEAVY = ("duckdb", "pyarrow", "shapely", "pyproj", "pandas", "jinja2", "numpy", "pyspark", "py4j",
         "fastapi", "uvicorn", "starlette")  # typer itself imports pydantic when installed


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
