"""GeoJSON of overlap regions (SPEC §5.1): each region with the users that cover it."""

from __future__ import annotations

import json
from typing import Any


def regions_geojson(regions: list[tuple[Any, Any]], unit: str) -> str:
    """A FeatureCollection: one feature per region, RFC 7946 winding, area in ``unit``."""
    import shapely

    from usagectl.contracts import UNIT_M2
    from usagectl.meters.area import geodesic_area

    features = []
    for geom, users in regions:
        features.append({"type": "Feature",
                         "properties": {"users": list(users), "user_count": len(users),
                                        "area": round(geodesic_area(geom) / float(UNIT_M2[unit]), 6),
                                        "unit": unit},
                         "geometry": json.loads(shapely.to_geojson(shapely.orient_polygons(geom)))})
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False) + "\n"
