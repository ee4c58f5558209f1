"""The aggregate-function contract.

Accumulators are plain values DynamoDB can store (int, Decimal, str, bool, None, lists of them),
so the same value travels from the in-memory pre-aggregation to the state table unchanged.
`merge` is required: panes and sessions are merged at close time, and redelivered batches
are merged into stored state.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

# The last float `comparable` converted, with its Decimal: the aggregates of one field (min
# and max of `value`) each convert the same float object in turn. Holding the float keeps its
# identity from being reused; one tuple, swapped whole, so threads never see half of it.
_last_converted: list[tuple[float, Decimal]] = [(0.0, Decimal("0.0"))]


def comparable(value: int | float | Decimal) -> int | Decimal:
    """An event value as a comparable accumulator number (min/max): ints stay ints, floats by
    their repr, which converts back to the same float."""
    if isinstance(value, float):
        last = _last_converted[0]
        if last[0] is value:
            return last[1]
        converted = Decimal(repr(value))
        _last_converted[0] = (value, converted)
        return converted
    return value


def plain(value: int | Decimal, is_float: bool) -> int | float:
    """Accumulator number -> JSON number: integers stay integers unless a float took part."""
    if is_float:
        return float(value)
    return int(value)


class AggregateFunction(Protocol):
    """One aggregate of a pipeline, split as Flink splits one: create an empty accumulator,
    add values to it, merge two, render the result. `state_name` names the accumulator in
    stored state and changes whenever its meaning does; aggregates with the same
    `state_name` share one accumulator."""

    @property
    def name(self) -> str: ...

    @property
    def field(self) -> str | None: ...

    @property
    def state_name(self) -> str: ...

    def create(self) -> Any: ...

    def add(self, acc: Any, value: Any) -> Any: ...

    def add_all(self, acc: Any, values: list[Any]) -> Any:
        """`add` of each value in turn (the result must be exactly that)."""
        ...

    def merge(self, a: Any, b: Any) -> Any: ...

    def result(self, acc: Any) -> Any: ...
