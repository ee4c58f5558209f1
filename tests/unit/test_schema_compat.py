"""`tidegate schemas check`: every Glue compatibility mode, one compatible and one breaking
change each, over JSON Schema and Avro versions; the CLI's exit code and message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidegate.schemas.definitions import AVRO, JSON_SCHEMA
from tidegate.schemas.registry import SchemaFile
from tidegate_dev.cli.main import main
from tidegate_dev.schemas.compat import Version, check


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON Schema object: `required` fields, then `optional` ones (type or full schema)."""
    def prop(kind: Any) -> dict[str, Any]:
        return kind if isinstance(kind, dict) else {"type": kind}

    fields = {**required, **(optional or {})}
    return {"type": "object", "properties": {k: prop(v) for k, v in fields.items()},
            "required": list(required)}


def versions(*definitions: dict[str, Any]) -> list[Version]:
    fmt = AVRO if definitions[0].get("type") == "record" else JSON_SCHEMA
    return [Version.of(SchemaFile(n, f"v{n}", fmt, d)) for n, d in enumerate(definitions, 1)]


V1 = obj({"user": "string", "v": "number"})
WITH_DEFAULT = obj({"user": "string", "v": "number"},
                   {"region": {"type": "string", "default": "eu"}})
WITHOUT_DEFAULT = obj({"user": "string", "v": "number", "region": "string"})
V_REMOVED = obj({"user": "string"})
# Consecutive versions are fine, v1 and v3 are not: x is a string in v1, an integer in v3.
X1 = obj({"user": "string"}, {"x": "string"})
X2 = obj({"user": "string"})
X3 = obj({"user": "string"}, {"x": {"type": "integer", "default": 0}})
TAIL_OK = obj({"user": "string"}, {"x": "string", "y": {"type": "integer", "default": 0}})


@pytest.mark.parametrize(
    ("mode", "history", "expected"),
    [
        ("BACKWARD", [V1, WITH_DEFAULT], []),
        ("BACKWARD", [V1, WITHOUT_DEFAULT], [
            "E v1 -> v2: field 'region' was added without a default "
            "(BACKWARD: readers of v2 cannot read v1 data)"]),
        ("BACKWARD_ALL", [X1, TAIL_OK, TAIL_OK], []),
        ("BACKWARD_ALL", [X1, X2, X3], [
            "E v1 -> v3: field 'x' changed type from string to integer "
            "(BACKWARD_ALL: readers of v3 cannot read v1 data)"]),
        ("FORWARD", [V1, WITHOUT_DEFAULT], []),
        ("FORWARD", [V1, V_REMOVED], [
            "E v1 -> v2: field 'v' was removed, and v1 requires it (no default) "
            "(FORWARD: readers of v1 cannot read v2 data)"]),
        ("FORWARD_ALL", [X1, TAIL_OK, TAIL_OK], []),
        ("FORWARD_ALL", [X1, X2, X3], [
            "E v1 -> v3: field 'x' changed type from string to integer "
            "(FORWARD_ALL: readers of v1 cannot read v3 data)"]),
        ("FULL", [V1, WITH_DEFAULT], []),
        ("FULL", [V1, WITHOUT_DEFAULT], [
            "E v1 -> v2: field 'region' was added without a default "
            "(FULL: readers of v2 cannot read v1 data)"]),
        ("FULL_ALL", [X1, TAIL_OK, TAIL_OK], []),
        ("FULL_ALL", [X1, X2, X3], [
            "E v1 -> v3: field 'x' changed type from string to integer "
            "(FULL_ALL: readers of v3 cannot read v1 data)",
            "E v1 -> v3: field 'x' changed type from string to integer "
            "(FULL_ALL: readers of v1 cannot read v3 data)"]),
        ("NONE", [V1, WITHOUT_DEFAULT, X3], []),
        ("DISABLED", [V1], []),
        ("DISABLED", [V1, WITH_DEFAULT], ["E v2: DISABLED allows no version after the first (v1)"]),
    ],
)
def test_json_schema_versions_under_every_mode(
    mode: str, history: list[dict[str, Any]], expected: list[str]
) -> None:
    assert check("E", versions(*history), mode) == expected


def test_the_non_all_modes_compare_consecutive_versions_only() -> None:
    for mode in ("BACKWARD", "FORWARD", "FULL"):
        assert check("E", versions(X1, X2, X3), mode) == []


