"""`format: avro` in local runs: register the pipeline's schema in the (moto) Glue Schema
Registry and encode each event line in the Glue wire format against that version.

A line that is not a valid event (bad JSON, a schema violation) is sent as its raw bytes, so
it is dead-lettered as it would be in JSON mode. Lines are validated with the pipeline's own
schema model before encoding, because Avro is laxer in places (it would take `true` for a
long), and a line must be accepted or refused alike whatever the format.
"""

from __future__ import annotations

import json

from tidegate import topology
from tidegate.aws import client, error_code
from tidegate.schemas.avro import (
    avro_schema,
    encode_record,
    glue_frame,
    glue_schema_name,
    parse_definition,
)
from tidegate.schemas.event_model import compile_schema
from tidegate.spec import Pipeline


def register_schema(pipeline: Pipeline, registry: str = topology.DEFAULT_SCHEMA_REGISTRY) -> str:
    """Register the pipeline's schema (a new version if the name exists); return the
    schema version id. Glue returns the existing id for an identical definition."""
    glue = client("glue")
    name = glue_schema_name(pipeline)
    definition = json.dumps(avro_schema(pipeline), separators=(",", ":"))
    try:
        glue.create_registry(RegistryName=registry)
    except Exception as exc:
        if error_code(exc) != "AlreadyExistsException":
            raise
    try:
        out = glue.create_schema(
            RegistryId={"RegistryName": registry},
            SchemaName=name,
            DataFormat="AVRO",
            Compatibility="BACKWARD",
            SchemaDefinition=definition,
        )
    except Exception as exc:
        if error_code(exc) != "AlreadyExistsException":
            raise
        out = glue.register_schema_version(
            SchemaId={"RegistryName": registry, "SchemaName": name},
            SchemaDefinition=definition,
        )
    return str(out["SchemaVersionId"])


def encode_lines(pipeline: Pipeline, lines: list[bytes], version_id: str) -> list[bytes]:
    model = compile_schema(pipeline)
    parsed = parse_definition(avro_schema(pipeline))
    out: list[bytes] = []
    for line in lines:
        try:
            # The model's values: ISO times become epoch ms, unknown fields are dropped.
            values = model.model_validate_json(line).model_dump()
            out.append(glue_frame(version_id, encode_record(parsed, values)))
        except Exception:  # anything a producer could not encode goes as it is
            out.append(line)
    return out
