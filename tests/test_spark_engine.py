"""``report --engine spark`` prints the local engine's JSON byte for byte (docs/spark.md).

One real Spark session (``local[2]``) serves the whole module and tests/test_area_spark.py: the
``spark`` fixture (tests/conftest.py) starts it once, every report run in this process reuses it,
and ``xdist_group`` keeps the Spark tests on one xdist worker (``--dist loadgroup`` in
pyproject.toml), so there is one JVM, not one per worker or module. The
module is skipped only when pyspark or Java is absent; ``make test`` installs both.

The failures that need no JVM (pyspark missing, Java missing, an unreachable master, a bad
``--engine``) are tested here too, before the session starts or beside it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import SAMPLE_DATA, java_present, stop_shared_spark

pytestmark = pytest.mark.xdist_group("spark")

AS_OF = "2026-11-20T12:00:00Z"
SAMPLE_CONTRACTS = ("acme-farms-2026", "lca-licence-2026", "terra-pro-monthly",
                    "docuscan-team-monthly")
SPARK_VIEWS = ("consolidated", "users", "daily")
ENGINE_VALUES = ("local", "spark")


def _java_present() -> bool:
    return java_present()


def _invoke(db: Path, *args: str, env: dict | None = None):  # noqa: ANN202
    from usagectl.cli import app

    runner = CliRunner(env={"COLUMNS": "120", **(env or {})})
    return runner.invoke(app, ["--db", str(db), *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("spark-sample") / "usage.duckdb"
    for f in sorted(SAMPLE_DATA.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            assert _invoke(db, "ingest", f, *owner, "--quiet").exit_code == 0, f
    assert _invoke(db, "contracts", "load", SAMPLE_DATA / "contracts.toml").exit_code == 0
    return db


def assert_same_json(db: Path, *args: str) -> None:
    """The report's JSON from both engines: the same bytes."""
    local = _invoke(db, "report", *args, "--format", "json")
    spark = _invoke(db, "report", *args, "--format", "json", "--engine", "spark")
    assert local.exit_code == 0, local.stdout + local.stderr
    assert spark.exit_code == 0, spark.stdout + spark.stderr
    assert spark.stdout == local.stdout, args


# ------------------------------------------------------------------------ spark-submit

def test_a_master_spark_submit_configured_is_kept() -> None:
    # spark-submit starts the JVM and hands pyspark its port: the master is already set then,
    # and --engine spark must not replace it with local[*].
    from usagectl.engines.spark import launched_by_spark

    assert launched_by_spark({"PYSPARK_GATEWAY_PORT": "40123"})
    assert not launched_by_spark({})


