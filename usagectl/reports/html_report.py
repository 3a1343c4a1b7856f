"""The data of the HTML report: every section, from the same views as the other formats (SPEC §7).

The renderer (:mod:`usagectl.renderers.html`) only lays out what :func:`sections` returns: the
consolidated, daily, users and first log page documents, the requests by endpoint, the overlap of the first area meter
with its regions, and the owner's coverage for the map.
"""

from __future__ import annotations

from typing import Any

import duckdb

from usagectl.meters.select import Window
from usagectl.reports import views
from usagectl.reports.report import LOG_TABLE_ROWS

#: Above this many geometries the map is left out (its union would dominate the run time).
MAP_MAX_GEOMETRIES = 100_000
#: The endpoints the requests section lists (the most requested first).
HTML_REQUEST_ROWS = 20


def sections(con: duckdb.DuckDBPyConnection, window: Window, meter_names: list[str] | None
             ) -> dict[str, Any]:
    """Keyword arguments of :func:`usagectl.renderers.html.render_report`."""
    import numpy as np
    import shapely

    from usagectl.meters.unique_area import _rows

    cons = views.consolidated(con, window, meter_names)
    daily = views.daily_view(con, window, meter_names)
    users = views.users_view(con, window, meter_names)
    log = views.log_view(con, window, meter_names, LOG_TABLE_ROWS, 0)
    from usagectl.reports.requests import requests_view

    requests = requests_view(con, window, meter_names, "endpoint")
    requests["rows"] = requests["rows"][:HTML_REQUEST_ROWS]
    area_meters = [m for m in views._pick(window.contract, meter_names) if m.aggregate == "unique_area"]
    overlap_doc, regions, coverage = None, [], None
    if area_meters:
        overlap_doc, regions = views.overlap_view(con, window, area_meters[0].name, 10, regions=True)
        wkb, _, _ = _rows(con, area_meters[0], window)
        if 0 < len(wkb) <= MAP_MAX_GEOMETRIES:
            coverage = shapely.union_all(shapely.from_wkb(np.asarray([bytes(w) for w in wkb], dtype=object)))
    return {"consolidated": cons, "daily": daily, "users": users, "log": log,
            "requests": requests,
            "overlap": overlap_doc, "coverage": coverage, "regions": [g for g, _ in regions]}
