"""A registry schema file (JSON Schema or Avro) -> the pipeline's field dialect.

The dialect is the inline schema's (shared/CONTRACT.md): string, integer, number, boolean,
timestamp, `{enum: [...]}`, a trailing `?` for optional. Every version of a schema is
reduced to it, so each version compiles to a validating model exactly as an inline schema
does, and the Lambda needs neither the files nor a JSON Schema library.

A field with a default may be absent (it then takes the default), so it is optional in the
dialect. What the dialect cannot express (nested objects, arrays, bytes, `$ref`s outside the
document) is refused with the field named: such a schema would validate less than it says.

Nothing here imports the pipeline models: spec.py builds on this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSON_SCHEMA = "json-schema"
AVRO = "avro"

_SUPPORTED = "string, integer, number, boolean, timestamp or enum"


class DefinitionError(ValueError):
    """A schema definition the dialect cannot hold; the message names the field."""


Fields = dict[str, Any]  # field -> "type", "type?" or {"enum": [...], "optional": bool}


# -- JSON Schema --------------------------------------------------------------------------
def _resolve_ref(root: Mapping[str, Any], node: Mapping[str, Any], where: str) -> Any:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            defs = root.get(prefix[2:-1]) or {}
            target = defs.get(ref[len(prefix):])
            if isinstance(target, Mapping):
                return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    raise DefinitionError(f"{where}: $ref {ref!r} does not point into this document's $defs")


def _json_members(root: Mapping[str, Any], prop: Any, where: str) -> list[Mapping[str, Any]]:
    """The alternatives of one property: anyOf/oneOf branches (pydantic writes Optional[X] as
    anyOf [X, null]), each with its `$ref` resolved."""
    if not isinstance(prop, Mapping):
        raise DefinitionError(f"{where}: must be a JSON Schema object")
    prop = _resolve_ref(root, prop, where)
    branches = prop.get("anyOf") or prop.get("oneOf")
    if branches is None:
        return [prop]
    members: list[Mapping[str, Any]] = []
    for branch in branches:
        members += _json_members(root, branch, where)
    return members


def _json_field(root: Mapping[str, Any], prop: Any, where: str) -> tuple[Any, bool]:
    """(dialect type, nullable) of one JSON Schema property."""
    types: set[str] = set()
    symbols: list[Any] = []
    date_time = False
    for member in _json_members(root, prop, where):
        if "enum" in member or "const" in member:
            values = member["enum"] if "enum" in member else [member["const"]]
            symbols += [v for v in values if v is not None]
            types |= {"null"} if None in values else set()
            continue
        kind = member.get("type")
        kinds = [kind] if isinstance(kind, str) else list(kind or [])
        if not kinds:
            raise DefinitionError(f"{where}: has no `type` (use {_SUPPORTED})")
        types |= set(kinds)
        date_time = date_time or member.get("format") == "date-time"
    nullable = "null" in types
    types.discard("null")
    if symbols:
        if types - {"string", "integer"} or any(isinstance(s, (bool, float)) for s in symbols):
            raise DefinitionError(f"{where}: enums hold strings or integers only")
        return {"enum": list(dict.fromkeys(symbols))}, nullable
    if date_time and types <= {"string", "integer"}:
        return "timestamp", nullable
    for dialect, accepted in (
        ("string", {"string"}),
        ("integer", {"integer"}),
        ("number", {"number", "integer"}),
        ("boolean", {"boolean"}),
    ):
        if types and types <= accepted and (dialect != "number" or "number" in types):
            return dialect, nullable
    raise DefinitionError(
        f"{where}: type {sorted(types) if len(types) > 1 else next(iter(types), None)!r} "
        f"is not supported (use {_SUPPORTED})"
    )


def from_json_schema(schema: Any) -> tuple[Fields, dict[str, Any]]:
    """An object JSON Schema -> (fields, defaults)."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise DefinitionError('(top level): must be an object schema ({"type": "object", ...})')
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise DefinitionError("properties: must name at least one field")
    required = set(schema.get("required") or [])
    unknown = sorted(required - set(properties))
    if unknown:
        raise DefinitionError(f"required: names fields that are not properties: {unknown}")
    fields: Fields = {}
    defaults: dict[str, Any] = {}
    for name, prop in properties.items():
        kind, nullable = _json_field(schema, prop, f"properties.{name}")
        if isinstance(prop, Mapping) and "default" in prop and prop["default"] is not None:
            defaults[name] = prop["default"]
        optional = nullable or name not in required or name in defaults
        fields[name] = _with_optional(kind, optional)
    return fields, defaults


# -- Avro -------------------------------------------------------------------------------
_AVRO_PRIMITIVES = {
    "string": "string",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
}


def _avro_field(kind: Any, where: str) -> tuple[Any, bool]:
    """(dialect type, nullable) of one Avro field type (parsed with named types expanded)."""
    if isinstance(kind, list):
        members = [m for m in kind if m != "null"]
        nullable = len(members) < len(kind)
        dialects = [_avro_field(m, where)[0] for m in members]
        if len(dialects) == 1:
            return dialects[0], nullable
        if dialects and set(dialects) <= {"integer", "number"}:
            return "number", nullable  # [long, double]: an integer stays an integer
        raise DefinitionError(f"{where}: union {kind!r} is not supported (use {_SUPPORTED})")
    if isinstance(kind, Mapping):
        if kind.get("logicalType") in ("timestamp-millis", "timestamp-micros") and kind.get(
            "type"
        ) == "long":
            if kind["logicalType"] == "timestamp-micros":
                raise DefinitionError(f"{where}: timestamp-micros is not supported (use millis)")
            return "timestamp", False
        if kind.get("type") == "enum":
            return {"enum": list(kind.get("symbols") or [])}, False
        if isinstance(kind.get("type"), str) and kind["type"] in _AVRO_PRIMITIVES:
            return _AVRO_PRIMITIVES[kind["type"]], False
        raise DefinitionError(
            f"{where}: Avro type {kind.get('type')!r} is not supported (use {_SUPPORTED})"
        )
    if kind in _AVRO_PRIMITIVES:
        return _AVRO_PRIMITIVES[kind], False
    raise DefinitionError(f"{where}: Avro type {kind!r} is not supported (use {_SUPPORTED})")


def parse_avro(schema: Any) -> Any:
    """fastavro's parse (which validates the schema) with named types expanded in place."""
    import fastavro

    try:
        return fastavro.parse_schema(schema, expand=True)
    except Exception as exc:  # fastavro raises SchemaParseException, ValueError, KeyError...
        raise DefinitionError(f"(top level): not a valid Avro schema: {exc}") from None


def from_avro(schema: Any) -> tuple[Fields, dict[str, Any]]:
    """An Avro record schema -> (fields, defaults)."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        raise DefinitionError('(top level): must be an Avro record ({"type": "record", ...})')
    parsed = parse_avro(schema)
    fields: Fields = {}
    defaults: dict[str, Any] = {}
    for field in parsed["fields"]:
        name = field["name"]
        kind, nullable = _avro_field(field["type"], f"fields.{name}")
        if field.get("default") is not None:
            defaults[name] = field["default"]
        fields[name] = _with_optional(kind, nullable or "default" in field)
    return fields, defaults


def to_fields(fmt: str, definition: Any) -> tuple[Fields, dict[str, Any]]:
    if fmt == AVRO:
        return from_avro(definition)
    return from_json_schema(definition)


def _with_optional(kind: Any, optional: bool) -> Any:
    if isinstance(kind, dict):
        return {**kind, "optional": True} if optional else kind
    return f"{kind}?" if optional else kind
