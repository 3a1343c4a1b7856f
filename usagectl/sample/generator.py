"""Deterministic sample usage logs for the four usage shapes of SPEC §1.

``generate(out_dir, seed)`` writes one file per source format (GeoJSON, CSV with WKT, CSV with
GeoJSON text, CSV without event ids, Parquet, JSON Lines) plus ``contracts.toml`` (SPEC §4),
``plan_alternatives.toml`` (other plans for the token owner) and a README. Everything comes from ``numpy.random.default_rng`` seeded with ``seed``: no wall clock, no
network, no machine time zone. Same seed → byte-identical text files and Parquet files with equal
tables (Parquet bytes also match as long as the pyarrow version does).

Every timestamp lies in ``[2026-08-01, 2026-11-20T11:00Z)``, so ``usagectl demo --as-of
2026-11-20T12:00:00Z`` has a current period with data for every contract and no future events.

Run ``python -m usagectl.sample.generator sample_data`` to refresh the committed copy.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyproj
import shapely
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, box

from usagectl.sample import DEFAULT_SEED

#: First and (exclusive) last instant of every generated timestamp.
WINDOW_START = datetime(2026, 8, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

#: ``--as-of`` the README and the demo use.
DEMO_AS_OF = "2026-11-20T12:00:00Z"

ACRE_M2 = 4046.8564224
CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")

# Fields are drawn in a Lambert azimuthal *equal-area* frame centred on central Iowa, so an area
# chosen in m² there is the ellipsoidal area to ~1e-6 (edges differ only by their definition).
_LOCAL_CRS = "+proj=laea +lat_0=42.0 +lon_0=-93.6 +datum=WGS84 +units=m +no_defs"
_TO_LONLAT = pyproj.Transformer.from_crs(_LOCAL_CRS, "EPSG:4326", always_xy=True)

FILE_NAMES = (
    "fields_boundaries.geojson",
    "machine_files.csv",
    "satellite_images.csv",
    "licence_calls.csv",
    "token_usage.parquet",
    "requests.jsonl",
    "contracts.toml",
    "plan_alternatives.toml",
    "README.md",
)

# --------------------------------------------------------------------------------------------
# Owners and users
# --------------------------------------------------------------------------------------------

ACME = "acme-farms"
#: (user_id, org_id or None, weight as the primary user of a field)
ACME_USERS = (
    ("agri-ames", None, 0.22),
    ("agri-boone", "org-north", 0.20),
    ("agri-hardin", "org-north", 0.14),
    ("agri-story", "org-central", 0.19),
    ("agri-polk", "org-central", 0.15),
    ("agri-marshall", None, 0.10),
)

LCA = "lca-institute"
LCA_USERS = (
    ("user-a", "org-research", 0.0),  # only the SPEC §5.2 example calls, added by hand
    ("user-b", "org-research", 0.13),
    ("user-c", "org-research", 0.09),
    ("user-d", "org-research", 0.05),
    ("user-e", "org-consulting", 0.14),
    ("user-f", "org-consulting", 0.11),
    ("user-g", "org-consulting", 0.06),
    ("user-h", "org-consulting", 0.04),
    ("user-i", "org-policy", 0.12),
    ("user-j", "org-policy", 0.10),
    ("user-k", "org-policy", 0.10),
    ("user-l", "org-policy", 0.06),
)
#: SPEC §5.2: user A fetches dataset 123 with the same 5 indicators 10 times.
SPEC_EXAMPLE_USER = "user-a"
SPEC_EXAMPLE_DATASET = "123"
SPEC_EXAMPLE_INDICATORS = ("964", "897", "962", "901", "933")

TERRA = "terra-tokens"
TERRA_KEYS = (
    ("tk_live_parcelbot", 0.24),
    ("tk_live_soilmap", 0.18),
    ("tk_live_agentx", 0.20),
    ("tk_live_webapp", 0.14),
    ("tk_live_gis_team", 0.10),
    ("tk_live_batch01", 0.08),
    ("tk_test_sandbox", 0.06),
)

DOCU = "docuscan"
DOCU_USERS = (
    ("usr_anna", "acct-legal", 0.16),
    ("usr_ben", "acct-legal", 0.12),
    ("usr_chloe", "acct-legal", 0.07),
    ("usr_dario", "acct-hr", 0.13),
    ("usr_emma", "acct-hr", 0.10),
    ("usr_farid", "acct-hr", 0.06),
    ("usr_greta", "acct-finance", 0.14),
    ("usr_hugo", "acct-finance", 0.09),
    ("usr_ines", "acct-finance", 0.08),
    ("usr_jonas", None, 0.05),
)


# --------------------------------------------------------------------------------------------
# Small deterministic helpers
# --------------------------------------------------------------------------------------------


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def _pick(rng: np.random.Generator, items: list | tuple, weights: list | tuple | None = None):
    if weights is None:
        return items[int(rng.integers(len(items)))]
    p = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _times(
    rng: np.random.Generator,
    n: int,
    start: datetime = WINDOW_START,
    end: datetime = WINDOW_END,
    growth: float = 0.8,
    ms: bool = False,
) -> list[datetime]:
    """``n`` instants in ``[start, end)``; ``growth`` < 1 makes later days busier (usage grows)."""
    span_ms = int((end - start).total_seconds() * 1000)
    u = rng.random(n) ** growth
    offs = np.minimum((u * span_ms).astype(np.int64), span_ms - 1)
    if not ms:
        offs = offs // 1000 * 1000
    return [start + timedelta(milliseconds=int(o)) for o in offs]


def _after(
    rng: np.random.Generator, t: datetime, lo_days: float, hi_days: float
) -> datetime | None:
    """A whole-second instant ``lo..hi`` days after ``t``, or None past the window."""
    secs = int(rng.uniform(lo_days, hi_days) * 86400)
    out = t.replace(microsecond=0) + timedelta(seconds=secs)
    return out if out < WINDOW_END else None


def _iso_z(t: datetime, ms: bool = False) -> str:
    t = t.astimezone(UTC)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if ms:
        s += f".{t.microsecond // 1000:03d}"
    return s + "Z"


def _iso_local(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def _to_lonlat(g):
    """Local metres → lon/lat rounded to 7 decimals, exterior rings counter-clockwise."""

    def tr(coords: np.ndarray) -> np.ndarray:
        lon, lat = _TO_LONLAT.transform(coords[:, 0], coords[:, 1])
        return np.round(np.column_stack([lon, lat]), 7)

    out = shapely.orient_polygons(shapely.transform(g, tr))
    if not out.is_valid or out.is_empty:  # pragma: no cover - generator bug guard
        raise AssertionError(f"generated an invalid geometry: {shapely.is_valid_reason(out)}")
    return out


def _fmt(v: float) -> str:
    s = f"{v:.7f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _rings(poly: Polygon) -> list:
    return [poly.exterior.coords, *(r.coords for r in poly.interiors)]


def _polys(g) -> list[Polygon]:
    return list(g.geoms) if isinstance(g, MultiPolygon) else [g]


def to_wkt(g) -> str:
    """WKT with fixed 7-decimal formatting (shapely's own WKT may vary between versions)."""

    def ring(r) -> str:
        return "(" + ", ".join(f"{_fmt(x)} {_fmt(y)}" for x, y in r) + ")"

    def poly(p: Polygon) -> str:
        return "(" + ", ".join(ring(r) for r in _rings(p)) + ")"

    if isinstance(g, MultiPolygon):
        return "MULTIPOLYGON (" + ", ".join(poly(p) for p in g.geoms) + ")"
    return "POLYGON " + poly(g)


def to_geojson_text(g) -> str:
    """Compact RFC 7946 geometry text with fixed 7-decimal formatting."""

    def ring(r) -> str:
        return "[" + ",".join(f"[{_fmt(x)},{_fmt(y)}]" for x, y in r) + "]"

    def poly(p: Polygon) -> str:
        return "[" + ",".join(ring(r) for r in _rings(p)) + "]"

    if isinstance(g, MultiPolygon):
        return '{"type":"MultiPolygon","coordinates":[' + ",".join(poly(p) for p in g.geoms) + "]}"
    return '{"type":"Polygon","coordinates":' + poly(g) + "}"


def _field_shape(rng: np.random.Generator, cx: float, cy: float, max_extent: float) -> Polygon:
    """An irregular, star-shaped (so always simple) 4–6-gon of 6–190 acres around (cx, cy)."""
    n = int(rng.choice([4, 5, 6], p=[0.45, 0.30, 0.25]))
    step = 2 * math.pi / n
    rot = rng.uniform(0, 2 * math.pi)
    ang = rot + step * (np.arange(n) + rng.uniform(-0.3, 0.3, n))
    rad = rng.uniform(0.75, 1.2, n)
    aspect = rng.uniform(1.0, 1.8)
    x, y = rad * np.cos(ang) * aspect, rad * np.sin(ang) / aspect
    # Iowa fields follow the survey grid: keep the long axis near east-west or north-south.
    theta = rng.choice([0.0, 90.0]) + rng.uniform(-8, 8)
    p = affinity.rotate(Polygon(np.column_stack([x, y])), theta, origin=(0, 0))
    target = float(np.clip(rng.lognormal(math.log(60), 0.75), 6, 190)) * ACRE_M2
    p = affinity.scale(p, math.sqrt(target / p.area), math.sqrt(target / p.area), origin=(0, 0))
    minx, miny, maxx, maxy = p.bounds
    extent = max(maxx - minx, maxy - miny)
    if extent > max_extent:
        f = max_extent / extent
        p = affinity.scale(p, f, f, origin=(0, 0))
    if p.area < 6 * ACRE_M2:
        f = math.sqrt(6.5 * ACRE_M2 / p.area)
        p = affinity.scale(p, f, f, origin=(0, 0))
    return affinity.translate(p, cx, cy)


def _jitter(rng: np.random.Generator, p: Polygon, lo: float = 1.0, hi: float = 5.0) -> Polygon:
    """Move every vertex 1–5 m in a random direction: the field as another user drew it."""
    pts = np.asarray(p.exterior.coords)[:-1]
    ang = rng.uniform(0, 2 * math.pi, len(pts))
    d = rng.uniform(lo, hi, len(pts))
    pts = pts + np.column_stack([d * np.cos(ang), d * np.sin(ang)])
    return Polygon(pts)


# --------------------------------------------------------------------------------------------
# 1. Agronomy data API (acme-farms)
# --------------------------------------------------------------------------------------------


@dataclass
class _Field:
    idx: int
    shape: Polygon  # local metres
    cell: tuple[int, int]
    users: list[str] = field(default_factory=list)
    first_ts: dict[str, datetime] = field(default_factory=dict)


@dataclass
class _Agronomy:
    fields: list[_Field]
    boundaries: list[dict]
    machine_rows: list[dict]
    satellite_rows: list[dict]


_CELL = 1300.0  # metres between field centres on the jittered grid
_GRID = (13, 12)


def _acme_org(user: str) -> str | None:
    return next(org for u, org, _ in ACME_USERS if u == user)


def _agronomy(rng: np.random.Generator) -> _Agronomy:
    users = [u for u, _, _ in ACME_USERS]
    weights = [w for _, _, w in ACME_USERS]

    # Fields on a jittered grid (gaps between fields, like roads and farmsteads) …
    fields: list[_Field] = []
    nx, ny = _GRID
    for i in range(nx):
        for j in range(ny):
            if rng.random() < 0.14:
                continue  # an empty cell: a farmstead, woods, a town
            cx = (i - (nx - 1) / 2) * _CELL + rng.uniform(-60, 60)
            cy = (j - (ny - 1) / 2) * _CELL + rng.uniform(-60, 60)
            shape = _field_shape(rng, cx, cy, max_extent=_CELL - 180)
            fields.append(_Field(len(fields), shape, (i, j)))
    # … plus a few fields that partially overlap another one (a re-drawn or disputed boundary).
    for src in rng.choice(len(fields), size=6, replace=False):
        base = fields[int(src)]
        minx, miny, maxx, maxy = base.shape.bounds
        if rng.random() < 0.5:
            dx, dy = (maxx - minx) * rng.uniform(0.3, 0.55) * rng.choice([-1, 1]), 0.0
        else:
            dx, dy = 0.0, (maxy - miny) * rng.uniform(0.3, 0.55) * rng.choice([-1, 1])
        fields.append(_Field(len(fields), affinity.translate(base.shape, dx, dy), base.cell))

    boundaries: list[dict] = []

    def add(t: datetime, user: str, action: str, rid: str, geom, status: int = 200) -> None:
        boundaries.append(
            {
                "event_id": _uuid(rng),
                "ts": t,
                "user": user,
                "action": action,
                "resource_id": rid,
                "status": status,
                "geom": geom,
            }
        )

    # Boundaries: each field has a primary user; ~30 % also by 1–2 other users (the overlap the
    # product is about), sometimes redrawn with 1–5 m of vertex jitter; ~25 % re-processed.
    live: list[tuple[str, str, datetime]] = []  # (user, resource_id, last process time)
    for f in fields:
        primary = _pick(rng, users, weights)
        f.users = [primary]
        if rng.random() < 0.30:
            others = [u for u in users if u != primary]
            k = 1 if rng.random() < 0.6 else 2
            f.users += [others[int(i)] for i in rng.choice(len(others), size=k, replace=False)]
        for k, user in enumerate(f.users):
            geom = f.shape if k == 0 or rng.random() < 0.4 else _jitter(rng, f.shape)
            rid = _uuid(rng)
            t = _times(rng, 1, end=WINDOW_END - timedelta(days=12), ms=True)[0]
            f.first_ts[user] = t
            add(t, user, "process", rid, geom)
            last = t
            if rng.random() < 0.19:
                for _ in range(1 if rng.random() < 0.8 else 2):
                    t2 = _after(rng, last, 0.5, 45)
                    if t2 is None:
                        break
                    t2 += timedelta(milliseconds=int(rng.integers(1000)))
                    redraw = geom if rng.random() < 0.7 else _jitter(rng, geom, 1.0, 3.0)
                    add(t2, user, "process", rid, redraw)
                    last = t2
            live.append((user, rid, last))

    # ~10 deletes of earlier boundaries (same user, same resource_id, null geometry).
    for i in rng.choice(len(live), size=10, replace=False):
        user, rid, last = live[int(i)]
        t = _after(rng, last, 1, 40) or _after(rng, last, 0.01, 0.2)
        if t is not None:
            add(t + timedelta(milliseconds=int(rng.integers(1000))), user, "delete", rid, None)

    # A few failed calls (500) on fields that user never processed successfully: counting them
    # by mistake would change that user's area.
    n_failed = 0
    while n_failed < 6:
        f = fields[int(rng.integers(len(fields)))]
        user = _pick(rng, users, weights)
        if user in f.users:
            continue
        add(_times(rng, 1, ms=True)[0], user, "process", _uuid(rng), f.shape, status=500)
        n_failed += 1

    boundaries.sort(key=lambda e: (e["ts"], e["event_id"]))

    by_user: dict[str, list[_Field]] = {u: [] for u in users}
    for f in fields:
        for u in f.users:
            by_user[u].append(f)
    cells = {f.cell: f for f in fields[: len(fields) - 6]}

    # Machine files: whole field, part of a field, or one file spanning two adjacent fields.
    machine_rows: list[dict] = []
    n_files = 114
    for _ in range(n_files):
        user = _pick(rng, users, weights)
        f = by_user[user][int(rng.integers(len(by_user[user])))]
        kind = _pick(rng, ["whole", "part", "span"], [0.5, 0.35, 0.15])
        if kind == "whole":
            geom = f.shape.buffer(float(rng.uniform(-3, 4)), join_style="mitre")
        elif kind == "part":
            geom = _part_of(rng, f.shape)
        else:
            i, j = f.cell
            around = ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1))
            nbrs = [cells[c] for c in around if c in cells]
            if not nbrs:
                geom = f.shape
            else:
                g2 = nbrs[int(rng.integers(len(nbrs)))]
                a = f.shape if rng.random() < 0.5 else _part_of(rng, f.shape)
                b = _part_of(rng, g2.shape)
                geom = shapely.union(a, b)
        t0 = f.first_ts[user]
        t = _after(rng, t0, 0.2, 40) or _after(rng, t0, 0.01, 0.3) or t0.replace(microsecond=0)
        status = 200 if rng.random() > 0.05 else 500
        op = _pick(rng, ["harvest", "planting", "application"], [0.5, 0.15, 0.35])
        machine_rows.append(
            {
                "event_id": _uuid(rng),
                "t": t,
                "user": user,
                "product": "OPERATIONS_FILE",
                "resource_id": _uuid(rng),
                "operation": op,
                "status": status,
                "geom": geom,
            }
        )
    for t in _times(rng, 6):
        machine_rows.append(
            {
                "event_id": _uuid(rng),
                "t": t,
                "user": _pick(rng, users, weights),
                "product": "OPERATIONS_OPERATION",
                "resource_id": _uuid(rng),
                "operation": _pick(rng, ["harvest", "planting", "application"]),
                "status": 200,
                "geom": None,
            }
        )
    machine_rows.sort(key=lambda r: (r["t"], r["event_id"]))

    # Satellite images: the field polygon (Sentinel) or a rectangular order AOI around it (Planet);
    # fields are revisited, so the same user processes the same field many times.
    satellite_rows: list[dict] = []
    for _ in range(80):
        user = _pick(rng, users, weights)
        f = by_user[user][int(rng.integers(len(by_user[user])))]
        if rng.random() < 0.6:
            product, geom = "SATELLITE_PROCESS_SENTINEL", f.shape
        else:
            minx, miny, maxx, maxy = f.shape.bounds
            product, geom = "SATELLITE_PROCESS_PLANET", box(minx, miny, maxx, maxy).buffer(
                30.0, join_style="mitre"
            )
        t0 = f.first_ts[user]
        t = _after(rng, t0, 0.1, 60) or _after(rng, t0, 0.01, 0.3) or t0.replace(microsecond=0)
        satellite_rows.append(
            {
                "event_id": _uuid(rng),
                "t": t,
                "user": user,
                "product": product,
                "resource_id": _uuid(rng),
                "status": 200 if rng.random() > 0.04 else 500,
                "geom": geom,
            }
        )
    satellite_rows.sort(key=lambda r: (r["t"], r["event_id"]))
    return _Agronomy(fields, boundaries, machine_rows, satellite_rows)


