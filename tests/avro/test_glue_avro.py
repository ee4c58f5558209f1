"""The Glue Schema Registry wire format, the pipeline schema as Avro, and the Avro decoder's
verdicts (which must equal the JSON decoder's for the same event)."""

from __future__ import annotations

import base64
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import BASE_MS as B
from tests.support import line
from tidegate.rejections import Rejected
from tidegate.schemas.avro import (
    INVALID_AVRO,
    UNKNOWN_SCHEMA_VERSION,
    AvroDecoder,
    GlueSchemas,
    avro_schema,
    encode_record,
    glue_frame,
    glue_unframe,
    parse_definition,
)
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.spec import Pipeline

VERSION = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")


# -- wire format ---------------------------------------------------------------------------
def test_the_header_is_version_3_compression_0_then_the_uuid() -> None:
    framed = glue_frame(VERSION, b"\x02ab")
    assert framed[:2] == b"\x03\x00"
    assert framed[2:18] == bytes.fromhex("123456789abcdef0123456789abcdef0")
    assert framed[18:] == b"\x02ab"
    assert glue_unframe(framed) == (VERSION, b"\x02ab")


def test_a_zlib_body_has_compression_byte_5_and_round_trips() -> None:
    body = b"avro body " * 50
    framed = glue_frame(str(VERSION), body, compress=True)
    assert framed[1] == 5 and framed[18:] == zlib.compress(body)
    assert glue_unframe(framed) == (VERSION, body)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "shorter than the 18-byte"),
        (b'{"user": "u1", "ts": 1, "v": 2}', "header version byte is 123, expected 3"),
        (b"\x03\x01" + VERSION.bytes + b"x", "unknown compression byte 1"),
        (b"\x03\x05" + VERSION.bytes + b"not zlib", "does not inflate"),
    ],
    ids=["empty", "json", "compression", "bad-zlib"],
)
def test_a_record_not_in_the_wire_format_is_invalid_avro(raw: bytes, says: str) -> None:
    with pytest.raises(Rejected) as caught:
        glue_unframe(raw)
    assert caught.value.reason == INVALID_AVRO
    assert says in caught.value.detail


# -- schema mapping and decoding -----------------------------------------------------------
class FixedSchemas(GlueSchemas):
    """The registry, reduced to a dict: version id -> definition."""

    def __init__(self, definitions: dict[uuid.UUID, Any]) -> None:
        super().__init__("tidegate", "Reading")
        self.definitions = definitions

    def _fetch(self, version_id: uuid.UUID) -> Any:
        if version_id not in self.definitions:
            raise Rejected(UNKNOWN_SCHEMA_VERSION, f"{version_id} is not registered")
        return parse_definition(self.definitions[version_id])