@pytest.fixture(scope="module")
def sample_dataset(sample_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's events as the dataset ``export --events`` writes (every owner)."""
    folder = tmp_path_factory.mktemp("spark-dataset") / "events"
    out = _invoke(sample_db, "export", "--events", folder, "--quiet")
    assert out.exit_code == 0, out.stdout + out.stderr
    return folder


def test_spark_submit_runs_the_launcher(sample_db: Path, sample_dataset: Path,
                                        tmp_path: Path) -> None:
    # What a cluster runs: spark-submit (pyspark's own bin/spark-submit) starts the JVM with the
    # master it is given and runs usagectl's launcher file; the dataset and the contracts file
    # are all it has (no database). Its own JVM: the first test of the module, before the
    # module's session starts, so that one JVM runs at a time.
    pyspark = pytest.importorskip("pyspark")
    if not _java_present():
        pytest.skip("no Java runtime (make test installs openjdk-17-jre-headless)")
    stop_shared_spark()  # one JVM at a time: the suite's session starts again when asked for
    from usagectl.engines import submit

    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    args = ["report", "--contract", "lca-licence-2026", "--as-of", AS_OF, "--format", "json"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    out = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "--conf", "spark.driver.host=127.0.0.1",
         "--conf", "spark.driver.bindAddress=127.0.0.1", "--conf", "spark.ui.enabled=false",
         submit.__file__, "--db", str(tmp_path / "none.duckdb"), *args, "--quiet",
         "--engine", "spark", "--events", str(sample_dataset),
         "--contracts", str(SAMPLE_DATA / "contracts.toml")],
        capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    local = _invoke(sample_db, *args)
    assert local.exit_code == 0
    assert out.stdout == local.stdout
    assert not (tmp_path / "none.duckdb").exists()


# ------------------------------------------------------------------------ the sample data

@pytest.mark.parametrize("contract", SAMPLE_CONTRACTS)
def test_sample_reports_are_identical(spark, sample_db: Path, contract: str) -> None:  # noqa: ANN001
    # Every sample contract, every view Spark computes (acme's area tiles may come from the
    # cache the local run wrote; test_area_meters_run_their_blocks_on_spark runs them on Spark).
    for view in SPARK_VIEWS:
        assert_same_json(sample_db, "--contract", contract, "--view", view, "--as-of", AS_OF)


def test_sample_with_user_and_ingest_cut_off(spark, sample_db: Path) -> None:  # noqa: ANN001
    assert_same_json(sample_db, "--contract", "docuscan-team-monthly", "--as-of", AS_OF,
                     "--period", "0")  # a period without events: an empty Parquet file
    assert_same_json(sample_db, "--contract", "docuscan-team-monthly", "--as-of", AS_OF,
                     "--user", "usr_anna")
    assert_same_json(sample_db, "--contract", "terra-pro-monthly", "--as-of", AS_OF,
                     "--period", "previous", "--view", "users")


def test_sample_csv_format(spark, sample_db: Path) -> None:  # noqa: ANN001
    for fmt in ("csv",):
        args = ["report", "--contract", "lca-licence-2026", "--as-of", AS_OF, "--format", fmt]
        local = _invoke(sample_db, *args)
        other = _invoke(sample_db, *args, "--engine", "spark")
        assert other.exit_code == 0 and other.stdout == local.stdout, fmt


def test_events_from_a_given_dataset(spark, sample_db: Path, tmp_path: Path) -> None:  # noqa: ANN001
    # The library reads events from a dataset instead of exporting them (what a cluster
    # run gives with a dataset on shared storage): the same consolidated document.
    from usagectl.engines import open_engine
    from usagectl.reports.views import consolidated
    from usagectl.reports.window import open_window
    from usagectl.store.db import session
    from usagectl.store.events_dataset import export_events

    with session(sample_db, read_only=True) as con:
        window = open_window(con, "lca-licence-2026", None, AS_OF)
        path = tmp_path / "events"
        export_events(con, path, None)
        with open_engine("spark", con, window, events=str(path)) as scalars:
            assert consolidated(con, window, scalars=scalars) == consolidated(con, window)


# ------------------------------------------------------------------------ a generated owner

GENERATED = """
[[contract]]
id = "{id}"
owner = "gen"
start = 2026-01-01
cycle = "monthly"
timezone = "{tz}"

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  endpoints = ["/v1/*", "/datasets", "/a[bc]?", "/x[!y]z"]

  [[contract.meter]]
  name = "failed_too"
  aggregate = "count"
  include_failed = true
  operations = ["run_*"]

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  products = ["API_TOKENS"]

  [[contract.meter]]
  name = "money"
  aggregate = "sum"
  fields = ["credits", "response_time_ms"]
  billed_on = "user"
  include_failed = true

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  billed_on = "user"
  endpoints = ["/datasets"]

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
  require = ["indicator_ids"]
  billed_on = "owner"
"""

#: Doubles whose DECIMAL(38, 9) cast is a rounding edge: half a nanosecond, binary ties,
#: above 2⁵³ nanoseconds (the cast of such a double must not go through its text).
TRICKY_MS = [5e-10, 2.5e-9, 123.4560000005, 0.1234567895, 9007199.254740993,
             999999999.999, 7664451.675643921, 0.1, 0.2, 0.3]


def _generated_events(n: int, seed: int) -> list[tuple]:
    rnd = random.Random(seed)
    # Around both fall-back nights: Berlin 2026-10-25 01:00 UTC, New York 2026-11-01 06:00 UTC.
    centres = [datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)]
    rows = []
    for k in range(n):
        if rnd.random() < 0.5:
            ts = rnd.choice(centres) + timedelta(minutes=rnd.randint(-36 * 60, 36 * 60),
                                                 microseconds=rnd.randint(0, 999_999))
        else:
            ts = datetime(2026, 9, 26, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 60 * 86400))
        ok = rnd.random() < 0.8
        product = rnd.choice(["API_TOKENS", "DATASETS", "OTHER", None])
        tok = rnd.choice([None, rnd.randint(0, 10**6), rnd.randint(0, 2**62)])
        credits = rnd.choice([None, Decimal(rnd.randint(0, 10**12)).scaleb(-9),
                              Decimal("123456789012345678.123456789")])
        rt = rnd.choice([None, round(rnd.uniform(0, 5000), rnd.randint(0, 9)),
                         rnd.choice(TRICKY_MS)])
        rows.append((
            "gen", f"g{k}", ts, rnd.choice(["ua", "ub", "uc", "ud", "ue"]),
            rnd.choice(["o1", "o2", None]), product, "process", ok,
            None if ok else rnd.choice(["E1", "E2", None]),
            rnd.choice(["/v1/chat", "/v1/embed", "/datasets", "/abc", "/acd", "/xaz", "/xyz",
                        "/search", None]),
            rnd.choice(["run_a", "run_b", "stop", None]),
            rnd.choice(["d1", "d2", "d3", None]),
            rnd.choice([None, [], ["i1"], ["i1", "i2"], ["i3", None]]),
            tok, tok and tok // 3, rnd.choice([None, 7]), credits, rt, f"h{k}", 1,
            ts + timedelta(days=rnd.choice([0, 0, 1, 40])),
        ))
    return rows


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from usagectl.store.db import connect

    folder = tmp_path_factory.mktemp("spark-generated")
    db = folder / "usage.duckdb"
    import pyarrow as pa

    columns = ("owner_id", "event_id", "ts", "user_id", "org_id", "product", "action",
               "succeeded", "error_code", "endpoint", "operation", "dataset_id", "indicator_ids",
               "input_tokens", "output_tokens", "thinking_tokens", "credits", "response_time_ms",
               "content_hash", "ingest_id", "ingested_at")
    types = {"ts": pa.timestamp("us", "UTC"), "ingested_at": pa.timestamp("us", "UTC"),
             "succeeded": pa.bool_(), "indicator_ids": pa.list_(pa.string()),
             "input_tokens": pa.int64(), "output_tokens": pa.int64(),
             "thinking_tokens": pa.int64(), "credits": pa.decimal128(38, 9),
             "response_time_ms": pa.float64(), "ingest_id": pa.int64()}
    rows = _generated_events(3000, seed=12)
    table = pa.table({c: pa.array([r[k] for r in rows], types.get(c, pa.string()))
                      for k, c in enumerate(columns)})
    con = connect(db)
    con.register("generated", table)  # one INSERT of the whole table (row by row is slow)
    con.execute(f"INSERT INTO events ({', '.join(columns)}) SELECT * FROM generated")
    con.close()
    toml = folder / "contracts.toml"
    toml.write_text(GENERATED.format(id="gen-berlin", tz="Europe/Berlin")
                    + GENERATED.format(id="gen-ny", tz="America/New_York"))
    assert _invoke(db, "contracts", "load", toml).exit_code == 0
    return db