def _part_of(rng: np.random.Generator, shape: Polygon):
    """30–80 % of a field: the part on one side of a slightly rotated cut line."""
    minx, miny, maxx, maxy = shape.bounds
    frac = rng.uniform(0.3, 0.8)
    if rng.random() < 0.5:
        cut = box(minx - 50, miny - 50, minx + frac * (maxx - minx), maxy + 50)
    else:
        cut = box(minx - 50, miny - 50, maxx + 50, miny + frac * (maxy - miny))
    cut = affinity.rotate(cut, float(rng.uniform(-10, 10)), origin=shape.centroid)
    part = shapely.intersection(shape, cut)
    polys = [p for p in _polys(part) if isinstance(p, Polygon) and p.area > 100]
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _write_geojson(path: Path, agro: _Agronomy) -> None:
    lines = []
    for e in agro.boundaries:
        props = {
            "event_id": e["event_id"],
            "timestamp": _iso_z(e["ts"], ms=True),
            "owner_id": ACME,
            "leafUserId": e["user"],
            "org_id": _acme_org(e["user"]),
            "product": "FIELDS_BOUNDARY",
            "action": e["action"],
            "resource_id": e["resource_id"],
            "status": e["status"],
            "error_code": "internal_error" if e["status"] >= 500 else None,
        }
        geom = "null" if e["geom"] is None else to_geojson_text(_to_lonlat(e["geom"]))
        lines.append(
            '{"type":"Feature","properties":'
            + json.dumps(props, separators=(",", ":"))
            + ',"geometry":'
            + geom
            + "}"
        )
    text = '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n"
    path.write_text(text, encoding="utf-8", newline="\n")


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _link_operations(agro: _Agronomy) -> None:
    """Each operation names the machine file it was recorded from, in a ``file_id`` column.

    The file: the latest successful ``OPERATIONS_FILE`` of the same user and operation type at or
    before the operation; an operation without one names no file (it stays unlinked, and a
    ``derive_operations`` meter reports it in ``unlinked_operations``). No random draw: the
    rows of every other event stay exactly as they were.
    """
    files = [r for r in agro.machine_rows if r["product"] == "OPERATIONS_FILE" and r["status"] == 200]
    for r in agro.machine_rows:
        if r["product"] != "OPERATIONS_OPERATION":
            continue
        earlier = [
            f
            for f in files
            if f["user"] == r["user"] and f["operation"] == r["operation"] and f["t"] <= r["t"]
        ]
        if earlier:
            r["file_id"] = max(earlier, key=lambda f: (f["t"], f["event_id"]))["resource_id"]


