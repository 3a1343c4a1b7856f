"""Contracts TOML: validation lists every problem at once; valid files round-trip (SPEC §4, §5.4)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from usagectl.contracts import (
    UNIT_M2,
    Contract,
    Meter,
    PriceTier,
    contract_from_dict,
    load_contracts_file,
    parse_contracts,
)
from usagectl.errors import IOFailure, NotFoundError, ValidationError

VALID = """
[[contract]]
id = "acme-fields-2026"
owner = "acme"
start = 2026-01-01
cycle = "annual"
timezone = "America/Chicago"
tier = "growth"

  [[contract.meter]]
  name = "boundaries"
  aggregate = "unique_area"
  products = ["FIELDS_BOUNDARY"]
  unit = "hectare"
  billed_on = "owner"
  limit = 50000
  included = 40000
  overage_unit = 1
  overage_cents_per_unit = 25
  warn_at = 0.8
  boundary_policy = "active"

  [[contract.meter]]
  name = "unified"
  aggregate = "unique_area"
  products = "*"
  mode = "audit"
  derive_operations = true
  prepaid = 2.5e3

  [[contract.meter]]
  name = "indicators"
  aggregate = "distinct"
  field = "indicator_ids"
  products = ["DATASETS"]
  endpoints = ["/datasets"]
  require = ["indicator_ids"]
  limit = 1000
  included = 1200            # included above limit is allowed

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  fields = ["input_tokens", "output_tokens", "thinking_tokens"]
  operations = ["chat"]
  billed_on = "user"
  limit = 1_000_000
  pricing = "graduated"
    [[contract.meter.price]]
    up_to = 100000
    cents_per_unit = 0
    [[contract.meter.price]]
    up_to = 500000.5
    cents_per_unit = 0.1
    flat_cents = 500
    [[contract.meter.price]]
    cents_per_unit = 0.05

  [[contract.meter]]
  name = "requests"
  aggregate = "count"
  include_failed = true
  limit = 10000
  overage_unit = 1000
  overage_cents_per_unit = 199
  warn_at = 1

[[contract]]
id = "acme-pilot"
owner = "acme"               # several contracts may share an owner
start = "2026-02-15"         # a date may also be written as a string
end = 2026-03-15
cycle = "once"

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"
  fields = ["credits"]
  pricing = "volume"
    [[contract.meter.price]]
    cents_per_unit = 3
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_contracts(text, source="contracts.toml")
    problems = info.value.details["problems"]
    assert info.value.message == f"contracts.toml: {len(problems)} problem(s) in contracts file"
    assert info.value.details == {"problems": problems}
    return problems


def assert_problems(text: str, expected: list[str]) -> None:
    problems = problems_of(text)
    # Same set, nothing reported twice, and listed in document order.
    assert set(problems) == set(expected), "\n".join(sorted(set(problems) ^ set(expected)))
    assert problems == expected


def floats_in(value: Any) -> list[Any]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


# -- valid files ---------------------------------------------------------------------------------