@pytest.mark.parametrize(("contract", "period"), [("gen-berlin", "previous"),
                                                  ("gen-ny", "current")])
def test_generated_owner_is_identical(spark, generated_db: Path, contract: str,  # noqa: ANN001
                                      period: str) -> None:
    # Berlin falls back inside October (its previous period), New York inside November (its
    # current one): local days of 25 hours, events in the repeated hour, late events
    # (ingested 40 days on), failures by error code, glob filters.
    for view in SPARK_VIEWS:
        assert_same_json(generated_db, "--contract", contract, "--view", view,
                         "--as-of", AS_OF, "--period", period)


def test_generated_owner_filters(spark, generated_db: Path) -> None:  # noqa: ANN001
    assert_same_json(generated_db, "--contract", "gen-ny", "--as-of", AS_OF, "--user", "ub")
    assert_same_json(generated_db, "--contract", "gen-berlin", "--as-of", AS_OF,
                     "--as-ingested-at", "2026-11-02T00:00:00Z", "--view", "users")
    assert_same_json(generated_db, "--contract", "gen-ny", "--as-of", AS_OF,
                     "--view", "daily", "--meter", "money", "--meter", "indicators",
                     "--from", "2026-11-01", "--to", "2026-11-04")  # [from, to): three days


def test_generated_sums_are_exact(spark, generated_db: Path) -> None:  # noqa: ANN001
    # The data does exercise exactness: credits of 18 integer digits and 9 decimals (a float
    # keeps 17 significant digits), token sums beyond 2⁶³ (Spark's BIGINT sum would overflow).
    out = _invoke(generated_db, "report", "--contract", "gen-ny", "--as-of", AS_OF,
                  "--format", "json", "--engine", "spark")
    doc = json.loads(out.stdout, parse_float=Decimal)
    blocks = {b["name"]: b for b in doc["meters"]}
    credits = blocks["money"]["fields"]["credits"]
    assert credits > 10**17 and credits != credits.to_integral_value()
    assert len(credits.as_tuple().digits) > 17
    assert blocks["tokens"]["owner_total"] > 2**63


