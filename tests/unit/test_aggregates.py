"""Aggregates: mergeable accumulators; integers stay integers; merge laws hold."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import assert_same_typed, pipeline_spec
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.builtin import Avg, Count, Extreme, Sum
from tidegate.aggregates.registry import build, build_aggregates
from tidegate.spec import parse_pipeline

Number = int | float


def accumulators() -> AccumulatorSet:
    """count, sum, min, max, avg of field `v` (the test pipeline's aggregates), whose results
    follow the values' own types (as for a referenced model, whose field types the runtime
    does not read): the arithmetic under test, before a `number` field makes them floats."""
    pipeline = parse_pipeline(pipeline_spec())
    return AccumulatorSet([build(name, spec.op, spec.field)
                           for name, spec in pipeline.aggregates.items()])


def fold(acc_set: AccumulatorSet, values: list[Any]) -> dict[str, Any]:
    acc = acc_set.create()
    for value in values:
        acc_set.add_event(acc, {"v": value})
    return acc


def results_of(values: list[Any]) -> dict[str, Any]:
    acc_set = accumulators()
    return acc_set.results(fold(acc_set, values))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3], {"n": 1, "total": 3, "hi": 3, "lo": 3, "mean": 3.0}),
        ([1, 2, 3, 4], {"n": 4, "total": 10, "hi": 4, "lo": 1, "mean": 2.5}),
        ([-5, 5, 0], {"n": 3, "total": 0, "hi": 5, "lo": -5, "mean": 0.0}),
        ([2**62, 2**62], {"n": 2, "total": 2**63, "hi": 2**62, "lo": 2**62, "mean": 2.0**62}),
        # floats: the float nearest the exact binary sum, as math.fsum (and Flink's doubles)
        ([0.1, 0.2], {"n": 2, "total": 0.30000000000000004, "hi": 0.2, "lo": 0.1,
                      "mean": 0.15000000000000002}),
        # beyond DynamoDB's 38 digits: 1.0 survives 1e39 - 1e39
        ([1.0, 1e39, -1e39], {"n": 3, "total": 1.0, "hi": 1e39, "lo": -1e39, "mean": 1 / 3}),
        ([2.5, 0.5], {"n": 2, "total": 3.0, "hi": 2.5, "lo": 0.5, "mean": 1.5}),
        # mixed: a float anywhere makes the sum a float; min/max keep the winner's type
        ([1, 2.5], {"n": 2, "total": 3.5, "hi": 2.5, "lo": 1, "mean": 1.75}),
        ([1, 2.0], {"n": 2, "total": 3.0, "hi": 2.0, "lo": 1, "mean": 1.5}),
        ([3, 3.0], {"n": 2, "total": 6.0, "hi": 3, "lo": 3, "mean": 3.0}),
        ([1, 2, 4], {"n": 3, "total": 7, "hi": 4, "lo": 1, "mean": 7 / 3}),
    ],
)
def test_builtin_aggregates(values: list[Number], expected: dict[str, Any]) -> None:
    assert_same_typed(results_of(values), expected)


@pytest.mark.parametrize(("kind", "values", "expected"), [
    ("number", [3], {"n": 1, "total": 3.0, "hi": 3.0, "lo": 3.0, "mean": 3.0}),
    ("number", [1, 2.5], {"n": 2, "total": 3.5, "hi": 2.5, "lo": 1.0, "mean": 1.75}),
    ("integer", [1, 2], {"n": 2, "total": 3, "hi": 2, "lo": 1, "mean": 1.5}),
])
def test_a_number_field_aggregates_to_floats_in_every_window_an_integer_one_to_ints(
    kind: str, values: list[Number], expected: dict[str, Any]
) -> None:
    # GIVEN the field's declared type WHEN a window holds only whole values THEN a `number`
    # field's sum, min and max are still floats (one type per result, whatever the window)
    pipeline = parse_pipeline(pipeline_spec(schema={
        "name": "Reading", "fields": {"user": "string", "ts": "timestamp", "v": kind}}))
    acc_set = AccumulatorSet(build_aggregates(pipeline))
    assert_same_typed(acc_set.results(fold(acc_set, values)), expected)


def test_empty_accumulator_results() -> None:
    # Empty windows are never emitted; the accumulator still answers without dividing by 0.
    assert results_of([]) == {"n": 0, "total": 0, "hi": None, "lo": None, "mean": None}


def test_absent_optional_values_are_skipped_but_counted_by_count() -> None:
    assert_same_typed(
        results_of([4, None, 2]), {"n": 3, "total": 6, "hi": 4, "lo": 2, "mean": 3.0}
    )


def test_aggregates_over_the_same_field_and_op_share_one_accumulator() -> None:
    pipeline = parse_pipeline(pipeline_spec(aggregates={
        "a": {"op": "sum", "field": "v"}, "b": {"op": "sum", "field": "v"},
        "c": {"op": "count"},
    }))
    acc_set = AccumulatorSet(build_aggregates(pipeline))

    acc = fold(acc_set, [1, 2])

    assert sorted(acc) == ["count:*", "sum:v"]
    assert acc_set.results(acc) == {"a": 3, "b": 3, "c": 2}


def test_state_names_change_with_their_meaning() -> None:
    names = {
        Count("x").state_name, Sum("x", "v").state_name, Sum("x", "w").state_name,
        Extreme("x", "v", largest=True).state_name, Extreme("x", "v", largest=False).state_name,
        Avg("x", "v").state_name,
    }
    assert len(names) == 6


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ([1, 2], [3], {"n": 3, "total": 6, "hi": 3, "lo": 1, "mean": 2.0}),
        ([0.5], [1], {"n": 2, "total": 1.5, "hi": 1, "lo": 0.5, "mean": 0.75}),
        ([], [7], {"n": 1, "total": 7, "hi": 7, "lo": 7, "mean": 7.0}),
        ([7], [], {"n": 1, "total": 7, "hi": 7, "lo": 7, "mean": 7.0}),
        ([-1, 10], [10.0, -1.0], {"n": 4, "total": 18.0, "hi": 10, "lo": -1, "mean": 4.5}),
    ],
)
def test_merge(left: list[Number], right: list[Number], expected: dict[str, Any]) -> None:
    acc_set = accumulators()

    merged = acc_set.merge(fold(acc_set, left), fold(acc_set, right))

    assert_same_typed(acc_set.results(merged), expected)


def test_merge_accepts_a_missing_side() -> None:
    acc_set = accumulators()
    acc = fold(acc_set, [2, 5])
    assert acc_set.results(acc_set.merge(None, acc)) == acc_set.results(acc)
    assert acc_set.results(acc_set.merge(acc, None)) == acc_set.results(acc)


def test_accumulators_survive_dynamodb_number_types() -> None:
    """State read back from DynamoDB holds Decimals, never floats or plain ints."""
    acc_set = accumulators()
    stored = {
        "count:*": Decimal(2),
        "sum:v": [Decimal("3.5"), True],
        "max:v": [Decimal(3), False],
        "min:v": [Decimal("0.5"), True],
        "avg:v": [Decimal("3.5"), Decimal(2)],
    }

    merged = acc_set.merge(stored, fold(acc_set, [1]))

    assert_same_typed(
        acc_set.results(merged), {"n": 3, "total": 4.5, "hi": 3, "lo": 0.5, "mean": 1.5}
    )


# -- laws -------------------------------------------------------------------------------------
# Sums are exact, so the laws demand equality, not closeness, over any finite values
# the schema accepts: ints are 64-bit (schemas/compile.py), floats bounded only so that a few
# dozen of them cannot overflow a double.
ints = st.one_of(st.integers(min_value=-(10**12), max_value=10**12),
                 st.integers(min_value=-(2**63), max_value=2**63 - 1))
floats = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**9).map(lambda i: i / 1000),
    st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False),
)
values = st.lists(st.one_of(ints, floats), max_size=12)


def _results(acc: dict[str, Any]) -> dict[str, Any]:
    return accumulators().results(acc)


@settings(max_examples=150, deadline=None)
@given(values, values, values)
def test_merge_is_associative(a: list[Number], b: list[Number], c: list[Number]) -> None:
    s = accumulators()
    x, y, z = fold(s, a), fold(s, b), fold(s, c)
    assert_same_typed(_results(s.merge(s.merge(x, y), z)), _results(s.merge(x, s.merge(y, z))))


@settings(max_examples=150, deadline=None)
@given(values, values)
def test_merge_is_commutative(a: list[Number], b: list[Number]) -> None:
    s = accumulators()
    x, y = fold(s, a), fold(s, b)
    assert_same_typed(_results(s.merge(x, y)), _results(s.merge(y, x)))


@settings(max_examples=150, deadline=None)
@given(values)
def test_empty_accumulator_is_the_identity(a: list[Number]) -> None:
    s = accumulators()
    x = fold(s, a)
    assert_same_typed(_results(s.merge(s.create(), x)), _results(x))
    assert_same_typed(_results(s.merge(x, s.create())), _results(x))


@settings(max_examples=150, deadline=None)
@given(values, st.lists(st.integers(min_value=0, max_value=12), max_size=5))
def test_results_do_not_depend_on_how_events_are_split_into_batches(
    events: list[Number], cuts: list[int]
) -> None:
    s = accumulators()
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    batches = [events[i:j] for i, j in pairwise(bounds)]

    merged = s.create()
    for batch in reversed(batches):  # and in another order than they arrived
        merged = s.merge(fold(s, batch), merged)

    assert_same_typed(_results(merged), _results(fold(s, events)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(ints, floats), min_size=1, max_size=12))
def test_results_match_exact_arithmetic(events: list[Number]) -> None:
    """A reference model: rational arithmetic on each value's exact binary value; a float
    sum is math.fsum's, to the bit, and the mean the float nearest the exact mean."""
    any_float = any(isinstance(v, float) for v in events)
    total = sum((Fraction(v) for v in events), Fraction(0))

    got = results_of(events)

    assert got["n"] == len(events)
    if any_float:
        assert _bits(got["total"]) == _bits(float(total))
        if all(abs(v) <= 2**53 for v in events if type(v) is int):
            assert _bits(got["total"]) == _bits(math.fsum(events))
    else:
        assert got["total"] == sum(events) and type(got["total"]) is int
    assert got["hi"] == max(events) and got["lo"] == min(events)
    assert _bits(got["mean"]) == _bits(float(total / len(events)))


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(ints, floats), min_size=1, max_size=30),
    st.lists(st.integers(min_value=0, max_value=30), max_size=8),
    st.randoms(use_true_random=False),
)
def test_float_sums_are_fsum_to_the_bit_whatever_the_split(
    events: list[Number], cuts: list[int], rnd: Any
) -> None:
    """Split into batches, each batch's events into panes (sub-groups), the partials then
    merged in a random order and round-tripped through DynamoDB's types: same bits."""
    s = accumulators()
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    partials = []
    for i, j in pairwise(bounds):
        batch = events[i:j]
        pane_cut = rnd.randint(0, len(batch))
        for pane in (batch[:pane_cut], batch[pane_cut:]):
            acc = s.create()
            s.add_events(acc, [{"v": v} for v in pane])  # the bulk path
            partials.append(_as_stored(acc))
    rnd.shuffle(partials)
    merged = s.create()
    for partial in partials:
        merged = _as_stored(s.merge(merged, partial))

    got, whole = _results(merged), _results(fold(s, events))
    assert _bits(got["mean"]) == _bits(whole["mean"])
    if any(isinstance(v, float) for v in events):
        exact_total = float(sum((Fraction(v) for v in events), Fraction(0)))
        assert _bits(got["total"]) == _bits(whole["total"]) == _bits(exact_total)
        if all(abs(v) <= 2**53 for v in events if type(v) is int):
            # math.fsum turns each int into a float first: exact only up to 2**53.
            assert _bits(got["total"]) == _bits(math.fsum(events))
    else:
        assert got["total"] == whole["total"] == sum(events)


def _as_stored(acc: dict[str, Any]) -> dict[str, Any]:
    """What DynamoDB gives back: ints as Decimals, strings as they were; 38 digits at most."""
    def number(v: Any) -> Any:
        if type(v) is int:
            assert abs(v) < 10**38, v  # DynamoDB refuses more digits
            return Decimal(v)
        return [number(x) for x in v] if type(v) is list else v
    return {k: number(v) for k, v in acc.items()}