def test_valid_file_loads_every_meter_kind_with_defaults() -> None:
    acme, pilot = parse_contracts(VALID)
    assert (acme.id, acme.owner, acme.start, acme.end, acme.cycle) == (
        "acme-fields-2026",
        "acme",
        dt.date(2026, 1, 1),
        None,
        "annual",
    )
    assert (acme.timezone, acme.tier) == ("America/Chicago", "growth")
    assert (pilot.owner, pilot.start, pilot.end, pilot.timezone, pilot.tier) == (
        "acme",
        dt.date(2026, 2, 15),
        dt.date(2026, 3, 15),
        "UTC",
        None,
    )

    boundaries = acme.meter("boundaries")
    assert boundaries.unit == "hectare" and boundaries.billed_on == "owner"
    assert boundaries.limit == Decimal(50000) and isinstance(boundaries.limit, Decimal)
    assert boundaries.warn_at == Decimal("0.8") and boundaries.boundary_policy == "active"
    assert boundaries.unit_m2 == Decimal(10000)

    unified = acme.meter("unified")
    # unique_area defaults: unit acre, billed per user (SPEC §2 billed level).
    assert (unified.unit, unified.billed_on, unified.products) == ("acre", "user", ("*",))
    assert unified.all_products and unified.mode == "audit" and unified.derive_operations
    assert unified.prepaid == Decimal("2500") and unified.limit is None and unified.included is None

    indicators = acme.meter("indicators")
    assert (indicators.field, indicators.billed_on, indicators.unit) == ("indicator_ids", "owner", None)
    assert indicators.included == 1200 and indicators.limit == 1000
    assert (indicators.endpoints, indicators.require) == (("/datasets",), ("indicator_ids",))

    tokens = acme.meter("tokens")
    assert tokens.fields == ("input_tokens", "output_tokens", "thinking_tokens")
    assert tokens.billed_on == "user" and tokens.pricing == "graduated"
    assert tokens.price == (
        PriceTier(Decimal(100000), Decimal(0), Decimal(0)),
        PriceTier(Decimal("500000.5"), Decimal("0.1"), Decimal(500)),
        PriceTier(None, Decimal("0.05"), Decimal(0)),
    )
    # Floats go through str(): 0.1 is exactly one tenth, not the binary approximation.
    assert tokens.price[1].cents_per_unit == Decimal("0.1")

    requests = acme.meter("requests")
    assert requests.include_failed and requests.overage_unit == 1000 and requests.warn_at == 1
    assert (requests.overage_cents_per_unit, requests.billed_on, requests.prepaid) == (199, "owner", 0)

    credits = pilot.meter("credits")
    assert credits.pricing == "volume" and credits.price == (PriceTier(None, Decimal(3), Decimal(0)),)


def test_every_number_is_a_decimal() -> None:
    for contract in parse_contracts(VALID):
        for m in contract.meters:
            for name in ("limit", "included", "overage_unit", "overage_cents_per_unit", "warn_at", "prepaid"):
                value = getattr(m, name)
                assert value is None or type(value) is Decimal, (m.name, name, value)
            for tier in m.price:
                values = (tier.up_to, tier.cents_per_unit, tier.flat_cents)
                assert all(v is None or type(v) is Decimal for v in values)


def test_round_trip_through_json() -> None:
    contracts = parse_contracts(VALID)
    for contract in contracts:
        stored = json.loads(json.dumps(contract.to_dict()))
        assert floats_in(stored) == [], "money must never travel as a binary float"
        rebuilt = contract_from_dict(stored)
        assert rebuilt == contract
        assert Contract.from_dict(stored) == contract
        assert hash(rebuilt) == hash(contract)
        assert rebuilt.to_dict() == contract.to_dict()


def test_to_dict_writes_integral_numbers_as_int_and_others_as_decimal_strings() -> None:
    acme = parse_contracts(VALID)[0]
    d = acme.to_dict()
    assert d["start"] == "2026-01-01" and d["end"] is None
    by_name = {m["name"]: m for m in d["meters"]}
    assert by_name["boundaries"]["limit"] == 50000
    assert by_name["boundaries"]["warn_at"] == "0.8"
    assert by_name["unified"]["prepaid"] == 2500  # 2.5e3 is integral
    assert by_name["unified"]["products"] == ["*"]
    assert by_name["tokens"]["price"] == [
        {"up_to": 100000, "cents_per_unit": 0, "flat_cents": 0},
        {"up_to": "500000.5", "cents_per_unit": "0.1", "flat_cents": 500},
        {"up_to": None, "cents_per_unit": "0.05", "flat_cents": 0},
    ]
    assert set(by_name["requests"]) == set(Meter.__dataclass_fields__)


def test_meter_built_by_hand_equals_loaded_one() -> None:
    loaded = parse_contracts(VALID)[0].meter("unified")
    by_hand = Meter(
        name="unified",
        aggregate="unique_area",
        products=["*"],  # type: ignore[arg-type]  # lists are normalised to tuples
        mode="audit",
        derive_operations=True,
        prepaid=2500,  # type: ignore[arg-type]
    )
    assert by_hand == loaded


def test_meter_lookup_names_the_meters_when_missing() -> None:
    acme = parse_contracts(VALID)[0]
    with pytest.raises(NotFoundError) as info:
        acme.meter("boundary")
    assert "boundaries, unified, indicators, tokens, requests" in info.value.message
    assert info.value.details["meters"] == ["boundaries", "unified", "indicators", "tokens", "requests"]


