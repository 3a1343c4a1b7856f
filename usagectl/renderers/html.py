"""The self-contained HTML report (SPEC §7).

One file: inline CSS and SVG, no script, no external font, image or stylesheet, and a
Content-Security-Policy that forbids fetching anything. Jinja2 autoescapes every value
(``select_autoescape`` — the plain ``Environment()`` does not, RELIABILITY.md); numbers placed in
attributes are formatted here, never taken from the data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from usagectl import __version__

_TEMPLATE_DIRS = (
    Path(__file__).resolve().parents[2] / "report_templates",  # a source checkout
    Path(__file__).resolve().parent / "templates",              # an installed wheel
)


def _env() -> jinja2.Environment:
    dirs = [str(d) for d in _TEMPLATE_DIRS if d.is_dir()]
    return jinja2.Environment(loader=jinja2.FileSystemLoader(dirs),
                              autoescape=jinja2.select_autoescape(["html", "j2", "html.j2"],
                                                                  default=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def fmt(v: Any) -> str:
    if v is None:
        return "—"
    f = float(v)
    return f"{f:,.2f}" if f != int(f) else f"{int(f):,}"


def pct(v: Any) -> str:
    return "—" if v is None else f"{float(v):.1f} %"


def rate(v: Any) -> str:
    """A success rate (a fraction) as a percentage: ``57.14 %``."""
    return "—" if v is None else f"{fmt(float(v) * 100)} %"


def width(v: Any) -> str:
    return "0" if v is None else f"{max(0.0, min(100.0, float(v))):.1f}"


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _chart(name: str, unit: str, level: str, days: list[tuple[str, float]], limit: float | None
           ) -> dict[str, Any]:
    """Bars of new consumption per day and the cumulative line, scaled into a fixed box."""
    w, h, left, bottom = 900, 180, 40, 20
    total = 0.0
    cum = []
    for _, v in days:
        total += v
        cum.append(total)
    top = max([total, limit or 0.0, *(v for _, v in days), 1e-9])
    n = max(len(days), 1)
    step = (w - left) / n
    scale = (h - bottom - 8) / top

    def y(value: float) -> float:
        return round(h - bottom - value * scale, 2)

    bars = [{"x": round(left + i * step, 2), "w": round(max(step * 0.8, 0.5), 2), "y": y(v),
             "h": round(v * scale, 2), "label": f"{d}: {v:,.2f}"} for i, (d, v) in enumerate(days)]
    line = " ".join(f"{round(left + (i + 0.5) * step, 2)},{y(c)}" for i, c in enumerate(cum))
    return {"name": name, "unit": unit, "level": level, "w": w, "h": h, "bars": bars, "cum": line,
            "limit_y": y(limit) if limit is not None else None, "top": top,
            "first": days[0][0] if days else "", "last": days[-1][0] if days else ""}


def _map(coverage: Any, overlaps: list[Any]) -> dict[str, Any] | None:
    """Owner coverage and overlap regions as simplified SVG paths (equirectangular)."""
    import math

    import shapely

    if coverage is None or shapely.is_empty(coverage):
        return None
    xmin, ymin, xmax, ymax = shapely.bounds(coverage)
    k = math.cos(math.radians((ymin + ymax) / 2))
    span = max((xmax - xmin) * k, ymax - ymin, 1e-9)
    w = 900
    h = max(120, min(600, int(w * (ymax - ymin) / max((xmax - xmin) * k, 1e-9))))
    s = min(w / max((xmax - xmin) * k, 1e-9), h / max(ymax - ymin, 1e-9))
    tol = span / 600  # about one and a half pixels

    def path(g: Any) -> str:
        g = shapely.simplify(g, tol, preserve_topology=True)
        out = []
        for poly in shapely.get_parts(g):
            if shapely.get_type_id(poly) != 3:
                continue
            for ring in [poly.exterior, *poly.interiors]:
                pts = [f"{(x - xmin) * k * s:.1f},{(ymax - y) * s:.1f}" for x, y in ring.coords]
                out.append("M" + " L".join(pts) + " Z")
        return " ".join(out)

    over = shapely.union_all(overlaps) if overlaps else None
    return {"w": w, "h": h, "coverage": path(coverage), "overlaps": path(over) if over is not None else ""}


def render_report(consolidated: dict[str, Any], daily: dict[str, Any], users: dict[str, Any],
                  log: dict[str, Any], overlap: dict[str, Any] | None, coverage: Any,
                  regions: list[Any], generated: datetime | None = None,
                  requests: dict[str, Any] | None = None) -> str:
    """The whole HTML document for one contract period."""
    charts = []
    by_name = {m["name"]: m for m in consolidated["meters"]}
    for name, m in by_name.items():
        level = "user" if m["billed_on"] == "user" else "owner"
        series = [(d["date"], float(d["meters"][name][level])) for d in daily["days"]]
        if any(v for _, v in series):
            limit = float(m["limit"]) if m["limit"] is not None else None
            charts.append(_chart(name, m["unit"] or m["aggregate"], "Σ users" if level == "user"
                                 else "owner", series, limit))
    user_meters = list(users["users"][0]["meters"]) if users["users"] else []
    template = _env().get_template("report.html.j2")
    return template.render(
        c=consolidated["contract"], p=consolidated["period"], meters=consolidated["meters"],
        charts=charts, users=users["users"], user_meters=user_meters, overlap=overlap,
        map=_map(coverage, regions), log=log, requests=requests, rate=rate,
        log_csv=f"{consolidated['contract']['id']}.log.csv",
        events_counted=consolidated["events_counted"],
        generated=(generated or datetime.now(UTC)).isoformat(timespec="seconds"),
        version=__version__, fmt=fmt, pct=pct, width=width, money=money)
