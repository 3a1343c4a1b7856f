"""Per-tile area results kept in the database, so unchanged space is never measured twice.

A unique-area computation is a sum over tiles (usagectl.meters.area), and a tile's figures depend
only on the rows whose geometries touch it: each row's geometry, user and local day. Every tile's
result is stored with a **fingerprint** of exactly those rows (their count and two
order-independent 64-bit sums of a BLAKE2b hash per row). A later report recomputes only the tiles
whose fingerprint changed: a new ingest changes the tiles its geometries touch and no other; a
report on unchanged data recomputes nothing. Stored figures are never patched, only replaced, and
a mismatch can only cost time, never change a number.

Entries are grouped by scope (contract, meter, period, tile size, engine version); a new result
for a tile replaces the scope's previous one, so the table holds at most one entry per tile and
scope. Reports open the database read-only so that several can run at once: their new entries
wait in memory and are written in one short write transaction when the report's session closes
(``usagectl.store.db.defer_write``). That write tries the lock once, without waiting: if another
process has the file open then, the entries are dropped (the next report recomputes them); a cache
is never worth a failed or delayed report. A command opening the file during the write waits for
it (``--wait``), so the write does not make it fail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from usagectl.meters import area, area_cuts
from usagectl.store.db import defer_write

DAILY = 1  #: the tile's daily values (owner and users) are stored
OVERLAP = 2  #: the tile's exclusive areas and pairs are stored



def row_hashes(wkb: Sequence[bytes], users: Sequence[object], days: Sequence[int]) -> np.ndarray:
    """A 64-bit hash of each row's geometry, user and day (stable across processes)."""
    out = np.empty(len(wkb), dtype=np.uint64)
    for k, (w, u, d) in enumerate(zip(wkb, users, days)):
        h = hashlib.blake2b(bytes(w), digest_size=8)
        h.update(f"\x00{u}\x00{d}".encode())
        out[k] = int.from_bytes(h.digest(), "little")
    return out


def _mix(h: np.ndarray, salt: int) -> np.ndarray:
    # splitmix64 finaliser: spreads the bits so that sums and xors of many rows stay distinct.
    with np.errstate(over="ignore"):
        z = h + np.uint64(salt)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tile_fingerprints(geoms: np.ndarray, hashes: np.ndarray, tile_deg: float
                      ) -> tuple[dict[tuple[int, int], str], np.ndarray, np.ndarray]:
    """Fingerprint of every tile a bounding box touches; (tile keys, row) of each touch."""
    keys, rows = area.tile_spans(geoms, tile_deg)
    if len(rows) == 0:
        return {}, keys, rows
    code = keys[:, 0] * (1 << 32) + keys[:, 1]
    order = np.argsort(code, kind="stable")
    code_sorted = code[order]
    heads = np.flatnonzero(np.r_[True, code_sorted[1:] != code_sorted[:-1]])
    h = hashes[rows[order]]
    with np.errstate(over="ignore"):
        s1 = np.add.reduceat(_mix(h, 1), heads)
        s2 = np.bitwise_xor.reduceat(_mix(h, 2), heads)
    counts = np.diff(np.r_[heads, len(order)])
    fps = {(int(keys[order[i], 0]), int(keys[order[i], 1])): f"{n}:{a:016x}:{b:016x}"
           for i, n, a, b in zip(heads, counts, s1, s2)}
    return fps, keys, rows


def load(con: duckdb.DuckDBPyConnection, scope: str) -> dict[tuple[int, int], tuple[str, int, str]]:
    """The stored entries of a scope: tile → (fingerprint, flags, result JSON)."""
    try:
        rows = con.execute("SELECT tx, ty, fingerprint, flags, result FROM area_tiles "
                           "WHERE scope = ?", [scope]).fetchall()
    except duckdb.CatalogException:  # a database from before the cache (opened read-only)
        return {}
    return {(tx, ty): (fp, flags, res) for tx, ty, fp, flags, res in rows}


def save(con: duckdb.DuckDBPyConnection, scope: str, entries: list[dict]) -> None:
    """Store entries now, or, on a read-only connection, when its session closes."""
    if not entries:
        return
    try:
        _write(con, scope, entries)
    except (duckdb.InvalidInputException, duckdb.CatalogException):
        # Read-only (every report) or a file from before the cache: write when it closes.
        defer_write(con, lambda writable: _write(writable, scope, entries))


