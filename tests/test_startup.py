"""CLI start-up does not load the geometry or Arrow stacks (issue: fast start-up)."""

from __future__ import annotations

import subprocess
import sys


def test_cli_import_does_not_load_heavy_libraries() -> None:
    code = ("import sys, usagectl.cli; "
            "print(sorted(m for m in ('shapely', 'pyproj', 'pyarrow', 'geopandas', 'jinja2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
