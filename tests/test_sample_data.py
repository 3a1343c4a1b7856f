"""The bundled sample data: deterministic, committed copy up to date, and it shows what it claims.

The generator is ``usagectl/sample/generator.py``; the committed output is ``sample_data/``. When a
test here fails after an intended generator change, refresh the copy with
``.venv/bin/python -m usagectl.sample.generator sample_data``.

The meter values in ``test_demo_statuses`` are recomputed here independently of usagectl's own
meters, straight from SPEC §4–§5, so the README's promise (ok, one warning, one exceeded) is
checked against the data and not against the code under test.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from shapely.geometry import shape

from usagectl.sample import DEFAULT_SEED, generate
from usagectl.sample.generator import FILE_NAMES

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
GEOD = pyproj.Geod(ellps="WGS84")
ACRE_M2 = 4046.8564224
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = (datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 20, 11, 0, tzinfo=UTC))
AREA_PRODUCTS = {
    "FIELDS_BOUNDARY",
    "OPERATIONS_FILE",
    "OPERATIONS_OPERATION",
    "SATELLITE_PROCESS_PLANET",
    "SATELLITE_PROCESS_SENTINEL",
}

# Keys SPEC §4 allows (contract, meter) plus the tiered-pricing keys of SPEC §5.4.
CONTRACT_KEYS = {"id", "owner", "start", "end", "cycle", "timezone", "tier", "meter"}
METER_KEYS = {
    "name", "aggregate", "products", "unit", "billed_on", "limit", "included", "overage_unit",
    "overage_cents_per_unit", "warn_at",  # the §4 example
    "boundary_policy", "mode", "derive_operations",  # unique_area
    "field",  # distinct
    "fields",  # sum
    "endpoints", "operations", "require", "include_failed",  # filters
    "prepaid",
    "pricing", "price",  # §5.4 tiered pricing
}  # fmt: skip
PRICE_KEYS = {"up_to", "cents_per_unit", "flat_cents"}


# ------------------------------------------------------------------------------------------------
# Loading helpers
# ------------------------------------------------------------------------------------------------


def _ts(text: str) -> datetime:
    """ISO 8601 with Z or an offset; naive means UTC (SPEC §3.1)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _area_acres(g) -> float:
    g = shapely.orient_polygons(g)  # Geod area is signed: counter-clockwise shells are positive
    return abs(GEOD.geometry_area_perimeter(g)[0]) / ACRE_M2


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _load(root: Path) -> dict:
    """Every sample file as plain records with canonical names (SPEC §3.1 aliases applied)."""
    fc = json.loads((root / "fields_boundaries.geojson").read_text(encoding="utf-8"))
    events: list[dict] = []
    for feat in fc["features"]:
        p = feat["properties"]
        events.append(
            {
                **p,
                "ts": _ts(p["timestamp"]),
                "user_id": p["leafUserId"],
                "geom": None if feat["geometry"] is None else shape(feat["geometry"]),
                "ok": p["status"] == 200,
            }
        )
    for r in _csv(root / "machine_files.csv"):
        events.append(
            {
                **r,
                "ts": _ts(r["timestamp"]),
                "geom": shapely.from_wkt(r["geometry"]) if r["geometry"] else None,
                "ok": r["status"] == "200",
            }
        )
    for r in _csv(root / "satellite_images.csv"):
        events.append(
            {
                **r,
                "ts": _ts(r["created_at"]),
                "user_id": r["userId"],
                "geom": shapely.from_geojson(r["geometry"]),
                "ok": r["status"] == "200",
            }
        )
    licence = [
        {
            **r,
            "ts": _ts(r["timestamp"]),
            "user_id": r["X-User-ID"],
            "inds": [i for i in r["indicator_ids"].split(",") if i],
        }
        for r in _csv(root / "licence_calls.csv")
    ]
    tokens = pq.read_table(root / "token_usage.parquet")
    docu = [
        json.loads(line)
        for line in (root / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return {
        "root": root,
        "area": events,
        "licence": licence,
        "tokens": tokens,
        "docu": docu,
        "fc": fc,
        "contracts": _contracts(root),
    }


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out)
    return out


@pytest.fixture(scope="module")
def data(fresh) -> dict:
    return _load(fresh)


# ------------------------------------------------------------------------------------------------
# Determinism and the committed copy
# ------------------------------------------------------------------------------------------------


def _assert_same(a: Path, b: Path) -> None:
    for name in FILE_NAMES:
        if name.endswith(".parquet"):
            ta, tb = pq.read_table(a / name), pq.read_table(b / name)
            assert ta.schema.equals(tb.schema), name
            assert ta.equals(tb), name
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_same_seed_gives_identical_files(tmp_path, fresh):
    paths = generate(tmp_path / "again")
    assert [p.name for p in paths] == list(FILE_NAMES)
    _assert_same(fresh, tmp_path / "again")


def test_another_seed_gives_other_data(tmp_path, fresh):
    generate(tmp_path / "other", seed=DEFAULT_SEED + 1)
    for name in ("fields_boundaries.geojson", "licence_calls.csv", "requests.jsonl"):
        assert (tmp_path / "other" / name).read_bytes() != (fresh / name).read_bytes()
    assert not pq.read_table(tmp_path / "other" / "token_usage.parquet").equals(
        pq.read_table(fresh / "token_usage.parquet")
    )


def test_command_line_writes_the_same_files(tmp_path, fresh):
    from usagectl.sample.generator import main

    assert main([str(tmp_path / "cli"), "--seed", str(DEFAULT_SEED)]) == 0
    _assert_same(fresh, tmp_path / "cli")


def test_committed_sample_data_is_a_fresh_generation(fresh):
    """Nobody edits sample_data/ by hand: regenerate with the generator instead."""
    assert sorted(p.name for p in SAMPLE.iterdir()) == sorted(FILE_NAMES)
    _assert_same(fresh, SAMPLE)


def test_sample_data_is_small():
    assert sum(p.stat().st_size for p in SAMPLE.iterdir()) < 1_500_000


# ------------------------------------------------------------------------------------------------
# Shapes of each file
# ------------------------------------------------------------------------------------------------


def test_every_timestamp_in_the_window(data):
    stamps = [e["ts"] for e in data["area"]]
    stamps += [r["ts"] for r in data["licence"]]
    stamps += [_ts(d["timestamp"]) for d in data["docu"]]
    stamps += data["tokens"].column("ts").to_pylist()
    assert all(t.tzinfo is not None for t in stamps)
    assert all(WINDOW[0] <= t < WINDOW[1] for t in stamps)
    assert max(stamps) < AS_OF  # a demo as of AS_OF sees every event


def test_geojson_features_are_valid_fields(data):
    fc = data["fc"]
    assert fc["type"] == "FeatureCollection"
    assert 220 <= len(fc["features"]) <= 290
    for feat in fc["features"]:
        p = feat["properties"]
        assert p["product"] == "FIELDS_BOUNDARY" and p["owner_id"] == "acme-farms"
        if p["action"] == "delete":
            assert feat["geometry"] is None
            continue
        assert p["action"] == "process"
        g = shape(feat["geometry"])
        assert g.geom_type == "Polygon" and g.is_valid, p["event_id"]
        assert 4 <= len(g.exterior.coords) - 1 <= 6  # quadrilaterals to hexagons
        minx, miny, maxx, maxy = g.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        assert -94.0 < minx and maxx < -93.2 and 41.7 < miny and maxy < 42.3  # central Iowa
        assert 5 <= _area_acres(g) <= 200, p["event_id"]
        assert shapely.is_ccw(g.exterior)  # RFC 7946 §3.1.6 winding
        for ring in feat["geometry"]["coordinates"]:
            for x, y in ring:
                assert round(x, 7) == x and round(y, 7) == y


def test_other_geometries_are_valid(data):
    files = [e for e in data["area"] if e["product"] == "OPERATIONS_FILE"]
    ops = [e for e in data["area"] if e["product"] == "OPERATIONS_OPERATION"]
    sats = [e for e in data["area"] if e["product"].startswith("SATELLITE_")]
    assert 110 <= len(files) + len(ops) <= 130 and len(ops) >= 3
    assert all(e["geom"] is None for e in ops)
    assert {e["operation"] for e in files} == {"harvest", "planting", "application"}
    assert {e["geom"].geom_type for e in files} == {"Polygon", "MultiPolygon"}
    assert 70 <= len(sats) <= 90
    assert {e["product"] for e in sats} == {
        "SATELLITE_PROCESS_SENTINEL",
        "SATELLITE_PROCESS_PLANET",
    }
    for e in files + sats:
        g = e["geom"]
        assert g.is_valid and not g.is_empty
        minx, miny, maxx, maxy = g.bounds
        assert -94.0 < minx and maxx < -93.2 and 41.7 < miny and maxy < 42.3
        assert 1 <= _area_acres(g) <= 500
    # Machine timestamps mix UTC and Chicago local time; satellite created_at is naive.
    raw = [r["timestamp"] for r in _csv(data["root"] / "machine_files.csv")]
    assert any(t.endswith("Z") for t in raw) and any(t.endswith(("-05:00", "-06:00")) for t in raw)
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["created_at"])
        for r in _csv(data["root"] / "satellite_images.csv")
    )


