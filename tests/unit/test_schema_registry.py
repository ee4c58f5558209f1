"""The registry folder: versions read from files, reduced to the field dialect, embedded in
the spec (so the Lambda needs no files), and every problem named with its file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from tidegate.schemas.event_model import compile_schema
from tidegate.spec import (
    EnumField,
    PipelineError,
    RegistrySchema,
    load_pipeline_file,
    pipeline_from_json,
)
from tidegate_dev.cli.main import main

V1 = {
    "type": "object",
    "properties": {
        "user": {"type": "string"},
        "ts": {"type": ["integer", "string"], "format": "date-time"},
        "v": {"type": "number"},
    },
    "required": ["user", "ts", "v"],
}
V2 = {**V1, "properties": {**V1["properties"], "qty": {"type": "integer", "default": 1}}}
PIPELINE = """\
name: versioned
source: {type: kinesis, stream: events}
schema: {name: Reading, version: 2, registry: schemas/}
event_time: ts
key: [user]
window: {type: tumbling, size: 10s}
aggregates: {n: {op: count}, qty: {op: sum, field: qty}}
sink: {type: kinesis, stream: results}
"""


def write(folder: Path, files: dict[str, Any], pipeline: str = PIPELINE) -> Path:
    for name, content in files.items():
        path = folder / "schemas" / "Reading" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    (folder / "p.yaml").write_text(pipeline)
    return folder / "p.yaml"


def problems(path: Path) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        load_pipeline_file(path)
    return caught.value.problems


def test_every_version_is_embedded_and_travels_with_the_spec(tmp_path: Path) -> None:
    path = write(tmp_path, {"v1.json": V1, "v2.json": V2, "notes.md": "ignored"})
    pipeline = load_pipeline_file(path)

    # The Lambda gets the spec as JSON (TIDEGATE_PIPELINE), without the folder.
    shipped = pipeline_from_json(pipeline.to_json())
    schema = shipped.schema_
    assert isinstance(schema, RegistrySchema)
    assert sorted(schema.versions) == [1, 2]
    assert schema.versions[2].file == "schemas/Reading/v2.json"
    assert schema.inline(1).fields == {"user": "string", "ts": "timestamp", "v": "number"}
    assert schema.current.fields["qty"] == "integer?"
    assert schema.versions[2].defaults == {"qty": 1}
    # The pipeline's version compiles with its defaults.
    event = compile_schema(shipped).model_validate({"user": "u", "ts": 5, "v": 1.5})
    assert event.qty == 1


def test_avro_files_are_versions_too(tmp_path: Path) -> None:
    avsc = {"type": "record", "name": "Reading", "fields": [
        {"name": "user", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "v", "type": ["long", "double"]},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
        {"name": "qty", "type": "int", "default": 1},
    ]}
    pipeline = load_pipeline_file(write(tmp_path, {"v1.json": V1, "v2.avsc": avsc}))
    schema = pipeline.schema_
    assert isinstance(schema, RegistrySchema)
    assert schema.current.fields == {
        "user": "string", "ts": "timestamp", "v": "number",
        "kind": EnumField(enum=["a", "b"]), "qty": "integer?",
    }
    assert schema.versions[2].fingerprint and schema.versions[1].fingerprint is None


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    assert problems(path) == [
        "schema.registry: schemas/Reading: no such folder (expected v1.json, v2.json, ... "
        "or .avsc files there, relative to the pipeline file)"
    ]


def test_a_file_that_is_not_json_is_named_with_the_position(tmp_path: Path) -> None:
    path = write(tmp_path, {"v1.json": V1, "v2.json": '{"type": "object",\n  "properties" }'})
    [problem] = problems(path)
    assert problem.startswith("schema.registry: schemas/Reading/v2.json: not valid JSON: ")
    assert "line 2 column" in problem


def test_the_pipeline_version_must_be_in_the_folder(tmp_path: Path) -> None:
    path = write(tmp_path, {"v1.json": V1})
    assert problems(path) == ["schema: version: v2 is not in schemas/Reading (it has v1)"]


def test_a_field_the_dialect_cannot_hold_is_named_with_its_file(tmp_path: Path) -> None:
    tags = {**V2, "properties": {**V2["properties"], "tags": {"type": "array"}}}
    path = write(tmp_path, {"v1.json": V1, "v2.json": tags})
    assert problems(path) == [
        "schema.registry: schemas/Reading/v2.json: properties.tags: type 'array' is not "
        "supported (use string, integer, number, boolean, timestamp or enum)"
    ]


def test_a_default_its_field_refuses_is_named(tmp_path: Path) -> None:
    bad = {**V2, "properties": {**V2["properties"], "qty": {"type": "integer", "default": "1"}}}
    path = write(tmp_path, {"v1.json": V1, "v2.json": bad})
    assert problems(path) == [
        "schema: schemas/Reading/v2.json: default of qty: Input should be a valid integer"
    ]


def test_a_version_defined_twice_is_refused(tmp_path: Path) -> None:
    avsc = {"type": "record", "name": "Reading", "fields": [{"name": "user", "type": "string"}]}
    path = write(tmp_path, {"v1.json": V1, "v2.json": V2, "v2.avsc": avsc})
    assert problems(path) == [
        "schema.registry: schemas/Reading: v2 is defined twice (v2.avsc, v2.json)"
    ]


def test_the_pipeline_version_is_cross_checked_like_an_inline_schema(tmp_path: Path) -> None:
    path = write(tmp_path, {"v1.json": V1, "v2.json": V1})  # v2 lacks qty
    assert problems(path) == ["aggregates.qty.field: schema has no field 'qty'"]


class Click(BaseModel):
    user: str
    ts: int
    action: Literal["click", "purchase"]
    v: float
    note: str | None = None


def test_a_pydantic_model_exports_to_a_json_schema_the_registry_loads(tmp_path: Path) -> None:
    out = tmp_path / "schemas" / "Reading" / "v1.json"
    assert main(["schemas", "export", f"{__name__}:Click", "--out", str(out)]) == 0
    write(tmp_path, {}, PIPELINE.replace("version: 2", "version: 1").replace(
        "qty: {op: sum, field: qty}", "total: {op: sum, field: v}"))
    schema = load_pipeline_file(tmp_path / "p.yaml").schema_
    assert isinstance(schema, RegistrySchema)
    assert schema.current.fields == {
        "user": "string", "ts": "integer", "action": EnumField(enum=["click", "purchase"]),
        "v": "number", "note": "string?",
    }
