"""Avro records in the AWS Glue Schema Registry wire format (`format: avro`).

Wire format (the Glue serializers' `AWSSchemaRegistryConstants`):

| bytes | meaning                                                        |
|-------|----------------------------------------------------------------|
| 0     | header version, always 3                                       |
| 1     | compression: 0 none, 5 zlib (of the Avro body)                 |
| 2-17  | schema version id, a UUID (most significant half first)       |
| 18-   | the Avro binary encoding of one record (schemaless)            |

Each record names its writer schema version; the decoder fetches that version's definition
from Glue (`GetSchemaVersion`, once per version per cold start), accepts it only if it is a
version of the pipeline's schema, decodes with it, and then validates the values against the
pipeline's schema model exactly as JSON records are validated. So a record is aggregated,
dead-lettered or late for the same reasons whatever the format.

The pipeline's inline schema maps to Avro as: string -> string, integer -> long,
number -> [long, double] (an integer stays an integer, as it does in JSON), boolean ->
boolean, timestamp -> long with logicalType timestamp-millis (epoch milliseconds: an ISO-8601
value is converted before encoding, so event time is the same instant either way),
enum -> enum (or string/long when a symbol is not an Avro name); `?` -> union with null.

fastavro is imported on first use: JSON pipelines never pay for it.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tidegate import topology
from tidegate.rejections import (
    INVALID_AVRO,
    INVALID_TIMESTAMP,
    SCHEMA_VIOLATION,
    UNKNOWN_SCHEMA_VERSION,
    Rejected,
)
from tidegate.schemas.decode import Event, JsonDecoder, _describe
from tidegate.schemas.versions import Upgrader
from tidegate.spec import EnumField, InlineSchema, Pipeline, RegistrySchema

# Dead-letter reasons of Avro records. TODO(rejections.py owner): move next to the others.

HEADER_VERSION = 3
COMPRESSION_NONE = 0
COMPRESSION_ZLIB = 5
HEADER_BYTES = 18
# Kafka and Kinesis records hold about 1 MB; a body that inflates far past that is hostile.
MAX_INFLATED_BYTES = 16 * 1024 * 1024

_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES: dict[str, Any] = {
    "string": "string",
    "integer": "long",
    "number": ["long", "double"],
    "boolean": "boolean",
    "timestamp": {"type": "long", "logicalType": "timestamp-millis"},
}


# -- the pipeline schema as Avro ----------------------------------------------------------
def _avro_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if _AVRO_NAME.match(name) else f"_{name}"


def _enum_type(record: str, field: str, kind: EnumField) -> Any:
    symbols = kind.enum
    if all(isinstance(s, str) and _AVRO_NAME.match(s) for s in symbols):
        return {"type": "enum", "name": f"{record}_{field}", "symbols": list(symbols)}
    # Not expressible as Avro enum symbols: the schema model still checks membership.
    kinds = {"long" if isinstance(s, int) else "string" for s in symbols}
    return sorted(kinds) if len(kinds) > 1 else kinds.pop()


def avro_schema(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's inline schema (or its registry version) as an Avro record schema (what
    gets registered)."""
    schema = pipeline.schema_
    if isinstance(schema, RegistrySchema):
        return avro_record(schema.current)
    if not isinstance(schema, InlineSchema):
        raise ValueError("format: avro needs an inline schema (schema.fields) to register")
    return avro_record(schema)


def avro_record(schema: InlineSchema) -> dict[str, Any]:
    record = _avro_name(schema.name)
    fields: list[dict[str, Any]] = []
    for name, kind in schema.fields.items():
        if isinstance(kind, EnumField):
            avro_type = _enum_type(record, name, kind)
        else:
            avro_type = _PRIMITIVES[kind.rstrip("?")]
        if schema.is_optional(name):
            members = avro_type if isinstance(avro_type, list) else [avro_type]
            fields.append({"name": name, "type": ["null", *members], "default": None})
        else:
            fields.append({"name": name, "type": avro_type})
    return {
        "type": "record",
        "name": record,
        "namespace": "tidegate",
        "doc": f"{schema.name} version {schema.version}",
        "fields": fields,
    }


