"""The aggregate registry: the ops a pipeline may name; unknown ops are refused by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support import pipeline_spec
from tidegate.aggregates import registry
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.errors import ConfigurationError
from tidegate.spec import PipelineError, parse_pipeline


def test_an_unknown_op_is_refused_in_the_file_naming_the_known_ones() -> None:
    with pytest.raises(PipelineError) as error:
        parse_pipeline(pipeline_spec(aggregates={"m": {"op": "median", "field": "v"}}))
    assert "aggregates.m.op: unknown op 'median' (use count, sum, min, max, avg)" in str(
        error.value)


def test_build_refuses_an_unknown_op_instead_of_taking_another() -> None:
    with pytest.raises(ConfigurationError, match="unknown op 'median'"):
        registry.build("m", "median", "v")
    assert type(registry.build("m", "avg", "v")).__name__ == "Avg"


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    field: str | None

    @property
    def state_name(self) -> str:
        return f"product:{self.field}"

    def create(self) -> int:
        return 1

    def add(self, acc: int, value: Any) -> int:
        return int(acc) * value

    def add_all(self, acc: int, values: list[Any]) -> int:
        for value in values:
            acc = self.add(acc, value)
        return acc

    def merge(self, a: int, b: int) -> int:
        return int(a) * int(b)

    def result(self, acc: int) -> int:
        return int(acc)


@pytest.fixture
def product_op(monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry is process-wide: give this test copies it may change.
    monkeypatch.setattr(registry, "_OPS", dict(registry._OPS))
    monkeypatch.setattr(registry, "_NEED_FIELD", set(registry._NEED_FIELD))
    monkeypatch.setattr(registry, "_NUMERIC", set(registry._NUMERIC))
    registry.register("product", Product)


@pytest.mark.usefixtures("product_op")
def test_a_registered_op_is_accepted_by_the_file_and_aggregates() -> None:
    pipeline = parse_pipeline(pipeline_spec(aggregates={
        "p": {"op": "product", "field": "v"}, "n": {"op": "count"}}))
    acc_set = AccumulatorSet(registry.build_aggregates(pipeline))
    left, right = acc_set.create(), acc_set.create()
    acc_set.add_events(left, [{"v": 2}, {"v": 3}, {"v": 5}])
    acc_set.add_event(right, {"v": 7})

    assert acc_set.results(acc_set.merge(left, right)) == {"p": 210, "n": 4}
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register("product", Product)
    with pytest.raises(PipelineError, match="`product` needs a `field`"):
        parse_pipeline(pipeline_spec(aggregates={"p": {"op": "product"}}))