def _fields(events: list[dict]) -> list[dict]:
    """Group successful boundary processes into physical fields: same place (IoU > 0.9)."""
    fields: list[dict] = []
    for e in events:
        if e["product"] != "FIELDS_BOUNDARY" or e["action"] != "process" or not e["ok"]:
            continue
        for f in fields:
            g = f["geom"]
            inter = shapely.intersection(g, e["geom"]).area
            if inter / shapely.union(g, e["geom"]).area > 0.9:
                f["users"].add(e["user_id"])
                f["events"].append(e)
                break
        else:
            fields.append({"geom": e["geom"], "users": {e["user_id"]}, "events": [e]})
    return fields


def test_overlap_is_the_point(data):
    fields = _fields(data["area"])
    multi = [f for f in fields if len(f["users"]) >= 2]
    assert 0.2 <= len(multi) / len(fields) <= 0.4  # ~30 % processed by 2–3 different users
    assert max(len(f["users"]) for f in multi) == 3
    # Other users' copies are sometimes redrawn with metre-scale vertex jitter, sometimes exact.
    jittered = exact = 0
    for f in multi:
        by_user = {e["user_id"]: e["geom"] for e in f["events"]}
        first, *others = by_user.values()
        for g in others:
            if g.equals_exact(first, 0):
                exact += 1
            else:
                jittered += 1
                assert first.hausdorff_distance(g) < 1e-4  # < ~10 m in degrees
    assert jittered > 5 and exact > 5
    # ~25 % re-processed by the same user under the same resource_id.
    per_resource = defaultdict(list)
    for e in data["area"]:
        if e["product"] == "FIELDS_BOUNDARY" and e["action"] == "process" and e["ok"]:
            per_resource[(e["user_id"], e["resource_id"])].append(e)
    reprocessed = {k for k, v in per_resource.items() if len(v) >= 2}
    assert 0.15 <= len(reprocessed) / len(fields) <= 0.35
    # A few distinct fields partially overlap each other.
    tree = shapely.STRtree([f["geom"] for f in fields])
    partial = 0
    for i, f in enumerate(fields):
        for j in tree.query(f["geom"], predicate="intersects"):
            if j > i:
                g = fields[j]["geom"]
                iou = shapely.intersection(f["geom"], g).area / shapely.union(f["geom"], g).area
                partial += 0.05 < iou < 0.9
    assert partial >= 3


