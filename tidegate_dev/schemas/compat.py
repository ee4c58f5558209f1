"""Compatibility between schema versions, under the AWS Glue Schema Registry's modes.

"Version R can read data written with version W" is the one question; the modes say which
pairs must answer yes (Glue's CreateSchema documentation):

* BACKWARD: readers of the new version read data of the previous one (the default);
  BACKWARD_ALL: of every earlier one.
* FORWARD: readers of the previous version read data of the new one; FORWARD_ALL: readers
  of every earlier version do.
* FULL: both, with the previous version; FULL_ALL: both, with every earlier version.
* NONE: no check. DISABLED: no version after the first.

Two rule sets answer the question. Between two Avro versions, Avro's schema-resolution
rules: a reader field the writer lacks needs a default; types resolve as they are or by
promotion (int -> long -> float -> double, string <-> bytes); unions branch by branch; a
writer's enum symbols must all be the reader's unless the reader's enum has a default; named
types keep their names. Otherwise (JSON Schema, or a mix), the same rules on the field
dialect every version reduces to: a field the reader requires must be required by the
writer too (absent, it needs a default); integer widens to number and to timestamp; an enum
narrows to nothing the reader lacks. A field the reader does not know is ignored (open
content), as the runtime ignores it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tidegate.schemas.definitions import AVRO, parse_avro, to_fields
from tidegate.schemas.registry import SchemaFile

MODES = (
    "BACKWARD", "BACKWARD_ALL", "FORWARD", "FORWARD_ALL", "FULL", "FULL_ALL", "NONE", "DISABLED"
)


@dataclass(frozen=True)
class Version:
    number: int
    format: str
    source: Any  # the definition as written
    definition: Any  # Avro: parsed, named types expanded

    @classmethod
    def of(cls, file: SchemaFile) -> Version:
        definition = parse_avro(file.definition) if file.format == AVRO else file.definition
        return cls(file.version, file.format, file.definition, definition)

    @cached_property
    def fields(self) -> dict[str, Any]:
        """The field dialect (schemas/definitions.py); Avro pairs never need it."""
        return to_fields(self.format, self.source)[0]


@dataclass(frozen=True)
class Breach:
    """One way the `reader` version cannot read data written with `writer`."""

    schema: str
    reader: int
    writer: int
    field: str
    problem: str  # worded from the older version to the newer
    mode: str

    def __str__(self) -> str:
        old, new = sorted((self.reader, self.writer))
        return (
            f"{self.schema} v{old} -> v{new}: field {self.field!r} {self.problem} "
            f"({self.mode}: readers of v{self.reader} cannot read v{self.writer} data)"
        )


def pairs(numbers: list[int], mode: str) -> Iterator[tuple[int, int]]:
    """(reader, writer) pairs the mode requires to be compatible, newest versions last."""
    numbers = sorted(numbers)
    backward = mode.startswith(("BACKWARD", "FULL"))
    forward = mode.startswith(("FORWARD", "FULL"))
    for index in range(1, len(numbers)):
        new = numbers[index]
        olds = numbers[:index] if mode.endswith("_ALL") else [numbers[index - 1]]
        for old in reversed(olds):
            if backward:
                yield new, old
            if forward:
                yield old, new


def check(name: str, versions: list[Version], mode: str) -> list[str]:
    """Every breach of `mode` between the versions, as `tidegate schemas check` prints it."""
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r} (use {', '.join(MODES)})")
    by_number = {v.number: v for v in versions}
    if mode == "DISABLED":
        return [
            f"{name} v{n}: DISABLED allows no version after the first (v{min(by_number)})"
            for n in sorted(by_number)[1:]
        ]
    out: list[str] = []
    for reader, writer in pairs(list(by_number), mode):
        out += [str(b) for b in breaches(name, by_number[reader], by_number[writer], mode)]
    return out


def breaches(name: str, reader: Version, writer: Version, mode: str) -> list[Breach]:
    if reader.format == AVRO and writer.format == AVRO:
        found = _avro_record(reader.definition, writer.definition, reader, writer)
    else:
        found = _dialect(reader, writer)
    return [Breach(name, reader.number, writer.number, f, p, mode) for f, p in found]


# -- the field dialect (JSON Schema) ------------------------------------------------------
def _kind(kind: Any) -> tuple[str, bool, list[Any]]:
    """(type, optional, enum symbols) of one dialect field."""
    if isinstance(kind, dict):
        return "enum", bool(kind.get("optional")), list(kind["enum"])
    return kind.rstrip("?"), kind.endswith("?"), []


def _widens(old: str, new: str, symbols: list[Any]) -> bool:
    """Can a value of dialect type `old` be read as `new`? (enums are checked by symbol)"""
    if old == new:
        return True
    if old == "integer":
        return new in ("number", "timestamp")
    if old == "enum":
        if new == "string":
            return all(isinstance(s, str) for s in symbols)
        if new in ("integer", "number"):
            return all(isinstance(s, int) for s in symbols)
    return False


def _dialect(reader: Version, writer: Version) -> list[tuple[str, str]]:
    newer_reads = reader.number > writer.number
    out: list[tuple[str, str]] = []
    for field, kind in reader.fields.items():
        r_type, r_optional, r_symbols = _kind(kind)
        if field not in writer.fields:
            if not r_optional:
                out.append((field, _absent(reader, writer, newer_reads)))
            continue
        w_type, w_optional, w_symbols = _kind(writer.fields[field])
        old_type, new_type = (w_type, r_type) if newer_reads else (r_type, w_type)
        if not _widens(w_type, r_type, w_symbols):
            out.append((field, f"changed type from {old_type} to {new_type}"))
            continue
        if w_optional and not r_optional:
            out.append((field, "became required" if newer_reads else "became optional"))
        if w_type == r_type == "enum":
            missing = [s for s in w_symbols if s not in r_symbols]
            if missing:
                out.append((field, _symbols(missing, writer, reader, newer_reads)))
    return out


def _absent(reader: Version, writer: Version, newer_reads: bool) -> str:
    if newer_reads:
        return "was added without a default"
    return f"was removed, and v{reader.number} requires it (no default)"


def _symbols(missing: list[Any], writer: Version, reader: Version, newer_reads: bool) -> str:
    verb = "lost" if newer_reads else "gained"
    return f"{verb} enum symbols {missing} (v{writer.number} has them, v{reader.number} not)"


# -- Avro's resolution rules ----------------------------------------------------------------
_PROMOTIONS = {
    "int": ("long", "float", "double"),
    "long": ("float", "double"),
    "float": ("double",),
    "string": ("bytes",),
    "bytes": ("string",),
}
_NAMED = ("record", "enum", "fixed")


def _avro_kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema.get("type")
        # A primitive with attributes ({"type": "long", "logicalType": ...}) resolves as the
        # primitive: Avro's resolution rules ignore logical types.
        return kind if kind in (*_NAMED, "array", "map") else _avro_kind(kind)
    return str(schema)


def _show(schema: Any) -> str:
    kind = _avro_kind(schema)
    if kind == "union":
        return "[" + ", ".join(_show(s) for s in schema) + "]"
    if kind in _NAMED:
        return f"{kind} {_short(schema['name'])}"
    if kind == "array":
        return f"array of {_show(schema['items'])}"
    if kind == "map":
        return f"map of {_show(schema['values'])}"
    return kind


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _resolve(writer: Any, reader: Any, versions: tuple[Version, Version]) -> str | None:
    """None when data of `writer` type reads as `reader`, else why not (old -> new words)."""
    r_version, w_version = versions
    newer_reads = r_version.number > w_version.number
    w_kind, r_kind = _avro_kind(writer), _avro_kind(reader)
    if w_kind == "union":
        for branch in writer:
            reason = _resolve(branch, reader, versions)
            if reason:
                return reason
        return None
    if r_kind == "union":
        if any(_resolve(writer, branch, versions) is None for branch in reader):
            return None
        return _changed(writer, reader, newer_reads)
    if w_kind != r_kind and r_kind not in _PROMOTIONS.get(w_kind, ()):
        return _changed(writer, reader, newer_reads)
    if w_kind in _NAMED and _short(writer["name"]) != _short(reader["name"]):
        return _changed(writer, reader, newer_reads)
    if w_kind == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return _symbols(missing, w_version, r_version, newer_reads)
    if w_kind == "fixed" and writer.get("size") != reader.get("size"):
        return _changed(writer, reader, newer_reads)
    if w_kind == "array":
        return _resolve(writer["items"], reader["items"], versions)
    if w_kind == "map":
        return _resolve(writer["values"], reader["values"], versions)
    if w_kind == "record":
        problems = _avro_record(reader, writer, r_version, w_version)
        if problems:
            field, problem = problems[0]
            return f"(nested field {field!r}) {problem}"
    return None


def _changed(writer: Any, reader: Any, newer_reads: bool) -> str:
    old, new = (writer, reader) if newer_reads else (reader, writer)
    return f"changed type from {_show(old)} to {_show(new)}"


def _avro_record(
    reader: dict[str, Any], writer: dict[str, Any], r_version: Version, w_version: Version
) -> list[tuple[str, str]]:
    newer_reads = r_version.number > w_version.number
    written = {f["name"]: f for f in writer["fields"]}
    out: list[tuple[str, str]] = []
    for field in reader["fields"]:
        name = field["name"]
        if name not in written:
            if "default" not in field:
                out.append((name, _absent(r_version, w_version, newer_reads)))
            continue
        reason = _resolve(written[name]["type"], field["type"], (r_version, w_version))
        if reason:
            out.append((name, reason))
    return out
