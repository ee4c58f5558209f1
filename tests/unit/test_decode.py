"""Record bytes -> event, or a rejection whose reason is stable and whose detail names the field."""

from __future__ import annotations

import base64
import json

import pytest

from tests.support import pipeline_spec
from tidegate.rejections import Rejected
from tidegate.schemas.decode import MAX_KEY_BYTES, Event, JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.spec import parse_pipeline


@pytest.fixture(scope="module")
def decoder() -> JsonDecoder:
    pipeline = parse_pipeline(pipeline_spec(
        schema={"name": "Reading", "fields": {
            "user": "string", "ts": "timestamp", "v": "number",
            "kind": {"enum": ["click", "purchase"]}, "note": "string?", "qty": "integer?",
        }},
        aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"},
                    "items": {"op": "sum", "field": "qty"}},
    ))
    return JsonDecoder(pipeline, compile_schema(pipeline))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def doc(**fields: object) -> bytes:
    record: dict[str, object] = {"user": "u1", "ts": 1_700_000_000_000, "v": 2.5, "kind": "click"}
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode("utf-8")


def test_a_valid_record_becomes_an_event(decoder: JsonDecoder) -> None:
    event = decoder.decode_b64(b64(doc(ts="2023-11-14T23:13:20.5+01:00", qty=3, extra="x")))
    # the key as canonical JSON; values of the aggregated fields only (unknown fields ignored)
    assert event == Event(time_ms=1_700_000_000_500, key='["u1"]', values={"qty": 3, "v": 2.5})


def test_absent_optional_fields_are_none(decoder: JsonDecoder) -> None:
    event = decoder.decode_bytes(doc())
    assert event.values == {"qty": None, "v": 2.5}


def test_multi_field_keys_are_canonical_json_in_key_order() -> None:
    pipeline = parse_pipeline(pipeline_spec(key=["v", "user"]))
    decoder = JsonDecoder(pipeline, compile_schema(pipeline))

    event = decoder.decode_bytes(json.dumps({"ts": 5, "user": "zoë", "v": 1}).encode())

    assert event.key == '[1,"zoë"]'
    assert event.time_ms == 5


@pytest.mark.parametrize(
    ("data_b64", "reason", "detail_has"),
    [
        ("!!!notbase64", "invalid_base64", "not base64"),
        ("abc", "invalid_base64", "not base64"),  # bad padding
        (b64(b"\xff\xfe{}"), "invalid_utf8", "byte 0"),
        (b64(b'{"user": "u1", \xc3('), "invalid_utf8", "byte 15"),
        (b64(b'{"user": "u1", "ts": '), "invalid_json", "(record)"),
        (b64(b"garbage"), "invalid_json", "(record)"),
        (b64(b""), "invalid_json", "(record)"),
        (b64(b"[1, 2]"), "schema_violation", "(record): expected a JSON object, got list"),
        (b64(b'"text"'), "schema_violation", "(record): expected a JSON object, got str"),
        (b64(doc(user=...)), "schema_violation", "user: Field required"),
        (b64(doc(user=7)), "schema_violation", "user: "),
        (b64(doc(v="12")), "schema_violation", "v"),
        (b64(doc(v=True)), "schema_violation", "v"),
        (b64(doc(kind="view")), "schema_violation", "kind: "),
        (b64(doc(qty=1.5)), "schema_violation", "qty"),
        (b64(doc(qty=2**63)), "schema_violation", "qty"),
        (b64(doc(ts=-1)), "invalid_timestamp", "ts: "),
        (b64(doc(ts="2023-11-14T22:13:20")), "invalid_timestamp", "ts: "),
        (b64(doc(ts="2023-11-14T22:13:20")), "invalid_timestamp", "no UTC offset"),
        (b64(doc(ts="soon")), "invalid_timestamp", "ts: "),
        (b64(doc(ts=253_402_300_800_000)), "invalid_timestamp", "after 9999"),
        (b64(doc(ts=True)), "invalid_timestamp", "ts: "),
        (b64(doc(ts=1.5)), "invalid_timestamp", "ts: "),
        (b64(doc(user="x" * (MAX_KEY_BYTES - 3))), "key_too_large", "['user']"),
        (b64(doc(user="é" * 900)), "key_too_large", "1804 bytes"),  # bytes, not characters
    ],
)
def test_rejections_carry_reason_and_a_detail_naming_the_field(
    decoder: JsonDecoder, data_b64: str, reason: str, detail_has: str
) -> None:
    with pytest.raises(Rejected) as caught:
        decoder.decode_b64(data_b64)
    assert caught.value.reason == reason
    assert detail_has in caught.value.detail


def test_schema_violations_name_every_bad_field(decoder: JsonDecoder) -> None:
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(doc(user=..., kind="view"))
    assert caught.value.reason == "schema_violation"
    assert "user: Field required" in caught.value.detail
    assert "kind: " in caught.value.detail


def test_the_largest_key_that_fits_is_accepted(decoder: JsonDecoder) -> None:
    # '["' + 1796 x + '"]' is exactly MAX_KEY_BYTES (1800) bytes as stored
    event = decoder.decode_bytes(doc(user="x" * (MAX_KEY_BYTES - 4)))
    assert len(event.key.encode("utf-8")) == MAX_KEY_BYTES


@pytest.mark.parametrize("ts", [0, 253_402_300_799_999, "9999-12-31T23:59:59.999Z"])
def test_any_time_from_the_epoch_to_year_9999_is_accepted(decoder: JsonDecoder, ts: object) -> None:
    assert decoder.decode_bytes(doc(ts=ts)).time_ms in (0, 253_402_300_799_999)


def test_iso_time_past_year_9999_in_utc_is_an_invalid_timestamp(decoder: JsonDecoder) -> None:
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(doc(ts="9999-12-31T23:59:59.999-01:00"))
    assert caught.value.reason == "invalid_timestamp"