def _write_machine_files(path: Path, agro: _Agronomy, rng: np.random.Generator) -> None:
    rows = []
    for r in agro.machine_rows:
        # Machine data arrives from the cab in local time with an offset, or in UTC.
        ts = _iso_local(r["t"], CHICAGO) if rng.random() < 0.4 else _iso_z(r["t"])
        geom = "" if r["geom"] is None else to_wkt(_to_lonlat(r["geom"]))
        rows.append(
            [
                r["event_id"],
                ts,
                ACME,
                r["user"],
                r["product"],
                r["resource_id"],
                r.get("file_id", ""),
                r["operation"],
                r["status"],
                geom,
            ]
        )
    # `file_id` next to `resource_id` is not an alias of it: it lands in the event's attributes,
    # where derive_operations looks for the operation's machine file (docs/area.md).
    header = [
        "event_id",
        "timestamp",
        "owner_id",
        "user_id",
        "product",
        "resource_id",
        "file_id",
        "operation",
        "status",
        "geometry",
    ]
    path.write_text(_csv_text(header, rows), encoding="utf-8", newline="")


def _write_satellite(path: Path, agro: _Agronomy) -> None:
    rows = [
        [
            r["event_id"],
            r["t"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),  # naive: UTC by SPEC §3.1
            ACME,
            r["user"],
            r["product"],
            r["resource_id"],
            r["status"],
            to_geojson_text(_to_lonlat(r["geom"])),
        ]
        for r in agro.satellite_rows
    ]
    header = [
        "event_id",
        "created_at",
        "owner_id",
        "userId",
        "product",
        "resource_id",
        "status",
        "geometry",
    ]
    path.write_text(_csv_text(header, rows), encoding="utf-8", newline="")