def test_unit_table() -> None:
    assert UNIT_M2 == {
        "acre": Decimal("4046.8564224"),
        "hectare": Decimal(10000),
        "m2": Decimal(1),
        "km2": Decimal(1000000),
    }


# -- invalid files: every problem, nothing loaded ------------------------------------------------

CONTRACT_ERRORS = """
contracts = 1

[[contract]]
id = "dup"
owner = "acme"
ownr = "acme"
start = 2026-01-01
cycle = "monthly"
timezone = "America/Chicgo"
tier = 3
  [[contract.meter]]
  name = "m"
  aggregate = "count"

[[contract]]
id = "dup"
owner = "acme"
start = "2026-02-30"
cycle = "weekly"
timezone = "america/new_york"
  [[contract.meter]]
  name = "m"
  aggregate = "count"

[[contract]]
start = 2026-03-01T00:00:00
cycle = "once"
  [[contract.meter]]
  name = "m"
  aggregate = "count"

[[contract]]
id = "backwards"
owner = ""
start = 2026-06-01
end = 2026-01-01
cycle = "Monthly"
timezone = "Nowhere/Qqq"

[[contract]]
id = "bad-meters"
owner = "acme"
start = 2026-01-01
cycle = "annual"
  [[contract.meter]]
  name = "same"
  aggregate = "count"
  [[contract.meter]]
  name = "same"
  aggregate = "count"
  [[contract.meter]]
  aggregate = "count"
  [[contract.meter]]
  name = "noagg"
  [[contract.meter]]
  name = "badagg"
  aggregate = "uniq_area"
  unit = "furlong"
"""


def test_contract_level_problems_are_all_listed() -> None:
    assert_problems(
        CONTRACT_ERRORS,
        [
            "top level: unknown key 'contracts' (did you mean 'contract'?)",
            "contract[0] \"dup\": unknown key 'ownr' (did you mean 'owner'?)",
            "contract[0] \"dup\": tier must be a string, not an integer (3)",
            "contract[0] \"dup\": timezone 'America/Chicgo' is not an IANA time zone name"
            " (did you mean 'America/Chicago'?)",
            "contract[1] \"dup\": duplicate contract id 'dup' (already used by contract[0])",
            "contract[1] \"dup\": start '2026-02-30' is not a valid date (write YYYY-MM-DD, e.g. 2026-01-01)",
            "contract[1] \"dup\": cycle must be one of 'monthly', 'quarterly', 'annual', 'once',"
            " not 'weekly'",
            "contract[1] \"dup\": timezone 'america/new_york' is not an IANA time zone name"
            " (did you mean 'America/New_York'?)",
            "contract[2]: missing required key 'id'",
            "contract[2]: missing required key 'owner'",
            "contract[2]: start must be a date (YYYY-MM-DD), not a date-time (2026-03-01T00:00:00)",
            "contract[2]: cycle 'once' requires an 'end' date",
            'contract[3] "backwards": owner must not be empty',
            "contract[3] \"backwards\": cycle must be one of 'monthly', 'quarterly', 'annual', 'once',"
            " not 'Monthly' (did you mean 'monthly'?)",
            "contract[3] \"backwards\": timezone 'Nowhere/Qqq' is not an IANA time zone name",
            'contract[3] "backwards": end 2026-01-01 must be after start 2026-06-01',
            'contract[3] "backwards": no meters: declare at least one [[contract.meter]] table',
            "contract[4] \"bad-meters\" meter[1] \"same\": duplicate meter name 'same'"
            " (already used by meter[0])",
            "contract[4] \"bad-meters\" meter[2]: missing required key 'name'",
            "contract[4] \"bad-meters\" meter[3] \"noagg\": missing required key 'aggregate'",
            "contract[4] \"bad-meters\" meter[4] \"badagg\": aggregate must be one of 'unique_area',"
            " 'distinct', 'sum', 'count', not 'uniq_area' (did you mean 'unique_area'?)",
            # Options are still checked when the aggregate itself is wrong.
            "contract[4] \"bad-meters\" meter[4] \"badagg\": unit must be one of 'acre', 'hectare',"
            " 'm2', 'km2', not 'furlong'",
        ],
    )