def test_deletes_and_failures(data):
    bounds = [e for e in data["area"] if e["product"] == "FIELDS_BOUNDARY"]
    deletes = [e for e in bounds if e["action"] == "delete"]
    assert 8 <= len(deletes) <= 12
    for d in deletes:
        earlier = [
            e
            for e in bounds
            if e["action"] == "process"
            and (e["user_id"], e["resource_id"]) == (d["user_id"], d["resource_id"])
        ]
        assert earlier and max(e["ts"] for e in earlier) < d["ts"]
    failed = [e for e in bounds if not e["ok"]]
    assert failed
    assert all(e["status"] == 500 and e["error_code"] == "internal_error" for e in failed)
    assert all(e["error_code"] is None for e in bounds if e["ok"])


def test_spec_5_2_licence_example(data):
    rows = data["licence"]
    assert list(rows[0])[:10] == [
        "timestamp", "X-User-ID", "X-Organization-ID", "endpoint", "method", "status_code",
        "dataset_id", "indicator_ids", "response_time_ms", "request_id",
    ]  # fmt: skip
    assert len(rows) == 400
    counted = [
        r
        for r in rows
        if r["user_id"] == "user-a"
        and r["status_code"] == "200"
        and r["endpoint"] == "/datasets"
        and r["inds"]
    ]
    assert len(counted) == 10
    assert {r["dataset_id"] for r in counted} == {"123"}
    assert {tuple(r["inds"]) for r in counted} == {("964", "897", "962", "901", "933")}
    users = {r["user_id"] for r in counted}
    datasets = {r["dataset_id"] for r in counted}
    indicators = {i for r in counted for i in r["inds"]}
    assert (len(users), len(datasets), len(indicators)) == (1, 1, 5)
    # The raw file writes indicator lists as a quoted comma list.
    raw = (data["root"] / "licence_calls.csv").read_text(encoding="utf-8")
    assert '"964,897,962,901,933"' in raw


