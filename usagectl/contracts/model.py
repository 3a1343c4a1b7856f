"""Contracts and meters as plain, frozen data (SPEC §4, §5.4).

The loader (:mod:`usagectl.contracts.loader`) is the only place that validates; these classes
only normalise what they are given (lists become tuples, numbers become ``Decimal``, per-aggregate
defaults are filled in) so that two equal declarations always compare and hash equal.

JSON form (``to_dict``) — the stable machine interface and the form stored in the database:

* quantities and money are ``Decimal`` in memory and are written as a JSON **int when integral**
  (``50000``, ``25``) and otherwise as the **string** of the ``Decimal`` (``"0.8"``,
  ``"12.5"``), never as a binary float, so no cent is lost on the way through JSON;
* dates are ISO ``YYYY-MM-DD``; absent optional values are ``null``; tuples are lists.

:func:`contract_from_dict` accepts exactly that form (and plain floats, converted through
``str``), so ``contract_from_dict(c.to_dict()) == c`` for every contract.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from usagectl.errors import NotFoundError, ValidationError
from usagectl.sources.columns import CANONICAL

#: Square metres per area unit (SPEC §4). The acre is the international acre, exactly.
UNIT_M2: dict[str, Decimal] = {
    "acre": Decimal("4046.8564224"),
    "hectare": Decimal("10000"),
    "m2": Decimal("1"),
    "km2": Decimal("1000000"),
}

AGGREGATES = ("unique_area", "distinct", "sum", "count")
CYCLES = ("monthly", "quarterly", "annual", "once")
BILLED_ON = ("user", "owner")
BOUNDARY_POLICIES = ("processed", "active")
MODES = ("period", "audit")
PRICING_MODELS = ("graduated", "volume")
#: Event fields a ``distinct`` meter may count (SPEC §4, §5.2).
DISTINCT_FIELDS = (
    "user_id",
    "org_id",
    "dataset_id",
    "indicator_ids",
    "resource_id",
    "session_id",
    "endpoint",
    "operation",
    "product",
    "request_id",
)
#: Numeric event fields a ``sum`` meter may add up (SPEC §4, §5.3).
SUM_FIELDS = ("input_tokens", "output_tokens", "thinking_tokens", "credits", "response_time_ms")
#: Token fields: a sum of any of them counts tokens (SPEC §5.3).
TOKEN_FIELDS = ("input_tokens", "output_tokens", "thinking_tokens")
#: What a sum meter counts, by its fields, when it does not say ``unit``.
SUM_UNITS: dict[tuple[str, ...], str] = {("credits",): "credits", ("response_time_ms",): "ms"}
#: What a distinct meter counts, by its field, when it does not say ``unit``.
DISTINCT_UNITS = {"user_id": "users", "org_id": "orgs", "dataset_id": "datasets",
                  "indicator_ids": "indicators", "resource_id": "resources",
                  "session_id": "sessions", "endpoint": "endpoints", "operation": "operations",
                  "product": "products", "request_id": "requests"}
#: Canonical event fields that ``require = [...]`` may name (SPEC §3.1, §4).
REQUIRABLE_FIELDS = tuple(c for c in CANONICAL if c not in ("event_id", "ts", "owner_id"))
#: Written as ``products = "*"``: every product (for unique_area, every area product = UNIFIED_AREA).
ALL_PRODUCTS = "*"


def default_billed_on(aggregate: str) -> str:
    """The billed level a meter gets when ``billed_on`` is omitted.

    ``unique_area`` bills the sum of per-user values (the agronomy-API rule, SPEC §2 "billed
    level"); ``distinct``, ``sum`` and ``count`` bill the owner-wide value (the licence rule).
    For ``sum`` and ``count`` both levels are equal anyway, since sums are additive.
    """
    return "user" if aggregate == "unique_area" else "owner"


def to_decimal(value: Any) -> Decimal:
    """Convert an int, str, Decimal or float to ``Decimal``; floats go through ``str`` (SPEC §5.4).

    ``Decimal(str(0.1))`` is ``Decimal("0.1")`` — what the user wrote — where ``Decimal(0.1)``
    would carry the binary float's error into money arithmetic.
    """
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got a boolean ({value!r})")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, str)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    raise TypeError(f"expected a number, got {type(value).__name__} ({value!r})")


def decimal_to_json(value: Decimal | None) -> int | str | None:
    """JSON form of a quantity: int when integral, else the Decimal's string; never a float."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return int(value)
    return str(value)


def _opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _as_date(value: Any) -> dt.date:
    # datetime is a subclass of date; keep only the calendar date.
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


@dataclass(frozen=True)
class PriceTier:
    """One row of a tiered price list: units up to ``up_to`` (``None`` = no upper bound).

    ``cents_per_unit`` applies per unit in the tier; ``flat_cents`` is charged once when the tier
    is reached (graduated) or once for the tier the total lands in (volume). Zero units lie in
    the first tier, so its ``flat_cents`` is charged on an idle period too. SPEC §5.4.
    """

    up_to: Decimal | None
    cents_per_unit: Decimal = Decimal(0)
    flat_cents: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_to", _opt_decimal(self.up_to))
        object.__setattr__(self, "cents_per_unit", to_decimal(self.cents_per_unit))
        object.__setattr__(self, "flat_cents", to_decimal(self.flat_cents))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (numbers as described in the module docstring)."""
        return {
            "up_to": decimal_to_json(self.up_to),
            "cents_per_unit": decimal_to_json(self.cents_per_unit),
            "flat_cents": decimal_to_json(self.flat_cents),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriceTier:
        """Rebuild a tier from :meth:`to_dict` output."""
        return cls(
            up_to=_opt_decimal(d.get("up_to")),
            cents_per_unit=to_decimal(d.get("cents_per_unit", 0)),
            flat_cents=to_decimal(d.get("flat_cents", 0)),
        )


@dataclass(frozen=True)
class Meter:
    """One quantity a contract counts: an aggregate over filtered events (SPEC §4, §5).

    Defaults filled in on construction:

    * ``billed_on`` left empty becomes :func:`default_billed_on` of the aggregate —
      ``"user"`` for ``unique_area``, ``"owner"`` for ``distinct``, ``sum`` and ``count``;
    * ``unit`` left ``None`` becomes ``"acre"`` for ``unique_area``; other meters keep what they
      declared (free text) or ``None``, and :attr:`unit_label` derives a word from their fields;
    * ``products``: ``()`` means no product filter; ``("*",)`` is kept as written and means the
      same (for unique_area: every area product, UNIFIED_AREA) — see :attr:`all_products`;
    * ``prepaid`` defaults to 0 (no extra units on top of ``limit``); ``limit``, ``included`` and
      ``overage_cents_per_unit`` default to ``None`` (not part of the contract).

    Options that do not apply to the aggregate keep their defaults (the loader refuses them).
    """

    name: str
    aggregate: str
    products: tuple[str, ...] = ()
    unit: str | None = None
    billed_on: str = ""
    limit: Decimal | None = None
    included: Decimal | None = None
    overage_unit: Decimal = Decimal(1)
    overage_cents_per_unit: Decimal | None = None
    warn_at: Decimal = Decimal("0.8")
    prepaid: Decimal = Decimal(0)
    boundary_policy: str = "processed"
    mode: str = "period"
    derive_operations: bool = False
    field: str | None = None
    fields: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    include_failed: bool = False
    pricing: str | None = None
    price: tuple[PriceTier, ...] = ()

    def __post_init__(self) -> None:
        # Normalise so that a meter built by hand, from TOML or from stored JSON compares equal.
        s = object.__setattr__
        if not self.billed_on:
            s(self, "billed_on", default_billed_on(self.aggregate))
        if self.unit is None and self.aggregate == "unique_area":
            s(self, "unit", "acre")
        for name in ("products", "fields", "endpoints", "operations", "require"):
            s(self, name, _as_tuple(getattr(self, name)))
        s(self, "price", tuple(t if isinstance(t, PriceTier) else PriceTier.from_dict(t) for t in self.price))
        for name in ("limit", "included", "overage_cents_per_unit"):
            s(self, name, _opt_decimal(getattr(self, name)))
        for name in ("overage_unit", "warn_at", "prepaid"):
            s(self, name, to_decimal(getattr(self, name)))

    @property
    def all_products(self) -> bool:
        """True when the meter has no product filter (``products`` omitted or ``"*"``)."""
        return self.products in ((), (ALL_PRODUCTS,))

    @property
    def unit_label(self) -> str:
        """What the meter counts, for every output's ``unit``: the area unit of a unique_area
        meter; else the declared ``unit``, or a word derived from the aggregate and its fields
        (tokens, credits, requests, users, datasets, indicators …)."""
        if self.aggregate == "unique_area":
            return self.unit or "acre"
        if self.unit:
            return self.unit
        if self.aggregate == "count":
            return "requests"
        if self.aggregate == "sum":
            if self.fields and set(self.fields) <= set(TOKEN_FIELDS):
                return "tokens"
            return SUM_UNITS.get(self.fields, "units")
        return DISTINCT_UNITS.get(self.field or "", "values")

    @property
    def is_stock(self) -> bool:
        """True for a meter that measures a standing stock rather than a flow (SPEC §5.4):
        ``mode = "audit"`` or ``boundary_policy = "active"`` (boundaries carried over from
        earlier periods). Its projection adds only the trend of what is new to what it holds."""
        return self.aggregate == "unique_area" and (self.mode == "audit"
                                                    or self.boundary_policy == "active")

    @property
    def unit_m2(self) -> Decimal | None:
        """Square metres per reported unit for an area meter, else ``None``."""
        return UNIT_M2.get(self.unit) if self.unit is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field, numbers as int when integral else Decimal string."""
        return {
            "name": self.name,
            "aggregate": self.aggregate,
            "products": list(self.products),
            "unit": self.unit,
            "billed_on": self.billed_on,
            "limit": decimal_to_json(self.limit),
            "included": decimal_to_json(self.included),
            "overage_unit": decimal_to_json(self.overage_unit),
            "overage_cents_per_unit": decimal_to_json(self.overage_cents_per_unit),
            "warn_at": decimal_to_json(self.warn_at),
            "prepaid": decimal_to_json(self.prepaid),
            "boundary_policy": self.boundary_policy,
            "mode": self.mode,
            "derive_operations": self.derive_operations,
            "field": self.field,
            "fields": list(self.fields),
            "endpoints": list(self.endpoints),
            "operations": list(self.operations),
            "require": list(self.require),
            "include_failed": self.include_failed,
            "pricing": self.pricing,
            "price": [t.to_dict() for t in self.price],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Meter:
        """Rebuild a meter from :meth:`to_dict` output; missing keys take their defaults."""
        return cls(
            name=d["name"],
            aggregate=d["aggregate"],
            products=_as_tuple(d.get("products")),
            unit=d.get("unit"),
            billed_on=d.get("billed_on") or "",
            limit=_opt_decimal(d.get("limit")),
            included=_opt_decimal(d.get("included")),
            overage_unit=to_decimal(_default(d, "overage_unit", 1)),
            overage_cents_per_unit=_opt_decimal(d.get("overage_cents_per_unit")),
            warn_at=to_decimal(_default(d, "warn_at", "0.8")),
            prepaid=to_decimal(_default(d, "prepaid", 0)),
            boundary_policy=_default(d, "boundary_policy", "processed"),
            mode=_default(d, "mode", "period"),
            derive_operations=bool(d.get("derive_operations", False)),
            field=d.get("field"),
            fields=_as_tuple(d.get("fields")),
            endpoints=_as_tuple(d.get("endpoints")),
            operations=_as_tuple(d.get("operations")),
            require=_as_tuple(d.get("require")),
            include_failed=bool(d.get("include_failed", False)),
            pricing=d.get("pricing"),
            price=tuple(PriceTier.from_dict(t) for t in d.get("price") or ()),
        )


def _default(d: dict[str, Any], key: str, default: Any) -> Any:
    value = d.get(key)
    return default if value is None else value


@dataclass(frozen=True)
class Contract:
    """An owner's agreement: dates, cycle, time zone and meters (SPEC §4, §5.5).

    ``end`` is exclusive like every period end: the contract covers ``[start, end)`` at local
    midnight in ``timezone``, so a calendar year is ``start = 2026-01-01``, ``end = 2027-01-01``.
    """

    id: str
    owner: str
    start: dt.date
    cycle: str
    end: dt.date | None = None
    timezone: str = "UTC"
    tier: str | None = None
    meters: tuple[Meter, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _as_date(self.start))
        if self.end is not None:
            object.__setattr__(self, "end", _as_date(self.end))
        object.__setattr__(self, "meters", tuple(self.meters))

    @property
    def zone(self) -> ZoneInfo:
        """The contract's IANA time zone (ZoneInfo caches instances per key)."""
        return ZoneInfo(self.timezone)

    def meter(self, name: str) -> Meter:
        """The meter called ``name``; NotFoundError listing the contract's meters otherwise."""
        for m in self.meters:
            if m.name == name:
                return m
        names = [m.name for m in self.meters]
        raise NotFoundError(
            f"contract {self.id!r} has no meter {name!r}; its meters are: {', '.join(names) or '(none)'}",
            details={"contract": self.id, "meter": name, "meters": names},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: dates ISO, meters via :meth:`Meter.to_dict`."""
        return {
            "id": self.id,
            "owner": self.owner,
            "start": self.start.isoformat(),
            "cycle": self.cycle,
            "end": self.end.isoformat() if self.end is not None else None,
            "timezone": self.timezone,
            "tier": self.tier,
            "meters": [m.to_dict() for m in self.meters],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Contract:
        """Rebuild a contract from :meth:`to_dict` output (see :func:`contract_from_dict`)."""
        return contract_from_dict(d)


def contract_from_dict(d: dict[str, Any]) -> Contract:
    """Rebuild a :class:`Contract` from its ``to_dict()`` form (e.g. JSON stored in the database).

    Round trip: ``contract_from_dict(c.to_dict()) == c``. This trusts its input to have been
    validated when it was loaded; a malformed dict raises ValidationError naming the problem.
    """
    try:
        return Contract(
            id=d["id"],
            owner=d["owner"],
            start=_as_date(d["start"]),
            cycle=d["cycle"],
            end=_as_date(d["end"]) if d.get("end") is not None else None,
            timezone=d.get("timezone") or "UTC",
            tier=d.get("tier"),
            meters=tuple(Meter.from_dict(m) for m in d.get("meters") or ()),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValidationError(
            f"stored contract {d.get('id', '?')!r} cannot be read: {what}",
            details={"contract": d.get("id")},
        ) from None
