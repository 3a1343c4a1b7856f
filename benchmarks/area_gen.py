"""Synthetic field-boundary events at scale, shaped like the issue's load (issue 3).

One owner; fields of 2–200 ha (log-uniform) packed in rows across farms at about 42° N, as on
a real landscape: distinct fields do not overlap each other. Each field belongs to one of 200
users (farms are spatial blocks, so a user's fields are near each other). A share of the events
re-process an existing field with metres of jitter (by its user, or, for ``--shared`` of them,
by another user: an agronomist or a neighbour), which is what makes user and owner areas differ.
Timestamps cover one year. Polygons are slightly rotated quadrilaterals with an extra vertex on
each long side, so that GEOS works as it does on real parcels, not on axis-aligned boxes.

Writes a Parquet file that ``usagectl ingest`` reads as is (WKB geometry in EPSG:4326)::

    .venv/bin/python benchmarks/area_gen.py 1000000 /tmp/f1m.parquet
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

M_PER_DEG_LAT = 110_950.0


def generate(n: int, *, reprocessed: float = 0.4, shared: float = 0.25, users: int = 200,
             jitter_m: float = 3.0, seed: int = 42, lat0: float = 42.0, lon0: float = -95.0
             ) -> pa.Table:
    rng = np.random.default_rng(seed)
    distinct = max(1, round(n * (1 - reprocessed)))
    area_ha = np.exp(rng.uniform(math.log(2), math.log(200), distinct))
    aspect = rng.uniform(0.5, 2.0, distinct)
    w = np.sqrt(area_ha * 1e4 * aspect)  # metres east–west
    h = area_ha * 1e4 / w
    # Shelf packing: rows ~1.6 km high, fields one after another with 5–40 m gaps.
    row_h = 1_600.0
    total_w = float(np.sum(w + 25.0))
    n_rows = max(1, int(math.sqrt(total_w * row_h) / row_h * 1.0) + 1)
    row_len = total_w / n_rows
    cum = np.cumsum(w + rng.uniform(5, 40, distinct))
    row = np.minimum((cum // row_len).astype(np.int64), n_rows - 1)
    start_in_row = cum - w - row * row_len
    start_in_row = np.maximum(start_in_row, 0)
    x_m = start_in_row
    y_m = row * row_h + rng.uniform(0, row_h - np.minimum(h, row_h - 10), distinct)
    h = np.minimum(h, row_h - 10)
    cos_lat = math.cos(math.radians(lat0))
    cx = lon0 + (x_m + w / 2) / (M_PER_DEG_LAT * cos_lat) - row_len / 2 / (M_PER_DEG_LAT * cos_lat)
    cy = lat0 + (y_m + h / 2) / M_PER_DEG_LAT - n_rows * row_h / 2 / M_PER_DEG_LAT
    # Farms: 200 users as spatial blocks (a 20 × 10 grid over the packed region).
    gx = np.clip(((x_m / row_len) * 20).astype(np.int64), 0, 19)
    gy = np.clip(((row / n_rows) * 10).astype(np.int64), 0, 9)
    owner_of = (gy * 20 + gx) % users
    # Events: every distinct field once, then re-processed copies of random fields.
    idx = np.concatenate([np.arange(distinct), rng.integers(0, distinct, n - distinct)])
    again = np.arange(n) >= distinct
    user = owner_of[idx].copy()
    other = again & (rng.random(n) < shared)
    user[other] = rng.integers(0, users, int(other.sum()))
    jx = np.where(again, rng.normal(0, jitter_m, n), 0.0)
    jy = np.where(again, rng.normal(0, jitter_m, n), 0.0)
    theta = np.radians(rng.uniform(-8, 8, distinct))[idx]
    hw, hh = w[idx] / 2, h[idx] / 2
    bulge = rng.uniform(-0.03, 0.03, distinct)[idx] * hh
    # Corners and a vertex on each long side, in metres around the centre, then rotated.
    local = np.stack([
        np.stack([-hw, -hh], 1), np.stack([np.zeros(n), -hh + bulge], 1), np.stack([hw, -hh], 1),
        np.stack([hw, hh], 1), np.stack([np.zeros(n), hh + bulge], 1), np.stack([-hw, hh], 1),
    ], 1)  # (n, 6, 2)
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    xr = local[..., 0] * c - local[..., 1] * s + jx[:, None]
    yr = local[..., 0] * s + local[..., 1] * c + jy[:, None]
    lat_c = cy[idx]
    lon = cx[idx][:, None] + xr / (M_PER_DEG_LAT * np.cos(np.radians(lat_c))[:, None])
    lat = lat_c[:, None] + yr / M_PER_DEG_LAT
    coords = np.stack([lon, lat], 2)
    coords = np.concatenate([coords, coords[:, :1]], 1)  # close rings
    rings = shapely.linearrings(coords.reshape(-1, 2), indices=np.repeat(np.arange(n), 7))
    geoms = shapely.polygons(rings)
    # From local midnight of 1 January (06:00 UTC in Chicago) to before 06:00 UTC on 31 December,
    # so that every event falls inside the contract's annual period and before its as-of.
    t0 = np.datetime64("2026-01-01T06:00:00")
    first = rng.integers(0, 300 * 86400, distinct)
    secs = np.where(again, first[idx] + rng.integers(0, 64 * 86400, n), first[idx])
    ts = (t0 + secs.astype("timedelta64[s]")).astype("datetime64[us]")
    order = np.argsort(secs, kind="stable")
    return pa.table({
        "event_id": pa.array([f"e{i}" for i in order]),
        "ts": pa.array(ts[order], pa.timestamp("us", tz="UTC")),
        "owner_id": pa.array(["big"] * n),
        "user_id": pa.array([f"u{u:03d}" for u in user[order]]),
        "product": pa.array(["FIELDS_BOUNDARY"] * n),
        "resource_id": pa.array([f"b{i}" for i in idx[order]]),
        "geometry": pa.array(shapely.to_wkb(geoms[order]), pa.binary()),
    })


CONTRACT = """[[contract]]
id = "big"
owner = "big"
start = 2026-01-01
cycle = "annual"
timezone = "America/Chicago"
  [[contract.meter]]
  name = "area"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  unit = "acre"
  billed_on = "user"
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    pq.write_table(generate(args.n, seed=args.seed), args.out)


if __name__ == "__main__":
    main()
