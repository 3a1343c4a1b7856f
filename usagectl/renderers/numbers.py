"""How a number is written in JSON and CSV — one function for both (SPEC §7; docs/cli.md).

* Integers as they are; money is integer cents.
* Decimals exactly, in plain notation (no exponent) and without trailing zeros: a credits sum
  stored as ``27.310000000`` is written ``27.31``, zero as ``0`` (never ``0E-9``).
* A Decimal with more than 9 decimal places can only be a computed quotient (stored decimals
  have at most 9): projections and averages. It is rounded half-even to 6 decimals, the places
  areas carry.
* Floats (areas, already rounded to 6 decimals) by their shortest round-trip form: in plain
  notation from 1e-16 up to 1e16 (``0.000091``, not ``9.1e-05``), in Python's exponent form
  beyond (``1e+308``: a float there holds 17 significant digits, not the hundreds of a plain
  expansion); a float that is not finite has no number form (JSON ``null``, an empty CSV cell).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal

#: Decimal places of areas and of computed quotients (projections, averages).
PLACES = 6
#: Stored decimals (``credits DECIMAL(38, 9)``) never have more places than this.
EXACT_PLACES = 9
_QUANTUM = Decimal(1).scaleb(-PLACES)
#: Enough digits for any number an output shows (a float up to 1e308 has 309; the default
#: context rounds to 28).
WIDE = Context(prec=400)


def number_text(value: int | float | Decimal) -> str | None:
    """The text of a number in JSON and CSV, or None when it has none (NaN, infinity)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value + 0.0)  # + 0.0: no negative zero
        if "e" in text and 1e-16 <= abs(value) < 1e16:
            text = format(Decimal(text), "f")
            if "." not in text:
                text += ".0"
        return text
    if not value.is_finite():
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -EXACT_PLACES:
        value = value.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN, context=WIDE)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(WIDE), "f")
