"""The unique-area report's scaling curve: usagectl, a naive union and ``ST_Union_Agg``.

For each size (default 10k, 100k and 1M polygons), on the same data (``area_gen.py``, contract
``big`` with meter ``area``): one ``usagectl report -c big`` on a freshly ingested database (owner
and Σ-user acres), one naive ``shapely.union_all`` (owner, then per user, each its own process;
``area_scale.py --internal-naive``) and one DuckDB spatial ``ST_Union_Agg`` (owner, then GROUP BY
user_id, in the separate virtual environment ``area_scale.ensure_spatial_venv`` makes). One run
per point: at 1M these take minutes each. Every process has a timeout (per process, so a method
of two processes can take longer in all); a method that hits it is drawn at the timeout with a
marker and not run at the larger sizes (it would only take longer).

The times are wall clock of whole processes: usagectl's include start-up and reading the
database, the references' include reading the Parquet (and, for the naive union, the geodesic
area). The chart is a PNG written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import area_scale
from area_scale import AS_OF, CONTRACT_ID, Timed, _usagectl, period_bounds, run_timed

METHODS = ("usagectl", "naive", "st")
LABELS = {"usagectl": "usagectl `report` (owner + users)",
          "naive": "naive `shapely.union_all` (owner + per user)",
          "st": "DuckDB `ST_Union_Agg` (owner + GROUP BY user)"}


@dataclass
class Point:
    """One method at one size: its seconds, or the timeout it hit, or why it did not run."""
    seconds: float | None = None
    timed_out: bool = False
    note: str = ""
    parts: list[Timed] = field(default_factory=list)


@dataclass
class CurveSize:
    n: int
    ingest: Timed | None = None
    points: dict[str, Point] = field(default_factory=dict)
    owner_acres: dict[str, float] = field(default_factory=dict)


def _combine(parts: list[Timed], timeout: float) -> Point:
    p = Point(parts=parts)
    if any(t.timed_out for t in parts):
        p.timed_out, p.seconds = True, timeout
        p.note = f"timed out ({timeout:g} s)"
    elif all(t.ok for t in parts):
        p.seconds = sum(t.seconds for t in parts)
    else:
        p.note = next((t.error for t in parts if t.error), "failed")[:300]
    return p


def run_curve(sizes: list[int], *, timeout: float, workdir: Path | None,
              spatial_venv: Path | None, keep: bool = False,
              log: Callable[[str], None] = print) -> tuple[list[CurveSize], str]:
    """Measure every size; returns the sizes and a sentence on the spatial environment."""
    import pyarrow.parquet as pq

    import area_gen

    venv = spatial_venv or Path(tempfile.gettempdir()) / "usagectl-spatial-venv"
    spatial = area_scale.ensure_spatial_venv(venv, log=log)
    spatial_note = (f"DuckDB {spatial.versions.get('duckdb')} with duckdb-extension-spatial "
                    f"{spatial.versions.get('package')} ({spatial.note})" if spatial.python
                    else f"DuckDB spatial not available: {spatial.note}")
    log(f"spatial: {spatial_note}")
    me = [sys.executable, str(Path(area_scale.__file__).resolve())]
    start, end, as_of = period_bounds()
    gave_up: dict[str, int] = {}
    results = []
    for n in sorted(sizes):
        res = CurveSize(n)
        results.append(res)
        base = Path(tempfile.mkdtemp(prefix=f"usagectl-curve-{n}-", dir=workdir))
        try:
            t0 = time.monotonic()
            parquet = base / "events.parquet"
            pq.write_table(area_gen.generate(n), parquet)
            (base / "c.toml").write_text(area_gen.CONTRACT, encoding="utf-8")
            log(f"area curve n={n:,}: generated in {time.monotonic() - t0:.0f} s")
            db = base / "area.duckdb"
            cli = [*_usagectl(), "--db", str(db)]
            res.ingest = run_timed([*cli, "ingest", str(parquet), "--format", "json", "-q"],
                                   timeout=timeout)
            load = run_timed([*cli, "contracts", "load", str(base / "c.toml"), "-q"],
                             timeout=timeout, parse_json=False)
            log(f"  ingest: {res.ingest.seconds:.1f} s" + (f" — {res.ingest.error}"
                                                          if res.ingest.error else ""))
            for method in METHODS:
                if method in gave_up:
                    res.points[method] = Point(timed_out=True, seconds=timeout,
                                               note=f"not run: timed out at {gave_up[method]:,}")
                    continue
                if method == "usagectl":
                    if not (res.ingest.ok and load.ok):
                        res.points[method] = Point(note="ingest or contracts load failed: "
                                                   + (res.ingest.error or load.error)[:300])
                        continue
                    t = run_timed([*cli, "report", "-c", CONTRACT_ID, "--as-of", AS_OF,
                                   "--format", "json"], timeout=timeout)
                    point = _combine([t], timeout)
                    if t.ok:
                        m = area_scale._area_meter(t.output)
                        if m.get("owner_total") is not None:
                            res.owner_acres[method] = float(m["owner_total"])
                elif method == "naive":
                    parts = []
                    for mode in ("owner", "users"):
                        t = run_timed(me + ["--internal-naive", mode, str(parquet), start, end,
                                            as_of], timeout=timeout)
                        parts.append(t)
                        if mode == "owner" and t.ok:
                            res.owner_acres[method] = float(t.output["acres"])
                        if not t.ok:
                            break
                    point = _combine(parts, timeout)
                else:
                    if spatial.python is None:
                        res.points[method] = Point(note=spatial_note)
                        continue
                    parts = []
                    for mode in ("owner", "users"):
                        t = run_timed([str(spatial.python), "-c", area_scale._SPATIAL_UNION, mode,
                                       str(parquet), start, end, as_of,
                                       str(base / f"st_{mode}.parquet")], timeout=timeout)
                        parts.append(t)
                        if not t.ok:
                            break
                    point = _combine(parts, timeout)
                res.points[method] = point
                if point.timed_out:
                    gave_up[method] = n
                log(f"  {method}: " + (f"{point.seconds:.1f} s" if point.seconds is not None
                                       else "–") + (f" — {point.note}" if point.note else ""))
        finally:
            if keep:
                log(f"kept {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
    return results, spatial_note


def _short(n: int) -> str:
    """10000 → 10k, 1000000 → 1M (the chart's x ticks)."""
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % (div // 10) == 0:
            return f"{n / div:g}{suffix}"
    return f"{n:,}"


def plot(results: list[CurveSize], png: Path, timeout: float) -> None:
    """Log–log chart of seconds against polygons, one line per method; timeouts as markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    colours = {"usagectl": "#1f77b4", "naive": "#d62728", "st": "#2ca02c"}
    shift = {"usagectl": 1.0, "naive": 0.94, "st": 1.06}  # timed-out markers side by side
    annotated: set[int] = set()
    any_timeout = False
    for method in METHODS:
        done = [(r.n, p.seconds) for r in results if (p := r.points.get(method))
                and p.seconds is not None and not p.timed_out]
        label = LABELS[method].replace("`", "")
        ax.plot([x for x, _ in done], [y for _, y in done], "o-", color=colours[method],
                label=label)
        out = [r.n for r in results if (p := r.points.get(method)) and p.timed_out]
        if out:
            any_timeout = True
            xs = [x * shift[method] for x in out]
            ax.plot(xs, [timeout] * len(xs), "^", color=colours[method], markersize=11,
                    markerfacecolor="none", markeredgewidth=2)
            if done:  # from the last measured point to the first timeout
                ax.plot([done[-1][0], xs[0]], [done[-1][1], timeout], ":",
                        color=colours[method])
            for x in out:
                if x not in annotated:
                    annotated.add(x)
                    ax.annotate("timed out", (x, timeout), textcoords="offset points",
                                xytext=(0, -16), ha="center", fontsize=8, color="grey")
    if any_timeout:
        ax.axhline(timeout, color="grey", linestyle=":", linewidth=1)
        highest = max([timeout] + [p.seconds for r in results for p in r.points.values()
                                   if p.seconds is not None])
        ax.set_ylim(top=highest * 1.6)
        ax.text(0.01, timeout, f"timeout: {timeout:g} s per process", va="bottom", ha="left",
                fontsize=8,
                color="grey", transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = [r.n for r in results]
    ax.set_xticks(sizes, [_short(n) for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("polygons (events)")
    ax.set_ylabel("wall seconds (one run)")
    ax.set_title("Unique area of a period: owner + per-user")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def _md(paragraph: str) -> str:
    """A docstring paragraph as one Markdown line (reST ``code`` → `code`)."""
    return " ".join(paragraph.split()).replace("``", "`")


def markdown(results: list[CurveSize], png_name: str, timeout: float, spatial_note: str) -> str:
    from harness import fmt_s

    lines = [
        "## Unique-area report: scaling curve",
        "",
        _md(__doc__.split("\n\n")[1]),
        "",
        _md(__doc__.split("\n\n")[2]) + f" Spatial: {spatial_note}.",
        "",
        f"![Seconds against polygons for the three methods]({png_name})",
        "",
        "| polygons | ingest s | " + " | ".join(LABELS[m] + " s" for m in METHODS)
        + " | owner acres: usagectl / naive |",
        "| ---: | ---: | " + " | ".join("---:" for _ in METHODS) + " | ---: |",
    ]
    for r in results:
        cells = []
        for m in METHODS:
            p = r.points.get(m)
            if p is None:
                cells.append("–")
            elif p.timed_out:
                why = p.note if p.note.startswith("not run") else "timed out"
                cells.append(f"≥ {timeout:g} ({why})")
            elif p.seconds is None:
                cells.append(f"failed: {p.note[:80]}")
            else:
                cells.append(fmt_s(p.seconds))
        u, nv = r.owner_acres.get("usagectl"), r.owner_acres.get("naive")
        acres = (f"{u:,.1f} / {nv:,.1f}" if u is not None and nv is not None else "–")
        ingest = fmt_s(r.ingest.seconds) if r.ingest is not None and r.ingest.ok else "–"
        lines.append(f"| {r.n:,} | {ingest} | " + " | ".join(cells) + f" | {acres} |")
    return "\n".join(lines) + "\n"