METER_ERRORS = """
[[contract]]
id = "meters"
owner = "acme"
start = "2026-01-01"
cycle = "monthly"

  [[contract.meter]]
  name = "area"
  aggregate = "unique_area"
  limt = 100
  billed_on = "users"
  products = "FIELDS_BOUNDARY"
  unit = "acres"
  boundary_policy = "deleted"
  mode = "audit"
  derive_operations = "yes"

  [[contract.meter]]
  name = "licence"
  aggregate = "distinct"
  unit = "acre"
  include_failed = 1
  require = ["indicators"]

  [[contract.meter]]
  name = "datasets"
  aggregate = "distinct"
  products = ["*", "DATASETS"]
  field = "dataset"

  [[contract.meter]]
  name = "tokens"
  aggregate = "sum"
  field = "user_id"
  fields = []

  [[contract.meter]]
  name = "tokens2"
  aggregate = "sum"
  endpoints = "/chat"
  fields = ["input_tokens", "output_token", "input_tokens"]

  [[contract.meter]]
  name = "credits"
  aggregate = "sum"

  [[contract.meter]]
  name = "calls"
  aggregate = "count"
  fields = ["credits"]
  mode = "audit"
  limit = "50000"
  included = -1
  prepaid = true
  overage_cents_per_unit = nan
  overage_unit = 0
  warn_at = 0
  operations = [1]

  [[contract.meter]]
  name = "warn-high"
  aggregate = "count"
  limit = 10
  warn_at = 1.5
"""

DISTINCT_LIST = (
    "'user_id', 'org_id', 'dataset_id', 'indicator_ids', 'resource_id', 'session_id', 'endpoint',"
    " 'operation', 'product', 'request_id'"
)
SUM_LIST = "'input_tokens', 'output_tokens', 'thinking_tokens', 'credits', 'response_time_ms'"


def test_meter_level_problems_are_all_listed() -> None:
    m = 'contract[0] "meters" meter'
    assert_problems(
        METER_ERRORS,
        [
            f"{m}[0] \"area\": unknown key 'limt' (did you mean 'limit'?)",
            f"{m}[0] \"area\": billed_on must be one of 'user', 'owner', not 'users' (did you mean 'user'?)",
            f"{m}[0] \"area\": products must be an array of product names or '*',"
            " not a string ('FIELDS_BOUNDARY')",
            f"{m}[0] \"area\": unit must be one of 'acre', 'hectare', 'm2', 'km2', not 'acres'"
            " (did you mean 'acre'?)",
            f"{m}[0] \"area\": boundary_policy must be one of 'processed', 'active', not 'deleted'",
            f"{m}[0] \"area\": derive_operations must be true or false, not a string ('yes')",
            f"{m}[1] \"licence\": include_failed must be true or false, not an integer (1)",
            f"{m}[1] \"licence\": require: 'indicators' is not an event field"
            " (did you mean 'indicator_ids'?)",
            f"{m}[1] \"licence\": unit 'acre' is an area unit, for unique_area meters; a distinct "
            "meter's unit says what it counts (e.g. 'requests')",
            f"{m}[1] \"licence\": a distinct meter requires 'field' (one of {DISTINCT_LIST})",
            f"{m}[2] \"datasets\": products: '*' (every product) cannot be combined with named products",
            f"{m}[2] \"datasets\": field must be one of {DISTINCT_LIST}, not 'dataset'"
            " (did you mean 'dataset_id'?)",
            f"{m}[3] \"tokens\": 'field' does not apply to a sum meter (it is a distinct option)",
            f"{m}[3] \"tokens\": fields must not be empty (choose from {SUM_LIST})",
            f"{m}[4] \"tokens2\": endpoints must be an array of strings, not a string ('/chat')",
            f"{m}[4] \"tokens2\": fields: 'output_token' is not one of {SUM_LIST}"
            " (did you mean 'output_tokens'?)",
            f"{m}[4] \"tokens2\": fields: 'input_tokens' listed more than once",
            f"{m}[5] \"credits\": a sum meter requires 'fields' (a non-empty array from {SUM_LIST})",
            f"{m}[6] \"calls\": 'fields' does not apply to a count meter (it is a sum option)",
            f"{m}[6] \"calls\": 'mode' does not apply to a count meter (it is a unique_area option)",
            f"{m}[6] \"calls\": limit must be a number, not a string ('50000')",
            f"{m}[6] \"calls\": included must be >= 0, not -1",
            f"{m}[6] \"calls\": prepaid must be a number, not a boolean (true)",
            f"{m}[6] \"calls\": overage_cents_per_unit must be a finite number, not nan",
            f"{m}[6] \"calls\": overage_unit must be > 0, not 0",
            f"{m}[6] \"calls\": warn_at must be in (0, 1] (a fraction of limit, e.g. 0.8), not 0",
            f"{m}[6] \"calls\": operations must contain only non-empty strings, not an integer (1)",
            f"{m}[7] \"warn-high\": warn_at must be in (0, 1] (a fraction of limit, e.g. 0.8), not 1.5",
        ],
    )