def test_a_sum_too_large_is_the_same_validation_error(spark, tmp_path: Path) -> None:  # noqa: ANN001
    # Events stored before ingest bounded credits: their Σ (1.8e29) does not fit DECIMAL(38, 9).
    # Both engines refuse it with the validation error naming the meter (exit 1), not a bug.
    from usagectl.store.db import connect

    db = tmp_path / "usage.duckdb"
    con = connect(db)
    con.execute("INSERT INTO events (owner_id, event_id, ts, user_id, action, succeeded, credits, "
                "content_hash, ingest_id, ingested_at) SELECT 'big', 'b' || i, "
                "TIMESTAMPTZ '2026-11-10 12:00:00+00', 'u', 'process', true, "
                "9000000000000000000000000000.5, 'h' || i, 1, TIMESTAMPTZ '2026-11-10 12:00:00+00' "
                "FROM range(20) t(i)")
    con.close()
    toml = tmp_path / "c.toml"
    toml.write_text('[[contract]]\nid = "big"\nowner = "big"\nstart = 2026-01-01\n'
                    'cycle = "monthly"\n\n  [[contract.meter]]\n  name = "money"\n'
                    '  aggregate = "sum"\n  fields = ["credits"]\n')
    assert _invoke(db, "contracts", "load", toml).exit_code == 0
    errors = []
    for engine in ENGINE_VALUES:
        out = _invoke(db, "report", "--contract", "big", "--as-of", AS_OF, "--format", "json",
                      "--engine", engine)
        assert out.exit_code == 1, out.stdout
        assert "Traceback" not in out.stderr and "Exception" not in out.stderr, out.stderr
        error = json.loads(out.stdout)["error"]
        errors.append((error["code"], error["message"].split(" database (")[0]))
    assert errors[0] == errors[1]
    assert errors[0][0] == "validation_error" and "meter 'money'" in errors[0][1]


# ------------------------------------------------------------------------ clear failures

def test_unknown_engine_lists_the_engines(sample_db: Path) -> None:
    out = _invoke(sample_db, "report", "--contract", "docuscan-team-monthly", "--engine", "gpu")
    assert out.exit_code == 2
    assert "local, spark" in out.stderr


def test_spark_refuses_views_it_does_not_compute(sample_db: Path) -> None:
    out = _invoke(sample_db, "report", "--contract", "docuscan-team-monthly", "--engine", "spark",
                  "--view", "log")
    assert out.exit_code == 2
    assert "consolidated, users, daily" in out.stderr
    out = _invoke(sample_db, "report", "--contract", "docuscan-team-monthly",
                  "--spark-master", "local[2]")
    assert out.exit_code == 2 and "--engine spark" in out.stderr


