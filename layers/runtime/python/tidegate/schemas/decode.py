"""Raw record bytes -> a validated event (event time, key, aggregate inputs), or Rejected;
a whole batch of them -> a `DecodedBatch` of columns."""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from binascii import a2b_base64
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator, core_schema

from tidegate import redrive
from tidegate.rejections import (
    FUTURE_TIMESTAMP,
    INVALID_BASE64,
    INVALID_JSON,
    INVALID_TIMESTAMP,
    INVALID_UTF8,
    KEY_TOO_LARGE,
    SCHEMA_VIOLATION,
    Rejected,
)
from tidegate.schemas.compile import with_fast_inputs
from tidegate.schemas.eventtime import MAX_EVENT_TIME_MS, to_epoch_ms
from tidegate.sources.records import Columns, SourceBatch, SourceRecord
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
# json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str), whose encoder
# json.dumps would build anew for every call (its arguments are not the defaults).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(slots=True)
class Event:
    time_ms: int
    key: str  # canonical JSON of the key values, the state partition
    values: dict[str, Any]  # inputs of the aggregates, by field name


@dataclass(slots=True)
class DecodedBatch:
    """A batch as the ingest reads it: per record (by index in the batch) its event time, key
    and aggregate inputs, or why it was rejected."""

    source: SourceBatch
    columns: Columns
    times: list[int]  # 0 for a rejected record
    keys: list[str | None]  # None: rejected
    values: list[dict[str, Any] | None]
    rejected: list[tuple[int, Rejected]]  # in batch order
    redriven: set[int]  # records that came back through a redrive (tidegate/redrive.py)

    def record(self, index: int) -> SourceRecord:
        return self.source.record(index)


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


# What a model's core schema may hold for `fields_validator` to validate as the model does:
# fields and config only (no custom __init__, model or computed validators, aliases).
_MODEL_KEYS = {"type", "cls", "schema", "config", "custom_init", "root_model", "ref", "metadata"}
_FIELDS_KEYS = {"type", "fields", "model_name", "computed_fields", "metadata"}
_FIELD_KEYS = {"type", "schema", "metadata"}


def fields_validator(model: type[BaseModel]) -> Callable[[bytes | str], dict[str, Any]] | None:
    """`model`'s validation of a JSON document, with the fields' values as a dict in place of
    a model instance (what the instance's __dict__ would hold; defaults filled in): the same
    field schemas under the same config, so the same documents pass, for well under half
    the cost. None when the model validates more than its fields (then only the model will
    do)."""
    schema: Any = getattr(model, "__pydantic_core_schema__", None)
    if not isinstance(schema, dict) or schema.get("type") != "model" or set(schema) - _MODEL_KEYS:
        return None
    inner = schema["schema"]
    if (
        schema.get("custom_init") or schema.get("root_model")
        or inner.get("type") != "model-fields" or set(inner) - _FIELDS_KEYS
        or inner.get("computed_fields")
    ):
        return None
    fields = inner["fields"]
    if any(f.get("type") != "model-field" or set(f) - _FIELD_KEYS for f in fields.values()):
        return None
    config = dict(schema.get("config") or {})
    typed = core_schema.typed_dict_schema(
        {
            name: core_schema.typed_dict_field(
                with_fast_inputs(f["schema"]), required=f["schema"].get("type") != "default"
            )
            for name, f in fields.items()
        },
        extra_behavior=config.get("extra_fields_behavior", "ignore"),
    )
    try:
        return SchemaValidator(typed, config).validate_json  # type: ignore[arg-type]
    except Exception:  # a schema pydantic-core takes only inside its model: use the model
        return None


