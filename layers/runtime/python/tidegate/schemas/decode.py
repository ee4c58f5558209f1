"""Raw record bytes -> a validated event (event time, key, aggregate inputs), or Rejected."""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
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
from tidegate.schemas.eventtime import to_epoch_ms
from tidegate.spec import Pipeline

# DynamoDB partition keys hold 2,048 bytes; the pipeline name and prefix need the rest.
MAX_KEY_BYTES = 1_800
_MAX_DETAIL = 600


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


class JsonDecoder:
    """Decodes base64 JSON records against the pipeline's schema model."""

    def __init__(self, pipeline: Pipeline, model: type[BaseModel]) -> None:
        self.model = model
        self.time_field = pipeline.event_time
        self.key_fields = list(pipeline.key)
        self.value_fields = sorted({a.field for a in pipeline.aggregates.values() if a.field})

    def decode_b64(self, data_b64: str) -> Event:
        try:
            raw = b64decode(data_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Rejected(INVALID_BASE64, f"record data is not base64: {exc}") from None
        return self.decode_bytes(raw)

    def decode_bytes(self, raw: bytes) -> Event:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(INVALID_UTF8, f"byte {exc.start} is not UTF-8: {exc.reason}") from None
        try:
            obj = self.model.model_validate_json(text)
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
        try:
            time_ms = to_epoch_ms(getattr(obj, self.time_field))
        except ValueError as exc:
            raise Rejected(INVALID_TIMESTAMP, f"{self.time_field}: {exc}") from None
        key_values = [getattr(obj, f) for f in self.key_fields]
        key = json.dumps(key_values, ensure_ascii=False, separators=(",", ":"), default=str)
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise Rejected(
                KEY_TOO_LARGE,
                f"key {self.key_fields} is {len(key.encode('utf-8'))} bytes as stored; "
                f"the limit is {MAX_KEY_BYTES} (DynamoDB partition keys hold 2,048 bytes)",
            )
        values = {f: getattr(obj, f, None) for f in self.value_fields}
        return Event(time_ms=time_ms, key=key, values=values)
