"""Tile-cut corrections: what clipping by the tile grid does to a geodesic area, taken back.

A polygon edge P→Q that crosses a tile line is cut at S, the point of the lon/lat segment on the
line. Measured tile by tile, Geod takes the cut edge as two geodesics, P→S and S→Q, instead of
one, P→Q: the figure gains or loses the thin geodesic triangle (P, S, Q). Each cut vertex S is
recorded from both tiles it joins, with its neighbour off the line (P before it, "in"; Q after
it, "out"); matched across the two tiles, the records give P, S and Q, and the triangle's signed
area is subtracted from the figure the records belong to.

Records are columnar (numpy arrays with a label index) so that a million of them cost
milliseconds to store, load and correct; the triangles of one figure are measured in one Geod
call. Geod's area is a sum of per-edge terms, antisymmetric in the edge's direction, so
subtracting the triangle's P→S and S→Q terms and adding its P→Q term reproduces the uncut
measurement to the last bits (a closed-form triangle area, tried first, left errors of 3e-10 on a
small field). An edge cut by several tile lines (a chain P, S1 … Sk, Q) is rare and is corrected
with Geod on the chain itself.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyproj import Geod

_GEOD = Geod(ellps="WGS84")


def on_line(v: np.ndarray, tile_deg: float) -> np.ndarray:
    """Whether coordinates lie on a tile line (clip boxes are built as k * tile_deg, and the same
    float operation recognises their lines)."""
    return v == np.round(v / tile_deg) * tile_deg


@dataclass
class Cuts:
    """Cut-vertex records: ``labels[lab[k]]`` is the figure record ``k`` belongs to.

    ``pts[k]`` is (x, y) of the cut vertex S on a tile line and (x, y) of its neighbour off the
    line; ``axis[k]`` is 0 for a meridian (x on the line), 1 for a parallel; ``inbound[k]`` is
    True when the neighbour comes before S along the ring (P), False when after (Q).
    """

    labels: list[tuple] = field(default_factory=list)
    lab: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    axis: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    inbound: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    pts: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))

    def __len__(self) -> int:
        return len(self.lab)

    def subset(self, rows: np.ndarray) -> Cuts:
        """The records ``rows``, with only the labels they use."""
        used, lab = np.unique(self.lab[rows], return_inverse=True)
        return Cuts([self.labels[u] for u in used], lab.astype(np.int64), self.axis[rows],
                    self.inbound[rows], self.pts[rows])

    def without(self, kinds: set[str]) -> Cuts:
        """The records of figures whose kind (a label's first item) is not in ``kinds``."""
        drop = np.fromiter((label[0] in kinds for label in self.labels), bool, len(self.labels))
        if not drop.any():
            return self
        return self.subset(np.flatnonzero(~drop[self.lab]))

    def to_json(self) -> dict[str, Any]:
        def b64(a: np.ndarray, dtype: str) -> str:
            return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()

        return {"labels": [list(label) for label in self.labels], "lab": b64(self.lab, "<i4"),
                "axis": b64(self.axis, "i1"), "inbound": b64(self.inbound, "?"),
                "pts": b64(self.pts, "<f8")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cuts:
        def arr(key: str, dtype: str) -> np.ndarray:
            return np.frombuffer(base64.b64decode(data[key]), dtype=dtype)

        return cls([tuple(label) for label in data["labels"]], arr("lab", "<i4").astype(np.int64),
                   arr("axis", "i1"), arr("inbound", "?"), arr("pts", "<f8").reshape(-1, 4))


def concat(parts: Iterable[Cuts]) -> Cuts:
    """All records of several tables, on one shared label list."""
    ids: dict[tuple, int] = {}
    labs, axes, inb, pts = [], [], [], []
    for c in parts:
        if not len(c):
            continue
        remap = np.fromiter((ids.setdefault(label, len(ids)) for label in c.labels), np.int64,
                            len(c.labels))
        labs.append(remap[c.lab])
        axes.append(c.axis)
        inb.append(c.inbound)
        pts.append(c.pts)
    if not labs:
        return Cuts()
    return Cuts(list(ids), np.concatenate(labs), np.concatenate(axes), np.concatenate(inb),
                np.concatenate(pts))


def records(coords: np.ndarray, starts: np.ndarray, lengths: np.ndarray, ring_label: np.ndarray,
            tile_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut-vertex records of oriented rings: (ring label, axis, inbound, pts) per record.

    A vertex S on a tile line with one neighbour along the line (the clip edge) and one off it is
    where an edge was cut. ``ring_label[r]`` is the label index of ring ``r``.
    """
    empty = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int8), np.empty(0, dtype=bool),
             np.empty((0, 4)))
    if len(coords) == 0:
        return empty
    on_x, on_y = on_line(coords[:, 0], tile_deg), on_line(coords[:, 1], tile_deg)
    cand = np.flatnonzero(on_x | on_y)
    if cand.size == 0:
        return empty
    ring = np.searchsorted(starts, cand, side="right") - 1
    n = lengths[ring] - 1  # the closing vertex repeats the first
    pos = cand - starts[ring]
    ok = (pos < n) & (n >= 3)
    cand, ring, n, pos = cand[ok], ring[ok], n[ok], pos[ok]
    prev = starts[ring] + (pos - 1) % n
    nxt = starts[ring] + (pos + 1) % n
    out = []
    for axis, on in ((0, on_x), (1, on_y)):  # a tile corner is on both lines
        here = coords[cand, axis]
        prev_on, next_on = coords[prev, axis] == here, coords[nxt, axis] == here
        emit = on[cand] & (prev_on != next_on)
        inbound = next_on[emit]  # the line continues after S: the neighbour off it is before
        other = np.where(inbound[:, None], coords[prev[emit]], coords[nxt[emit]])
        out.append((ring_label[ring[emit]], np.full(int(emit.sum()), axis, dtype=np.int8),
                    inbound, np.column_stack([coords[cand[emit]], other])))
    return tuple(np.concatenate([o[k] for o in out]) for k in range(4))  # type: ignore[return-value]


def signed_sums(paths: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Σ signed Geod area (m², counter-clockwise positive) of closed paths ``(n, k, 2)`` per group.

    The paths of a group are chained through the group's first vertex into one closed path, and
    measured in one Geod call: each connecting geodesic is walked forth and back and adds
    nothing, and Karney's sum over edges is antisymmetric, so a triangle's edges P→S and S→Q
    cancel those of the figure's measurement to the last bits.
    """
    out = np.zeros(n_groups)
    if len(paths) == 0:
        return out
    order = np.argsort(groups, kind="stable")
    paths, groups = paths[order], groups[order]
    heads = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    ends = np.r_[heads[1:], len(groups)]
    anchor = paths[np.repeat(heads, ends - heads), 0]
    seq = np.concatenate([paths, anchor[:, None, :]], axis=1)  # each path, then the anchor
    per = seq.shape[1]
    lon = np.ascontiguousarray(seq[:, :, 0].reshape(-1))
    lat = np.ascontiguousarray(seq[:, :, 1].reshape(-1))
    for g, s, e in zip(groups[heads], heads * per, ends * per):
        out[g] = _RAW_AREA(lon[s:e], lat[s:e], radians=False)[0]
    return out


#: ``Geod.polygon_area_perimeter`` copies its inputs on every call; contiguous float arrays can
#: go to the compiled method directly (the public one where a pyproj version lacks it).
_RAW_AREA = getattr(_GEOD, "_polygon_area_perimeter", None) or (
    lambda lon, lat, radians=False: _GEOD.polygon_area_perimeter(lon, lat, radians=radians))


def member(table: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Whether each row of ``probe`` is a row of ``table`` (int64 rows, exact)."""
    if len(table) == 0 or len(probe) == 0:
        return np.zeros(len(probe), dtype=bool)
    rows = np.concatenate([table, probe])
    mine = np.r_[np.ones(len(table), dtype=bool), np.zeros(len(probe), dtype=bool)]
    order = np.lexsort(rows.T[::-1])
    srt = rows[order]
    change = np.r_[True, np.any(srt[1:] != srt[:-1], axis=1)]
    run = np.cumsum(change) - 1
    has = np.zeros(int(run[-1]) + 1, dtype=bool)
    np.logical_or.at(has, run, mine[order])
    out = np.empty(len(rows), dtype=bool)
    out[order] = has[run]
    return out[len(table):]


def _key(lab: np.ndarray, xy: np.ndarray) -> np.ndarray:
    xy = xy + 0.0  # -0.0 and 0.0 are the same point
    return np.column_stack([lab, xy[:, 0].view(np.int64), xy[:, 1].view(np.int64)])


def corrections(cuts: Cuts) -> dict[tuple, float]:
    """Signed area (m²) to subtract from each figure, from every matched cut.

    Simple cuts (the common case) are summed per figure from vectorised triangle areas. A node
    whose neighbour is itself a node of the same figure is part of a chain (an edge longer than a
    tile); the chain is walked and measured as a whole, since the sliver grows as the cube of the
    length and pairwise corrections would not add up.
    """
    n = len(cuts)
    if n == 0:
        return {}
    lab, pts, inbound = cuts.lab, cuts.pts, cuts.inbound
    order = np.lexsort((pts[:, 1], pts[:, 0], cuts.axis, lab))
    lab, pts, inbound, axis = lab[order], pts[order], inbound[order], cuts.axis[order]
    key = np.column_stack([lab, axis, pts[:, 0] + 0.0, pts[:, 1] + 0.0])
    change = np.r_[True, np.any(key[1:] != key[:-1], axis=1)]
    heads = np.flatnonzero(change)
    ends = np.r_[heads[1:], n]
    second = np.minimum(heads + 1, n - 1)
    pair = (ends - heads == 2) & (inbound[heads] != inbound[second])
    first, second = heads[pair], second[pair]
    r_in = np.where(inbound[first], first, second)
    r_out = np.where(inbound[first], second, first)
    node_lab = lab[r_in]
    s_xy, p_xy, q_xy = pts[r_in, :2], pts[r_in, 2:], pts[r_out, 2:]
    nodes = _key(node_lab, s_xy)
    linked = member(nodes, _key(node_lab, p_xy)) | member(nodes, _key(node_lab, q_xy))
    simple = ~linked & ~np.all(p_xy == q_xy, axis=1)
    # Simple cuts: each sliver is the triangle P, S, Q; summed per figure in one Geod call.
    tri = np.stack([p_xy[simple], s_xy[simple], q_xy[simple], p_xy[simple]], axis=1)
    sums = signed_sums(tri, node_lab[simple], len(cuts.labels))
    out = {cuts.labels[k]: float(sums[k]) for k in np.flatnonzero(sums)}
    for k, sliver in _chains(node_lab[linked], s_xy[linked], p_xy[linked], q_xy[linked]):
        out[cuts.labels[k]] = out.get(cuts.labels[k], 0.0) + sliver
    return out


def _chains(lab: np.ndarray, s_xy: np.ndarray, p_xy: np.ndarray, q_xy: np.ndarray
            ) -> list[tuple[int, float]]:
    """(label index, sliver) of every chain of linked cut nodes, measured with Geod."""
    links: dict[int, dict[tuple[float, float], list[tuple]]] = defaultdict(lambda: defaultdict(list))
    for lv, s, p, q in zip(lab.tolist(), s_xy.tolist(), p_xy.tolist(), q_xy.tolist()):
        links[lv][tuple(s)].append((tuple(p), tuple(q)))
    out = []
    for lv, nodes in links.items():
        def step(node: tuple, came_from: tuple, nodes: Sequence = nodes) -> tuple | None:
            return next((pr for pr in nodes.get(node, ()) if pr[0] == came_from), None)

        for node, pairs in nodes.items():
            for p_in, p_out in pairs:
                if any(pr[1] == node for pr in nodes.get(p_in, ())):
                    continue  # an inner vertex of a longer chain: counted from its start
                chain = [p_in, node]
                cur, nxt = node, p_out
                for _ in range(10_000):
                    found = step(nxt, cur)
                    if found is None:
                        break
                    chain.append(nxt)
                    cur, nxt = nxt, found[1]
                chain.append(nxt)
                if len(set(chain)) < 3:
                    continue  # degenerate: nothing between the geodesic and the path
                lon, lat = [c[0] for c in chain], [c[1] for c in chain]
                out.append((lv, _GEOD.polygon_area_perimeter(lon, lat)[0]))
    return out
