"""The aggregate ops a pipeline may name, and the function each one builds.

`count`, `sum`, `min`, `max` and `avg` are built in; `register` adds another (an
AggregateFunction factory), and the pipeline file accepts its name from then on. An op no
one registered is refused by name, never taken for another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tidegate.aggregates.base import AggregateFunction
from tidegate.aggregates.builtin import Avg, Count, Extreme, Sum
from tidegate.errors import ConfigurationError

if TYPE_CHECKING:
    from tidegate.spec import Pipeline

# (aggregate name, field or None) -> the function
Factory = Callable[[str, str | None], AggregateFunction]

_OPS: dict[str, Factory] = {
    "count": Count,
    "sum": Sum,
    "min": lambda name, field: Extreme(name, field, largest=False),
    "max": lambda name, field: Extreme(name, field, largest=True),
    "avg": Avg,
}
# Ops that need a field (count may count events), and ops whose field must be numeric.
_NEED_FIELD = {"sum", "min", "max", "avg"}
_NUMERIC = {"sum", "min", "max", "avg"}


def register(op: str, factory: Factory, needs_field: bool = True, numeric: bool = True) -> None:
    """Make `op` a name the pipeline file accepts, built by `factory(name, field)`."""
    if op in _OPS:
        raise ConfigurationError(f"aggregate op {op!r} is already registered")
    _OPS[op] = factory
    if needs_field:
        _NEED_FIELD.add(op)
    if numeric:
        _NUMERIC.add(op)


def ops() -> tuple[str, ...]:
    return tuple(_OPS)


def needs_field(op: str) -> bool:
    return op in _NEED_FIELD


def numeric(op: str) -> bool:
    """Whether the op's field must be a number (integer, number or timestamp)."""
    return op in _NUMERIC


def build(name: str, op: str, field: str | None) -> AggregateFunction:
    factory = _OPS.get(op)
    if factory is None:
        raise ConfigurationError(
            f"aggregates.{name}: unknown op {op!r} (use {', '.join(_OPS)})"
        )
    return factory(name, field)


def build_aggregates(pipeline: Pipeline) -> list[AggregateFunction]:
    return [build(name, spec.op, spec.field) for name, spec in pipeline.aggregates.items()]
