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
