"""Inline schema (pipeline file) -> pydantic model, built once per cold start."""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)
from pydantic_core import CoreSchema, core_schema

from tidegate.schemas.eventtime import MAX_EVENT_TIME_MS, to_epoch_ms

if TYPE_CHECKING:  # the pipeline model imports this module to check registry defaults
    from tidegate.spec import EnumField, InlineSchema

# DynamoDB Numbers span 1e-130..1e126 with 38 digits; sums of 64-bit integers stay exact.
_INT64 = 2**63
_NUMBER_LIMIT = 1e100
_NUMBER_FLOOR = 1e-100


def _int64(value: int) -> int:
    if not -_INT64 <= value < _INT64:
        raise ValueError("integer outside the signed 64-bit range")
    return value


def _finite_number(value: int | float) -> int | float:
    # Runs for every event: the common in-range values return after one test, and only the
    # rest take the checks below, which word the error.
    if type(value) is float:
        if _NUMBER_FLOOR <= abs(value) <= _NUMBER_LIMIT or value == 0.0:
            return value  # NaN and the infinities fail both tests
    elif type(value) is int and -_INT64 <= value < _INT64:
        return value
    return _checked_number(value)


def _checked_number(value: int | float) -> int | float:
    if isinstance(value, int):
        return _int64(value)
    if not math.isfinite(value):
        raise ValueError("number must be finite")
    magnitude = abs(value)
    if magnitude and not (_NUMBER_FLOOR <= magnitude <= _NUMBER_LIMIT):
        raise ValueError("number magnitude must be 0 or between 1e-100 and 1e100")
    return value


def _timestamp(value: object) -> int:
    """to_epoch_ms, with the common case (an in-range epoch-ms int) answered in one test."""
    if type(value) is int and 0 <= value <= MAX_EVENT_TIME_MS:
        return value
    return to_epoch_ms(value)


# Each Python validator above with the core schemas of its common inputs, which it returns
# unchanged: pydantic-core accepts these without calling into Python (`with_fast_inputs`).
_FAST_INPUTS: dict[Any, list[CoreSchema]] = {
    _timestamp: [core_schema.int_schema(strict=True, ge=0, le=MAX_EVENT_TIME_MS)],
    # Ints only: a float schema would also take a JSON integer (2**63 as 9.2e18, which the
    # model refuses).
    _finite_number: [core_schema.int_schema(strict=True, ge=-_INT64, lt=_INT64)],
    _int64: [core_schema.int_schema(strict=True, ge=-_INT64, lt=_INT64)],
}


def with_fast_inputs(schema: CoreSchema) -> CoreSchema:
    """A field's core schema that accepts the same inputs, as the same values: the common
    inputs of the validators above are tried first without calling into Python; any other
    input takes `schema` itself (always one of the union's choices)."""
    kind = schema.get("type")
    if kind in ("default", "nullable"):
        return {**schema, "schema": with_fast_inputs(schema["schema"])}
    if kind in ("function-before", "function-after"):
        fast = _FAST_INPUTS.get(schema["function"].get("function"))
        if fast is not None:
            return core_schema.union_schema([*fast, schema])
    return schema


_TYPES: dict[str, Any] = {
    "string": StrictStr,
    "integer": Annotated[StrictInt, AfterValidator(_int64)],
    "number": Annotated[StrictInt | StrictFloat, AfterValidator(_finite_number)],
    "boolean": StrictBool,
    "timestamp": Annotated[int, BeforeValidator(_timestamp)],
}


def _field_type(kind: str | EnumField) -> tuple[Any, bool]:
    if not isinstance(kind, str):  # {enum: [...]}
        return Literal[tuple(kind.enum)], kind.optional
    optional = kind.endswith("?")
    return _TYPES[kind.rstrip("?")], optional


def compile_inline(
    schema: InlineSchema, defaults: Mapping[str, Any] | None = None
) -> type[BaseModel]:
    """`defaults` (registry versions): what an absent optional field takes instead of None."""
    defaults = defaults or {}
    fields: dict[str, Any] = {}
    for name, kind in schema.fields.items():
        py_type, optional = _field_type(kind)
        fields[name] = (py_type | None, defaults.get(name)) if optional else (py_type, ...)
    # Unknown fields are ignored, not refused: producers may add fields before the schema does.
    config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=False)
    return create_model(f"{schema.name}V{schema.version}", __config__=config, **fields)


def import_ref(ref: str) -> type[BaseModel]:
    module_name, _, attr = ref.partition(":")
    model = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"schema.ref {ref!r} is not a pydantic model class")
    return model