# --------------------------------------------------------------------------------------------
# 2. Life-cycle-data licence API (lca-institute)
# --------------------------------------------------------------------------------------------


def _licence_rows(rng: np.random.Generator) -> list[list]:
    datasets = [SPEC_EXAMPLE_DATASET] + [
        str(int(d)) for d in rng.choice(np.arange(200, 5000), size=39, replace=False)
    ]
    pool = np.setdiff1d(np.arange(800, 1100), np.array(SPEC_EXAMPLE_INDICATORS, dtype=int))
    indicators = list(SPEC_EXAMPLE_INDICATORS) + [
        str(int(i)) for i in rng.choice(pool, size=55, replace=False)
    ]

    calls: list[dict] = []

    def call(t, user, org, endpoint, status, dataset="", inds=()) -> None:
        method = "POST" if endpoint == "/datasets/search" else "GET"
        base = {"/datasets": 180.0, "/datasets/search": 420.0, "/health": 8.0}[endpoint]
        rt = round(float(base * rng.lognormal(0, 0.45)), 1)
        calls.append(
            {
                "t": t,
                "user": user,
                "org": org,
                "endpoint": endpoint,
                "method": method,
                "status": status,
                "dataset": dataset,
                "inds": ",".join(inds),
                "rt": rt,
                "request_id": _uuid(rng),
            }
        )

    # SPEC §5.2, exactly: user-a fetches dataset 123 with the same 5 indicators 10 times (all
    # successful), and nothing else of user-a counts: one rate-limited call, one search, one call
    # without indicators.
    ex_org = "org-research"
    for t in sorted(_times(rng, 10, growth=1.0)):
        call(t, SPEC_EXAMPLE_USER, ex_org, "/datasets", 200, "123", SPEC_EXAMPLE_INDICATORS)
    t3 = sorted(_times(rng, 3, growth=1.0))
    call(t3[0], SPEC_EXAMPLE_USER, ex_org, "/datasets", 429, datasets[7], SPEC_EXAMPLE_INDICATORS)
    call(t3[1], SPEC_EXAMPLE_USER, ex_org, "/datasets/search", 200)
    call(t3[2], SPEC_EXAMPLE_USER, ex_org, "/datasets", 200, datasets[11])

    # Everyone else: each user works on a few favourite datasets with a personal set of indicators.
    others = [(u, o, w) for u, o, w in LCA_USERS if w > 0]
    prefs = {}
    for u, _, _ in others:
        ds = [datasets[int(i)] for i in rng.choice(len(datasets), size=12, replace=False)]
        ind = [indicators[int(i)] for i in rng.choice(len(indicators), size=18, replace=False)]
        prefs[u] = (ds, ind)
    for t in _times(rng, 400 - len(calls), growth=0.85):
        user, org, _ = _pick(rng, others, [w for _, _, w in others])
        endpoint = _pick(rng, ["/datasets", "/datasets/search", "/health"], [0.82, 0.11, 0.07])
        status = int(_pick(rng, [200, 401, 429, 500], [0.86, 0.04, 0.07, 0.03]))
        if endpoint != "/datasets":
            call(t, user, org, endpoint, status)
            continue
        ds, ind = prefs[user]
        dataset = ds[min(int(rng.geometric(0.3)) - 1, len(ds) - 1)]
        if rng.random() < 0.08:
            inds: list[str] = []
        else:
            k = int(rng.integers(1, 8))
            inds = [ind[int(i)] for i in rng.choice(len(ind), size=k, replace=False)]
        call(t, user, org, endpoint, status, dataset, inds)

    calls.sort(key=lambda c: (c["t"], c["request_id"]))
    return [
        [
            _iso_z(c["t"]),
            c["user"],
            c["org"],
            c["endpoint"],
            c["method"],
            c["status"],
            c["dataset"],
            c["inds"],
            f"{c['rt']:.1f}",
            c["request_id"],
            "DATASETS",
        ]
        for c in calls
    ]


