"""Contracts, meters and periods: what a contract counts and when (SPEC §4, §5.4, §5.5).

``parse_contracts`` / ``load_contracts_file`` validate contracts TOML (every problem listed at
once); the frozen dataclasses in :mod:`.model` are the in-memory and JSON form; :mod:`.periods`
turns a contract and an instant into the period that contains it.
"""

from usagectl.contracts.loader import load_contracts_file, parse_contracts
from usagectl.contracts.model import (
    AGGREGATES,
    CYCLES,
    DISTINCT_FIELDS,
    SUM_FIELDS,
    UNIT_M2,
    Contract,
    Meter,
    PriceTier,
    contract_from_dict,
    default_billed_on,
)
from usagectl.contracts.periods import (
    Period,
    local_midnight,
    parse_as_of,
    period_at,
    period_containing,
    resolve_period,
)

__all__ = [
    "AGGREGATES",
    "CYCLES",
    "DISTINCT_FIELDS",
    "SUM_FIELDS",
    "UNIT_M2",
    "Contract",
    "Meter",
    "Period",
    "PriceTier",
    "contract_from_dict",
    "default_billed_on",
    "load_contracts_file",
    "local_midnight",
    "parse_as_of",
    "parse_contracts",
    "period_at",
    "period_containing",
    "resolve_period",
]
