"""Real gateway logs as they come (issue 10 items 1–3, SPEC §3.1): no product column,
``--product``, ``--map`` that copies, and request URLs with ``--route``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from tests.conftest import query as rows
from tests.conftest import reasons, write

GATEWAY = "timestamp,X-User-ID,X-Organization-ID,endpoint,status_code,dataset_id,indicator_ids\n"
GATEWAY_ROWS = (
    '2026-08-02T20:31:08Z,user-b,org-research,/datasets,200,2695,"904,885"\n'
    '2026-08-03T10:00:00Z,user-k,org-policy,/datasets,200,487,"1072"\n'
    "2026-08-04T16:19:30Z,user-k,org-policy,/health,200,,\n"
)


def only(out: dict) -> dict:
    assert len(out["files"]) == 1, out
    return out["files"][0]


# ------------------------------------------------------------------ item 1: product is optional


def test_gateway_log_without_product_column_ingests(cli, tmp_path: Path, db_path: Path) -> None:
    f = write(tmp_path / "gw.csv", GATEWAY + GATEWAY_ROWS)
    r = cli("ingest", f, "--owner", "lca", "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    out = only(r.json())
    assert (out["status"], out["rows_read"], out["accepted"], out["rejected"]) == ("ok", 3, 3, 0)
    assert rows(db_path, "SELECT user_id, org_id, product, endpoint FROM events ORDER BY ts") == [
        ("user-b", "org-research", None, "/datasets"), ("user-k", "org-policy", None, "/datasets"),
        ("user-k", "org-policy", None, "/health")]


def test_product_option_fills_rows_that_lack_it_and_is_recorded(cli, tmp_path: Path,
                                                                 db_path: Path) -> None:
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,product\n"
              "e1,2026-01-01T10:00:00Z,acme,u1,\n"
              "e2,2026-01-01T10:00:00Z,acme,u1,OWN\n")
    out = only(cli("ingest", f, "--product", "DATASETS", "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (2, 0)
    assert rows(db_path, "SELECT event_id, product FROM events ORDER BY 1") == [
        ("e1", "DATASETS"), ("e2", "OWN")]
    (ingest,) = cli("ingests", "--format", "json").json()
    assert ingest["options"]["product"] == "DATASETS"
    # The same file without the column at all: --product fills every row.
    g = write(tmp_path / "b.csv", "event_id,ts,owner_id,user_id\ne3,2026-01-01T10:00:00Z,acme,u1\n")
    assert only(cli("ingest", g, "--product", "DATASETS", "--format", "json").json())["accepted"] == 1
    assert rows(db_path, "SELECT product FROM events WHERE event_id = 'e3'") == [("DATASETS",)]


def test_product_is_still_required_for_events_with_geometry(cli, tmp_path: Path) -> None:
    square = "POLYGON((-93 42,-92.99 42,-92.99 42.01,-93 42.01,-93 42))"
    f = write(tmp_path / "a.csv", "event_id,ts,owner_id,user_id,geometry\n"
              f'e1,2026-01-01T10:00:00Z,acme,u1,"{square}"\n'
              "e2,2026-01-01T10:00:00Z,acme,u1,\n"
              'e3,2026-01-01T10:00:00Z,acme,u1,"POINT(1 2)"\n')
    out = only(cli("ingest", f, "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (1, 2)
    r = reasons(cli)
    assert "product is empty" in r[2] and "geometry" in r[2] and "--product" in r[2]
    assert "product is empty" in r[4]  # a geometry that is wrong anyway still needs a product
    # With --product the polygon is accepted; the row without geometry now claims an area
    # product and is refused as such.
    again = only(cli("ingest", f, "--product", "FIELDS_BOUNDARY", "--format", "json").json())
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (1, 0, 2)


def test_schema_v3_database_is_migrated_with_nullable_product(tmp_path: Path) -> None:
    from usagectl.store import db as dbmod
    from usagectl.store.db import connect

    path = tmp_path / "v3.duckdb"
    v3 = re.sub(r"\n    product( +)VARCHAR,", r"\n    product\1VARCHAR NOT NULL,", dbmod.SCHEMA)
    assert v3 != dbmod.SCHEMA
    con = duckdb.connect(str(path))
    con.execute(v3)
    con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    con.execute("INSERT INTO events (owner_id, event_id, ts, user_id, product, action, succeeded, "
                "content_hash, ingest_id, ingested_at) VALUES ('o', 'e1', now(), 'u', 'p', "
                "'process', true, 'h', 1, now())")
    con.close()
    con = connect(path)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(dbmod.SCHEMA_VERSION),)
        assert con.execute("SELECT event_id, product FROM events").fetchall() == [("e1", "p")]
        con.execute("INSERT INTO events (owner_id, event_id, ts, user_id, product, action, "
                    "succeeded, content_hash, ingest_id, ingested_at) VALUES ('o', 'e2', now(), "
                    "'u', NULL, 'process', true, 'h', 1, now())")
    finally:
        con.close()


LICENCE = """
[[contract]]
id = "lic"
owner = "lca"
start = 2026-08-01
cycle = "annual"

  [[contract.meter]]
  name = "calls"
  aggregate = "count"

  [[contract.meter]]
  name = "dataset_calls"
  aggregate = "count"
  products = ["DATASETS"]

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
  endpoints = ["/datasets"]