def _write(con: duckdb.DuckDBPyConnection, scope: str, entries: list[dict]) -> None:
    table = pa.table({
        "scope": [scope] * len(entries),
        "tx": pa.array([e["tx"] for e in entries], pa.int64()),
        "ty": pa.array([e["ty"] for e in entries], pa.int64()),
        "fingerprint": [e["fingerprint"] for e in entries],
        "flags": pa.array([e["flags"] for e in entries], pa.int32()),
        "result": [e["result"] for e in entries],
    })
    con.register("area_tiles_new", table)
    try:
        con.execute("BEGIN")
        try:
            con.execute("DELETE FROM area_tiles WHERE scope = ? AND (tx, ty) IN "
                        "(SELECT tx, ty FROM area_tiles_new)", [scope])
            con.execute("INSERT INTO area_tiles SELECT scope, tx, ty, fingerprint, flags, result, "
                        "now() FROM area_tiles_new")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("area_tiles_new")


def compute(con: duckdb.DuckDBPyConnection, data: area.AreaInput, hashes: np.ndarray,
            scope: str, flags: int, tile_deg: float = area.TILE_DEG) -> area.AreaResult:
    """``area.compute`` through the cache: only tiles whose rows changed are computed.

    A tile stored without the daily values a view now asks for (say, after a consolidated
    report) gets just those computed and added to its stored figures; any other change computes
    the tile afresh.
    """
    scope = f"{scope}|tile={tile_deg!r}|engine={area.ENGINE_VERSION}"
    fps, keys, rows = tile_fingerprints(data.geoms, hashes, tile_deg)
    stored = load(con, scope)
    results: dict[tuple[int, int], area.AreaResult] = {}
    missed: dict[tuple[int, int], int] = {}
    add_daily: dict[tuple[int, int], area.AreaResult] = {}
    for tile, fp in fps.items():
        entry = stored.get(tile)
        if entry is not None and entry[0] == fp and entry[1] & flags == flags:
            results[tile] = _only(area.AreaResult.from_json(json.loads(entry[2])), flags)
        elif entry is not None and entry[0] == fp and flags & ~entry[1] == DAILY:
            add_daily[tile] = area.AreaResult.from_json(json.loads(entry[2]))
        else:
            # Keep what the scope's reports asked of this tile before: no ping-pong between views.
            missed[tile] = flags | (entry[1] if entry is not None else 0)
    entries = []
    if missed:
        want = flags | np.bitwise_or.reduce(np.fromiter(missed.values(), dtype=np.int64))
        fresh = area.compute_tiles(area.rows_touching(data, keys, rows, missed),
                                   overlap=bool(want & OVERLAP),
                                   pairs=bool(want & OVERLAP), daily=bool(want & DAILY),
                                   tile_deg=tile_deg, only=missed)
        for tile in missed:
            res = fresh.get(tile) or area.AreaResult()
            results[tile] = res
            entries.append(_entry(tile, fps[tile], int(want), res))
    if add_daily:
        fresh = area.compute_tiles(area.rows_touching(data, keys, rows, add_daily), daily=True,
                                   base=False,
                                   tile_deg=tile_deg, only=add_daily)
        for tile, res in add_daily.items():
            new = fresh.get(tile) or area.AreaResult()
            res.daily_owner, res.daily_users = new.daily_owner, new.daily_users
            res.cuts = area_cuts.concat([res.cuts, new.cuts])
            results[tile] = res
            entries.append(_entry(tile, fps[tile], stored[tile][1] | DAILY, res))
    save(con, scope, entries)
    return area.combine(results, overlap=bool(flags & OVERLAP))


def _only(res: area.AreaResult, flags: int) -> area.AreaResult:
    """A stored tile with only the figures asked for (fewer cut records to correct)."""
    kinds = set()
    if not flags & DAILY:
        res.daily_owner, res.daily_users = {}, {}
        kinds |= {"od", "ud"}
    if not flags & OVERLAP:
        res.exclusive, res.pairs = {}, {}
        kinds |= {"x", "p"}
    if kinds and len(res.cuts):
        res.cuts = res.cuts.without(kinds)
    return res


def _entry(tile: tuple[int, int], fingerprint: str, flags: int, res: area.AreaResult) -> dict:
    return {"tx": tile[0], "ty": tile[1], "fingerprint": fingerprint, "flags": flags,
            "result": json.dumps(res.to_json(), separators=(",", ":"))}