def _plain_timestamps(node: Any) -> Any:
    """Read timestamp-millis as the epoch-ms long it is: fastavro would build a datetime
    only for the schema model to turn it back into the same integer."""
    if isinstance(node, dict):
        if node.get("logicalType") == "timestamp-millis" and node.get("type") == "long":
            return "long"
        return {k: _plain_timestamps(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_timestamps(v) for v in node]
    return node


def parse_definition(definition: str | Mapping[str, Any]) -> Any:
    import fastavro

    schema = json.loads(definition) if isinstance(definition, str) else dict(definition)
    return fastavro.parse_schema(_plain_timestamps(schema))


# -- wire format --------------------------------------------------------------------------
def encode_record(parsed_schema: Any, values: Mapping[str, Any]) -> bytes:
    """Avro binary of one record (no container, no header). Raises ValueError/TypeError."""
    import fastavro

    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed_schema, dict(values))
    return out.getvalue()


def glue_frame(version_id: uuid.UUID | str, body: bytes, compress: bool = False) -> bytes:
    version = version_id if isinstance(version_id, uuid.UUID) else uuid.UUID(str(version_id))
    if compress:
        return bytes([HEADER_VERSION, COMPRESSION_ZLIB]) + version.bytes + zlib.compress(body)
    return bytes([HEADER_VERSION, COMPRESSION_NONE]) + version.bytes + body


def glue_unframe(raw: bytes) -> tuple[uuid.UUID, bytes]:
    """(schema version id, Avro body), or Rejected(invalid_avro) saying what is wrong."""
    if len(raw) < HEADER_BYTES:
        raise Rejected(
            INVALID_AVRO,
            f"{len(raw)} bytes: shorter than the {HEADER_BYTES}-byte Glue Schema Registry header",
        )
    if raw[0] != HEADER_VERSION:
        raise Rejected(
            INVALID_AVRO,
            f"not in the Glue Schema Registry wire format: header version byte is {raw[0]}, "
            f"expected {HEADER_VERSION}",
        )
    version = uuid.UUID(bytes=bytes(raw[2:HEADER_BYTES]))
    body = bytes(raw[HEADER_BYTES:])
    if raw[1] == COMPRESSION_NONE:
        return version, body
    if raw[1] == COMPRESSION_ZLIB:
        inflater = zlib.decompressobj()
        try:
            plain = inflater.decompress(body, MAX_INFLATED_BYTES)
        except zlib.error as exc:
            raise Rejected(INVALID_AVRO, f"zlib-compressed body does not inflate: {exc}") from None
        if inflater.unconsumed_tail:
            raise Rejected(INVALID_AVRO, f"body inflates past {MAX_INFLATED_BYTES} bytes")
        return version, plain
    raise Rejected(INVALID_AVRO, f"unknown compression byte {raw[1]} (0 none, 5 zlib)")


# -- schema versions ----------------------------------------------------------------------
def glue_schema_name(pipeline: Pipeline, env: Mapping[str, str] | None = None) -> str:
    env = env or {}
    if env.get(topology.ENV_SCHEMA_NAME):
        return env[topology.ENV_SCHEMA_NAME]
    return getattr(pipeline.schema_, "name", None) or pipeline.name


class GlueSchemas:
    """Writer schemas by version id, from the Glue Schema Registry, cached per cold start.

    Only versions of `registry/name` are accepted: a record written against another schema
    (a different topic's, a test schema) would decode to nonsense or to a wrong event.
    """

    def __init__(self, registry: str, name: str) -> None:
        self.registry = registry
        self.name = name
        self._cache: dict[uuid.UUID, Any] = {}

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline, env: Mapping[str, str]) -> GlueSchemas:
        registry = env.get(topology.ENV_SCHEMA_REGISTRY) or topology.DEFAULT_SCHEMA_REGISTRY
        return cls(registry, glue_schema_name(pipeline, env))

    def writer_schema(self, version_id: uuid.UUID) -> Any:
        cached = self._cache.get(version_id)
        if isinstance(cached, Rejected):
            raise cached
        if cached is not None:
            return cached
        try:
            parsed = self._fetch(version_id)
        except _Transient:
            raise
        except Rejected as rej:
            self._cache[version_id] = rej
            raise
        self._cache[version_id] = parsed
        return parsed

    def _fetch(self, version_id: uuid.UUID) -> Any:
        from tidegate.aws import client, error_code

        try:
            out = client("glue").get_schema_version(SchemaVersionId=str(version_id))
        except Exception as exc:
            if error_code(exc) == "EntityNotFoundException":
                raise Rejected(
                    UNKNOWN_SCHEMA_VERSION, f"schema version {version_id} is not registered"
                ) from None
            raise  # throttling, outage: the batch is retried, the record is not condemned
        arn = str(out.get("SchemaArn", ""))
        if not arn.endswith(f":schema/{self.registry}/{self.name}"):
            raise Rejected(
                UNKNOWN_SCHEMA_VERSION,
                f"schema version {version_id} belongs to {arn or 'another schema'}, "
                f"not {self.registry}/{self.name}",
            )
        if out.get("DataFormat") != "AVRO":
            raise Rejected(
                UNKNOWN_SCHEMA_VERSION,
                f"schema version {version_id} is {out.get('DataFormat')}, not AVRO",
            )
        status = out.get("Status")
        if status != "AVAILABLE":
            # Not remembered: a PENDING version becomes AVAILABLE once its check passes.
            raise _Transient(UNKNOWN_SCHEMA_VERSION, f"schema version {version_id} is {status}")
        try:
            return parse_definition(out["SchemaDefinition"])
        except Exception as exc:
            raise Rejected(
                UNKNOWN_SCHEMA_VERSION, f"schema version {version_id} is not valid Avro: {exc}"
            ) from None