@pytest.fixture
def pipeline(make_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return make_pipeline(
        format="avro",
        schema={"name": "Reading", "version": 1, "fields": {
            "user": "string", "ts": "timestamp", "v": "number",
            "kind": {"enum": ["click", "buy"], "optional": True}, "note": "string?",
        }},
    )


def _decoders(pipeline: Pipeline) -> tuple[JsonDecoder, AvroDecoder]:
    model = compile_schema(pipeline)
    schemas = FixedSchemas({VERSION: avro_schema(pipeline)})
    return JsonDecoder(pipeline, model), AvroDecoder(pipeline, model, schemas)


def _avro(pipeline: Pipeline, values: dict[str, Any], version: uuid.UUID = VERSION) -> str:
    body = encode_record(parse_definition(avro_schema(pipeline)), values)
    return base64.b64encode(glue_frame(version, body)).decode()


def test_the_inline_schema_maps_to_an_avro_record(pipeline: Pipeline) -> None:
    assert avro_schema(pipeline)["fields"] == [
        {"name": "user", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "v", "type": ["long", "double"]},
        {"name": "kind", "type": ["null", {"type": "enum", "name": "Reading_kind",
                                           "symbols": ["click", "buy"]}], "default": None},
        {"name": "note", "type": ["null", "string"], "default": None},
    ]


@pytest.mark.parametrize("v", [7, 2.5, 7.0, -3])
def test_an_avro_record_decodes_to_the_event_its_json_line_does(
    pipeline: Pipeline, v: int | float
) -> None:
    json_decoder, avro_decoder = _decoders(pipeline)
    expected = json_decoder.decode_bytes(line("u1", B + 5, v))
    got = avro_decoder.decode_b64(_avro(pipeline, {"user": "u1", "ts": B + 5, "v": v,
                                                   "kind": "buy", "note": None}))
    assert got == expected
    assert type(got.values["v"]) is type(v)  # an integer stays an integer


def test_an_unregistered_schema_version_is_dead_lettered_with_its_reason(
    pipeline: Pipeline,
) -> None:
    _, decoder = _decoders(pipeline)
    other = uuid.uuid4()
    with pytest.raises(Rejected) as caught:
        decoder.decode_b64(_avro(pipeline, {"user": "u", "ts": 1, "v": 1}, version=other))
    assert caught.value.reason == UNKNOWN_SCHEMA_VERSION


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda raw: raw[:-2], INVALID_AVRO),  # truncated body
        (lambda raw: raw + b"\x00\x00", INVALID_AVRO),  # bytes after the record
        (lambda raw: b"\x03\x00" + VERSION.bytes + b"\x80", INVALID_AVRO),  # bad varint
    ],
    ids=["truncated", "trailing", "garbage"],
)
def test_a_body_that_does_not_decode_is_invalid_avro(
    pipeline: Pipeline, mangle: Callable[[bytes], bytes], reason: str
) -> None:
    _, decoder = _decoders(pipeline)
    raw = base64.b64decode(_avro(pipeline, {"user": "u1", "ts": B, "v": 1.5}))
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(mangle(raw))
    assert caught.value.reason == reason


def test_values_the_avro_schema_allows_are_still_checked_by_the_pipeline_schema(
    pipeline: Pipeline,
) -> None:
    # GIVEN a writer schema (another version of the schema) that lets `kind` be any string
    loose = avro_schema(pipeline)
    loose["fields"][3] = {"name": "kind", "type": ["null", "string"], "default": None}
    model = compile_schema(pipeline)
    decoder = AvroDecoder(pipeline, model, FixedSchemas({VERSION: loose}))
    body = encode_record(parse_definition(loose), {"user": "u1", "ts": B, "v": 1, "kind": "x"})
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(glue_frame(VERSION, body))
    assert (caught.value.reason, caught.value.detail.split(":")[0]) == ("schema_violation", "kind")
    # AND a time before 1970 is an invalid timestamp, as in JSON
    body = encode_record(parse_definition(loose), {"user": "u1", "ts": -1, "v": 1})
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(glue_frame(VERSION, body))
    assert caught.value.reason == "invalid_timestamp"


# -- resolving versions through Glue (moto, in-process) -----------------------------------
@pytest.fixture
def glue() -> Iterator[Any]:
    import os

    from moto import mock_aws

    from tidegate.aws import client, reset_clients

    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    with mock_aws():
        reset_clients()
        yield client("glue")
    reset_clients()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_glue_versions_resolve_once_and_only_for_the_pipelines_schema(
    glue: Any, pipeline: Pipeline
) -> None:
    from tidegate_dev.local.glue import register_schema

    # GIVEN the pipeline's schema and an unrelated one in the same registry
    version = uuid.UUID(register_schema(pipeline))
    other = glue.create_schema(
        RegistryId={"RegistryName": "tidegate"}, SchemaName="Other", DataFormat="AVRO",
        Compatibility="NONE",
        SchemaDefinition='{"type": "record", "name": "Other", "fields": []}',
    )["SchemaVersionId"]
    calls: list[str] = []
    glue.meta.events.register("before-call.glue.GetSchemaVersion",
                              lambda **kw: calls.append("get"))
    schemas = GlueSchemas.for_pipeline(pipeline, {})

    # THEN its own version resolves, once per cold start
    assert schemas.writer_schema(version) is schemas.writer_schema(version)
    # AND the other schema's version and an unknown id are unknown schema versions
    for wrong in (uuid.UUID(other), uuid.uuid4()):
        for _ in range(2):
            with pytest.raises(Rejected) as caught:
                schemas.writer_schema(wrong)
            assert caught.value.reason == UNKNOWN_SCHEMA_VERSION
    assert len(calls) == 3
    # AND registering the same definition again names the same version
    assert uuid.UUID(register_schema(pipeline)) == version
