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
# Built-ins whose result keeps the type of the values unless the field is declared `number`
# (then always a float): their factories take `floats`.
_NUMBER_AWARE: dict[str, Callable[[str, str | None], AggregateFunction]] = {
    "sum": lambda name, field: Sum(name, field, floats=True),
    "min": lambda name, field: Extreme(name, field, largest=False, floats=True),
    "max": lambda name, field: Extreme(name, field, largest=True, floats=True),
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


def build(name: str, op: str, field: str | None, number: bool = False) -> AggregateFunction:
    """`number`: the field is declared `number` (a float, whatever a record writes)."""
    factory = _OPS.get(op)
    if factory is None:
        raise ConfigurationError(
            f"aggregates.{name}: unknown op {op!r} (use {', '.join(_OPS)})"
        )
    if number and op in _NUMBER_AWARE and factory is _BUILT_IN[op]:
        factory = _NUMBER_AWARE[op]
    return factory(name, field)


_BUILT_IN = dict(_OPS)


def build_aggregates(pipeline: Pipeline) -> list[AggregateFunction]:
    schema = pipeline.schema_
    field_type = getattr(schema, "field_type", None)  # a referenced model: not known here

    def number(field: str | None) -> bool:
        return field is not None and field_type is not None and field_type(field) == "number"

    return [build(name, spec.op, spec.field, number(spec.field))
            for name, spec in pipeline.aggregates.items()]
