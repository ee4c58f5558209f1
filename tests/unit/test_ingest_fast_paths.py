"""The ingest's per-event fast paths give exactly what the general paths they shortcut give.

Each fast path (docs/performance.md) answers the common case inline and hands every other
input to the original code; these tests hold them to bit-identical results, errors included.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import pipeline_spec
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.rejections import Rejected
from tidegate.schemas import compile as compile_module
from tidegate.schemas.decode import MAX_KEY_BYTES, JsonDecoder, fields_validator
from tidegate.schemas.event_model import compile_schema
from tidegate.schemas.eventtime import to_epoch_ms
from tidegate.spec import parse_pipeline
from tidegate.state.keys import POSITION_WIDTH, position_mark


def _accumulators() -> AccumulatorSet:
    """count, sum, min, max, avg of field `v` (the test pipeline's aggregates)."""
    return AccumulatorSet(build_aggregates(parse_pipeline(pipeline_spec())))


# Values of every kind an accumulator can meet: ints (int64 and beyond), floats of any
# magnitude (so 38-digit Decimal sums round), bools and Decimals (ref schemas), and None.
_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e100, max_value=1e100),
    st.integers(min_value=-(10**6), max_value=10**6).map(lambda i: i / 100),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3,
                min_value=-(10**9), max_value=10**9),
    st.none(),
)
_stored = st.sampled_from([
    None,
    {"count:*": Decimal(2), "sum:v": [Decimal("3.5"), True], "max:v": [Decimal(3), False],
     "min:v": [Decimal("0.5"), True], "avg:v": [Decimal("3.5"), Decimal(2)]},
    {"count:*": 7, "sum:v": [Decimal("1E-90"), True], "max:v": [5, False],
     "min:v": [None, False], "avg:v": [12345678901234567890123456789012345678, 3]},
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, max_size=30), _stored)
def test_add_events_is_add_event_in_turn(values: list[Any], stored: dict[str, Any] | None) -> None:
    s = _accumulators()
    one_by_one = s.merge(stored, None) if stored else s.create()
    in_bulk = s.merge(stored, None) if stored else s.create()
    events = [{"v": v} for v in values]

    for event in events:
        s.add_event(one_by_one, event)
    s.add_events(in_bulk, events)

    # repr: same values, same types, same Decimal digits and exponent.
    assert repr(in_bulk) == repr(one_by_one)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["v", "w"]), _values))
def test_an_accumulator_of_one_event_is_create_then_add_event(values: dict[str, Any]) -> None:
    s = AccumulatorSet(build_aggregates(parse_pipeline(pipeline_spec(
        schema={"name": "R", "fields": {"user": "string", "ts": "timestamp", "v": "number",
                                        "w": "number?"}},
        aggregates={"n": {"op": "count"}, "nv": {"op": "count", "field": "v"},
        "total": {"op": "sum", "field": "v"}, "hi": {"op": "max", "field": "v"},
        "lo": {"op": "min", "field": "w"}, "mean": {"op": "avg", "field": "v"},
    }))))
    expected = s.create()
    s.add_event(expected, values)

    # repr: same values, same types, same order of aggregates
    assert repr(s.of_event(values)) == repr(expected)


_positions = st.one_of(
    st.integers(min_value=0, max_value=10**60).map(str),
    st.text(alphabet="0123456789", min_size=1, max_size=70),
    st.from_regex(r"\A[ +]?0*[0-9][0-9_]{0,5}[0-9]?\s?\Z"),
    st.text(alphabet="0123456789٣²-", min_size=1, max_size=8),
    st.integers(min_value=0, max_value=10**30),
)


def _reference_mark(position: str | int) -> str:
    return str(int(position)).zfill(POSITION_WIDTH)


@settings(max_examples=400, deadline=None)
@given(_positions)
def test_position_marks_match_the_int_normalised_reference(position: str | int) -> None:
    try:
        expected: str | type[Exception] = _reference_mark(position)
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError):
            position_mark(position)
    else:
        assert position_mark(position) == expected


