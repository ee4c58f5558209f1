"""The pipeline file's JSON Schema, for editors (`tidegate schema-json`).

pydantic writes it from the models; the one thing it cannot know is that a duration is
parsed from a string before it becomes integer milliseconds, so durations are described
here as what the file accepts: `5s` or an integer.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from tidegate.durations import parse_duration_ms
from tidegate.spec import Pipeline

DURATION: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+\s*(ms|s|m|h|d)?\s*$"},
        {"type": "integer", "minimum": 0},
    ],
    "description": "250ms, 5s, 1m, 1h, 1d, or an integer of milliseconds",
}


class _FileSchema(GenerateJsonSchema):
    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if schema["function"].get("function") is parse_duration_ms:
            return dict(DURATION)
        return super().function_before_schema(schema)


def pipeline_json_schema() -> dict[str, Any]:
    schema = Pipeline.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FileSchema
    )
    # The model takes any string and checks it against the registry of ops: editors get
    # the registered names.
    from tidegate.aggregates.registry import ops

    schema["$defs"]["AggregateSpec"]["properties"]["op"]["enum"] = list(ops())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tidegate pipeline file"
    return schema


def schema_json() -> str:
    return json.dumps(pipeline_json_schema(), indent=2, sort_keys=False) + "\n"