def _report_in_subprocess(db: Path, *args: str, env: dict[str, str], prelude: str = ""
                          ) -> subprocess.CompletedProcess:
    code = (f"import sys; {prelude}from usagectl.cli import main; "
            f"main(['--db', {str(db)!r}, 'report', '--contract', 'docuscan-team-monthly', "
            f"'--engine', 'spark', *{list(args)!r}])")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_pyspark_missing_names_the_extra(sample_db: Path) -> None:
    # A process where ``import pyspark`` fails, as on an install without the extra.
    out = _report_in_subprocess(sample_db, env={},
                                prelude="sys.modules['pyspark'] = None; ")
    assert out.returncode == 1, out.stderr
    assert "pip install 'usagectl[spark]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_java_missing_names_the_package(sample_db: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    out = _report_in_subprocess(sample_db, env={"JAVA_HOME": str(tmp_path / "no-java")})
    assert out.returncode == 1, out.stderr
    assert "openjdk-17-jre-headless" in out.stderr and "JAVA_HOME" in out.stderr
    assert "Traceback" not in out.stderr
    bin_dir = tmp_path / "bin"  # PATH without java, no JAVA_HOME
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)
    code = ("import sys; from usagectl.cli import main; "
            f"main(['--db', {str(sample_db)!r}, 'report', '--contract', 'docuscan-team-monthly', "
            "'--engine', 'spark'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 1, out.stderr
    assert "openjdk-17-jre-headless" in out.stderr and "Traceback" not in out.stderr


def test_unreachable_master_names_the_url(sample_db: Path) -> None:
    pytest.importorskip("pyspark")
    # Port 9 on 127.0.0.1 (discard) is closed here: the connection is refused at once.
    out = _report_in_subprocess(sample_db, "--spark-master", "spark://127.0.0.1:9", env={})
    assert out.returncode == 1, out.stderr
    assert "spark://127.0.0.1:9" in out.stderr and "refused" in out.stderr.lower()
    assert "Traceback" not in out.stderr
    out = _report_in_subprocess(sample_db, env={"SPARK_REMOTE": "sc://127.0.0.1:9"})
    assert out.returncode == 1, out.stderr
    assert "sc://127.0.0.1:9" in out.stderr and "Traceback" not in out.stderr


def test_area_meters_run_their_blocks_on_spark(spark, tmp_path: Path) -> None:  # noqa: ANN001
    # Each engine on its own fresh database (no cached tiles to reuse): the acme contract's
    # unique-area meters give the local engine's JSON, and their blocks ran as Spark jobs.
    from usagectl.meters.area_spark import JOB_GROUP

    dbs = {}
    for name in ("spark", "local"):
        db = tmp_path / name / "usage.duckdb"
        db.parent.mkdir()
        for f in ("fields_boundaries.geojson", "machine_files.csv"):
            assert _invoke(db, "ingest", SAMPLE_DATA / f, "--quiet").exit_code == 0, f
        assert _invoke(db, "contracts", "load", SAMPLE_DATA / "contracts.toml").exit_code == 0
        dbs[name] = db
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(JOB_GROUP))
    args = ["report", "--contract", "acme-farms-2026", "--as-of", AS_OF, "--format", "json"]
    on_spark = _invoke(dbs["spark"], *args, "--engine", "spark")
    assert on_spark.exit_code == 0, on_spark.stdout + on_spark.stderr
    assert set(tracker.getJobIdsForGroup(JOB_GROUP)) - before, "no area job ran on Spark"
    local = _invoke(dbs["local"], *args)
    assert local.exit_code == 0
    assert on_spark.stdout == local.stdout


# ------------------------------------------------------------------------ --events DATASET

def assert_same_json_from_dataset(db: Path, dataset: Path, *args: str,
                                  report_db: Path | None = None) -> None:
    """The local engine on the database and the Spark engine on the dataset: the same bytes
    (``report_db``: the database the Spark run names, absent when --contracts FILE is given)."""
    local = _invoke(db, "report", *args, "--format", "json")
    spark = _invoke(report_db or db, "report", *args, "--format", "json", "--engine", "spark",
                    "--events", dataset)
    assert local.exit_code == 0, local.stdout + local.stderr
    assert spark.exit_code == 0, spark.stdout + spark.stderr
    assert spark.stdout == local.stdout, args


@pytest.mark.parametrize("contract", SAMPLE_CONTRACTS)
def test_sample_reports_from_the_dataset(spark, sample_db: Path, sample_dataset: Path,  # noqa: ANN001
                                         contract: str) -> None:
    for view in SPARK_VIEWS:
        assert_same_json_from_dataset(sample_db, sample_dataset, "--contract", contract,
                                      "--view", view, "--as-of", AS_OF)
    if contract.endswith("-monthly"):  # the yearly ones have no previous period yet
        assert_same_json_from_dataset(sample_db, sample_dataset, "--contract", contract,
                                      "--as-of", AS_OF, "--period", "previous")


def test_dataset_with_contracts_file_needs_no_database(spark, sample_db: Path,  # noqa: ANN001
                                                       sample_dataset: Path,
                                                       tmp_path: Path) -> None:
    # What a cluster driver has: the dataset and the contracts file, no usagectl database.
    missing = tmp_path / "nowhere" / "usage.duckdb"
    for contract in ("lca-licence-2026", "terra-pro-monthly"):
        assert_same_json_from_dataset(sample_db, sample_dataset, "--contract", contract,
                                      "--as-of", AS_OF, "--contracts",
                                      SAMPLE_DATA / "contracts.toml", report_db=missing)
    assert not missing.parent.exists()