# -- the compiled schema's validators -----------------------------------------------------
_numbers = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),  # NaN, infinities, subnormals, 1e-101, 1e101 ...
    st.sampled_from([0.0, -0.0, 1e-100, -1e-100, 1e100, -1e100, 2**63, -(2**63)]),
)


def _outcome(fn: Any, value: Any) -> Any:
    try:
        return ("ok", repr(fn(value)))
    except ValueError as exc:
        return ("error", str(exc))


@settings(max_examples=400, deadline=None)
@given(_numbers)
def test_the_number_validator_accepts_and_refuses_as_its_checked_path(value: Any) -> None:
    assert _outcome(compile_module._finite_number, value) == _outcome(
        compile_module._checked_number, value
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(min_value=-(2**64), max_value=2**64), st.floats(), st.booleans(),
                 st.sampled_from(["2026-01-01T00:00:00Z", "x", "1970-01-01T00:00:00"])))
def test_the_timestamp_validator_is_to_epoch_ms(value: Any) -> None:
    assert _outcome(compile_module._timestamp, value) == _outcome(to_epoch_ms, value)


# -- the decoder's field reads --------------------------------------------------------------
@pytest.fixture(scope="module")
def decoder() -> JsonDecoder:
    pipeline = parse_pipeline(pipeline_spec(
        schema={"name": "Reading", "fields": {
            "user": "string", "ts": "timestamp", "v": "number", "qty": "integer?",
        }},
        aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"},
                    "items": {"op": "sum", "field": "qty"}},
    ))
    return JsonDecoder(pipeline, compile_schema(pipeline))


@settings(max_examples=200, deadline=None)
@given(
    user=st.text(max_size=20),
    ts=st.one_of(st.integers(min_value=0, max_value=253_402_300_799_999),
                 st.sampled_from(["2026-01-01T00:00:00.5+02:00", "2026-01-01T00:00:00Z"])),
    v=st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1),
                st.floats(min_value=1e-3, max_value=1e6)),
    qty=st.one_of(st.none(), st.integers(min_value=0, max_value=100)),
)
def test_to_event_reads_what_the_general_path_reads(
    decoder: JsonDecoder, user: str, ts: Any, v: Any, qty: Any
) -> None:
    fields: dict[str, Any] = {"user": user, "ts": ts, "v": v}
    if qty is not None:
        fields["qty"] = qty
    obj = decoder.model.model_validate(fields)

    assert decoder.to_event(obj) == decoder._to_event(obj)


def test_a_bad_time_is_reported_before_a_key_too_large(decoder: JsonDecoder) -> None:
    """The fast path keeps the general path's order of checks (time, then key)."""
    obj = decoder.model.model_construct(user="x" * (MAX_KEY_BYTES + 10), ts=-5, v=1, qty=None)

    with pytest.raises(Rejected) as caught:
        decoder.to_event(obj)

    assert caught.value.reason == "invalid_timestamp"


def test_a_model_without_a_declared_field_set_takes_the_general_path(
    decoder: JsonDecoder,
) -> None:
    obj = decoder.model.model_construct(user="u", ts=5, qty=2)  # `v` never set

    assert decoder.to_event(obj).values == {"qty": 2, "v": None}


def test_decoding_through_the_fast_path_matches_a_plain_validation(decoder: JsonDecoder) -> None:
    raw = json.dumps({"user": "zoë", "ts": 7, "v": 2.5}).encode()

    event = decoder.decode_b64(base64.b64encode(raw).decode("ascii"))

    assert event == decoder._to_event(decoder.model.model_validate_json(raw))
    assert (event.time_ms, event.key, event.values) == (7, '["zoë"]', {"qty": None, "v": 2.5})


def test_empty_accumulators_from_the_template_are_fresh_and_equal_to_create() -> None:
    s = _accumulators()
    first, second = s.create(), s.create()

    assert repr(first) == repr(s._create_each())
    for name, value in first.items():
        if isinstance(value, list):
            assert value is not second[name]  # never shared between groups


