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


# ------------------------------------------------------------------------ one Spark for the suite

_SPARK: dict = {}


def java_present() -> bool:
    home = os.environ.get("JAVA_HOME")
    import shutil

    return bool(home and Path(home, "bin", "java").is_file()) or shutil.which("java") is not None


def stop_shared_spark() -> None:
    """Stop the suite's Spark session if one runs (a test that starts its own JVM calls this
    first, so that one JVM runs at a time); the next test that asks for ``spark`` starts it
    again."""
    _SPARK.pop("session", None)
    stack = _SPARK.pop("stack", None)
    if stack is not None:
        stack.close()


@pytest.fixture(scope="session")
def _spark_lifetime():  # noqa: ANN202
    yield
    stop_shared_spark()


@pytest.fixture
def spark(_spark_lifetime):  # noqa: ANN001, ANN201
    """The suite's one Spark session (``local[2]``, made by usagectl's own session factory):
    started by the first test that asks for it, shared by every Spark test module of this
    process (the ``spark`` xdist group keeps them on one worker) and stopped at the end, so
    the JVM's start-up is paid once. Skipped when pyspark or Java is absent (``make test``
    installs both)."""
    pytest.importorskip("pyspark")
    if not java_present():
        pytest.skip("no Java runtime (make test installs openjdk-17-jre-headless)")
    if "session" not in _SPARK:
        import contextlib

        from usagectl.engines.spark import spark_session

        stack = contextlib.ExitStack()
        _SPARK["session"] = stack.enter_context(spark_session("local[2]"))
        _SPARK["stack"] = stack
    return _SPARK["session"]