def test_generated_owner_from_the_dataset(spark, generated_db: Path,  # noqa: ANN001
                                          tmp_path: Path) -> None:
    dataset = tmp_path / "events"
    out = _invoke(generated_db, "export", "--events", dataset, "--owner", "gen", "--quiet")
    assert out.exit_code == 0, out.stdout + out.stderr
    for contract, period in (("gen-berlin", "previous"), ("gen-ny", "current")):
        for view in SPARK_VIEWS:
            assert_same_json_from_dataset(generated_db, dataset, "--contract", contract,
                                          "--view", view, "--as-of", AS_OF, "--period", period)
    assert_same_json_from_dataset(generated_db, dataset, "--contract", "gen-berlin",
                                  "--as-of", AS_OF, "--as-ingested-at", "2026-11-02T00:00:00Z",
                                  "--user", "ub")


def test_events_needs_the_spark_engine(sample_db: Path, tmp_path: Path) -> None:
    out = _invoke(sample_db, "report", "--contract", "docuscan-team-monthly",
                  "--events", tmp_path)
    assert out.exit_code == 2
    assert "--engine spark" in out.stderr


# ------------------------------------------------------------------------ export --engine spark

def test_export_with_the_spark_engine(spark, sample_db: Path, tmp_path: Path) -> None:  # noqa: ANN001
    # Every current sample contract's consolidated, users and daily CSVs: the same files (and
    # so the same manifest, SHA-256s included) from either engine.
    views = "consolidated,users,daily"
    docs = {}
    for engine in ENGINE_VALUES:
        folder = tmp_path / engine
        out = _invoke(sample_db, "export", "--all", "--out-dir", folder, "--views", views,
                      "--as-of", AS_OF, "--format", "json", "--quiet", "--engine", engine)
        assert out.exit_code == 0, out.stdout + out.stderr
        docs[engine] = json.loads(out.stdout)
        docs[engine].pop("out_dir", None)
        assert len(docs[engine]["files"]) == 3 * len(SAMPLE_CONTRACTS)
    assert docs["spark"] == docs["local"]
    for f in docs["local"]["files"]:
        local = (tmp_path / "local" / f["name"]).read_bytes()
        assert (tmp_path / "spark" / f["name"]).read_bytes() == local, f["name"]


def test_export_spark_refuses_other_views(sample_db: Path, tmp_path: Path) -> None:
    out = _invoke(sample_db, "export", "--all", "--out-dir", tmp_path, "--engine", "spark")
    assert out.exit_code == 2
    assert "consolidated, users, daily" in out.stderr and "--views" in out.stderr
    out = _invoke(sample_db, "export", "--all", "--out-dir", tmp_path, "--views", "users",
                  "--spark-master", "local[2]")
    assert out.exit_code == 2 and "--engine spark" in out.stderr


# ------------------------------------------------------------------------ overlap --engine spark

def assert_same_overlap(db: Path, tmp_path: Path, *args: str, spark_db: Path | None = None,
                        spark_args: tuple[str, ...] = ()) -> None:
    """``overlap --format json --geojson`` from both engines: the same bytes, both files."""
    outs = {}
    for engine in ENGINE_VALUES:
        geojson = tmp_path / f"{engine}.geojson"
        more = ("--engine", "spark", *spark_args) if engine == "spark" else ()
        out = _invoke(spark_db if engine == "spark" and spark_db else db, "overlap", *args,
                      "--format", "json", "--geojson", geojson, *more)
        assert out.exit_code == 0, out.stdout + out.stderr
        outs[engine] = (out.stdout, geojson.read_bytes())
    assert outs["spark"] == outs["local"], args
    assert json.loads(outs["local"][0])["users"], "no area at stake"


def test_overlap_with_the_spark_engine(spark, sample_db: Path, tmp_path: Path) -> None:  # noqa: ANN001
    # The sample's area contract: every region, pair and exclusive area of the local engine,
    # computed in blocks on Spark (overlap regions are never cached: every block runs).
    from usagectl.meters.area_spark import JOB_GROUP

    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup(JOB_GROUP))
    assert_same_overlap(sample_db, tmp_path, "--contract", "acme-farms-2026", "--as-of", AS_OF,
                        "--pairs", "3")
    doc = json.loads(_invoke(sample_db, "overlap", "--contract", "acme-farms-2026", "--as-of",
                             AS_OF, "--format", "json").stdout)
    assert doc["pairs"] and doc["overlap"] > 0  # overlapping users: pairs and regions at stake
    assert set(tracker.getJobIdsForGroup(JOB_GROUP)) - before, "no area job ran on Spark"
    assert_same_overlap(sample_db, tmp_path, "--contract", "acme-farms-2026", "--as-of", AS_OF,
                        "--meter", "unified", spark_args=("--spark-master", "local[2]"))