class _Transient(Rejected):
    """A rejection that must not be remembered for the version id."""


class AvroDecoder(JsonDecoder):
    """Decodes base64 Glue-framed Avro records, then validates them as JSON records are."""

    def __init__(
        self,
        pipeline: Pipeline,
        model: type[BaseModel],
        schemas: GlueSchemas,
        upgrader: Upgrader | None = None,
    ) -> None:
        super().__init__(pipeline, model)
        self.schemas = schemas
        # Registry schemas: a writer schema is known by its fingerprint as one of the
        # registry's versions, and its records are upgraded from that version.
        self.upgrader = upgrader
        self._fingerprints: dict[str, int] = {}
        self._versions: dict[uuid.UUID, int] = {}
        schema = pipeline.schema_
        if upgrader is not None and isinstance(schema, RegistrySchema):
            from tidegate.schemas.registry import avro_fingerprint

            # A version is known by its .avsc file's fingerprint and by that of its fields
            # mapped to Avro as above (what `tidegate local run` registers).
            for number, spec in sorted(schema.versions.items()):
                marks = [avro_fingerprint(avro_record(schema.inline(number))), spec.fingerprint]
                for mark in filter(None, marks):
                    self._fingerprints.setdefault(mark, number)

    def _registry_version(self, version_id: uuid.UUID, writer: Any) -> int:
        number = self._versions.get(version_id)
        if number is None:
            from tidegate.schemas.registry import avro_fingerprint

            number = self._fingerprints.get(avro_fingerprint(writer))
            if number is None:
                assert self.upgrader is not None
                raise Rejected(
                    UNKNOWN_SCHEMA_VERSION,
                    f"schema version {version_id} matches no version of {self.upgrader.name} "
                    f"in the pipeline's registry ({self.upgrader.known})",
                )
            self._versions[version_id] = number
        return number

    def decode_bytes(self, raw: bytes) -> Event:
        import fastavro

        version, body = glue_unframe(raw)
        writer = self.schemas.writer_schema(version)
        stream = io.BytesIO(body)
        try:
            values = fastavro.schemaless_reader(stream, writer, None)
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
            raise Rejected(
                INVALID_AVRO,
                f"body does not decode with schema version {version}: "
                f"{type(exc).__name__}: {exc}"[:600],
            ) from None
        if stream.tell() != len(body):
            raise Rejected(
                INVALID_AVRO,
                f"{len(body) - stream.tell()} bytes left after the record "
                f"(schema version {version})",
            )
        if not isinstance(values, dict):
            raise Rejected(SCHEMA_VIOLATION, "(record): schema version is not an Avro record")
        if self.upgrader is not None:
            number = self._registry_version(version, writer)
            return self.to_event(self.upgrader.upgrade(values, number))
        try:
            obj = self.model.model_validate(values)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            if errors and all(e["loc"][:1] == (self.time_field,) for e in errors):
                raise Rejected(INVALID_TIMESTAMP, _describe(exc)) from None
            raise Rejected(SCHEMA_VIOLATION, _describe(exc)) from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # As in JSON mode: a validator error pydantic does not wrap is the record's fault.
            detail = f"(record): {type(exc).__name__}: {exc}"
            raise Rejected(SCHEMA_VIOLATION, detail[:600]) from None
        return self.to_event(obj)


__all__ = [
    "INVALID_AVRO",
    "UNKNOWN_SCHEMA_VERSION",
    "AvroDecoder",
    "GlueSchemas",
    "avro_record",
    "avro_schema",
    "encode_record",
    "glue_frame",
    "glue_schema_name",
    "glue_unframe",
    "parse_definition",
]