def _write_licence(path: Path, rng: np.random.Generator) -> list[list]:
    header = [
        "timestamp",
        "X-User-ID",
        "X-Organization-ID",
        "endpoint",
        "method",
        "status_code",
        "dataset_id",
        "indicator_ids",
        "response_time_ms",
        "request_id",
        "product",
    ]
    rows = _licence_rows(rng)
    path.write_text(_csv_text(header, rows), encoding="utf-8", newline="")
    return rows


# --------------------------------------------------------------------------------------------
# 3. Land-data token API (terra-tokens)
# --------------------------------------------------------------------------------------------

TOKEN_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("owner_id", pa.string()),
        ("api_key_id", pa.string()),
        ("product", pa.string()),
        ("endpoint", pa.string()),
        ("session_id", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("thinking_tokens", pa.int64()),
        ("status", pa.int64()),
        # The file a /v1/parcels or /v1/soil call processed, and its name; the title of the
        # conversation a /v1/chat call belongs to. Null where they do not apply.
        ("resource_id", pa.string()),
        ("filename", pa.string()),
        ("title", pa.string()),
    ]
)

_FILE_KINDS = (
    ("parcels", "geojson"),
    ("field_boundaries", "shp.zip"),
    ("soil_samples", "csv"),
    ("soil_report", "pdf"),
    ("yield_map", "csv"),
    ("lease_map", "pdf"),
)
_COUNTIES = ("story", "boone", "polk", "hardin", "marshall", "dallas", "jasper", "greene")
_TOPICS = (
    "Nitrogen rate for field {n} in {c}",
    "Drainage tile layout, {c} field {n}",
    "Cover crops after soybeans on {c} {n}",
    "Soil pH map of {c} field {n}",
    "Splitting parcel {n} of the {c} lease",
    "Yield gap on {c} field {n}",
    "Spring tillage plan for {c} {n}",
    "Phosphorus levels in {c} field {n}",
)
#: The one conversation renamed midway: its first chat calls carry this title, later ones the new.
FIRST_TITLE = "New conversation"


def _token_rows(rng: np.random.Generator) -> list[dict]:
    keys = [k for k, _ in TERRA_KEYS]
    kw = [w for _, w in TERRA_KEYS]
    rows: list[dict] = []
    # Sessions of 1–12 calls a few seconds to minutes apart; usage grows over the months.
    for start in sorted(_times(rng, 150, end=WINDOW_END - timedelta(hours=3), growth=0.7)):
        key = _pick(rng, keys, kw)
        session = "sess_" + rng.bytes(6).hex()
        t = start
        for _ in range(int(rng.integers(1, 8))):
            endpoint = _pick(rng, ["/v1/parcels", "/v1/soil", "/v1/chat"], [0.4, 0.3, 0.3])
            status = 200 if rng.random() > 0.05 else 429
            if status == 429:
                inp = out = think = 0
            elif endpoint == "/v1/parcels":
                inp, out, think = int(rng.integers(150, 900)), int(rng.integers(300, 2500)), 0
            elif endpoint == "/v1/soil":
                inp, out, think = int(rng.integers(100, 600)), int(rng.integers(200, 1500)), 0
            else:
                inp, out = int(rng.integers(500, 6000)), int(rng.integers(200, 2000))
                think = 0 if rng.random() < 0.5 else int(rng.integers(200, 4000))
            rows.append(
                {
                    "event_id": "evt_" + rng.bytes(8).hex(),
                    "ts": t,
                    "owner_id": TERRA,
                    "api_key_id": key,
                    "product": "API_TOKENS",
                    "endpoint": endpoint,
                    "session_id": session,
                    "input_tokens": inp,
                    "output_tokens": out,
                    "thinking_tokens": think,
                    "status": status,
                }
            )
            t = t + timedelta(milliseconds=int(rng.integers(2_000, 600_000)))
            if t >= WINDOW_END:
                break
    rows.sort(key=lambda r: (r["ts"], r["event_id"]))
    return rows


