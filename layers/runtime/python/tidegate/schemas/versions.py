"""Per-event schema versions: each record is validated against the version it names and
upgraded to the pipeline's version.

A record names its version in one of three ways (README "Schema evolution"):

* a Kafka header `schema-version: 2` (ASCII digits);
* the JSON envelope `{"schema_version": 2, "data": {...the event...}}`;
* with `format: avro`, the Glue wire-format header's schema version id, whose definition is
  matched to a registry version by its Avro fingerprint (schemas/avro.py).

A record that names none is of the pipeline's version and takes the plain decoder's path:
the only cost versioning adds to it is one substring test for the envelope's key.

Upgrading a record of version w to the pipeline's version p keeps the fields p has, fills
the fields w lacks from p's defaults (None for an optional field without one) and drops the
fields p no longer has; the result is then validated as a version-p record. A version the
registry does not hold, a record invalid for its own version, and one that cannot be
upgraded are dead-lettered with the versions and the field named.
"""

from __future__ import annotations

import binascii
import json
from binascii import a2b_base64
from typing import Any

from pydantic import BaseModel, ValidationError

from tidegate.rejections import (
    INVALID_JSON,
    INVALID_TIMESTAMP,
    INVALID_UTF8,
    SCHEMA_VIOLATION,
    UNKNOWN_SCHEMA_VERSION,
    Rejected,
)
from tidegate.schemas.decode import Event, JsonDecoder, _describe, raw_bytes
from tidegate.sources.msk import headers_of
from tidegate.spec import Pipeline, RegistrySchema

VERSION_HEADER = "schema-version"
ENVELOPE_VERSION = "schema_version"
ENVELOPE_DATA = "data"
_ENVELOPE_MARK = f'"{ENVELOPE_VERSION}"'.encode()
_MAX_VERSION = 10**9
_MAX_VERSION_CHARS = 24  # of a rejected version marker, in its dead letter


class Upgrader:
    """Validates values against their own version and upgrades them to the pipeline's."""

    def __init__(
        self, schema: RegistrySchema, model: type[BaseModel], time_field: str | None = None
    ) -> None:
        from tidegate.schemas.event_model import compile_version

        self.name = schema.name
        self.time_field = time_field
        self.target = schema.version
        self.model = model
        self.known = ", ".join(f"v{n}" for n in sorted(schema.versions))
        self._models = {
            number: compile_version(schema, number)
            for number in schema.versions
            if number != schema.version
        }
        target = schema.current
        self._fields = list(target.fields)
        self._defaults = schema.versions[schema.version].defaults
        self._optional = {f for f in target.fields if target.is_optional(f)}

    def upgrade(self, values: Any, version: int) -> BaseModel:
        """An instance of the pipeline version's model, or Rejected naming what is wrong."""
        if version == self.target:
            return self._validate(self.model, values, f"{self.name} v{version}")
        model = self._models.get(version)
        if model is None:
            raise Rejected(
                UNKNOWN_SCHEMA_VERSION,
                f"{self.name} v{version} is not a known version (the registry has {self.known})",
            )
        own = self._validate(model, values, f"{self.name} v{version}").__dict__
        upgraded: dict[str, Any] = {}
        for name in self._fields:
            value = own.get(name)
            if value is None:
                value = self._defaults.get(name)
            if value is None and name not in self._optional:
                raise Rejected(
                    SCHEMA_VIOLATION,
                    f"{self.name} v{version} -> v{self.target}: field {name!r} has no value "
                    f"in v{version} and no default in v{self.target}",
                )
            upgraded[name] = value
        return self._validate(
            self.model, upgraded, f"{self.name} v{version} -> v{self.target}"
        )

    def _validate(self, model: type[BaseModel], values: Any, label: str) -> BaseModel:
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            # As in the plain decoder: a record wrong only in its event time has a bad time.
            bad_time = bool(errors) and all(e["loc"][:1] == (self.time_field,) for e in errors)
            reason = INVALID_TIMESTAMP if bad_time else SCHEMA_VIOLATION
            raise Rejected(reason, f"{label}: {_describe(exc)}") from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise Rejected(SCHEMA_VIOLATION, f"{label}: {type(exc).__name__}: {exc}") from None


def parse_version(text: Any, where: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool) and 1 <= text < _MAX_VERSION:
        return text
    if isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 10:
        number = int(text)
        if number >= 1:
            return number
    shown = repr(text)[:_MAX_VERSION_CHARS]
    raise Rejected(UNKNOWN_SCHEMA_VERSION, f"{where}: {shown} is not a version number (1, 2, ...)")


class VersionedJsonDecoder(JsonDecoder):
    """JSON records of any registry version: enveloped, headed, or plain (the pipeline's)."""

    def __init__(self, pipeline: Pipeline, model: type[BaseModel], upgrader: Upgrader) -> None:
        super().__init__(pipeline, model)
        self.upgrader = upgrader

    def decode_b64(self, data_b64: str) -> Event:
        # As many calls as the plain decoder's path, plus one substring test.
        try:
            raw = a2b_base64(data_b64, strict_mode=True)
        except (binascii.Error, ValueError):
            raw = raw_bytes(data_b64)  # raises the worded rejection
        if _ENVELOPE_MARK in raw:
            return self._decode_marked(raw)
        return JsonDecoder.decode_bytes(self, raw)

    def decode_bytes(self, raw: bytes) -> Event:
        if _ENVELOPE_MARK in raw:
            return self._decode_marked(raw)
        return JsonDecoder.decode_bytes(self, raw)

    def _decode_marked(self, raw: bytes) -> Event:
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            obj = None  # the plain path words what is wrong, as for any record
        if not (isinstance(obj, dict) and ENVELOPE_VERSION in obj):
            # Not an envelope (the key's name was inside a value): a plain record after all.
            return JsonDecoder.decode_bytes(self, raw)
        version = parse_version(obj[ENVELOPE_VERSION], f"envelope {ENVELOPE_VERSION}")
        if ENVELOPE_DATA not in obj:
            raise Rejected(
                SCHEMA_VIOLATION,
                f"envelope: has {ENVELOPE_VERSION} but no {ENVELOPE_DATA!r} (the event)",
            )
        return self.to_event(self.upgrader.upgrade(obj[ENVELOPE_DATA], version))

    def decode_headed(self, data_b64: str, headers: list[dict[str, list[int]]]) -> Event:
        value = headers_of({"headers": headers}).get(VERSION_HEADER)  # type: ignore[typeddict-item]
        if value is None:
            return self.decode_b64(data_b64)
        version = parse_version(
            value.decode("ascii", errors="replace").strip(), f"header {VERSION_HEADER}"
        )
        raw = raw_bytes(data_b64)
        return self.to_event(self.upgrader.upgrade(_loads(raw), version))


def _loads(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(INVALID_UTF8, f"byte {exc.start} is not UTF-8: {exc.reason}") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise Rejected(INVALID_JSON, f"not valid JSON: {exc}"[:600]) from None
