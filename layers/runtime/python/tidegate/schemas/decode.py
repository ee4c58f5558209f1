"""Raw record bytes -> a validated event (event time, key, aggregate inputs), or Rejected."""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from binascii import a2b_base64
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tidegate.rejections import (
    INVALID_BASE64,
    INVALID_JSON,
    INVALID_TIMESTAMP,
    INVALID_UTF8,
    KEY_TOO_LARGE,
    SCHEMA_VIOLATION,
    Rejected,
)
from tidegate.schemas.eventtime import MAX_EVENT_TIME_MS, to_epoch_ms
from tidegate.spec import Pipeline

# DynamoDB partition keys hold 2,048 bytes; the pipeline name and prefix need the rest.
MAX_KEY_BYTES = 1_800
_MAX_DETAIL = 600
# A UTF-8 character takes at most 4 bytes: a key this short cannot exceed MAX_KEY_BYTES.
_SHORT_KEY_CHARS = MAX_KEY_BYTES // 4
# Canonical keys of string values, memoised: aggregation keys repeat (that is what makes
# pre-aggregation pay), and json.dumps is the dearest step of turning a record into an event.
# Bounded in count and in length, so the memo stays a few MB whatever the keys.
_KEY_CACHE_LIMIT = 50_000
_KEY_CACHE_CHARS = 200


@dataclass(slots=True)
class Event:
    time_ms: int
    key: str  # canonical JSON of the key values, the state partition
    values: dict[str, Any]  # inputs of the aggregates, by field name


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)[:_MAX_DETAIL]


def raw_bytes(data_b64: str) -> bytes:
    """A record's data, or Rejected(invalid_base64)."""
    try:
        # b64decode(validate=True) is this call behind two Python frames.
        return a2b_base64(data_b64, strict_mode=True)
    except (binascii.Error, ValueError):
        # Let the reference decoder word the error, so rejections read as before.
        try:
            return b64decode(data_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Rejected(INVALID_BASE64, f"record data is not base64: {exc}") from None


class JsonDecoder:
    """Decodes base64 JSON records against the pipeline's schema model."""

    def __init__(self, pipeline: Pipeline, model: type[BaseModel]) -> None:
        self.model = model
        self.time_field = pipeline.event_time
        self.key_fields = list(pipeline.key)
        self.value_fields = sorted({a.field for a in pipeline.aggregates.values() if a.field})
        # model_validate_json minus its Python wrapper (an argument check per call).
        self._validate_json = model.__pydantic_validator__.validate_json
        # Read attributes straight from the instance dict when every field we read is a
        # declared field (a ref schema may shadow one with a property: then use getattr).
        fields = getattr(model, "model_fields", {})
        self._direct = all(
            f in fields for f in (self.time_field, *self.key_fields, *self.value_fields)
        )
        self._keys: dict[str | tuple[str, ...], str] = {}

    def decode_b64(self, data_b64: str) -> Event:
        try:
            raw = a2b_base64(data_b64, strict_mode=True)  # raw_bytes' fast path, inlined
        except (binascii.Error, ValueError):
            raw = raw_bytes(data_b64)  # raises the worded rejection
        return self.decode_bytes(raw)

    def decode_headed(self, data_b64: str, headers: list[dict[str, list[int]]]) -> Event:
        """A Kafka record with headers; only versioned schemas read them."""
        return self.decode_bytes(raw_bytes(data_b64))

    def decode_bytes(self, raw: bytes) -> Event:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(INVALID_UTF8, f"byte {exc.start} is not UTF-8: {exc.reason}") from None
        try:
            obj = self._validate_json(text)
        except ValidationError as exc:
            raise self._classify(exc, text) from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # A validator that raised something pydantic does not wrap: still this record's
            # fault, never the batch's.
            detail = f"(record): {type(exc).__name__}: {exc}"
            raise Rejected(SCHEMA_VIOLATION, detail[:_MAX_DETAIL]) from None
        return self.to_event(obj)

    def _classify(self, exc: ValidationError, text: str) -> Rejected:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            # pydantic's message names the position; keep it short and precise.
            return Rejected(INVALID_JSON, _describe(exc))
        if all(e["loc"][:1] == (self.time_field,) for e in errors):
            return Rejected(INVALID_TIMESTAMP, _describe(exc))
        if errors and errors[0]["type"] == "model_type":
            kind = type(json.loads(text)).__name__ if len(text) < 10_000 else "non-object"
            return Rejected(SCHEMA_VIOLATION, f"(record): expected a JSON object, got {kind}")
        return Rejected(SCHEMA_VIOLATION, _describe(exc))

    def to_event(self, obj: BaseModel) -> Event:
        if self._direct:
            attrs = obj.__dict__
            raw_time = attrs[self.time_field]
            key_values = [attrs[f] for f in self.key_fields]
            values = {f: attrs.get(f) for f in self.value_fields}
        else:
            raw_time = getattr(obj, self.time_field)
            key_values = [getattr(obj, f) for f in self.key_fields]
            values = {f: getattr(obj, f, None) for f in self.value_fields}
        # The compiled schema has already made the time an in-range int: skip re-checking.
        if type(raw_time) is int and 0 <= raw_time <= MAX_EVENT_TIME_MS:
            time_ms = raw_time
        else:
            try:
                time_ms = to_epoch_ms(raw_time)
            except ValueError as exc:
                raise Rejected(INVALID_TIMESTAMP, f"{self.time_field}: {exc}") from None
        return Event(time_ms=time_ms, key=self._key(key_values), values=values)

    def _key(self, key_values: list[Any]) -> str:
        # Only str keys are memoised: a tuple memo would conflate 1, 1.0 and True, whose
        # JSON differs. A one-field key is memoised by the string itself (no tuple to build).
        if len(key_values) == 1:
            memo: Any = key_values[0]
            if type(memo) is not str:
                return self._canonical(key_values)
        elif all(type(v) is str for v in key_values):
            memo = tuple(key_values)
        else:
            return self._canonical(key_values)
        key = self._keys.get(memo)
        if key is None:
            key = self._canonical(key_values)
            if len(key) <= _KEY_CACHE_CHARS:
                if len(self._keys) >= _KEY_CACHE_LIMIT:
                    self._keys.clear()
                self._keys[memo] = key
        return key

    def _canonical(self, key_values: list[Any]) -> str:
        key = json.dumps(key_values, ensure_ascii=False, separators=(",", ":"), default=str)
        if len(key) > _SHORT_KEY_CHARS and len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise Rejected(
                KEY_TOO_LARGE,
                f"key {self.key_fields} is {len(key.encode('utf-8'))} bytes as stored; "
                f"the limit is {MAX_KEY_BYTES} (DynamoDB partition keys hold 2,048 bytes)",
            )
        return key