def test_overlap_spark_options_are_usage_errors(sample_db: Path, tmp_path: Path) -> None:
    # Refused before anything starts (exit 2), naming the valid values.
    base = ("overlap", "--contract", "acme-farms-2026")
    out = _invoke(sample_db, *base, "--engine", "gpu")
    assert out.exit_code == 2 and "local, spark" in out.stderr
    out = _invoke(sample_db, *base, "--spark-master", "local[2]")
    assert out.exit_code == 2 and "--engine spark" in out.stderr
    out = _invoke(sample_db, *base, "--events", tmp_path)
    assert out.exit_code == 2 and "--engine spark" in out.stderr


# ------------------------------------------------------------------------ area meters from a URI

AREA_CONTRACTS = """
[[contract]]
id = "geo-area"
owner = "geo"
start = 2026-01-01
cycle = "monthly"
timezone = "Europe/Berlin"

  [[contract.meter]]
  name = "processed"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]

  [[contract.meter]]
  name = "active"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  boundary_policy = "active"
  billed_on = "user"

  [[contract.meter]]
  name = "audit"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  mode = "audit"

  [[contract.meter]]
  name = "operations"
  aggregate = "unique_area"
  products = ["OPERATIONS_OPERATION"]
  derive_operations = true

[[contract]]
id = "geo-mixed"
owner = "geo"
start = 2026-01-01
cycle = "monthly"
timezone = "Europe/Berlin"

  [[contract.meter]]
  name = "calls"
  aggregate = "count"
  products = ["API"]

  [[contract.meter]]
  name = "everything"
  aggregate = "unique_area"
  products = "*"
"""


def _area_events(seed: int) -> list[dict]:
    """Boundaries of three users that overlap, are re-processed and deleted (before and inside
    the period), machine files and operations linked to them, and plain API calls."""
    import shapely

    rnd = random.Random(seed)
    start = datetime(2026, 9, 20, tzinfo=UTC)
    span = int((datetime(2026, 11, 20, tzinfo=UTC) - start).total_seconds())
    rows: list[dict] = []

    def add(product: str, user: str, resource: str | None, geom, action: str = "process",  # noqa: ANN001
            ok: bool = True) -> None:
        ts = start + timedelta(seconds=rnd.randint(0, span), microseconds=rnd.randint(0, 999_999))
        rows.append({"event_id": f"e{len(rows)}", "ts": ts, "user_id": user, "product": product,
                     "action": action, "resource_id": resource, "succeeded": ok,
                     "geometry": None if geom is None else shapely.to_wkb(geom),
                     "ingested_at": ts + timedelta(days=rnd.choice([0, 0, 1, 35]))})

    def box():  # noqa: ANN202 — fields around a tile corner (10.1°, 50.1°): some are cut
        lon, lat = 10.05 + rnd.random() * 0.1, 50.05 + rnd.random() * 0.1
        w = 0.004 + rnd.random() * 0.03
        return shapely.box(lon, lat, lon + w, lat + w * 0.7)

    for i in range(70):
        user = rnd.choice(["ua", "ub", "uc"])
        if rnd.random() < 0.15:
            add("FIELDS_BOUNDARY", user, f"f{i % 23}", None, action="delete")
        else:
            add("FIELDS_BOUNDARY", user, f"f{i % 23}", box(), ok=rnd.random() < 0.95)
    for j in range(14):
        add("OPERATIONS_FILE", rnd.choice(["ua", "ub", "uc"]), f"file{j}", box())
    files = [(r["user_id"], r["resource_id"]) for r in rows if r["product"] == "OPERATIONS_FILE"]
    for _ in range(25):
        user, name = rnd.choice(files)
        add("OPERATIONS_OPERATION", user, name if rnd.random() < 0.9 else "nofile", None)
    for _ in range(30):
        add("API", rnd.choice(["ua", "ub", "ud"]), None, None, ok=rnd.random() < 0.9)
    add("SATELLITE_PROCESS_PLANET", "ud", None, box())
    return rows