def test_licence_log_shape(data):
    rows = data["licence"]
    assert len({r["user_id"] for r in rows}) == 12
    assert len({r["X-Organization-ID"] for r in rows}) == 3
    assert {r["endpoint"] for r in rows} == {"/datasets", "/datasets/search", "/health"}
    assert {"200", "401", "429", "500"} <= {r["status_code"] for r in rows}
    assert 35 <= len({r["dataset_id"] for r in rows if r["dataset_id"]}) <= 40
    assert 50 <= len({i for r in rows for i in r["inds"]}) <= 60
    assert any(r["endpoint"] == "/datasets" and not r["inds"] for r in rows)


def test_token_parquet_schema(data):
    t = data["tokens"]
    assert 500 <= t.num_rows <= 700
    assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    for name in ("input_tokens", "output_tokens", "thinking_tokens", "status"):
        assert t.schema.field(name).type == pa.int64()
    rows = t.to_pylist()
    assert {r["product"] for r in rows} == {"API_TOKENS"}
    assert {r["endpoint"] for r in rows} == {"/v1/parcels", "/v1/soil", "/v1/chat"}
    assert {r["status"] for r in rows} == {200, 429}
    assert sum(r["thinking_tokens"] == 0 for r in rows) > t.num_rows / 2
    assert len({r["event_id"] for r in rows}) == t.num_rows