def test_json_rules_on_required_enum_and_widening() -> None:
    old = obj({"n": "integer", "kind": {"enum": ["a", "b"]}}, {"note": "string"})
    new = obj({"n": "number", "kind": {"enum": ["a"]}, "note": "string"})
    assert check("E", versions(old, new), "FULL") == [
        "E v1 -> v2: field 'kind' lost enum symbols ['b'] (v1 has them, v2 not) "
        "(FULL: readers of v2 cannot read v1 data)",
        "E v1 -> v2: field 'note' became required (FULL: readers of v2 cannot read v1 data)",
        # integer -> number widens for new readers only
        "E v1 -> v2: field 'n' changed type from integer to number "
        "(FULL: readers of v1 cannot read v2 data)",
    ]


def record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "E", "fields": [
        {"name": "user", "type": "string"}, *fields]}


KIND = {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}


@pytest.mark.parametrize(
    ("mode", "history", "expected"),
    [
        # A field added with a default, even a null one, reads old data; without, it does not.
        ("BACKWARD", [record(), record({"name": "r", "type": ["null", "string"],
                                        "default": None})], []),
        ("BACKWARD", [record(), record({"name": "r", "type": ["null", "string"]})], [
            "E v1 -> v2: field 'r' was added without a default "
            "(BACKWARD: readers of v2 cannot read v1 data)"]),
        # int -> long is a promotion for new readers; old readers cannot narrow it back.
        ("BACKWARD", [record({"name": "n", "type": "int"}),
                      record({"name": "n", "type": "long"})], []),
        ("FORWARD", [record({"name": "n", "type": "int"}),
                     record({"name": "n", "type": "long"})], [
            "E v1 -> v2: field 'n' changed type from int to long "
            "(FORWARD: readers of v1 cannot read v2 data)"]),
        # string <-> bytes both ways; a new enum symbol breaks old readers only.
        ("FULL", [record({"name": "s", "type": "string"}),
                  record({"name": "s", "type": "bytes"})], []),
        ("FULL", [record({"name": "k", "type": KIND}),
                  record({"name": "k", "type": {**KIND, "symbols": ["a", "b", "c"]}})], [
            "E v1 -> v2: field 'k' gained enum symbols ['c'] (v2 has them, v1 not) "
            "(FULL: readers of v1 cannot read v2 data)"]),
        # ...unless the old reader's enum has a default for symbols it does not know.
        ("FORWARD", [record({"name": "k", "type": {**KIND, "default": "a"}}),
                     record({"name": "k", "type": {**KIND, "symbols": ["a", "b", "c"]}})], []),
        ("BACKWARD", [record({"name": "t", "type": {"type": "long",
                                                    "logicalType": "timestamp-millis"}}),
                      record({"name": "t", "type": "string"})], [
            "E v1 -> v2: field 't' changed type from long to string "
            "(BACKWARD: readers of v2 cannot read v1 data)"]),
    ],
)
def test_avro_versions_follow_avro_resolution(
    mode: str, history: list[dict[str, Any]], expected: list[str]
) -> None:
    assert check("E", versions(*history), mode) == expected


PIPELINE = """\
name: versioned
source: {type: kinesis, stream: events}
schema: {name: E, version: 2, registry: schemas, compatibility: FORWARD}
event_time: ts
key: [user]
window: {type: tumbling, size: 10s}
aggregates: {n: {op: count}}
sink: {type: kinesis, stream: results}
"""


def test_the_cli_exits_non_zero_naming_versions_field_and_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "schemas" / "E"
    folder.mkdir(parents=True)
    base = {"user": "string", "ts": "integer"}
    (folder / "v1.json").write_text(json.dumps(obj(base)))
    (folder / "v2.json").write_text(json.dumps(obj({**base, "region": "string"})))
    (tmp_path / "p.yaml").write_text(PIPELINE)
    path = str(tmp_path / "p.yaml")

    # The pipeline's own mode (FORWARD) accepts a required field added...
    assert main(["schemas", "check", path]) == 0
    assert capsys.readouterr().out == "E (v1, v2): compatible under FORWARD\n"
    # ...the default mode the command is given does not.
    assert main(["schemas", "check", path, "--mode", "BACKWARD"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "E v1 -> v2: field 'region' was added without a default "
        "(BACKWARD: readers of v2 cannot read v1 data)",
        "E (v1, v2): 1 breaking change(s) under BACKWARD",
    ]
