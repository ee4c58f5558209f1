"""The pydantic model of a pipeline's events: its inline fields, a registry version, or a
model class named by `ref`."""

from __future__ import annotations

from pydantic import BaseModel

from tidegate.schemas.compile import compile_inline, import_ref
from tidegate.spec import Pipeline, RefSchema, RegistrySchema


def compile_schema(pipeline: Pipeline) -> type[BaseModel]:
    schema = pipeline.schema_
    if isinstance(schema, RefSchema):
        return import_ref(schema.ref)
    if isinstance(schema, RegistrySchema):
        return compile_version(schema, schema.version)
    return compile_inline(schema)


def compile_version(schema: RegistrySchema, version: int) -> type[BaseModel]:
    return compile_inline(schema.inline(version), schema.versions[version].defaults)
