"""Column aliases and --map (SPEC §3.1)."""

from __future__ import annotations

import pytest

from usagectl.errors import ValidationError
from usagectl.sources.columns import parse_mapping, plan_columns


@pytest.mark.parametrize(("source", "canonical"), [
    ("X-User-ID", "user_id"), ("userId", "user_id"), ("leafUserId", "user_id"),
    ("api_key_id", "user_id"), ("X-Organization-ID", "org_id"), ("timestamp", "ts"),
    ("created_at", "ts"), ("status_code", "status"), ("tokens", "input_tokens"),
    ("USER_ID", "user_id"), ("Event ID", "event_id"), ("indicators", "indicator_ids"),
])
def test_aliases(source: str, canonical: str) -> None:
    plan = plan_columns([source], {})
    assert plan.canonical == {canonical: source} and plan.extras == []


def test_unknown_columns_are_extras() -> None:
    plan = plan_columns(["user_id", "favourite_colour"], {})
    assert plan.extras == ["favourite_colour"]


def test_exact_name_beats_alias() -> None:
    plan = plan_columns(["user_id", "userId"], {})
    assert plan.canonical["user_id"] == "user_id" and plan.extras == ["userId"]


def test_two_aliases_for_one_column_is_an_error() -> None:
    with pytest.raises(ValidationError, match="both map to user_id"):
        plan_columns(["userId", "X-User-ID"], {})


def test_map_wins_and_must_name_an_existing_column() -> None:
    plan = plan_columns(["userId", "X-User-ID"], parse_mapping(["user_id=X-User-ID"]))
    assert plan.canonical["user_id"] == "X-User-ID" and plan.extras == ["userId"]
    with pytest.raises(ValidationError, match="no column 'nope'"):
        plan_columns(["a"], {"user_id": "nope"})


def test_map_copies_a_column_that_keeps_its_own_role() -> None:
    plan = plan_columns(["ts", "endpoint", "note"], parse_mapping(["product=endpoint"]))
    assert plan.canonical == {"ts": "ts", "product": "endpoint", "endpoint": "endpoint"}
    assert plan.extras == ["note"]


def test_one_source_column_may_feed_several_canonical_columns() -> None:
    plan = plan_columns(["ts", "path"], parse_mapping(["product=path", "operation=path"]))
    # `path` is an alias of endpoint: it feeds product, operation and endpoint.
    assert plan.canonical == {"ts": "ts", "product": "path", "operation": "path", "endpoint": "path"}
    assert plan.extras == []


def test_a_mapped_column_without_a_role_of_its_own_is_not_an_extra() -> None:
    plan = plan_columns(["what"], parse_mapping(["product=what"]))
    assert plan.canonical == {"product": "what"} and plan.extras == []


def test_map_still_decides_between_two_candidates() -> None:
    # A column mapped to org_id keeps its own role (user_id): beside userId that is ambiguous,
    # and the error says how to choose.
    with pytest.raises(ValidationError, match="both map to user_id"):
        plan_columns(["user", "userId"], parse_mapping(["org_id=user"]))
    plan = plan_columns(["user", "userId"], parse_mapping(["org_id=user", "user_id=userId"]))
    assert plan.canonical == {"org_id": "user", "user_id": "userId"} and plan.extras == []

