"""Inline schema (pipeline file) -> pydantic model, built once per cold start."""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

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

from tidegate.schemas.eventtime import to_epoch_ms
from tidegate.spec import EnumField, InlineSchema, Pipeline, RefSchema, RegistrySchema

# DynamoDB Numbers span 1e-130..1e126 with 38 digits; sums of 64-bit integers stay exact.
_INT64 = 2**63
_NUMBER_LIMIT = 1e100
_NUMBER_FLOOR = 1e-100


def _int64(value: int) -> int:
    if not -_INT64 <= value < _INT64:
        raise ValueError("integer outside the signed 64-bit range")
    return value


def _finite_number(value: int | float) -> int | float:
    if isinstance(value, int):
        return _int64(value)
    if not math.isfinite(value):
        raise ValueError("number must be finite")
    magnitude = abs(value)
    if magnitude and not (_NUMBER_FLOOR <= magnitude <= _NUMBER_LIMIT):
        raise ValueError("number magnitude must be 0 or between 1e-100 and 1e100")
    return value


_TYPES: dict[str, Any] = {
    "string": StrictStr,
    "integer": Annotated[StrictInt, AfterValidator(_int64)],
    "number": Annotated[StrictInt | StrictFloat, AfterValidator(_finite_number)],
    "boolean": StrictBool,
    "timestamp": Annotated[int, BeforeValidator(to_epoch_ms)],
}


def _field_type(kind: str | EnumField) -> tuple[Any, bool]:
    if isinstance(kind, EnumField):
        return Literal[tuple(kind.enum)], kind.optional  # type: ignore[valid-type]
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


def compile_schema(pipeline: Pipeline) -> type[BaseModel]:
    schema = pipeline.schema_
    if isinstance(schema, RefSchema):
        return import_ref(schema.ref)
    if isinstance(schema, RegistrySchema):
        return compile_version(schema, schema.version)
    return compile_inline(schema)


def compile_version(schema: RegistrySchema, version: int) -> type[BaseModel]:
    return compile_inline(schema.inline(version), schema.versions[version].defaults)
