"""The versioned JSON decoder's markers: what is an envelope, what is a plain record, and
how a malformed marker is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import BASE_MS as B
from tidegate.rejections import Rejected
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
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


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)
envelopes = st.fixed_dictionaries({"schema_version": json_values}, optional={
    "data": st.one_of(json_values, st.fixed_dictionaries({}, optional={
        "user": json_values, "ts": json_values, "v": json_values})),
})


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(envelope=envelopes, version=st.binary(max_size=12))
def test_any_envelope_or_header_is_an_event_or_a_reason(
    decoder: VersionedJsonDecoder, envelope: dict[str, Any], version: bytes
) -> None:
    raw = json.dumps(envelope).encode()
    for decode in (
        lambda: decoder.decode_bytes(raw),
        lambda: decoder.decode_headed(base64.b64encode(raw).decode(),
                                      [{"schema-version": list(version)}]),
    ):
        try:
            decode()
        except Rejected as rej:
            assert rej.reason in ("schema_violation", "unknown_schema_version",
                                  "invalid_timestamp", "invalid_json", "key_too_large")
            assert len(rej.detail) <= 700
