"""Shared fixtures: a real DuckDB file under tmp_path and an in-process CLI runner.

Output width is pinned so table assertions do not depend on the terminal running the tests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

os.environ["COLUMNS"] = "120"
os.environ.pop("USAGECTL_DB", None)
os.environ.pop("NO_COLOR", None)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO / "sample_data"
SHARED_FIELDS = REPO.parent / "shared" / "data" / "fields"


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):  # noqa: ANN201 — any JSON value
        return json.loads(self.stdout)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "usage.duckdb"


@pytest.fixture
def cli(db_path: Path):  # noqa: ANN201
    """Run ``usagectl --db <tmp db> ARGS`` in-process; returns exit code, stdout, stderr."""
    from usagectl.cli import app

    def run(*args: str, db: Path | None = None, env: dict | None = None) -> Run:
        runner = CliRunner(env={"COLUMNS": "120", **(env or {})})
        result = runner.invoke(app, ["--db", str(db or db_path), *map(str, args)],
                               catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def sample(cli):  # noqa: ANN201
    """``cli`` on a database holding the bundled sample: every file and contracts.toml."""
    for f in sorted(SAMPLE_DATA.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            assert cli("ingest", f, *owner, "--quiet").exit_code == 0, f
    assert cli("contracts", "load", SAMPLE_DATA / "contracts.toml").exit_code == 0
    return cli


def reasons(cli) -> dict[int, str]:  # noqa: ANN001
    """Reject reasons by line, as ``usagectl rejects`` lists them."""
    return {r["line"]: r["reason"] for r in cli("rejects", "--format", "json").json()}


ACRE_M2 = 4046.8564224


def geodesic_acres(geom) -> float:  # noqa: ANN001
    """The reference area: pyproj's WGS84 geodesic area of the oriented lon/lat geometry."""
    import shapely
    from pyproj import Geod

    return abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.orient_polygons(geom))[0]) / ACRE_M2


def query(db: Path, sql: str) -> list:
    """Rows of a read-only query on a usagectl database file (session zone UTC)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


#: A contract of owner ``o`` with a ``count`` meter (requests) and a ``sum`` meter (credits).
REQUESTS_AND_CREDITS = """
[[contract]]
id = "c"
owner = "o"
start = 2026-01-01
cycle = "monthly"

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  limit = 100

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  limit = 50
"""

#: A contract of owner ``acme`` with one unique_area meter of boundaries, in hectares.
HECTARE_AREA = """
[[contract]]
id = "c"
owner = "acme"
start = 2026-01-01
cycle = "annual"
timezone = "UTC"
  [[contract.meter]]
  name = "area"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  unit = "hectare"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