def test_groups_of_every_size_aggregate_as_one_event_at_a_time() -> None:
    """add_events takes the per-event path below 3 events and the bulk one from 3 on."""
    s = _accumulators()
    values = [3, 2.5, None, 7, 7, -1, 0.1, 12]
    for size in range(len(values) + 1):
        events = [{"v": v} for v in values[:size]]
        one_by_one, in_bulk = s.create(), s.create()
        for event in events:
            s.add_event(one_by_one, event)
        s.add_events(in_bulk, events)
        assert repr(in_bulk) == repr(one_by_one), size


# -- validating to plain fields (batch ingest) ----------------------------------------------
_odd_values = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e-100, -1e-100, 1e-101, -1e-101, 1e100, -1e100, 1e101, -1e101,
                     2**63, -(2**63), 2**63 - 1, -(2**63) - 1, 253_402_300_799_999,
                     253_402_300_800_000, -1, "2026-01-01T00:00:00.5+02:00",
                     "2026-01-01T00:00:00", [1], {"a": 1}]),
)


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values, and every odd one now and then: each field is tested with the others
    valid, so one field's edge decides the outcome."""
    return st.one_of(valid, valid, valid, _odd_values)


@settings(max_examples=800, deadline=None)
@given(st.fixed_dictionaries(
    {"user": _mostly(st.text(max_size=5)),
     "ts": _mostly(st.integers(min_value=0, max_value=253_402_300_799_999)),
     "v": _mostly(st.one_of(st.integers(-5, 5), st.floats(-1e6, 1e6)))},
    optional={"qty": _mostly(st.integers(-5, 5)), "other": _odd_values},
))
def test_plain_field_validation_accepts_what_the_model_does_as_the_same_values(
    decoder: JsonDecoder, document: dict[str, Any]
) -> None:
    text = json.dumps(document)
    validate = decoder.validate_fields
    assert validate is not None
    try:
        expected: Any = ("ok", repr(decoder.model.model_validate_json(text).__dict__))
    except ValueError:
        expected = "refused"
    try:
        got: Any = ("ok", repr(validate(text)))
    except ValueError:
        got = "refused"

    assert got == expected


def test_models_that_validate_more_than_their_fields_are_not_validated_as_plain_fields() -> None:
    from pydantic import BaseModel, Field, model_validator

    class Checked(BaseModel):
        a: int

        @model_validator(mode="after")
        def positive(self) -> Checked:
            if self.a < 0:
                raise ValueError("negative")
            return self

    class Aliased(BaseModel):
        a: int = Field(validation_alias="A")

    class Plain(BaseModel):
        a: int

    assert fields_validator(Checked) is None
    assert fields_validator(Aliased) is None
    assert fields_validator(Plain) is not None


_EDGES = [0.0, -0.0, 1e-100, -1e-100, 1e-101, -1e-101, 1e100, -1e100, 1e101, -1e101, 1.0, 5,
          2**63, -(2**63), 2**63 - 1, -(2**63) - 1, 253_402_300_799_999, 253_402_300_800_000,
          0, -1, True, None, "7", "2026-01-01T00:00:00.5+02:00", "2026-01-01T00:00:00", [1]]


@pytest.mark.parametrize("field", ["user", "ts", "v", "qty"])
def test_plain_field_validation_takes_each_edge_value_as_the_model_does(
    decoder: JsonDecoder, field: str
) -> None:
    validate = decoder.validate_fields
    assert validate is not None
    for value in _EDGES:
        text = json.dumps({"user": "u", "ts": 5, "v": 1, "qty": 2, field: value})
        try:
            expected: Any = repr(decoder.model.model_validate_json(text).__dict__)
        except ValueError:
            expected = "refused"
        try:
            got: Any = repr(validate(text))
        except ValueError:
            got = "refused"
        assert got == expected, value


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.booleans(),
                          st.none(), st.decimals(allow_nan=False, places=2)),
                min_size=1, max_size=3))
def test_a_canonical_key_is_its_compact_json(decoder: JsonDecoder, values: list[Any]) -> None:
    reference = json.dumps(values, ensure_ascii=False, separators=(",", ":"), default=str)

    assert decoder.key_of(values) == reference
