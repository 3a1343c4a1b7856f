"""The land-data API's ``GET /api/public/v1/usage/`` in its shape (docs/api.md "Land-data API").

The figures are the rows of ``usagectl usage --owner O`` (:func:`usagectl.reports.status.usage`):
the token meter's row (the first meter summing token fields). An owner whose contract counts
no tokens gets that contract's tier and period with zero tokens; an owner without a contract the
no-contract row (tier null, zeros, period null).
"""

from __future__ import annotations

from typing import Any


def usage_doc(rows: list[dict[str, Any]]) -> dict[str, Any]:
    row = next((r for r in rows if "tokens_used" in r), None)
    if row is None:
        row = {**rows[0], "used": 0, "included": 0, "overage": 0, "overage_amount_cents": 0}
    return {"tier": row["tier"], "tokens_used": row["used"],
            "tokens_included": row["included"], "tokens_overage": row["overage"],
            "overage_cents": row["overage_amount_cents"],
            "period_start": row["period_start"], "period_end": row["period_end"]}
