"""Reconcile our numbers with a vendor's statement, per day or per user (SPEC §6).

The statement is a CSV with a header: ``date,value`` (the billed level's new consumption per local
day) or ``user_id,value`` (each user's value). Every key on either side is compared; a key missing
on one side counts as 0 there. A difference beyond the tolerance (``0.1%`` relative to the larger
of the two values, or a plain number in the meter's unit) is listed.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb

from usagectl.contracts import Meter
from usagectl.errors import IOFailure, UsageError, ValidationError
from usagectl.meters import billed_series
from usagectl.meters.pricing import as_decimal
from usagectl.meters.select import Window
from usagectl.reports import views


#: A tolerance: plain digits (at most 29 before the point and 9 after), optionally with '%'.
_TOLERANCE = re.compile(r"([0-9]{1,29}(?:\.[0-9]{1,9})?)(%?)")


def parse_tolerance(text: str) -> tuple[Decimal, bool]:
    """``0.1%`` → (0.001, relative); ``5`` → (5, absolute); anything else is a usage error."""
    m = _TOLERANCE.fullmatch(text.strip())
    if m is None:
        raise UsageError(
            f"--tolerance {text!r} is not a tolerance: write a percentage such as 0.1% or a "
            "non-negative number in the meter's unit such as 5 or 0.25 (plain digits, at most 29 "
            "before the point and 9 after)",
            {"option": "--tolerance", "value": text,
             "valid": ["a percentage (0.1%)", "a non-negative number (5)"]})
    value = Decimal(m.group(1))
    return (value.scaleb(-2), True) if m.group(2) else (value, False)


def read_statement(path: str) -> tuple[str, dict[str, Decimal]]:
    """(key column, {key: value}) from a vendor statement CSV."""
    try:
        with open(Path(path), newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in reader.fieldnames or []]
            key = next((c for c in ("date", "user_id") if c in fields), None)
            if key is None or "value" not in fields:
                raise ValidationError(f"{path}: expected a header date,value or user_id,value; "
                                      f"found {', '.join(fields) or 'nothing'}")
            out: dict[str, Decimal] = {}
            for n, row in enumerate(reader, start=2):
                k = (row.get(key) or "").strip()
                try:
                    v = Decimal((row.get("value") or "").strip())
                except InvalidOperation:
                    raise ValidationError(f"{path} line {n}: value {row.get('value')!r} is not a number") from None
                if key == "date":
                    try:
                        k = date.fromisoformat(k).isoformat()
                    except ValueError:
                        raise ValidationError(f"{path} line {n}: {k!r} is not a date (YYYY-MM-DD)") from None
                if k in out:
                    raise ValidationError(f"{path} line {n}: {key} {k} appears twice")
                out[k] = v
            return key, out
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror}") from None


def reconcile(con: duckdb.DuckDBPyConnection, window: Window, meter: Meter, statement: str,
              tolerance: str) -> dict[str, Any]:
    """Our value vs theirs for every key; the rows beyond the tolerance are the differences."""
    key, theirs = read_statement(statement)
    tol, relative = parse_tolerance(tolerance)
    if key == "date":
        level = "users" if meter.billed_on == "user" else "owner"
        value = views.compute_meter(con, meter, window, daily=level)
        series = billed_series(meter.billed_on, value.daily_owner, value.daily_users)
        ours = {d.isoformat(): as_decimal(v) for d, v in series.items()}
    else:
        value = views.compute_meter(con, meter, window)
        ours = {u: as_decimal(v) for u, v in value.users.items()}
    rows = []
    for k in sorted(set(ours) | set(theirs)):
        a, b = ours.get(k, Decimal(0)), theirs.get(k, Decimal(0))
        diff = a - b
        allowed = tol * max(abs(a), abs(b)) if relative else tol
        rows.append({"key": k, "ours": a, "theirs": b, "difference": diff,
                     "within_tolerance": abs(diff) <= allowed,
                     "only_in": "ours" if k not in theirs else ("theirs" if k not in ours else None)})
    differences = [r for r in rows if not r["within_tolerance"]]
    return {"contract": views.contract_header(window.contract),
            "period": views.period_header(window), "meter": meter.name, "by": key,
            "tolerance": tolerance, "compared": len(rows), "differences": differences,
            "total_ours": sum((r["ours"] for r in rows), Decimal(0)),
            "total_theirs": sum((r["theirs"] for r in rows), Decimal(0))}