"""


def test_meters_without_products_filter_count_product_less_events(cli, tmp_path: Path) -> None:
    f = write(tmp_path / "gw.csv", GATEWAY + GATEWAY_ROWS)
    assert cli("ingest", f, "--owner", "lca").exit_code == 0
    assert cli("contracts", "load", write(tmp_path / "c.toml", LICENCE)).exit_code == 0
    doc = cli("report", "-c", "lic", "--as-of", "2026-09-01", "--format", "json").json()
    got = {m["name"]: m["owner_total"] for m in doc["meters"]}
    assert got == {"calls": 3, "dataset_calls": 0, "users": 2}


# --------------------------------------------------------------------- item 2: --map copies

MAP_ROW = {"event_id": "e1", "ts": "2026-01-01T10:00:00Z", "owner_id": "acme", "user_id": "u1",
           "endpoint": "/datasets"}


def _write_all_formats(tmp_path: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = []
    for fmt in ("csv", "jsonl", "geojson", "parquet"):
        row = {**MAP_ROW, "event_id": f"{fmt}1"}
        path = tmp_path / f"m.{fmt}"
        if fmt == "csv":
            write(path, ",".join(row) + "\n" + ",".join(row.values()) + "\n")
        elif fmt == "jsonl":
            write(path, json.dumps(row) + "\n")
        elif fmt == "geojson":
            write(path, json.dumps({"type": "FeatureCollection", "features": [
                {"type": "Feature", "geometry": None, "properties": row}]}))
        else:
            pq.write_table(pa.table({k: [v] for k, v in row.items()}), path)
        out.append(path)
    return out


def test_map_copies_the_column_in_every_format(cli, tmp_path: Path, db_path: Path) -> None:
    files = _write_all_formats(tmp_path)
    r = cli("ingest", *files, "--map", "product=endpoint", "--map", "operation=endpoint",
            "--format", "json")
    assert r.exit_code == 0, r.stdout
    assert r.json()["totals"]["accepted"] == 4, r.stdout
    got = rows(db_path, "SELECT event_id, product, operation, endpoint, attributes FROM events "
                        "ORDER BY 1")
    assert got == [(f"{fmt}1", "/datasets", "/datasets", "/datasets", None)
                   for fmt in ("csv", "geojson", "jsonl", "parquet")]


def test_map_from_a_json_key_that_is_an_alias(cli, tmp_path: Path, db_path: Path) -> None:
    # `path` is an alias of endpoint; mapped to product it feeds both.
    f = write(tmp_path / "a.jsonl", json.dumps({"id": "j1", "ts": "2026-01-01T10:00:00Z",
                                                "owner": "acme", "user": "u1",
                                                "path": "/v1/chat"}) + "\n")
    out = only(cli("ingest", f, "--map", "product=path", "--format", "json").json())
    assert out["accepted"] == 1, out
    assert rows(db_path, "SELECT product, endpoint FROM events") == [("/v1/chat", "/v1/chat")]


# ------------------------------------------------------------------ item 3: request URLs, --route

ROUTE = "/datasets/{dataset_id}?indicators={indicator_ids}"
URL_HEADER = "event_id,timestamp,user_id,endpoint,dataset_id\n"


def _attrs(db: Path, event_id: str) -> dict | None:
    (a,) = rows(db, f"SELECT attributes FROM events WHERE event_id = '{event_id}'")[0]
    return json.loads(a) if a is not None else None


def test_route_turns_a_request_url_into_its_fields(cli, tmp_path: Path, db_path: Path) -> None:
    f = write(tmp_path / "a.csv", URL_HEADER
              + 'e1,2026-01-01T10:00:00Z,u1,"/datasets/12345?indicators=964,897,962",\n'
              + 'e2,2026-01-01T10:00:00Z,u1,"/datasets/a%20b?indicators=9%2C1,2&other=x",\n'
              + "e3,2026-01-01T10:00:00Z,u1,https://api.example.org/datasets/77,\n"
              + "e4,2026-01-01T10:00:00Z,u1,/datasets/5?indicators=,\n")
    r = cli("ingest", f, "--owner", "lca", "--route", ROUTE, "--format", "json")
    assert r.exit_code == 0, r.stdout
    assert only(r.json())["accepted"] == 4, cli("rejects").stdout
    got = rows(db_path, "SELECT event_id, endpoint, dataset_id, indicator_ids FROM events "
                        "ORDER BY 1")
    assert got == [
        ("e1", "/datasets/{dataset_id}", "12345", ["964", "897", "962"]),
        # Path segments are percent-decoded; a query value is split on its literal commas and
        # each part decoded (%2C is a comma inside an id, not a separator).
        ("e2", "/datasets/{dataset_id}", "a b", ["9,1", "2"]),
        ("e3", "/datasets/{dataset_id}", "77", None),
        ("e4", "/datasets/{dataset_id}", "5", None)]
    assert _attrs(db_path, "e1") == {"raw_endpoint": "/datasets/12345?indicators=964,897,962"}
    assert _attrs(db_path, "e3") == {"raw_endpoint": "https://api.example.org/datasets/77"}
    (ingest,) = cli("ingests", "--format", "json").json()
    assert ingest["options"]["routes"] == [ROUTE]


def test_without_a_matching_route_the_query_string_is_dropped(cli, tmp_path: Path,
                                                             db_path: Path) -> None:
    f = write(tmp_path / "a.csv", URL_HEADER
              + "e1,2026-01-01T10:00:00Z,u1,/datasets?indicators=1,\n"
              + "e2,2026-01-01T10:00:00Z,u1,https://api.example.org/health?probe=1#x,\n"
              + "e3,2026-01-01T10:00:00Z,u1,/datasets/1/2?indicators=3,\n"
              + "e4,2026-01-01T10:00:00Z,u1,/plain,\n")
    # No --route at all: endpoints are still reduced to their path.
    assert only(cli("ingest", f, "--owner", "lca", "--format", "json").json())["accepted"] == 4
    got = rows(db_path, "SELECT event_id, endpoint, dataset_id, indicator_ids FROM events ORDER BY 1")
    assert got == [("e1", "/datasets", None, None), ("e2", "/health", None, None),
                   ("e3", "/datasets/1/2", None, None), ("e4", "/plain", None, None)]
    assert _attrs(db_path, "e1") == {"raw_endpoint": "/datasets?indicators=1"}
    assert _attrs(db_path, "e4") is None


def test_first_matching_route_wins(cli, tmp_path: Path, db_path: Path) -> None:
    f = write(tmp_path / "a.csv", URL_HEADER
              + "e1,2026-01-01T10:00:00Z,u1,/datasets/search?q=soil+carbon,\n"
              + "e2,2026-01-01T10:00:00Z,u1,/datasets/42,\n")
    out = only(cli("ingest", f, "--owner", "lca", "--route", "/datasets/search?q={operation}",
                   "--route", "/datasets/{dataset_id}", "--format", "json").json())
    assert out["accepted"] == 2
    assert rows(db_path, "SELECT event_id, endpoint, dataset_id, operation FROM events ORDER BY 1") == [
        ("e1", "/datasets/search", None, "soil carbon"), ("e2", "/datasets/{dataset_id}", "42", None)]


def test_captured_value_fills_but_never_overrides(cli, tmp_path: Path, db_path: Path) -> None:
    f = write(tmp_path / "a.csv", URL_HEADER
              + "e1,2026-01-01T10:00:00Z,u1,/datasets/12345,12345\n"
              + "e2,2026-01-01T10:00:00Z,u1,/datasets/12345,999\n"
              + 'e3,2026-01-01T10:00:00Z,u1,"/datasets/1?indicators=%ZZ,%FF",\n')
    out = only(cli("ingest", f, "--owner", "lca", "--route", ROUTE, "--format", "json").json())
    assert (out["accepted"], out["rejected"]) == (1, 2)
    r = reasons(cli)
    assert "dataset_id 999" in r[3] and "12345" in r[3] and "/datasets/12345" in r[3]
    assert "--route" in r[3]
    assert "not valid UTF-8" in r[4] and "percent" in r[4]


def test_route_applies_to_json_records(cli, tmp_path: Path, db_path: Path) -> None:
    f = write(tmp_path / "a.jsonl", json.dumps({
        "id": "j1", "ts": "2026-01-01T10:00:00Z", "owner": "lca", "user": "u1",
        "path": "/datasets/7?indicators=1,2", "indicators": ["2", "1"]}) + "\n")
    out = only(cli("ingest", f, "--route", ROUTE, "--format", "json").json())
    assert out["accepted"] == 1, cli("rejects").stdout  # same indicators, another order
    assert rows(db_path, "SELECT endpoint, dataset_id, indicator_ids FROM events") == [
        ("/datasets/{dataset_id}", "7", ["2", "1"])]


def test_a_trailing_slash_does_not_matter_on_either_side(cli, tmp_path: Path,
                                                        db_path: Path) -> None:
    f = write(tmp_path / "a.csv", URL_HEADER
              + 'e1,2026-01-01T10:00:00Z,u1,"/datasets/777/?indicators=5",\n'
              + "e2,2026-01-01T10:00:00Z,u1,/datasets/778,\n"
              + "e3,2026-01-01T10:00:00Z,u1,/files/9/,\n"
              + "e4,2026-01-01T10:00:00Z,u1,/files/10,\n"
              + "e5,2026-01-01T10:00:00Z,u1,/datasets/,\n"  # no id: no match, nothing filled
              + "e6,2026-01-01T10:00:00Z,u1,/datasets/779//,\n")  # one slash only is dropped
    out = only(cli("ingest", f, "--owner", "lca", "--route", ROUTE,
                   "--route", "/files/{resource_id}/", "--format", "json").json())
    assert out["accepted"] == 6, cli("rejects").stdout
    assert rows(db_path, "SELECT event_id, endpoint, dataset_id, resource_id, indicator_ids "
                         "FROM events ORDER BY 1") == [
        ("e1", "/datasets/{dataset_id}", "777", None, ["5"]),
        ("e2", "/datasets/{dataset_id}", "778", None, None),
        ("e3", "/files/{resource_id}/", None, "9", None),
        ("e4", "/files/{resource_id}/", None, "10", None),
        ("e5", "/datasets/", None, None, None),
        ("e6", "/datasets/779//", None, None, None)]


def test_path_parameters_are_not_part_of_a_segment(cli, tmp_path: Path, db_path: Path) -> None:
    """RFC 3986 §3.3: a segment may carry ;parameters (jsessionid); they are dropped before a
    segment is compared or captured. An encoded %3B is part of the value."""
    f = write(tmp_path / "a.csv", URL_HEADER
              + "e1,2026-01-01T10:00:00Z,u1,/datasets/787;jsessionid=1,\n"
              + 'e2,2026-01-01T10:00:00Z,u1,"/datasets;v=2/788;a=1;b=2?indicators=3",\n'
              + "e3,2026-01-01T10:00:00Z,u1,/datasets/7%3B8,\n"
              + "e4,2026-01-01T10:00:00Z,u1,/datasets/;x=1,\n")  # nothing left to capture
    out = only(cli("ingest", f, "--owner", "lca", "--route", ROUTE, "--format", "json").json())
    assert out["accepted"] == 4, cli("rejects").stdout
    assert rows(db_path, "SELECT event_id, endpoint, dataset_id, indicator_ids FROM events "
                         "ORDER BY 1") == [
        ("e1", "/datasets/{dataset_id}", "787", None),
        ("e2", "/datasets/{dataset_id}", "788", ["3"]),
        ("e3", "/datasets/{dataset_id}", "7;8", None),
        ("e4", "/datasets/;x=1", None, None)]
    assert _attrs(db_path, "e1") == {"raw_endpoint": "/datasets/787;jsessionid=1"}


@pytest.mark.parametrize(("template", "needle"), [
    ("/datasets;v=2/{dataset_id}", ";parameters"),
    ("/datasets/{nope}", "'nope' is not a field a route can fill"),
    ("/datasets/{endpoint}", "'endpoint' is not a field a route can fill"),
    ("datasets/{dataset_id}", "must start with /"),
    ("/datasets/x{dataset_id}", "whole path segment"),
    ("/datasets?indicators", "name={field}"),
    ("/d/{dataset_id}/{dataset_id}", "twice"),
])
def test_bad_route_templates_are_usage_errors(cli, tmp_path: Path, db_path: Path,
                                              template: str, needle: str) -> None:
    f = write(tmp_path / "a.csv", URL_HEADER + "e1,2026-01-01T10:00:00Z,u1,/x,\n")
    r = cli("ingest", f, "--owner", "lca", "--route", template, "--format", "json")
    assert r.exit_code == 2, r.stdout
    err = r.json()["error"]
    assert needle in err["message"] and "dataset_id" in err["message"]  # lists the valid names
    assert not db_path.exists()  # refused before anything was opened