PRICING_ERRORS = """
[[contract]]
id = "pricing"
owner = "acme"
start = 2026-01-01
cycle = "monthly"

  [[contract.meter]]
  name = "both"
  aggregate = "count"
  overage_cents_per_unit = 5
  pricing = "graduated"
    [[contract.meter.price]]
    cents_per_unit = 1

  [[contract.meter]]
  name = "rows-only"
  aggregate = "count"
    [[contract.meter.price]]
    cents_per_unit = 1

  [[contract.meter]]
  name = "no-rows"
  aggregate = "count"
  pricing = "volume"

  [[contract.meter]]
  name = "bad-model"
  aggregate = "count"
  pricing = "tiered"
    [[contract.meter.price]]
    cents_per_unit = 1

  [[contract.meter]]
  name = "order"
  aggregate = "count"
  pricing = "graduated"
    [[contract.meter.price]]
    up_to = 1000
    cents_per_unit = 0
    [[contract.meter.price]]
    up_to = 1000
    cents_per_unit = 2
    [[contract.meter.price]]
    cents_per_unit = 3
    [[contract.meter.price]]
    up_to = 5000
    flat_cents = -1
    cent_per_unit = 4

  [[contract.meter]]
  name = "empty-row"
  aggregate = "count"
  pricing = "volume"
    [[contract.meter.price]]
    up_to = 0

  [[contract.meter]]
  name = "row-as-table"
  aggregate = "count"
  pricing = "volume"
  price = {cents_per_unit = 1}
"""


def test_pricing_problems_are_all_listed() -> None:
    m = 'contract[0] "pricing" meter'
    assert_problems(
        PRICING_ERRORS,
        [
            f'{m}[0] "both": overage_cents_per_unit and pricing are both set;'
            " use one (a flat overage rate or price tiers)",
            f"{m}[1] \"rows-only\": price rows need pricing = 'graduated' or 'volume'"
            " to say how the tiers apply",
            f'{m}[2] "no-rows": pricing needs at least one [[contract.meter.price]] row',
            f"{m}[3] \"bad-model\": pricing must be one of 'graduated', 'volume', not 'tiered'",
            f'{m}[4] "order" price[1]: up_to must increase from row to row (1000 after 1000)',
            f'{m}[4] "order" price[2]: only the last price row may omit up_to',
            f"{m}[4] \"order\" price[3]: unknown key 'cent_per_unit' (did you mean 'cents_per_unit'?)",
            f'{m}[4] "order" price[3]: flat_cents must be >= 0, not -1',
            f'{m}[4] "order" price[3]: the last price row must omit up_to'
            " (it prices every unit above the previous row)",
            f'{m}[5] "empty-row" price[0]: up_to must be > 0, not 0',
            f'{m}[5] "empty-row" price[0]: a price row needs cents_per_unit, flat_cents or both',
            f'{m}[5] "empty-row" price[0]: the last price row must omit up_to'
            " (it prices every unit above the previous row)",
            f'{m}[6] "row-as-table": price must be an array of tables written'
            " [[contract.meter.price]], not a table",
        ],
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["top level: no contracts: declare at least one [[contract]] table"]),
        (
            '[contract]\nid = "x"\n',
            ["top level: contract must be an array of tables written [[contract]], not a table"],
        ),
        (
            '[[contract]]\nid = "x"\nowner = "o"\nstart = 2026-01-01\ncycle = "monthly"\n'
            '[contract.meter]\nname = "m"\naggregate = "count"\n',
            [
                'contract[0] "x": meter must be an array of tables written [[contract.meter]], not a table',
            ],
        ),
        (
            '[[contract]]\nid = 7\nowner = "o"\nstart = 20260101\ncycle = "once"\nend = 2026-01-01\n'
            '[[contract.meter]]\nname = "m"\naggregate = "count"\n',
            [
                "contract[0]: id must be a string, not an integer (7)",
                "contract[0]: start must be a date (YYYY-MM-DD), not an integer (20260101)",
            ],
        ),
    ],
    ids=["empty", "single-table", "meter-table", "types"],
)
def test_structure_problems(text: str, expected: list[str]) -> None:
    assert_problems(text, expected)