def _label_tokens(rows: list[dict], rng: np.random.Generator) -> None:
    """File ids and names on file calls, conversation titles on chat calls, from their own ``rng``
    (the token figures stay those of the unlabelled log).

    Each API key works on a few files of its own, most calls on its favourites; a session keeps
    to one file most of the time. Every file keeps its name and every conversation its title,
    except one conversation (the one with the most chat calls, the latest on a tie) that starts as
    ``FIRST_TITLE`` and is renamed halfway: the label of an item is then its latest event's.
    """
    keys = sorted({r["api_key_id"] for r in rows})
    names: set[str] = set()
    pools: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        pool = []
        for _ in range(int(rng.integers(3, 7))):
            while True:
                kind, ext = _FILE_KINDS[int(rng.integers(len(_FILE_KINDS)))]
                county = _COUNTIES[int(rng.integers(len(_COUNTIES)))]
                name = f"{county}_{kind}_{int(rng.integers(1, 40)):02d}.{ext}"
                if name not in names:
                    break
            names.add(name)
            pool.append(("file_" + rng.bytes(6).hex(), name))
        pools[key] = pool
    titles: dict[str, str] = {}
    session_file: dict[str, tuple[str, str]] = {}
    for r in rows:
        sess, pool = r["session_id"], pools[r["api_key_id"]]
        if r["endpoint"] == "/v1/chat":
            if sess not in titles:
                while True:  # 8 × 8 × 40 titles: a few draws at most
                    topic = _TOPICS[int(rng.integers(len(_TOPICS)))]
                    county = _COUNTIES[int(rng.integers(len(_COUNTIES)))].title()
                    title = topic.format(c=county, n=int(rng.integers(1, 41)))
                    if title not in titles.values():
                        break
                titles[sess] = title
            r["resource_id"], r["filename"], r["title"] = None, None, titles[sess]
            continue
        if sess not in session_file or rng.random() < 0.3:
            session_file[sess] = pool[min(int(rng.geometric(0.45)) - 1, len(pool) - 1)]
        r["resource_id"], r["filename"] = session_file[sess]
        r["title"] = None
    chats: dict[str, list[dict]] = {}
    for r in rows:
        if r["endpoint"] == "/v1/chat":
            chats.setdefault(r["session_id"], []).append(r)
    renamed = max(chats.values(), key=lambda c: (len(c), c[-1]["ts"], c[-1]["event_id"]))
    for r in renamed[: len(renamed) // 2]:
        r["title"] = FIRST_TITLE


# --------------------------------------------------------------------------------------------
# 4. Document-analysis credit API (docuscan)
# --------------------------------------------------------------------------------------------


def _credit_cents(rng: np.random.Generator, product: str) -> tuple[str, int]:
    if product == "verify":
        return ("verify_identity", 150) if rng.random() < 0.4 else ("verify_document", 100)
    if product == "describe":
        if rng.random() < 0.5:
            return "describe_image", 25
        return "describe_pdf", 5 * int(rng.integers(1, 31))
    if product == "upload":
        op = "upload_pdf" if rng.random() < 0.7 else "upload_image"
        return op, 10 + int(rng.integers(0, 60))
    return ("chat_message" if rng.random() < 0.8 else "chat_summary"), 25 * int(rng.integers(1, 7))


def _docuscan_lines(rng: np.random.Generator) -> list[str]:
    users = [(u, o) for u, o, _ in DOCU_USERS]
    uw = [w for _, _, w in DOCU_USERS]
    recs = []
    for t in _times(rng, 500, growth=0.65):
        user, org = _pick(rng, users, uw)
        product = _pick(rng, ["verify", "describe", "upload", "chat"], [0.25, 0.3, 0.3, 0.15])
        op, cents = _credit_cents(rng, product)
        r = rng.random()
        status, error = "success", None
        if r < 0.04:
            status, error, cents = "failed", "rate_limited", 0
        elif r < 0.06:
            status, error, cents = "failed", "usage_limit_exceeded", 0
        elif r < 0.08:
            # The vendor logs the would-be cost of a crashed call: it must never be billed.
            status, error = "failed", "internal_error"
        rid = "req_" + rng.bytes(8).hex()
        ts = _iso_local(t, BERLIN) if rng.random() < 0.3 else _iso_z(t)
        base = {"verify": 900.0, "describe": 2400.0, "upload": 650.0, "chat": 3100.0}[product]
        recs.append(
            (
                t,
                rid,
                {
                    "event_id": rid,
                    "request_id": rid,
                    "timestamp": ts,
                    "owner_id": DOCU,
                    "user_id": user,
                    "org_id": org,
                    "product": product,
                    "operation": op,
                    # cents/100 prints as its shortest repr: at most 2 decimals, exact as text.
                    "credits": cents / 100,
                    "status": status,
                    "error_code": error,
                    "response_time_ms": round(float(base * rng.lognormal(0, 0.4)), 1),
                },
            )
        )
    recs.sort(key=lambda r: (r[0], r[1]))
    return [json.dumps(d, separators=(", ", ": ")) for _, _, d in recs]


# --------------------------------------------------------------------------------------------
# Contracts (SPEC §4)
# --------------------------------------------------------------------------------------------

# Limits are chosen against the default-seed data so that `usagectl demo --as-of
# 2026-11-20T12:00:00Z` shows every status: lca `datasets` at warning, terra `tokens` exceeded,
# every other meter ok (acme `boundaries` ok but past its allotment, so it prices an overage).
CONTRACTS_TOML = """\
# Sample contracts for the sample_data/ event logs (SPEC §4). Generated by
# `python -m usagectl.sample.generator sample_data`; do not edit by hand.

# --- 1. Agronomy data API: spatially unique acres --------------------------------------------
[[contract]]
id = "acme-farms-2026"
owner = "acme-farms"
start = 2026-01-01
cycle = "quarterly"
timezone = "America/Chicago"
tier = "growth"

  [[contract.meter]]
  name = "boundaries"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  unit = "acre"
  billed_on = "user"
  boundary_policy = "processed"
  limit = 10000
  included = 6000
  overage_unit = 1
  overage_cents_per_unit = 25
  warn_at = 0.8

  [[contract.meter]]
  name = "machine_files"
  aggregate = "unique_area"
  products = ["OPERATIONS_FILE"]
  unit = "acre"
  billed_on = "user"
  limit = 5000
  included = 4000
  overage_cents_per_unit = 10

  [[contract.meter]]
  name = "satellite"
  aggregate = "unique_area"
  products = ["SATELLITE_PROCESS_SENTINEL", "SATELLITE_PROCESS_PLANET"]
  unit = "acre"
  billed_on = "user"
  limit = 8000
  included = 6000
  overage_cents_per_unit = 5

  [[contract.meter]]
  name = "unified"
  aggregate = "unique_area"
  products = ["*"]
  unit = "acre"
  billed_on = "owner"
  limit = 15000

  # Operations carry no geometry: each counts its machine file (named in `file_id`) within the
  # user's active boundaries.
  [[contract.meter]]
  name = "operations"
  aggregate = "unique_area"
  products = ["OPERATIONS_OPERATION"]
  unit = "acre"
  billed_on = "user"
  derive_operations = true
  limit = 2000

# --- 2. Life-cycle-data licence API: distinct users, datasets, indicators ---------------------
[[contract]]
id = "lca-licence-2026"
owner = "lca-institute"
start = 2026-07-01
cycle = "annual"
timezone = "UTC"
tier = "academic"

  [[contract.meter]]
  name = "users"
  aggregate = "distinct"
  field = "user_id"
  endpoints = ["/datasets"]
  require = ["indicator_ids"]
  billed_on = "owner"
  limit = 20

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  field = "dataset_id"
  endpoints = ["/datasets"]
  require = ["indicator_ids"]
  billed_on = "owner"
  limit = 45

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
  endpoints = ["/datasets"]
  require = ["indicator_ids"]
  billed_on = "owner"
  limit = 100

# --- 3. Land-data token API: tokens over the tier's allotment ---------------------------------
[[contract]]
id = "terra-pro-monthly"
owner = "terra-tokens"
start = 2026-01-31
cycle = "monthly"
timezone = "UTC"
tier = "pro"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  products = ["API_TOKENS"]
  billed_on = "owner"
  limit = 400000
  included = 300000
  overage_unit = 1000
  overage_cents_per_unit = 4

  [[contract.meter]]
  name = "tokens_graduated"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  products = ["API_TOKENS"]
  billed_on = "owner"
  pricing = "graduated"

    [[contract.meter.price]]
    up_to = 100000
    cents_per_unit = 0

    [[contract.meter.price]]
    up_to = 300000
    cents_per_unit = 0.003

    [[contract.meter.price]]
    cents_per_unit = 0.002
    flat_cents = 500

# --- 4. Document-analysis credit API: credits and requests ------------------------------------
[[contract]]
id = "docuscan-team-monthly"
owner = "docuscan"
start = 2026-02-15
cycle = "monthly"
timezone = "Europe/Berlin"
tier = "team"

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  billed_on = "owner"
  limit = 50
  prepaid = 25
  included = 50
  overage_unit = 1
  overage_cents_per_unit = 40

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  billed_on = "owner"
  limit = 100
"""


#: Other plans the token owner could be on: an ordinary contracts file, for `report --view plan
#: --contracts` (a recommendation) or `report --contracts` (a what-if). Same anchor, cycle and zone
#: as terra-pro-monthly, so the periods line up; a plan's monthly fee is the first price row's
#: `flat_cents`, charged on an idle month too (docs/meters.md).
ALTERNATIVES_TOML = """\
# Other plans for terra-tokens (see contracts.toml for the one it is on, terra-pro-monthly).
# Generated by `python -m usagectl.sample.generator sample_data`; do not edit by hand.
#
# At the demo's --as-of 2026-11-20T12:00:00Z the current period (2026-10-31 → 2026-11-30) is
# projected to about 637,000 tokens: "business" costs less than the current plan for that, while
# "starter" (too small: most tokens at its overage price) and "enterprise" (a fee for far more
# than is used) cost more.

[[contract]]
id = "terra-starter-monthly"
owner = "terra-tokens"
start = 2026-01-31
cycle = "monthly"
timezone = "UTC"
tier = "starter"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  products = ["API_TOKENS"]
  billed_on = "owner"
  limit = 200000
  pricing = "graduated"

    [[contract.meter.price]]
    up_to = 150000
    cents_per_unit = 0
    flat_cents = 900

    [[contract.meter.price]]
    cents_per_unit = 0.008

[[contract]]
id = "terra-business-monthly"
owner = "terra-tokens"
start = 2026-01-31
cycle = "monthly"
timezone = "UTC"
tier = "business"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  products = ["API_TOKENS"]
  billed_on = "owner"
  limit = 1000000
  pricing = "graduated"

    [[contract.meter.price]]
    up_to = 750000
    cents_per_unit = 0
    flat_cents = 1000

    [[contract.meter.price]]
    cents_per_unit = 0.003

[[contract]]
id = "terra-enterprise-monthly"
owner = "terra-tokens"
start = 2026-01-31
cycle = "monthly"
timezone = "UTC"
tier = "enterprise"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  products = ["API_TOKENS"]
  billed_on = "owner"
  limit = 5000000
  pricing = "graduated"

    [[contract.meter.price]]
    up_to = 3000000
    cents_per_unit = 0
    flat_cents = 9900

    [[contract.meter.price]]
    cents_per_unit = 0.001
"""


# --------------------------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------------------------


def _readme(counts: dict[str, int], seed: int) -> str:
    return f"""\
# Sample data

Small, realistic usage logs for the four usage shapes usagectl audits (SPEC §1), one owner each,
plus `contracts.toml` for them. `usagectl demo` ingests this folder. Every timestamp lies between
2026-08-01 and 2026-11-20 11:00 UTC, so a demo run with `--as-of {DEMO_AS_OF}` has a current
period with data for every contract and nothing in the future.

Generated by `usagectl/sample/generator.py` (seed {seed}); **do not edit by hand** —
`tests/test_sample_data.py` checks that this folder equals a fresh generation. To regenerate:

```sh
.venv/bin/python -m usagectl.sample.generator sample_data            # default seed
.venv/bin/python -m usagectl.sample.generator /tmp/other --seed 7    # another data set
```

| file | rows | owner | what it shows |
| --- | ---: | --- | --- |
| `fields_boundaries.geojson` | {counts["fields_boundaries.geojson"]} features | `acme-farms` | GeoJSON FeatureCollection of field boundaries (`FIELDS_BOUNDARY`) in central Iowa, 4–6-sided fields of 6–190 acres. About 30 % of fields are processed by 2–3 different users (some redrawn with 1–5 m of vertex jitter), about 25 % are re-processed by the same user under the same `resource_id`, a few fields partially overlap another. {counts["deletes"]} `delete` events (null geometry) of earlier boundaries; {counts["failed_boundaries"]} failed calls (`status` 500, `error_code` `internal_error`) on fields that user never processed successfully. User id in `leafUserId`; `org_id` groups some users. Timestamps in UTC with milliseconds. |
| `machine_files.csv` | {counts["machine_files.csv"]} | `acme-farms` | `OPERATIONS_FILE` events with WKT geometry (whole field, part of a field, or a MultiPolygon spanning two adjacent fields), `operation` harvest/planting/application, a few `status` 500; {counts["operations"]} `OPERATIONS_OPERATION` rows without geometry, {counts["linked"]} of them naming in `file_id` the machine file they were recorded from (the latest successful file of the same user and operation type before them; a `file_id` column next to `resource_id` stays an attribute), the others no file. Timestamps in UTC (`Z`) or Chicago local time with its offset (`-05:00` before 1 Nov, `-06:00` after). |
| `satellite_images.csv` | {counts["satellite_images.csv"]} | `acme-farms` | `SATELLITE_PROCESS_SENTINEL` (the field polygon) and `SATELLITE_PROCESS_PLANET` (a rectangular AOI around the field) with the geometry as GeoJSON text in a quoted CSV cell; users revisit their fields. `created_at` is naive (UTC by SPEC §3.1); the user column is `userId`. |
| `licence_calls.csv` | {counts["licence_calls.csv"]} | `lca-institute` | API gateway log without an `event_id` or owner column (the ingest derives the id from a hash of the row; the owner comes from `usagectl ingest --owner lca-institute`); headers `X-User-ID`, `X-Organization-ID`, `status_code`. 12 users in 3 orgs, {counts["datasets"]} datasets, {counts["indicators"]} indicator ids as a quoted comma list (sometimes empty), endpoints `/datasets`, `/datasets/search`, `/health`, some 401/429/500. Contains the SPEC §5.2 example exactly: `user-a` fetches dataset `123` with indicators `964,897,962,901,933` ten times (= 1 user, 1 dataset, 5 indicators); user-a's other calls (a 429, a search, a call without indicators) count nothing. |
| `token_usage.parquet` | {counts["token_usage.parquet"]} | `terra-tokens` | `API_TOKENS` requests per API key (`api_key_id`) in sessions (`session_id`), endpoints `/v1/parcels`, `/v1/soil`, `/v1/chat`; `input_tokens`, `output_tokens`, `thinking_tokens` (int64, thinking often 0); `ts` is an Arrow timestamp in UTC; some `status` 429 with zero tokens. File calls (`/v1/parcels`, `/v1/soil`) name their file: `resource_id` ({counts["token_files"]} files, a few per key) and `filename` (one name per file); chat calls carry their conversation's `title` (one per `session_id`, except one conversation renamed halfway from `{FIRST_TITLE}`). `filename` and `title` are kept in the events' `attributes`. |
| `requests.jsonl` | {counts["requests.jsonl"]} | `docuscan` | One JSON object per line: `event_id` = `request_id`, `timestamp` in UTC or Berlin local time (`+02:00`/`+01:00`), `user_id`, `org_id`, `product` verify/describe/upload/chat, `operation`, `credits` (a JSON number with up to 2 decimals), `status` success/failed with `error_code` rate_limited, usage_limit_exceeded or internal_error (crashed calls still carry their would-be credits, which must not count), `response_time_ms`. |
| `contracts.toml` | 4 contracts | all | See below. |
| `plan_alternatives.toml` | 3 contracts | `terra-tokens` | Other plans for the token owner, in the same format: `terra-starter-monthly` (smaller), `terra-business-monthly` (bigger, and cheaper than `terra-pro-monthly` for the current period's projected ~637,000 tokens: a 1,000 ¢ fee against ~3,126 ¢), `terra-enterprise-monthly` (a 9,900 ¢ fee). A plan's monthly fee is its first price row's `flat_cents`. Not loaded by the demo: give it to `--contracts` (e.g. `usagectl report --contract terra-business-monthly --contracts sample_data/plan_alternatives.toml`). |

## Contracts and what the demo shows at `--as-of {DEMO_AS_OF}` (default seed)

| contract | owner | cycle, zone | current period | meters |
| --- | --- | --- | --- | --- |
| `acme-farms-2026` | `acme-farms` | quarterly from 2026-01-01, America/Chicago | 2026-10-01 → 2027-01-01 (Q3 is the previous period, also with data) | `boundaries` (unique acres per user, past its allotment: overage priced, status ok), `machine_files`, `satellite` (both SATELLITE products), `unified` (all area products, owner level), `operations` (operations without a geometry, each deriving its area from the machine file it names within the user's active boundaries: 2 in this quarter, 74.59 acres) — all ok |
| `lca-licence-2026` | `lca-institute` | annual from 2026-07-01, UTC | 2026-07-01 → 2027-07-01 | distinct `users`, `datasets` (**warning**), `indicators` over successful `/datasets` calls with indicators |
| `terra-pro-monthly` | `terra-tokens` | monthly from 2026-01-31, UTC (anchored on the 31st: periods start Oct 31, Nov 30, Dec 31, Feb 28 …) | 2026-10-31 → 2026-11-30 | `tokens` (**exceeded**, overage per 1000 tokens) and `tokens_graduated` (same sum, graduated tier prices, no limit) |
| `docuscan-team-monthly` | `docuscan` | monthly from 2026-02-15, Europe/Berlin | 2026-11-15 → 2026-12-15 (Berlin) | `credits` (sum, with `prepaid`), `requests` (count) — ok |

Users: `acme-farms` agri-ames, agri-boone and agri-hardin (`org-north`), agri-story and agri-polk
(`org-central`), agri-marshall; `lca-institute` user-a … user-l in `org-research`,
`org-consulting`, `org-policy`; `terra-tokens` seven API keys (`tk_live_*`, `tk_test_sandbox`);
`docuscan` ten users in `acct-legal`, `acct-hr`, `acct-finance` (and one without an org).
"""


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the sample data set into ``out_dir``; return the written paths (``FILE_NAMES`` order).

    Deterministic in ``seed`` alone; each data set draws from its own child generator, so
    changing one shape does not reshuffle the others.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in FILE_NAMES}
    counts: dict[str, int] = {}

    agro = _agronomy(np.random.default_rng([seed, 1]))
    _link_operations(agro)
    _write_geojson(paths["fields_boundaries.geojson"], agro)
    counts["fields_boundaries.geojson"] = len(agro.boundaries)
    _write_machine_files(paths["machine_files.csv"], agro, np.random.default_rng([seed, 2]))
    counts["machine_files.csv"] = len(agro.machine_rows)
    _write_satellite(paths["satellite_images.csv"], agro)
    counts["satellite_images.csv"] = len(agro.satellite_rows)

    licence = _write_licence(paths["licence_calls.csv"], np.random.default_rng([seed, 3]))
    counts["licence_calls.csv"] = len(licence)
    counts["datasets"] = len({r[6] for r in licence if r[6]})
    counts["indicators"] = len({i for r in licence for i in r[7].split(",") if i})
    counts["deletes"] = sum(e["action"] == "delete" for e in agro.boundaries)
    counts["failed_boundaries"] = sum(e["status"] != 200 for e in agro.boundaries)
    counts["operations"] = sum(r["geom"] is None for r in agro.machine_rows)
    counts["linked"] = sum("file_id" in r for r in agro.machine_rows)

    token_rows = _token_rows(np.random.default_rng([seed, 4]))
    _label_tokens(token_rows, np.random.default_rng([seed, 6]))
    table = pa.Table.from_pylist(token_rows, schema=TOKEN_SCHEMA)
    pq.write_table(table, paths["token_usage.parquet"], compression="zstd")
    counts["token_usage.parquet"] = table.num_rows
    counts["token_files"] = len({r["resource_id"] for r in token_rows if r["resource_id"]})

    lines = _docuscan_lines(np.random.default_rng([seed, 5]))
    paths["requests.jsonl"].write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    counts["requests.jsonl"] = len(lines)

    paths["contracts.toml"].write_text(CONTRACTS_TOML, encoding="utf-8", newline="")
    paths["plan_alternatives.toml"].write_text(ALTERNATIVES_TOML, encoding="utf-8", newline="")
    paths["README.md"].write_text(_readme(counts, seed), encoding="utf-8", newline="")
    return [paths[name] for name in FILE_NAMES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m usagectl.sample.generator",
        description="Write usagectl's deterministic sample usage logs and contracts.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created when missing)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    args = parser.parse_args(argv)
    for p in generate(args.out_dir, args.seed):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