@pytest.fixture(scope="module")
def area_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A hand-made owner of area events (and its dataset, as ``export --events`` writes it)."""
    import pyarrow as pa

    from usagectl.store.db import connect

    folder = tmp_path_factory.mktemp("spark-area")
    db = folder / "usage.duckdb"
    rows = _area_events(seed=7)
    types = {"ts": pa.timestamp("us", "UTC"), "ingested_at": pa.timestamp("us", "UTC"),
             "succeeded": pa.bool_(), "geometry": pa.binary()}
    table = pa.table({c: pa.array([r[c] for r in rows], types.get(c, pa.string()))
                      for c in rows[0]})
    con = connect(db)
    con.register("generated", table)
    con.execute(f"INSERT INTO events ({', '.join(table.column_names)}, owner_id, content_hash, "
                "ingest_id) SELECT *, 'geo', 'h' || event_id, 1 FROM generated")
    con.close()
    toml = folder / "contracts.toml"
    toml.write_text(AREA_CONTRACTS)
    assert _invoke(db, "contracts", "load", toml).exit_code == 0
    dataset = folder / "events"
    out = _invoke(db, "export", "--events", dataset, "--quiet")
    assert out.exit_code == 0, out.stdout + out.stderr
    return db, dataset


def test_area_meters_from_a_uri(spark, area_db: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: ANN001
    # The dataset given as a file:// URI is read by Spark only (no DuckDB over the folder):
    # the rows the area meters read come from Spark, and every figure is the local engine's.
    db, dataset = area_db
    uri = dataset.as_uri()
    assert uri.startswith("file://")
    toml = db.parent / "contracts.toml"
    missing = tmp_path / "none.duckdb"
    for contract in ("geo-area", "geo-mixed"):
        for period in ("current", "previous"):
            for view in SPARK_VIEWS:
                assert_same_json_from_dataset(db, uri, "--contract", contract, "--view", view,
                                              "--as-of", AS_OF, "--period", period,
                                              "--contracts", toml, report_db=missing)
    assert_same_json_from_dataset(db, uri, "--contract", "geo-area", "--as-of", AS_OF,
                                  "--as-ingested-at", "2026-11-02T00:00:00Z", "--user", "ub")
    assert not missing.exists()
    # The area figures are at stake: overlap between users, derived operations, carried
    # boundaries.
    doc = json.loads(_invoke(db, "report", "--contract", "geo-area", "--as-of", AS_OF,
                             "--format", "json").stdout)
    blocks = {b["name"]: b for b in doc["meters"]}
    assert all(blocks[m]["owner_total"] > 0 for m in ("processed", "active", "audit",
                                                      "operations"))
    assert blocks["processed"]["overlap"] > 0
    assert blocks["active"]["owner_total"] != blocks["processed"]["owner_total"]


def test_overlap_from_a_dataset(spark, area_db: tuple[Path, Path], sample_db: Path,  # noqa: ANN001
                                sample_dataset: Path, tmp_path: Path) -> None:
    db, dataset = area_db
    toml = db.parent / "contracts.toml"
    for meter in ("processed", "active", "audit", "operations"):
        assert_same_overlap(db, tmp_path, "--contract", "geo-area", "--meter", meter,
                            "--as-of", AS_OF, "--contracts", toml,
                            spark_db=tmp_path / "none.duckdb",
                            spark_args=("--events", dataset.as_uri()))
    assert_same_overlap(sample_db, tmp_path, "--contract", "acme-farms-2026", "--as-of", AS_OF,
                        spark_args=("--events", str(sample_dataset)))
    assert not (tmp_path / "none.duckdb").exists()


def test_a_bad_view_is_named_before_the_engine(sample_db: Path) -> None:
    # A mistyped --view is the usage error to report (the valid views), not that --engine spark
    # does not compute it; nothing of Spark starts (this test has no session).
    out = _invoke(sample_db, "report", "--contract", "docuscan-team-monthly", "--view", "bogus",
                  "--engine", "spark")
    assert out.exit_code == 2
    assert "'bogus'" in out.stderr and "consolidated, users, daily, log, series" in out.stderr


def test_a_quiet_run_prints_nothing_on_stderr(sample_db: Path) -> None:
    # A fresh JVM (its own process): nothing of its start-up — the JVM's module warning,
    # Spark's "Setting default log level" — reaches stderr when nothing fails under --quiet.
    pytest.importorskip("pyspark")
    if not _java_present():
        pytest.skip("no Java runtime (make test installs openjdk-17-jre-headless)")
    stop_shared_spark()  # one JVM at a time
    out = _report_in_subprocess(sample_db, "--spark-master", "local[1]", "--as-of", AS_OF,
                                "--format", "json", "--quiet", env={})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["meters"]
    assert out.stderr == ""