def test_toml_syntax_error_is_one_problem_with_line_and_column() -> None:
    text = '[[contract]]\nid = "x"\nowner = \n'
    assert problems_of(text) == ["TOML syntax error: Invalid value (at line 3, column 9)"]


def test_a_single_problem_loads_nothing() -> None:
    text = VALID.replace('warn_at = 1\n', 'warn_at = 1\n  limt = 3\n')
    assert problems_of(text) == [
        "contract[0] \"acme-fields-2026\" meter[4] \"requests\": unknown key 'limt' (did you mean 'limit'?)"
    ]


# -- files -----------------------------------------------------------------------------------------


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "contracts.toml"
    path.write_text(VALID, encoding="utf-8")
    assert load_contracts_file(path) == parse_contracts(VALID)
    assert load_contracts_file(str(path)) == parse_contracts(VALID)


def test_load_file_names_the_file_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[contract]]\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load_contracts_file(path)
    assert info.value.message == f"{path}: 5 problem(s) in contracts file"


def test_missing_file_is_an_io_failure(tmp_path: Path) -> None:
    with pytest.raises(IOFailure) as info:
        load_contracts_file(tmp_path / "nope.toml")
    assert "nope.toml" in info.value.message and info.value.code == "io_error"


def test_directory_is_an_io_failure(tmp_path: Path) -> None:
    with pytest.raises(IOFailure):
        load_contracts_file(tmp_path)


def test_non_utf8_file_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[[contract]]\nid = "café"\n'.encode("latin-1"))
    with pytest.raises(ValidationError) as info:
        load_contracts_file(path)
    assert info.value.details["problems"] == [
        "file is not UTF-8 text (TOML must be UTF-8): bad byte at offset 22"
    ]


def test_contract_from_dict_rejects_a_malformed_record() -> None:
    with pytest.raises(ValidationError, match="missing key 'owner'"):
        contract_from_dict({"id": "x", "start": "2026-01-01", "cycle": "monthly"})


def _with_ids(*ids: str) -> str:
    one = '[[contract]]\nid = {}\nowner = "o"\nstart = 2026-01-01\ncycle = "monthly"\n' \
          '  [[contract.meter]]\n  name = "n"\n  aggregate = "count"\n'
    return "\n".join(one.format(f'"{i}"') for i in ids)


def test_windows_device_names_are_refused_as_ids() -> None:
    """An id names files; on Windows `CON.users.csv` or `nul` opens a device, in any case."""
    bad = ["CON", "nul", "Aux", "PRN", "COM1", "com9", "LPT1", "LPT9", "aux.txt", "NUL.x.y"]
    problems = problems_of(_with_ids(*bad, "CONSOLE", "COM10", "lpt0", "con-x", "xcon"))
    assert len(problems) == len(bad), problems
    for i, cid in enumerate(bad):
        assert problems[i].startswith(f'contract[{i}] "{cid}": id {cid!r}'), problems[i]
        assert "Windows" in problems[i] and "device" in problems[i]


def test_ids_that_differ_only_by_case_are_duplicates() -> None:
    problems = problems_of(_with_ids("acme", "b", "ACME", "Acme"))
    assert problems == [
        'contract[2] "ACME": duplicate contract id \'ACME\' (already used by contract[0] \'acme\'; '
        "ids are compared regardless of case, as export file names are on some file systems)",
        'contract[3] "Acme": duplicate contract id \'Acme\' (already used by contract[0] \'acme\'; '
        "ids are compared regardless of case, as export file names are on some file systems)",
    ]
