"""Meters: what each contract meter counts (SPEC §5)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from decimal import Context, DivisionByZero, InvalidOperation, Overflow, localcontext
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: Decimal arithmetic on meter values and money. A sum holds up to 38 digits (DECIMAL(38, 9));
#: Python's default context keeps 28 significant digits and would round a larger Σ of users,
#: an overage or a remaining silently. 100 digits keep every sum, difference and product of a
#: report exact; quotients (percentages, averages) are rounded where they are shown.
EXACT = Context(prec=100, traps=[InvalidOperation, DivisionByZero, Overflow])


def exact_arithmetic():  # noqa: ANN201 — a context manager
    """``with exact_arithmetic(): …`` — Decimal operations inside use :data:`EXACT`."""
    return localcontext(EXACT)


def in_exact_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: the function's Decimal arithmetic runs in the :data:`EXACT` context."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(EXACT):
            return fn(*args, **kwargs)
    return wrapper


def billed_series(billed_on: str, daily_owner: Mapping[Any, Any],
                  daily_users: Mapping[str, Mapping[Any, Any]]) -> dict[Any, Any]:
    """The billed level's series (SPEC §5.4 ``billed_on``): the owner's, or Σ of the users'.

    Keys are whatever the series uses (dates, day ordinals, bucket keys); values add as they are
    (floats for area, Decimals for exact meters, added in the :data:`EXACT` context).
    """
    if billed_on == "owner":
        return dict(daily_owner)
    out: dict[Any, Any] = {}
    with exact_arithmetic():
        for days in daily_users.values():
            for k, v in days.items():
                out[k] = out.get(k, 0) + v
    return out
