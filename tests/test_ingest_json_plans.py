"""JSON records: the column plan is decided once per key sequence (issue 11).

``_RecordBatcher`` used to resolve every key of every record; it now decides which key feeds
which canonical column (and which keys go to ``attributes``, or which two keys collide) once
per distinct sequence of keys. These tests generate records with aliases that collide or
outrank each other, ``--map`` copies, unknown keys, nested values, exact decimals and key
orders, and compare every column the batcher produces with the per-record code it replaced
(tests/record_reference.py).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.record_reference import ReferenceBatcher
from usagectl.sources.readers import _MAX_KEY_PLANS, JsonLinesSource, _RecordBatcher

KEYS = ["event_id", "id", "uuid", "ts", "timestamp", "time", "owner_id", "owner", "tenant",
        "user_id", "user", "userId", "X-User-ID", "product", "sku", "geometry", "wkt",
        "input_tokens", "prompt_tokens", "tokens", "credits", "note", "extra", "Product",
        "indicator_ids", "indicators", "endpoint", "path", "status", "result"]
VALUES = st.one_of(st.none(), st.text(max_size=8), st.booleans(), st.integers(-10**20, 10**20),
                   st.decimals(allow_nan=False, allow_infinity=False, places=4),
                   st.floats(allow_nan=False, allow_infinity=False),
                   st.lists(st.integers(0, 999), max_size=3),
                   st.dictionaries(st.sampled_from(["a", "b"]), st.integers(), max_size=2))
RECORD = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8)
MAPPINGS = st.sampled_from([{}, {"product": "endpoint"}, {"user_id": "note"},
                            {"owner_id": "tenant", "product": "sku"}, {"event_id": "uuid"}])


def _source(mapping: dict[str, str]) -> JsonLinesSource:
    return JsonLinesSource(Path("x.jsonl"), None, mapping, owner_given=False)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.one_of(RECORD, st.none()), min_size=1, max_size=25),
       mapping=MAPPINGS)
def test_planned_batcher_matches_per_record_resolution(records: list, mapping: dict) -> None:
    new_src, old_src = _source(mapping), _source(mapping)
    new, old = _RecordBatcher(new_src), ReferenceBatcher(old_src)
    for i, rec in enumerate(records, start=1):
        reason = "line is not valid JSON" if rec is None else None
        # each record twice, so the second one goes through the remembered plan
        for b in (new, old):
            b.add(i, rec, "raw", reason)
            b.add(i, rec, "raw", reason)
    assert new.table().equals(old.table())
    assert new_src.stats.seen_canonical == old_src.stats.seen_canonical
    assert new_src.stats.records == old_src.stats.records


def test_plans_are_bounded_on_a_file_of_ever_new_keys() -> None:
    b = _RecordBatcher(_source({}))
    for i in range(_MAX_KEY_PLANS + 100):
        b.add(i, {"event_id": "e", f"k{i}": Decimal(1)}, "raw")
    assert len(b._plans) == _MAX_KEY_PLANS
    assert b.table().column("_attributes")[-1].as_py() == f'{{"k{_MAX_KEY_PLANS + 99}":1}}'


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), TEXT, st.integers(-10**20, 10**20),
              st.decimals(allow_nan=False, allow_infinity=False, places=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(TEXT, inner, max_size=3)), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(props=st.one_of(st.none(), st.dictionaries(st.sampled_from(["geometry", "id", "x", "é"]),
                                                  JSONISH, max_size=3), JSONISH),
       geometry=st.one_of(st.none(), JSONISH,
                          st.fixed_dictionaries({"type": st.sampled_from(["Polygon", "Pölygon"]),
                                                 "coordinates": JSONISH})),
       extra=st.dictionaries(st.sampled_from(["id", "bbox", "ñame", "\x1f"]), JSONISH,
                             max_size=2),
       order=st.permutations(["type", "properties", "geometry", "extra"]))
def test_feature_raw_text_is_the_whole_feature_dumped(props, geometry, extra, order) -> None:  # noqa: ANN001
    """The reject listing's raw text of a Feature is exactly ``json.dumps`` of it, though the
    geometry's text is reused from the record instead of dumped a second time."""
    import json

    from usagectl.sources.readers import _feature_raw, _feature_record_text, _json_default

    members = {"type": "Feature", "properties": props, "geometry": geometry}
    feature: dict = {}
    for name in order:
        if name == "extra":
            feature.update({k: v for k, v in extra.items() if k not in feature})
        else:
            feature[name] = members[name]
    _, text = _feature_record_text(feature)
    assert _feature_raw(feature, text) == json.dumps(feature, default=_json_default,
                                                     ensure_ascii=False)