def test_jsonl_requests(data):
    docs = data["docu"]
    assert len(docs) == 500
    assert all(d["event_id"] == d["request_id"] for d in docs)
    assert {d["product"] for d in docs} == {"verify", "describe", "upload", "chat"}
    assert any("+02:00" in d["timestamp"] for d in docs)
    raw = (data["root"] / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    for line in raw:
        credits = re.search(r'"credits": ([0-9.]+)', line).group(1)
        assert re.fullmatch(r"\d+\.\d{1,2}", credits), line
    failed = [d for d in docs if d["status"] == "failed"]
    assert {d["error_code"] for d in failed} == {
        "rate_limited",
        "usage_limit_exceeded",
        "internal_error",
    }
    assert all(d["error_code"] is None for d in docs if d["status"] == "success")


def test_event_ids_unique_per_owner(data):
    ids = [e["event_id"] for e in data["area"]]
    assert len(ids) == len(set(ids))
    assert len({d["event_id"] for d in data["docu"]}) == len(data["docu"])


# ------------------------------------------------------------------------------------------------
# Contracts
# ------------------------------------------------------------------------------------------------


def _contracts(root: Path) -> list[dict]:
    with (root / "contracts.toml").open("rb") as f:
        return tomllib.load(f, parse_float=Decimal)["contract"]


def test_contracts_use_only_spec_keys(fresh):
    contracts = _contracts(fresh)
    owners = {c["owner"] for c in contracts}
    assert owners == {"acme-farms", "lca-institute", "terra-tokens", "docuscan"}
    for c in contracts:
        assert set(c) <= CONTRACT_KEYS, c["id"]
        assert c["cycle"] in {"monthly", "quarterly", "annual", "once"}
        ZoneInfo(c.get("timezone", "UTC"))
        assert c["meter"]
        for m in c["meter"]:
            assert set(m) <= METER_KEYS, (c["id"], m["name"], set(m) - METER_KEYS)
            assert m["aggregate"] in {"unique_area", "distinct", "sum", "count"}
            assert m.get("billed_on", "owner") in {"user", "owner"}
            if m["aggregate"] == "unique_area":
                assert m["unit"] in {"acre", "hectare", "m2", "km2"}
            if m["aggregate"] == "distinct":
                assert m["field"] in {"user_id", "dataset_id", "indicator_ids"}
            for row in m.get("price", []):
                assert set(row) <= PRICE_KEYS
    by_id = {c["id"]: c for c in contracts}
    terra = by_id["terra-pro-monthly"]
    assert terra["start"].day == 31 and terra["cycle"] == "monthly"
    assert {m.get("pricing") for m in terra["meter"]} == {None, "graduated"}


# ------------------------------------------------------------------------------------------------
# What the demo shows: recomputed from SPEC §5 with shapely + pyproj + plain Python
# ------------------------------------------------------------------------------------------------


def _period_start(c: dict) -> datetime:
    """Start of the period containing AS_OF, for the sample contracts' cycles (SPEC §5.5)."""
    tz = ZoneInfo(c.get("timezone", "UTC"))
    start = c["start"]
    months = {"monthly": 1, "quarterly": 3, "annual": 12}[c["cycle"]]
    best = None
    for k in range(0, 40):
        m = start.month - 1 + k * months
        y, m = start.year + m // 12, m % 12 + 1
        day = start.day
        while True:
            try:
                local = datetime(y, m, day, tzinfo=tz)
                break
            except ValueError:  # the 31st in a shorter month: its last day
                day -= 1
        if local <= AS_OF:
            best = local
    return best


def _unique_area(geoms: list) -> float:
    return _area_acres(shapely.union_all([shapely.make_valid(g) for g in geoms])) if geoms else 0.0


def _derived_operations(data: dict, start: datetime) -> dict[str, list]:
    """user → the geometries of that user's operations in the period, derived from SPEC §5.1 as
    docs/area.md words it: the operation's file (its ``file_id``, else its ``resource_id``) is the
    user's successful OPERATIONS_FILE with that resource_id, the latest at or before the operation
    (else the earliest after it); it counts within the user's boundaries active at the file's
    time (per (user, resource_id) the latest successful boundary event at or before it is a
    process). An operation without such a file gives nothing."""
    events = [e for e in data["area"] if e["ok"] and e["ts"] <= AS_OF]
    out: dict[str, list] = defaultdict(list)
    for op in events:
        if op["product"] != "OPERATIONS_OPERATION" or op["geom"] is not None:
            continue
        if not start <= op["ts"] <= AS_OF:
            continue
        key = op.get("file_id") or op["resource_id"]
        files = [e for e in events if e["product"] == "OPERATIONS_FILE" and e["geom"] is not None
                 and e["user_id"] == op["user_id"] and e["resource_id"] == key]
        before = [f for f in files if f["ts"] <= op["ts"]]
        if before:
            file = max(before, key=lambda f: (f["ts"], f["event_id"]))
        elif files:
            file = min(files, key=lambda f: (f["ts"], f["event_id"]))
        else:
            continue
        latest: dict[str, dict] = {}
        for b in events:
            if (b["product"] == "FIELDS_BOUNDARY" and b["user_id"] == op["user_id"]
                    and b["ts"] <= file["ts"]):
                seen = latest.get(b["resource_id"])
                if seen is None or (b["ts"], b["event_id"]) > (seen["ts"], seen["event_id"]):
                    latest[b["resource_id"]] = b
        active = [b["geom"] for b in latest.values() if b["action"] == "process"]
        if active:
            out[op["user_id"]].append(shapely.intersection(file["geom"], shapely.union_all(active)))
    return out


def _meter_value(c: dict, m: dict, data: dict) -> Decimal | float:
    start = _period_start(c)
    in_period = lambda t: start <= t <= AS_OF  # noqa: E731  (the period end lies after AS_OF)
    agg = m["aggregate"]
    if agg == "unique_area" and m.get("derive_operations"):
        assert set(m["products"]) == {"OPERATIONS_OPERATION"}  # the sample's operations meter
        derived = _derived_operations(data, start)
        if m.get("billed_on") == "user":
            return sum(_unique_area(g) for g in derived.values())
        return _unique_area([g for gs in derived.values() for g in gs])
    if agg == "unique_area":
        products = set(m["products"])
        products = AREA_PRODUCTS if "*" in products else products
        per_user = defaultdict(list)
        for e in data["area"]:
            counted = e["product"] in products and e["ok"] and e["geom"] is not None
            if counted and in_period(e["ts"]):
                per_user[e["user_id"]].append(e["geom"])
        if m.get("billed_on") == "user":
            return sum(_unique_area(g) for g in per_user.values())
        return _unique_area([g for gs in per_user.values() for g in gs])
    if c["owner"] == "lca-institute":
        rows = [
            r
            for r in data["licence"]
            if in_period(r["ts"])
            and r["status_code"] == "200"
            and r["endpoint"] in m["endpoints"]
            and r["inds"]
        ]
        if m["field"] == "indicator_ids":
            return Decimal(len({i for r in rows for i in r["inds"]}))
        return Decimal(len({r[m["field"]] for r in rows}))
    if c["owner"] == "terra-tokens":
        rows = [r for r in data["tokens"].to_pylist() if in_period(r["ts"]) and r["status"] == 200]
        return Decimal(sum(r[f] for r in rows for f in m["fields"]))
    rows = [d for d in data["docu"] if in_period(_ts(d["timestamp"])) and d["status"] == "success"]
    if agg == "count":
        return Decimal(len(rows))
    return sum((Decimal(str(d["credits"])) for d in rows), Decimal(0))


def _status(value, m: dict) -> str:
    if "limit" not in m:
        return "ok"
    value, limit = Decimal(str(value)), Decimal(m["limit"])
    if value > limit:
        return "exceeded"
    return "warning" if value >= Decimal(str(m.get("warn_at", "0.8"))) * limit else "ok"


def demo_values(data: dict) -> dict[tuple[str, str], tuple]:
    """(contract id, meter) → (billed value in the current period at AS_OF, status)."""
    out = {}
    for c in data["contracts"]:
        for m in c["meter"]:
            v = _meter_value(c, m, data)
            out[(c["id"], m["name"])] = (v, _status(v, m))
    return out


def test_demo_statuses(data):
    values = demo_values(data)
    statuses = {k: s for k, (_, s) in values.items()}
    assert [k for k, s in statuses.items() if s == "exceeded"] == [("terra-pro-monthly", "tokens")]
    assert [k for k, s in statuses.items() if s == "warning"] == [("lca-licence-2026", "datasets")]
    assert all(v > 0 for v, _ in values.values())  # every current period has counted data
    # The acme boundaries meter is past its allotment, so the demo prices an overage.
    boundaries = next(m for c in data["contracts"] for m in c["meter"] if m["name"] == "boundaries")
    assert values[("acme-farms-2026", "boundaries")][0] > boundaries["included"]
    # Overlap between users exists in the current period: Σ user values > owner value.
    acme = next(c for c in data["contracts"] if c["owner"] == "acme-farms")
    as_owner = dict(boundaries, billed_on="owner")
    assert values[("acme-farms-2026", "boundaries")][0] > _meter_value(acme, as_owner, data)


# ------------------------------------------------------------------------------------------------
# Issue 13 item 9: operations linked to machine files, labelled token calls, plan alternatives
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    """The committed sample ingested with the real CLI, as conftest's ``sample`` does (once)."""
    from typer.testing import CliRunner

    from usagectl.cli import app

    db = tmp_path_factory.mktemp("sample-db") / "usage.duckdb"
    runner = CliRunner(env={"COLUMNS": "120"})
    for f in sorted(SAMPLE.iterdir()):
        if f.suffix in (".csv", ".geojson", ".jsonl", ".parquet"):
            owner = ["--owner", "lca-institute"] if f.name == "licence_calls.csv" else []
            r = runner.invoke(app, ["--db", str(db), "ingest", str(f), *owner, "--quiet"])
            assert r.exit_code == 0, (f, r.output)
    r = runner.invoke(app, ["--db", str(db), "contracts", "load", str(SAMPLE / "contracts.toml")])
    assert r.exit_code == 0, r.output
    return db


def _run(db: Path, *args: str):  # noqa: ANN202
    from typer.testing import CliRunner

    from usagectl.cli import app

    result = CliRunner(env={"COLUMNS": "120"}).invoke(app, ["--db", str(db), *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_operations_name_their_machine_files(data):
    """Each operation's ``file_id`` is the latest successful machine file of the same user and
    operation type at or before it; operations without one name none (they stay unlinked)."""
    area = data["area"]
    files = {e["resource_id"]: e for e in area if e["product"] == "OPERATIONS_FILE"}
    ops = [e for e in area if e["product"] == "OPERATIONS_OPERATION"]
    linked = [e for e in ops if e["file_id"]]
    for op in linked:
        f = files[op["file_id"]]
        assert f["ok"] and f["user_id"] == op["user_id"] and f["operation"] == op["operation"]
        assert f["ts"] <= op["ts"]
        later = [g for g in files.values() if g["ok"] and g["user_id"] == op["user_id"]
                 and g["operation"] == op["operation"] and f["ts"] < g["ts"] <= op["ts"]]
        assert not later
    assert len(linked) == 3 and len(ops) - len(linked) == 3
    # Machine files themselves name no file; file_id never replaces an operation's resource_id.
    assert all(e["file_id"] == "" for e in files.values())
    assert all(e["resource_id"] and e["resource_id"] != e["file_id"] for e in ops)


def test_derived_operation_area_is_the_file_within_active_boundaries(data, sample_db):
    # Recomputed here with shapely + pyproj (_derived_operations) from the rule in docs/area.md:
    # two operations of the current quarter (from 2026-10-01 Chicago) are linked — agri-boone's
    # harvest of 2026-10-02 to its harvest file of 2026-10-01, agri-hardin's planting of
    # 2026-10-02 to its planting file of 2026-09-10 (an earlier period: files count whenever
    # they were processed). Each file within that user's boundaries active at the file's time.
    acme = next(c for c in data["contracts"] if c["id"] == "acme-farms-2026")
    derived = _derived_operations(data, _period_start(acme))
    per_user = {u: _unique_area(g) for u, g in derived.items()}
    assert set(per_user) == {"agri-boone", "agri-hardin"}
    assert per_user["agri-boone"] == pytest.approx(43.516553, abs=1e-5)
    assert per_user["agri-hardin"] == pytest.approx(31.074321, abs=1e-5)
    meter = next(m for m in acme["meter"] if m["name"] == "operations")
    assert _meter_value(acme, meter, data) == pytest.approx(74.590874, abs=1e-5)
    # usagectl's own report says the same, with no unlinked operation in this period.
    doc = json.loads(_run(sample_db, "report", "--contract", "acme-farms-2026", "--as-of",
                          "2026-11-20T12:00:00Z", "--format", "json").stdout)
    row = next(m for m in doc["meters"] if m["name"] == "operations")
    assert row["billed"] == pytest.approx(74.590874, abs=1e-6)
    assert (row["events"], row["unlinked_operations"], row["status"]) == (2, 0, "ok")
    users = json.loads(_run(sample_db, "report", "--contract", "acme-farms-2026", "--view",
                            "users", "--as-of", "2026-11-20T12:00:00Z", "--format", "json").stdout)
    got = {u["user_id"]: u["meters"]["operations"] for u in users["users"]
           if u["meters"]["operations"]}
    assert got == pytest.approx(per_user, abs=1e-6)


def test_token_calls_carry_file_names_and_titles(data):
    rows = data["tokens"].to_pylist()
    for name in ("resource_id", "filename", "title"):
        assert data["tokens"].schema.field(name).type == pa.string()
    files, chats = defaultdict(set), defaultdict(list)
    for r in rows:
        if r["endpoint"] == "/v1/chat":
            assert r["resource_id"] is None and r["filename"] is None and r["title"]
            chats[r["session_id"]].append(r)
        else:
            assert r["resource_id"].startswith("file_") and r["filename"] and r["title"] is None
            files[r["resource_id"]].add(r["filename"])
    # One name per file, and no name for two files.
    assert all(len(v) == 1 for v in files.values())
    assert len({n for v in files.values() for n in v}) == len(files)
    assert 20 <= len(files) <= 45 and max(
        sum(r["resource_id"] == f for r in rows) for f in files) >= 10
    # One title per conversation except one, renamed once: the first half of its chat calls
    # carry FIRST_TITLE, the rest the new title (the latest event's label is the new one).
    from usagectl.sample.generator import FIRST_TITLE

    renamed = {s: c for s, c in chats.items() if len({r["title"] for r in c}) > 1}
    assert len(renamed) == 1
    (calls,) = renamed.values()
    calls.sort(key=lambda r: (r["ts"], r["event_id"]))
    titles = [r["title"] for r in calls]
    half = len(calls) // 2
    assert titles[:half] == [FIRST_TITLE] * half and len(set(titles[half:])) == 1
    assert titles[-1] != FIRST_TITLE
    others = [c[0]["title"] for s, c in chats.items() if s not in renamed]
    assert len(set(others)) == len(others) and FIRST_TITLE not in others


def test_token_labels_land_in_attributes(sample_db):
    import duckdb

    con = duckdb.connect(str(sample_db), read_only=True)
    try:
        rows = con.execute("""
            SELECT endpoint, resource_id, session_id,
                   json_extract_string(attributes, '$.filename'),
                   json_extract_string(attributes, '$.title')
            FROM events WHERE owner_id = 'terra-tokens'""").fetchall()
    finally:
        con.close()
    raw = {(r["endpoint"], r["resource_id"], r["session_id"], r["filename"], r["title"])
           for r in pq.read_table(SAMPLE / "token_usage.parquet").to_pylist()}
    assert len(rows) == pq.read_metadata(SAMPLE / "token_usage.parquet").num_rows
    assert set(rows) == raw  # resource_id canonical, filename and title in attributes


# The token owner's current period at the demo's --as-of: 2026-10-31 → 2026-11-30 (UTC), 30 days,
# 20.5 of them elapsed at 2026-11-20T12:00Z.
PERIOD_DAYS, ELAPSED_DAYS = Decimal(30), Decimal("20.5")


def _graduated_cents(units: Decimal, rows: list[dict]) -> Decimal:
    """SPEC §5.4 graduated: each unit at its tier's price, plus every reached tier's flat_cents
    (the first tier's also on an idle period)."""
    total, lower = Decimal(0), Decimal(0)
    for i, row in enumerate(rows):
        upper = Decimal(row["up_to"]) if "up_to" in row else None
        if i and units <= lower:
            break
        top = units if upper is None else min(units, upper)
        total += max(top - lower, Decimal(0)) * Decimal(str(row["cents_per_unit"]))
        total += Decimal(str(row.get("flat_cents", 0)))
        if upper is None:
            break
        lower = upper
    return total


def _plan_cents(contract: dict, tokens: Decimal) -> Decimal:
    """A token plan's price for ``tokens`` in one period: each meter's overage or tier table."""
    total = Decimal(0)
    for m in contract["meter"]:
        over = max(tokens - Decimal(m.get("included", 0)), Decimal(0))
        if m.get("pricing") == "graduated":
            total += _graduated_cents(over, m["price"])
        elif "overage_cents_per_unit" in m:
            unit = Decimal(m.get("overage_unit", 1))
            units = (over / unit).to_integral_value(rounding=ROUND_CEILING)  # started units
            total += units * Decimal(str(m["overage_cents_per_unit"]))
    return total


def test_plan_alternatives_are_other_plans_for_the_token_owner(data):
    from usagectl.contracts.loader import load_contracts_file

    loaded = load_contracts_file(SAMPLE / "plan_alternatives.toml")  # the real loader validates
    with (SAMPLE / "plan_alternatives.toml").open("rb") as f:
        alts = tomllib.load(f, parse_float=Decimal)["contract"]
    assert [c.id for c in loaded] == [c["id"] for c in alts] == [
        "terra-starter-monthly", "terra-business-monthly", "terra-enterprise-monthly"]
    current = next(c for c in data["contracts"] if c["id"] == "terra-pro-monthly")
    assert not {c["id"] for c in alts} & {c["id"] for c in data["contracts"]}
    for c in alts:
        assert set(c) <= CONTRACT_KEYS
        assert all(set(m) <= METER_KEYS for m in c["meter"])
        assert (c["owner"], c["start"], c["cycle"], c["timezone"]) == (
            current["owner"], current["start"], current["cycle"], current["timezone"])
    # The projected period, from the Parquet file alone: successful calls' tokens from
    # 2026-10-31T00:00Z to as-of, over the 20.5 elapsed days, times 30.
    start = datetime(2026, 10, 31, tzinfo=UTC)
    used = sum(r["input_tokens"] + r["output_tokens"] + r["thinking_tokens"]
               for r in data["tokens"].to_pylist() if start <= r["ts"] <= AS_OF and r["status"] == 200)
    assert used == 435339
    projected = Decimal(used) / ELAPSED_DAYS * PERIOD_DAYS  # 637,081.46…
    assert int(projected) == 637081
    cents = {c["id"]: _plan_cents(c, projected).quantize(Decimal("0.01")) for c in [current, *alts]}
    # By hand: pro = tokens ⌈337,081.46/1000⌉ × 4 = 1,352 + graduated 200,000 × 0.003 +
    # 337,081.46 × 0.002 + 500 = 1,774.16 → 3,126.16; starter = 900 + 487,081.46 × 0.008 =
    # 4,796.65; business = 1,000 (under its 750,000 tokens); enterprise = 9,900.
    assert cents == {
        "terra-pro-monthly": Decimal("3126.16"),
        "terra-starter-monthly": Decimal("4796.65"),
        "terra-business-monthly": Decimal("1000.00"),
        "terra-enterprise-monthly": Decimal("9900.00"),
    }
    assert min(cents, key=cents.get) == "terra-business-monthly"
    # Status at the projection: starter would be over its limit, the others not.
    assert projected > Decimal(alts[0]["meter"][0]["limit"])
    assert all(projected < Decimal(c["meter"][0]["limit"]) for c in alts[1:])


def test_plan_alternatives_load_and_price_with_the_cli(sample_db, tmp_path):
    alt = SAMPLE / "plan_alternatives.toml"
    # What-if: the sample's events under the business plan, without loading it.
    doc = json.loads(_run(sample_db, "report", "--contract", "terra-business-monthly",
                          "--contracts", alt, "--as-of", "2026-11-20T12:00:00Z",
                          "--format", "json").stdout)
    (meter,) = doc["meters"]
    assert (meter["billed"], meter["status"]) == (435339, "ok")
    # 435,339 tokens under the 750,000 of the first tier: its 1,000 ¢ fee only.
    assert meter["overage_amount_cents"] == 1000
    # An ordinary contracts file: it loads next to the sample's contracts and lists with status.
    db = tmp_path / "alts.duckdb"
    _run(db, "contracts", "load", alt)
    listed = json.loads(_run(db, "contracts", "list", "--as-of", "2026-11-20T12:00:00Z",
                             "--format", "json").stdout)
    assert [c["id"] for c in listed] == sorted(
        ["terra-starter-monthly", "terra-business-monthly", "terra-enterprise-monthly"])
