"""Every key the pipeline file accepts, read from the pydantic models in tidegate.spec.

One walk of the models serves the generated reference (docs), `tidegate validate`'s
duration warning and the test that the reference misses no key: the models are the
definition, so nothing here lists keys by hand.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, Tag
from pydantic_core import PydanticUndefined

from tidegate.durations import parse_duration_ms
from tidegate.spec import Pipeline

NAME = "<name>"  # a path segment the user chooses (an aggregate, a schema field)


@dataclass(frozen=True)
class Key:
    path: str  # dotted, as in the file: `window.size`, `aggregates.<name>.op`
    variant: str | None  # the branch it belongs to: `session`, `msk`, `folder`, ...
    type: str  # for people: `duration`, `"json" | "avro"`, `mapping`, ...
    required: bool
    default: Any  # PydanticUndefined when there is none
    duration: bool
    model: type[BaseModel]  # the model that declares it
    field: str  # its attribute name there

    @property
    def has_default(self) -> bool:
        return self.default is not PydanticUndefined and self.default is not None


def _is_duration(annotation: Any, metadata: list[Any]) -> bool:
    for item in metadata:
        if isinstance(item, BeforeValidator) and item.func is parse_duration_ms:
            return True
    if typing.get_origin(annotation) is Annotated:
        return _is_duration(typing.get_args(annotation)[0],
                            list(typing.get_args(annotation)[1:]))
    if _is_union(annotation):
        return any(_is_duration(arg, []) for arg in typing.get_args(annotation))
    return False


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _strip(annotation: Any) -> tuple[Any, str | None]:
    """(annotation without Annotated, its Tag if any)."""
    tag = None
    while typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation = args[0]
        tag = next((a.tag for a in args[1:] if isinstance(a, Tag)), tag)
    return annotation, tag


def _models(annotation: Any) -> list[tuple[type[BaseModel], str | None]]:
    """The models a field's value can be, each with its branch name."""
    annotation, tag = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, tag or _type_literal(annotation))]
    if _is_union(annotation):
        found: list[tuple[type[BaseModel], str | None]] = []
        for arg in typing.get_args(annotation):
            found += _models(arg)
        return found
    return []


def _type_literal(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is not None and typing.get_origin(field.annotation) is Literal:
        return str(typing.get_args(field.annotation)[0])
    return None


def describe_type(annotation: Any, duration: bool = False) -> str:
    if duration:
        return "duration"
    annotation, _ = _strip(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(f'"{v}"' if isinstance(v, str) else str(v)
                          for v in typing.get_args(annotation))
    if _is_union(annotation):
        parts = [describe_type(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " | ".join(dict.fromkeys(parts))
    if origin is list:
        return f"list of {describe_type(typing.get_args(annotation)[0])}"
    if origin is dict:
        return f"mapping of {describe_type(typing.get_args(annotation)[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {str: "string", int: "integer", float: "number", bool: "boolean",
            Any: "any"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _value_models(annotation: Any) -> tuple[list[tuple[type[BaseModel], str | None]], str]:
    """Models under a field, and the path segments between the field and them: dict values
    sit under a name the user chooses."""
    annotation, _ = _strip(annotation)
    if _is_union(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _value_models(args[0])
    if typing.get_origin(annotation) is dict:
        inner = typing.get_args(annotation)[1]
        return _models(inner), f".{NAME}"
    return _models(annotation), ""


def walk(model: type[BaseModel] = Pipeline, prefix: str = "",
         variant: str | None = None) -> list[Key]:
    keys: list[Key] = []
    for attribute, info in model.model_fields.items():
        name = info.alias or attribute
        path = f"{prefix}{name}"
        duration = _is_duration(info.annotation, list(info.metadata))
        keys.append(Key(
            path=path, variant=variant,
            type=describe_type(info.annotation, duration),
            required=info.is_required(), default=info.default, duration=duration,
            model=model, field=attribute,
        ))
        below, between = _value_models(info.annotation)
        for sub, branch in below:
            keys += walk(sub, f"{path}{between}.", branch)
    return keys


def accepted_paths() -> set[str]:
    """Every dotted path the models accept (branch names left out)."""
    return {key.path for key in walk()}


def duration_paths() -> set[str]:
    return {key.path for key in walk() if key.duration}
