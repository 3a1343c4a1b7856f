"""Meters: what each contract meter counts (SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def billed_series(billed_on: str, daily_owner: Mapping[Any, Any],
                  daily_users: Mapping[str, Mapping[Any, Any]]) -> dict[Any, Any]:
    """The billed level's series (SPEC §5.4 ``billed_on``): the owner's, or Σ of the users'.

    Keys are whatever the series uses (dates, day ordinals, bucket keys); values add as they are
    (floats for area, Decimals for exact meters).
    """
    if billed_on == "owner":
        return dict(daily_owner)
    out: dict[Any, Any] = {}
    for days in daily_users.values():
        for k, v in days.items():
            out[k] = out.get(k, 0) + v
    return out
