"""The versioned JSON decoder's markers: what is an envelope, what is a plain record, and
how a malformed marker is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from tests.support import BASE_MS as B
from tidegate.rejections import Rejected
from tidegate.schemas.compile import compile_schema
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.versions import Upgrader, VersionedJsonDecoder
from tidegate.spec import Pipeline, RegistrySchema

FIELDS = {"user": "string", "ts": "timestamp", "v": "number"}


@pytest.fixture
def decoder(make_pipeline: Callable[..., Pipeline]) -> VersionedJsonDecoder:
    # The embedded form, as the Lambda receives it (no folder).
    pipeline = make_pipeline(schema={
        "name": "Reading", "version": 2, "registry": "schemas", "versions": {
            "1": {"file": "schemas/Reading/v1.json", "fields": {**FIELDS, "v": "integer"}},
            "2": {"file": "schemas/Reading/v2.json", "fields": FIELDS},
        },
    })
    assert isinstance(pipeline.schema_, RegistrySchema)
    model = compile_schema(pipeline)
    return VersionedJsonDecoder(pipeline, model, Upgrader(pipeline.schema_, model, "ts"))


def test_the_key_inside_a_value_is_a_plain_record(decoder: VersionedJsonDecoder) -> None:
    raw = json.dumps({"user": '"schema_version"', "ts": B, "v": 1.5}).encode()
    event = decoder.decode_bytes(raw)
    assert (event.key, event.values) == ('["\\"schema_version\\""]', {"v": 1.5})


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (b'{"schema_version": 1, "data": {"user": "u", "ts": 1, "v": 1.5}}',
         "schema_violation", "Reading v1: v: Input should be a valid integer"),
        (b'{"schema_version": 2}', "schema_violation",
         "envelope: has schema_version but no 'data' (the event)"),
        (b'{"schema_version": 0, "data": {}}', "unknown_schema_version",
         "envelope schema_version: 0 is not a version number (1, 2, ...)"),
        (b'{"schema_version": true, "data": {}}', "unknown_schema_version",
         "envelope schema_version: True is not a version number (1, 2, ...)"),
    ],
    ids=["invalid-for-v1", "no-data", "zero", "boolean"],
)
def test_a_bad_envelope_is_refused_naming_what_is_wrong(
    decoder: VersionedJsonDecoder, raw: bytes, reason: str, detail: str
) -> None:
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(raw)
    assert (caught.value.reason, caught.value.detail) == (reason, detail)


def test_invalid_json_with_the_key_is_refused_as_any_invalid_json(
    decoder: VersionedJsonDecoder,
) -> None:
    raw = b'{"schema_version": 1, "data": {'
    with pytest.raises(Rejected) as versioned:
        decoder.decode_bytes(raw)
    with pytest.raises(Rejected) as unversioned:
        JsonDecoder.decode_bytes(decoder, raw)
    assert versioned.value.reason == "invalid_json"
    assert versioned.value.detail == unversioned.value.detail


def test_a_kafka_header_names_the_version(decoder: VersionedJsonDecoder) -> None:
    data = base64.b64encode(json.dumps({"user": "u", "ts": B, "v": 2}).encode()).decode()
    event = decoder.decode_headed(data, [{"schema-version": [49]}])
    assert event.values == {"v": 2}
    with pytest.raises(Rejected) as caught:
        decoder.decode_headed(data, [{"schema-version": list(b"v1")}])
    assert (caught.value.reason, caught.value.detail) == (
        "unknown_schema_version", "header schema-version: 'v1' is not a version number (1, 2, ...)"
    )
    # Other headers, and none, leave the record the pipeline's version.
    assert decoder.decode_headed(data, [{"trace": [1]}]).values == {"v": 2}
