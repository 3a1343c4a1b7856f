"""Read and validate contracts TOML (SPEC §4).

A contracts file is refused whole: the entire document is checked, every problem is collected
as one readable line with its location, and a single :class:`ValidationError` lists them all
(``details["problems"]``). Nothing is returned from a file with any problem, so a typo can never
load half a contract set.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import math
import re
import tomllib
import zoneinfo
from collections.abc import Iterable
from decimal import Decimal
from os import PathLike
from pathlib import Path
from typing import Any

from usagectl.contracts.model import (
    AGGREGATES,
    ALL_PRODUCTS,
    BILLED_ON,
    BOUNDARY_POLICIES,
    CYCLES,
    DISTINCT_FIELDS,
    MODES,
    PRICING_MODELS,
    REQUIRABLE_FIELDS,
    SUM_FIELDS,
    UNIT_M2,
    Contract,
    Meter,
    PriceTier,
    default_billed_on,
)
from usagectl.errors import IOFailure, ValidationError
from usagectl.renderers.files import SAFE_NAME, windows_reserved

CONTRACT_KEYS = ("id", "owner", "start", "cycle", "end", "timezone", "tier", "meter")
#: Meter keys valid for every aggregate: limits, pricing and the event filters (SPEC §4, §5.4).
COMMON_METER_KEYS = (
    "name",
    "aggregate",
    "billed_on",
    "limit",
    "included",
    "overage_unit",
    "overage_cents_per_unit",
    "warn_at",
    "prepaid",
    "pricing",
    "price",
    "products",
    "endpoints",
    "operations",
    "require",
    "include_failed",
    "unit",  # unique_area: an area unit; other aggregates: free text (what is counted)
)
#: Keys that only mean something for one aggregate (SPEC §4 "Meter options by aggregate").
AGGREGATE_KEYS: dict[str, tuple[str, ...]] = {
    "unique_area": ("boundary_policy", "mode", "derive_operations"),
    "distinct": ("field",),
    "sum": ("fields",),
    "count": (),
}
METER_KEYS = COMMON_METER_KEYS + tuple(k for keys in AGGREGATE_KEYS.values() for k in keys)
PRICE_KEYS = ("up_to", "cents_per_unit", "flat_cents")

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: A contract id names files (``export`` writes ID.VIEW.csv): letters, digits, '.', '_' and '-',
#: starting with a letter or digit, at most 100 characters, and no Windows device name
#: (docs/contracts.md).
ID_PATTERN = SAFE_NAME
_MISSING = object()


def load_contracts_file(path: str | PathLike[str]) -> list[Contract]:
    """Read a contracts TOML file and return its validated contracts (SPEC §4).

    IOFailure when the file cannot be read; ValidationError (every problem listed) when it is not
    UTF-8, not TOML, or not a valid contracts document.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise IOFailure(
            f"cannot read contracts file {str(p)!r}: {exc.strerror or exc}",
            details={"path": str(p)},
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"file is not UTF-8 text (TOML must be UTF-8): bad byte at offset {exc.start}"
        raise ValidationError(
            f"{p}: 1 problem(s) in contracts file", details={"problems": [problem]}
        ) from None
    return parse_contracts(text, source=str(p))


def parse_contracts(text: str, source: str = "<string>") -> list[Contract]:
    """Parse and validate contracts TOML text; all problems or all contracts (SPEC §4).

    Raises ``ValidationError(f"{source}: N problem(s) in contracts file",
    details={"problems": [...]})`` where each problem is one line such as
    ``contract[0] "acme" meter[1] "boundaries": unknown key 'limt' (did you mean 'limit'?)``.
    A TOML syntax error is a single problem carrying tomllib's line and column.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems = [f"TOML syntax error: {exc}"]
    else:
        checker = _Checker()
        contracts = checker.document(doc)
        problems = checker.problems
        if not problems:
            return contracts
    raise ValidationError(
        f"{source}: {len(problems)} problem(s) in contracts file",
        details={"problems": problems},
    )


# --------------------------------------------------------------------------------------------
# Validation. Each method reads one level of the document, records problems with their location
# and returns the best object it can build, so checking continues past the first error.


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _one_of(values: Iterable[str]) -> str:
    return ", ".join(repr(v) for v in values)


def _describe(value: Any) -> str:
    """Name a TOML value's type the way the user wrote it, e.g. ``a string ('50000')``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dt.datetime):
        return f"a date-time ({value.isoformat()})"
    if isinstance(value, dt.date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, dt.time):
        return f"a time ({value.isoformat()})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


@functools.cache
def _zone_names() -> dict[str, str]:
    # Lower-cased IANA names, to suggest 'America/Chicago' for 'america/chicago'.
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@functools.cache
def _duckdb_zones() -> frozenset[str]:
    """The time zone names DuckDB knows: reports compute local days in DuckDB too."""
    import duckdb

    # No network, as every usagectl connection (usagectl.store.db.NO_NETWORK).
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        return frozenset(r[0] for r in con.execute("SELECT name FROM pg_timezone_names()").fetchall())
    finally:
        con.close()


def zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    else:
        if name in _duckdb_zones():
            return None
        # Python reads any file of the system's tz database (right/UTC, posix/…, localtime);
        # DuckDB, which computes the reports, knows only the IANA names.
        rest = name.split("/", 1)[1] if name.startswith(("right/", "posix/")) else None
        if rest and rest in _duckdb_zones():
            hint = f"use {rest!r}"
        elif name in ("localtime", "posixrules"):
            hint = "name the zone itself, e.g. 'UTC' or 'Europe/Berlin'"
        else:
            hint = "use an IANA name such as 'UTC' or 'Europe/Berlin'"
        return (f"timezone {name!r} is a file of this machine's time zone database that DuckDB "
                f"does not know, and DuckDB computes the reports: {hint}")
    names = _zone_names()
    hint = f" (did you mean {names[name.lower()]!r}?)" if name.lower() in names else _did_you_mean(
        name, names.values()
    )
    return f"timezone {name!r} is not an IANA time zone name{hint}"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # -- typed readers: each returns the value, or _MISSING after recording a problem ---------

    def unknown_keys(self, where: str, table: dict[str, Any], allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.add(where, f"unknown key {key!r}{_did_you_mean(key, allowed)}")

    def string(self, where: str, table: dict[str, Any], key: str, *, required: bool = False) -> Any:
        value = table.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.add(where, f"missing required key {key!r}")
            return _MISSING
        if not isinstance(value, str):
            self.add(where, f"{key} must be a string, not {_describe(value)}")
            return _MISSING
        if not value.strip():
            self.add(where, f"{key} must not be empty")
            return _MISSING
        return value

    def choice(
        self, where: str, table: dict[str, Any], key: str, choices: tuple[str, ...], *, required: bool = False
    ) -> Any:
        value = self.string(where, table, key, required=required)
        if value is not _MISSING and value not in choices:
            hint = _did_you_mean(value, choices)
            self.add(where, f"{key} must be one of {_one_of(choices)}, not {value!r}{hint}")
            return _MISSING
        return value

    def boolean(self, where: str, table: dict[str, Any], key: str) -> Any:
        value = table.get(key, _MISSING)
        if value is not _MISSING and not isinstance(value, bool):
            self.add(where, f"{key} must be true or false, not {_describe(value)}")
            return _MISSING
        return value

    def number(
        self, where: str, table: dict[str, Any], key: str, *, minimum: Decimal, strict: bool = False
    ) -> Any:
        """A TOML integer or float as Decimal (floats through ``str``), at least ``minimum``."""
        value = table.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
        # bool is an int subclass in Python, but `limit = true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(where, f"{key} must be a number, not {_describe(value)}")
            return _MISSING
        if isinstance(value, float) and not math.isfinite(value):
            self.add(where, f"{key} must be a finite number, not {value}")
            return _MISSING
        number = Decimal(value) if isinstance(value, int) else Decimal(str(value))
        if number < minimum or (strict and number == minimum):
            self.add(where, f"{key} must be {'>' if strict else '>='} {minimum}, not {value}")
            return _MISSING
        return number

    def date(self, where: str, table: dict[str, Any], key: str, *, required: bool = False) -> Any:
        """A TOML date (``2026-01-01``) or the same as a string (``"2026-01-01"``)."""
        value = table.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.add(where, f"missing required key {key!r}")
            return _MISSING
        # datetime subclasses date: a TOML date-time must not pass as a date.
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            if _ISO_DATE.fullmatch(value):
                try:
                    return dt.date.fromisoformat(value)
                except ValueError:
                    pass
            self.add(where, f"{key} {value!r} is not a valid date (write YYYY-MM-DD, e.g. 2026-01-01)")
            return _MISSING
        self.add(where, f"{key} must be a date (YYYY-MM-DD), not {_describe(value)}")
        return _MISSING

    def string_list(self, where: str, table: dict[str, Any], key: str) -> Any:
        value = table.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, list):
            self.add(where, f"{key} must be an array of strings, not {_describe(value)}")
            return _MISSING
        bad = [v for v in value if not isinstance(v, str) or not v.strip()]
        if bad:
            self.add(where, f"{key} must contain only non-empty strings, not {_describe(bad[0])}")
            return _MISSING
        return tuple(value)

    def tables(self, where: str, table: dict[str, Any], key: str, header: str) -> Any:
        value = table.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add(where, f"{key} must be an array of tables written [[{header}]], not {_describe(value)}")
            return _MISSING
        return value

    # -- the document -------------------------------------------------------------------------

    def document(self, doc: dict[str, Any]) -> list[Contract]:
        self.unknown_keys("top level", doc, ("contract",))
        if "contract" not in doc:
            self.add("top level", "no contracts: declare at least one [[contract]] table")
            return []
        tables = self.tables("top level", doc, "contract", "contract")
        if tables is _MISSING:
            return []
        if not tables:
            self.add("top level", "no contracts: declare at least one [[contract]] table")
            return []
        contracts: list[Contract] = []
        # Ids are unique regardless of case: they name export files, and 'a.users.csv' and
        # 'A.users.csv' are one file on the file systems of macOS and Windows.
        first_index: dict[str, tuple[int, str]] = {}
        for i, table in enumerate(tables):
            cid = table.get("id")
            named = isinstance(cid, str) and bool(cid.strip())
            where = f'contract[{i}] "{cid}"' if named else f"contract[{i}]"
            if named:
                key = cid.casefold()
                if key in first_index:
                    first, first_id = first_index[key]
                    if first_id == cid:
                        self.add(where, f"duplicate contract id {cid!r} (already used by contract[{first}])")
                    else:
                        self.add(where, f"duplicate contract id {cid!r} (already used by "
                                        f"contract[{first}] {first_id!r}; ids are compared "
                                        "regardless of case, as export file names are on some "
                                        "file systems)")
                else:
                    first_index[key] = (i, cid)
            contract = self.contract(where, table)
            if contract is not None:
                contracts.append(contract)
        return contracts

    def contract(self, where: str, table: dict[str, Any]) -> Contract | None:
        # As in meter(): the Contract is built only when this table added no problem.
        before = len(self.problems)
        self.unknown_keys(where, table, CONTRACT_KEYS)
        cid = self.string(where, table, "id", required=True)
        if cid is not _MISSING and not ID_PATTERN.fullmatch(cid):
            suggestion = re.sub(r"[^A-Za-z0-9._-]+", "-", cid).lstrip("._-")[:100] or "contract-1"
            self.add(where, f"id {cid!r} cannot name a file: use letters, digits, '.', '_' and "
                            f"'-' only, starting with a letter or digit, at most 100 characters "
                            f"(e.g. {suggestion!r})")
        elif cid is not _MISSING and windows_reserved(cid):
            head, dot, tail = cid.partition(".")
            self.add(where, f"id {cid!r} cannot name a file: {head!r} is a device name on "
                            "Windows (CON, PRN, AUX, NUL, COM1-COM9, LPT1-LPT9, in any case, with "
                            f"or without an extension), where the export's '{cid}.users.csv' "
                            f"would open the device (e.g. {f'{head}-1{dot}{tail}'!r})")
        owner = self.string(where, table, "owner", required=True)
        start = self.date(where, table, "start", required=True)
        end = self.date(where, table, "end")
        cycle = self.choice(where, table, "cycle", CYCLES, required=True)
        tier = self.string(where, table, "tier")
        tz = self.string(where, table, "timezone")
        if tz is not _MISSING:
            problem = zone_problem(tz)
            if problem:
                self.add(where, problem)
        if cycle == "once" and "end" not in table:
            self.add(where, "cycle 'once' requires an 'end' date")
        if start is not _MISSING and end is not _MISSING and end <= start:
            self.add(where, f"end {end.isoformat()} must be after start {start.isoformat()}")

        meters = self.meters(where, table)

        if len(self.problems) > before:
            return None
        return Contract(
            id=cid,
            owner=owner,
            start=start,
            cycle=cycle,
            end=None if end is _MISSING else end,
            timezone="UTC" if tz is _MISSING else tz,
            tier=None if tier is _MISSING else tier,
            meters=tuple(meters),
        )

    def meters(self, where: str, table: dict[str, Any]) -> list[Meter]:
        if "meter" not in table:
            self.add(where, "no meters: declare at least one [[contract.meter]] table")
            return []
        meter_tables = self.tables(where, table, "meter", "contract.meter")
        if meter_tables is _MISSING:
            return []
        if not meter_tables:
            self.add(where, "no meters: declare at least one [[contract.meter]] table")
            return []
        meters: list[Meter] = []
        first_index: dict[str, int] = {}
        for j, mt in enumerate(meter_tables):
            name = mt.get("name")
            named = isinstance(name, str) and bool(name.strip())
            mwhere = f'{where} meter[{j}] "{name}"' if named else f"{where} meter[{j}]"
            if named:
                if name in first_index:
                    first = first_index[name]
                    self.add(mwhere, f"duplicate meter name {name!r} (already used by meter[{first}])")
                else:
                    first_index[name] = j
            meter = self.meter(mwhere, mt)
            if meter is not None:
                meters.append(meter)
        return meters

    def meter(self, where: str, table: dict[str, Any]) -> Meter | None:
        # Problems alone decide whether the document loads; the Meter is built only to be
        # returned when there are none, so a half-checked meter is never used.
        before = len(self.problems)
        self.unknown_keys(where, table, METER_KEYS)
        name = self.string(where, table, "name", required=True)
        aggregate = self.choice(where, table, "aggregate", AGGREGATES, required=True)
        if aggregate is not _MISSING:
            for key in table:
                owners = [agg for agg, keys in AGGREGATE_KEYS.items() if key in keys]
                if owners and aggregate not in owners:
                    self.add(
                        where,
                        f"{key!r} does not apply to a {aggregate} meter (it is a {owners[0]} option)",
                    )

        values: dict[str, Any] = {}
        zero = Decimal(0)
        values["billed_on"] = self.choice(where, table, "billed_on", BILLED_ON)
        for key in ("limit", "included", "prepaid", "overage_cents_per_unit"):
            values[key] = self.number(where, table, key, minimum=zero)
        values["overage_unit"] = self.number(where, table, "overage_unit", minimum=zero, strict=True)
        values["warn_at"] = self.number(where, table, "warn_at", minimum=Decimal("-Infinity"))
        if values["warn_at"] is not _MISSING and not 0 < values["warn_at"] <= 1:
            got = table["warn_at"]
            self.add(where, f"warn_at must be in (0, 1] (a fraction of limit, e.g. 0.8), not {got}")
        values["include_failed"] = self.boolean(where, table, "include_failed")
        values["products"] = self.products(where, table)
        values["endpoints"] = self.string_list(where, table, "endpoints")
        values["operations"] = self.string_list(where, table, "operations")
        values["require"] = self.string_list(where, table, "require")
        if values["require"] is not _MISSING:
            for field in values["require"]:
                if field not in REQUIRABLE_FIELDS:
                    self.add(
                        where,
                        f"require: {field!r} is not an event field{_did_you_mean(field, REQUIRABLE_FIELDS)}",
                    )

        # With an unknown aggregate, still check the aggregate options that are present, so a
        # second run after fixing `aggregate` does not reveal new problems.
        unknown = aggregate is _MISSING
        if aggregate == "unique_area" or unknown:
            unit = self.string(where, table, "unit")
            if unit is not _MISSING and unit not in UNIT_M2:
                hint = _did_you_mean(unit, UNIT_M2)
                self.add(where, f"unit must be one of {_one_of(UNIT_M2)}, not {unit!r}{hint}")
                unit = _MISSING
            values["unit"] = unit
            values["boundary_policy"] = self.choice(where, table, "boundary_policy", BOUNDARY_POLICIES)
            values["mode"] = self.choice(where, table, "mode", MODES)
            values["derive_operations"] = self.boolean(where, table, "derive_operations")
        else:  # what a count, sum or distinct meter counts, in words ("tokens", "licence checks")
            values["unit"] = self.string(where, table, "unit")
            if values["unit"] in UNIT_M2:
                self.add(where, f"unit {values['unit']!r} is an area unit, for unique_area meters; "
                                f"a {aggregate} meter's unit says what it counts (e.g. 'requests')")
        if aggregate == "distinct" or unknown:
            if aggregate == "distinct" and "field" not in table:
                self.add(where, f"a distinct meter requires 'field' (one of {_one_of(DISTINCT_FIELDS)})")
            values["field"] = self.choice(where, table, "field", DISTINCT_FIELDS)
        if aggregate == "sum" or (unknown and "fields" in table):
            values["fields"] = self.sum_fields(where, table)

        values["pricing"] = self.choice(where, table, "pricing", PRICING_MODELS)
        values["price"] = self.price(where, table)

        if len(self.problems) > before:
            return None
        kwargs = {k: v for k, v in values.items() if v is not _MISSING}
        kwargs.setdefault("billed_on", default_billed_on(aggregate))
        return Meter(name=name, aggregate=aggregate, **kwargs)

    def products(self, where: str, table: dict[str, Any]) -> Any:
        value = table.get("products", _MISSING)
        if value == ALL_PRODUCTS:
            return (ALL_PRODUCTS,)
        if isinstance(value, str):
            self.add(where, f"products must be an array of product names or '*', not {_describe(value)}")
            return _MISSING
        products = self.string_list(where, table, "products")
        if products is not _MISSING and ALL_PRODUCTS in products and len(products) > 1:
            self.add(where, "products: '*' (every product) cannot be combined with named products")
            return _MISSING
        return products

    def sum_fields(self, where: str, table: dict[str, Any]) -> Any:
        if "fields" not in table:
            self.add(where, f"a sum meter requires 'fields' (a non-empty array from {_one_of(SUM_FIELDS)})")
            return _MISSING
        fields = self.string_list(where, table, "fields")
        if fields is _MISSING:
            return _MISSING
        if not fields:
            self.add(where, f"fields must not be empty (choose from {_one_of(SUM_FIELDS)})")
            return _MISSING
        ok = True
        for f in fields:
            if f not in SUM_FIELDS:
                hint = _did_you_mean(f, SUM_FIELDS)
                self.add(where, f"fields: {f!r} is not one of {_one_of(SUM_FIELDS)}{hint}")
                ok = False
        dupes = sorted({f for f in fields if fields.count(f) > 1})
        if dupes:
            # Summing a field twice would double-count it.
            self.add(where, f"fields: {_one_of(dupes)} listed more than once")
            ok = False
        return fields if ok else _MISSING

    def price(self, where: str, table: dict[str, Any]) -> Any:
        """Tier rows (SPEC §5.4): strictly increasing ``up_to``, only the last row open-ended."""
        rows = self.tables(where, table, "price", "contract.meter.price")
        if "overage_cents_per_unit" in table and "pricing" in table:
            self.add(
                where,
                "overage_cents_per_unit and pricing are both set;"
                " use one (a flat overage rate or price tiers)",
            )
        if "price" in table and "pricing" not in table:
            self.add(where, "price rows need pricing = 'graduated' or 'volume' to say how the tiers apply")
        if rows is _MISSING:
            if "pricing" in table and "price" not in table:
                self.add(where, "pricing needs at least one [[contract.meter.price]] row")
            return _MISSING
        if not rows:
            if "pricing" in table:
                self.add(where, "pricing needs at least one [[contract.meter.price]] row")
            return _MISSING
        tiers: list[PriceTier] = []
        ok = True
        previous: Decimal | None = None
        for k, row in enumerate(rows):
            pwhere = f"{where} price[{k}]"
            before = len(self.problems)
            self.unknown_keys(pwhere, row, PRICE_KEYS)
            up_to = self.number(pwhere, row, "up_to", minimum=Decimal(0), strict=True)
            cents = self.number(pwhere, row, "cents_per_unit", minimum=Decimal(0))
            flat = self.number(pwhere, row, "flat_cents", minimum=Decimal(0))
            if "cents_per_unit" not in row and "flat_cents" not in row:
                self.add(pwhere, "a price row needs cents_per_unit, flat_cents or both")
            last = k == len(rows) - 1
            if "up_to" not in row and not last:
                self.add(pwhere, "only the last price row may omit up_to")
            if "up_to" in row and last:
                # Every unit must have a price: units above the last bound would have none.
                self.add(
                    pwhere, "the last price row must omit up_to (it prices every unit above the previous row)"
                )
            if up_to is not _MISSING:
                if previous is not None and up_to <= previous:
                    self.add(pwhere, f"up_to must increase from row to row ({up_to} after {previous})")
                previous = up_to
            if len(self.problems) > before:
                ok = False
                continue
            tiers.append(
                PriceTier(
                    up_to=None if up_to is _MISSING else up_to,
                    cents_per_unit=Decimal(0) if cents is _MISSING else cents,
                    flat_cents=Decimal(0) if flat is _MISSING else flat,
                )
            )
        return tuple(tiers) if ok else _MISSING