class JsonDecoder:
    """Decodes base64 JSON records against the pipeline's schema model."""

    def __init__(self, pipeline: Pipeline, model: type[BaseModel]) -> None:
        self.model = model
        self.time_field = pipeline.event_time
        self.skew = pipeline.watermark.max_future_skew
        self.key_fields = list(pipeline.key)
        self.value_fields = sorted({a.field for a in pipeline.aggregates.values() if a.field})
        # model_validate_json minus its Python wrapper (an argument check per call).
        self._validate_json = model.__pydantic_validator__.validate_json
        # Read attributes straight from the instance dict when every field we read is a
        # declared field (a ref schema may shadow one with a property: then use getattr).
        fields = getattr(model, "model_fields", {})
        read = (self.time_field, *self.key_fields, *self.value_fields)
        self._direct = all(f in fields for f in read)
        self._keys: dict[str | tuple[str, ...], str] = {}
        # The memo of canonical keys, by the key's one string value (for batch decoding).
        self.key_memo = self._keys
        # to_event runs for every record: with direct reads, one C call fetches every field
        # it needs (a validated model's __dict__ holds all its declared fields).
        self._pick = itemgetter(*read) if self._direct and len(read) > 1 else None
        self._key_count = len(self.key_fields)
        # Batch ingest reads validated fields as plain dicts when this class decodes as
        # JsonDecoder does (subclasses that read other formats or envelopes opt out).
        plain = (
            type(self).decode_b64 is JsonDecoder.decode_b64
            and type(self).decode_bytes is JsonDecoder.decode_bytes
            and type(self).to_event is JsonDecoder.to_event
        )
        self.validate_fields = fields_validator(model) if plain and self._direct else None

    # -- a batch ----------------------------------------------------------------------------
    def decode_batch(self, batch: SourceBatch) -> DecodedBatch:
        """Every record of the batch. The common case (plain JSON validated straight into a
        dict of its fields, no headers) runs in one tight loop; a record off it takes
        `event_of`, the one path that words every rejection, so both give the same
        answers."""
        columns = batch.columns()
        size = len(columns.data)
        decoded = DecodedBatch(batch, columns, [0] * size, [None] * size, [None] * size, [], set())
        validate = self.validate_fields
        if validate is None or columns.headers is not None:
            for i in range(size):
                self._decode_one(decoded, i)
            return decoded
        time_field = self.time_field
        key_fields = self.key_fields
        key_field = key_fields[0] if len(key_fields) == 1 else None
        memo = self.key_memo
        key_of = self.key_of
        # Below the least arrival plus the skew, no record's event time is too far ahead.
        limit = MAX_EVENT_TIME_MS
        if self.skew is not None:
            limit = min(limit, columns.first_arrival_ms + self.skew)
        times, keys, values = decoded.times, decoded.keys, decoded.values
        for i, data in enumerate(columns.data):
            # decode_b64 then to_event, for the common case.
            key = None
            try:
                fields = validate(a2b_base64(data, strict_mode=True))
                t = fields[time_field]
                if type(t) is int and 0 <= t <= limit:
                    if key_field is not None:
                        value = fields[key_field]
                        if type(value) is str:
                            key = memo.get(value)
                    if key is None:
                        key = key_of([fields[f] for f in key_fields])
            except Exception:  # off the common path: the record's own path says how
                key = None
            if key is None:
                self._decode_one(decoded, i)
            else:
                times[i] = t
                keys[i] = key
                values[i] = fields
        return decoded

    def _decode_one(self, decoded: DecodedBatch, index: int) -> None:
        record = decoded.record(index)
        try:
            event = self.event_of(record)
        except Rejected as rej:
            decoded.rejected.append((index, rej))
            return
        if record.redrive_id is not None:
            decoded.redriven.add(index)
        decoded.times[index] = event.time_ms
        decoded.keys[index] = event.key
        decoded.values[index] = event.values

    def event_of(self, record: SourceRecord) -> Event:
        """The record's event, or Rejected saying why it has none (for its dead letter)."""
        try:
            event = self._decode_record(record)
        except Rejected:
            # A redriven record's envelope fails every decoder: looking for it only here
            # costs the records without one nothing.
            if not redrive.unwrap(record):
                raise
            event = self._decode_record(record)
        if self.skew is not None and event.time_ms > record.arrival_ms + self.skew:
            raise Rejected(
                FUTURE_TIMESTAMP,
                f"{self.time_field}: event time {event.time_ms} is "
                f"{event.time_ms - record.arrival_ms} ms after arrival "
                f"(max_future_skew {self.skew} ms)",
            )
        return event

    def _decode_record(self, record: SourceRecord) -> Event:
        if record.headers is None:
            return self.decode_b64(record.data_b64)
        return self.decode_headed(record.data_b64, record.headers)

    # -- a record ---------------------------------------------------------------------------
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
        if self._pick is None:
            return self._to_event(obj)
        try:
            picked = self._pick(obj.__dict__)
        except KeyError:
            return self._to_event(obj)  # not as validated (built without validation)
        # _to_event's steps in its order (time, then key), minus its per-field lookups.
        raw_time = picked[0]
        if type(raw_time) is int and 0 <= raw_time <= MAX_EVENT_TIME_MS:
            time_ms = raw_time
        else:
            time_ms = self._time_ms(raw_time)
        count = self._key_count
        if count == 1:
            first = picked[1]
            key = self._keys.get(first) if type(first) is str else None
            if key is None:
                key = self._key([first])
        else:
            key = self._key(list(picked[1 : 1 + count]))
        fields = self.value_fields
        if len(fields) == 1:
            return Event(time_ms, key, {fields[0]: picked[1 + count]})
        return Event(time_ms, key, dict(zip(fields, picked[1 + count :], strict=True)))

    def _to_event(self, obj: BaseModel) -> Event:
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
            time_ms = self._time_ms(raw_time)
        return Event(time_ms=time_ms, key=self._key(key_values), values=values)

    def _time_ms(self, raw_time: Any) -> int:
        try:
            return to_epoch_ms(raw_time)
        except ValueError as exc:
            raise Rejected(INVALID_TIMESTAMP, f"{self.time_field}: {exc}") from None

    def key_of(self, key_values: list[Any]) -> str:
        """The canonical key of the key fields' values, or Rejected(key_too_large)."""
        return self._key(key_values)

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
        key = _CANONICAL.encode(key_values)
        if len(key) > _SHORT_KEY_CHARS and len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise Rejected(
                KEY_TOO_LARGE,
                f"key {self.key_fields} is {len(key.encode('utf-8'))} bytes as stored; "
                f"the limit is {MAX_KEY_BYTES} (DynamoDB partition keys hold 2,048 bytes)",
            )
        return key
