"""JSON output: the stable machine interface (SPEC §7).

Deterministic (keys in insertion order, no wall-clock values unless asked for), UTF-8, one
document per command, Decimals as exact numbers, datetimes ISO 8601 with offset.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, date):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    """Serialise for stdout, with a trailing newline."""
    return json.dumps(obj, default=_default, ensure_ascii=False, indent=2) + "\n"
