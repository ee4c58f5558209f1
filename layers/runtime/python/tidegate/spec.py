"""Pipeline file -> validated, frozen models.

The pipeline file format is public (shared/CONTRACT.md). Every problem in a file is reported
at once, each by its dotted path in the file, before anything runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tidegate.aggregates import registry as aggregate_ops
from tidegate.durations import format_duration_ms, parse_duration_ms
from tidegate.state.index_sizing import (
    DEFAULT_INDEX_SHARDS,
    MAX_INDEX_SHARDS,
    index_shards_for,
)

# Durations are stored as integer milliseconds and written back in the file's own notation,
# so a spec survives a round trip through JSON (the Lambda environment carries it that way).
Duration = Annotated[
    int,
    BeforeValidator(parse_duration_ms),
    PlainSerializer(format_duration_ms, return_type=str),
]

FIELD_TYPES = ("string", "integer", "number", "boolean", "timestamp")
NUMERIC_TYPES = ("integer", "number", "timestamp")
NAME_PATTERN = re.compile(r"^[a-z0-9-]+$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PipelineError(ValueError):
    """A pipeline file that cannot run; `problems` lists `path: message` lines."""

    def __init__(self, problems: list[str], source: str = "pipeline") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive(value: int) -> int:
    if value <= 0:
        raise ValueError("must be a positive duration")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


class KinesisSource(_Model):
    type: Literal["kinesis"]
    stream: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$")
    shards: int | None = Field(default=None, ge=1, le=500)
    arn: str | None = None


class MskSource(_Model):
    type: Literal["msk"]
    stream: str | None = Field(default=None, min_length=1, max_length=249)
    topic: str | None = Field(default=None, min_length=1, max_length=249)
    shards: int | None = Field(default=None, ge=1, le=500)

    @model_validator(mode="after")
    def _topic(self) -> MskSource:
        if not (self.topic or self.stream):
            raise ValueError("msk source needs `topic` (or `stream`)")
        return self

    @property
    def topic_name(self) -> str:
        return self.topic or self.stream or ""


Source = Annotated[KinesisSource | MskSource, Field(discriminator="type")]


class EnumField(_Model):
    enum: list[str | int] = Field(min_length=1)
    optional: bool = False


class InlineSchema(_Model):
    name: str = Field(min_length=1)
    version: int = Field(default=1, ge=1)
    fields: dict[str, str | EnumField] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _known_types(cls, fields: dict[str, str | EnumField]) -> dict[str, str | EnumField]:
        bad = [
            f"{name}: unknown type {kind!r} (use {', '.join(FIELD_TYPES)} or {{enum: [...]}})"
            for name, kind in fields.items()
            if isinstance(kind, str) and kind.rstrip("?") not in FIELD_TYPES
        ]
        bad += [f"{name}: not a valid field name" for name in fields if not IDENTIFIER.match(name)]
        if bad:
            raise ValueError("; ".join(bad))
        return fields

    def field_type(self, name: str) -> str | None:
        """`string`, ..., `enum`, or None when the schema has no such field."""
        kind = self.fields.get(name)
        if kind is None:
            return None
        return "enum" if isinstance(kind, EnumField) else kind.rstrip("?")

    def is_optional(self, name: str) -> bool:
        kind = self.fields.get(name)
        if isinstance(kind, EnumField):
            return kind.optional
        return bool(kind and kind.endswith("?"))


class RefSchema(_Model):
    ref: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    name: str | None = None
    version: int = Field(default=1, ge=1)


# As the AWS Glue Schema Registry defines them; `tidegate schemas check` enforces the mode.
Compatibility = Literal[
    "NONE", "DISABLED", "BACKWARD", "BACKWARD_ALL", "FORWARD", "FORWARD_ALL", "FULL", "FULL_ALL"
]


class SchemaVersion(_Model):
    """One version of a registry schema, reduced to the field dialect (schemas/registry.py)."""

    file: str
    fields: dict[str, str | EnumField] = Field(min_length=1)
    defaults: dict[str, Any] = Field(default_factory=dict)
    # Avro versions: CRC-64-AVRO of the Parsing Canonical Form, to know a Glue writer schema.
    fingerprint: str | None = None


class RegistrySchema(_Model):
    """A named schema with versions, from files in a registry folder (schemas/registry.py).

    `version` is the pipeline's: records of other versions are upgraded to it. `versions` is
    filled from the folder when the pipeline file is loaded and travels with the spec.
    """

    name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.$#-]+$")
    version: int = Field(ge=1)
    registry: str = Field(min_length=1)
    compatibility: Compatibility = "BACKWARD"
    versions: dict[int, SchemaVersion] = Field(default_factory=dict)
    _inline: dict[int, InlineSchema] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve(self) -> RegistrySchema:
        folder = f"{self.registry.rstrip('/')}/{self.name}"
        if not self.versions:
            raise ValueError(
                f"registry {folder} was not read (load the pipeline from its file: the "
                "folder is relative to it)"
            )
        if self.version not in self.versions:
            have = ", ".join(f"v{n}" for n in sorted(self.versions))
            raise ValueError(f"version: v{self.version} is not in {folder} (it has {have})")
        problems: list[str] = []
        for number, spec in sorted(self.versions.items()):
            try:
                self._inline[number] = InlineSchema(
                    name=self.name, version=number, fields=spec.fields
                )
            except ValidationError as exc:
                problems += [f"{spec.file}: {_format_error(e)}" for e in exc.errors()]
            unknown = sorted(set(spec.defaults) - set(spec.fields))
            if unknown:
                problems.append(f"{spec.file}: defaults for unknown fields {unknown}")
            elif spec.defaults and number in self._inline:
                problems += self._default_problems(number, spec)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _default_problems(self, number: int, spec: SchemaVersion) -> list[str]:
        """A default its own field refuses would dead-letter every record that lacks it."""
        from tidegate.schemas.compile import compile_inline

        model = compile_inline(self._inline[number])
        try:
            model.model_validate(spec.defaults)
        except ValidationError as exc:
            return [
                f"{spec.file}: default of {'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in exc.errors()
                if e["loc"] and e["loc"][0] in spec.defaults
            ]
        return []

    def inline(self, version: int) -> InlineSchema:
        """One version as an inline schema (its fields, in the dialect)."""
        return self._inline[version]

    @property
    def current(self) -> InlineSchema:
        return self._inline[self.version]

    def field_type(self, name: str) -> str | None:
        return self.current.field_type(name)

    def is_optional(self, name: str) -> bool:
        return self.current.is_optional(name)


class TumblingWindow(_Model):
    type: Literal["tumbling"]
    size: PositiveDuration


class SlidingWindow(_Model):
    type: Literal["sliding"]
    size: PositiveDuration
    slide: PositiveDuration

    @model_validator(mode="after")
    def _slide_fits(self) -> SlidingWindow:
        if self.slide > self.size:
            # Events between windows would belong to no window: neither aggregated nor late.
            raise PydanticCustomError(
                "slide_too_large",
                "slide: must not exceed size (every event must fall in a window)",
            )
        return self


class SessionWindow(_Model):
    type: Literal["session"]
    gap: PositiveDuration
    max_length: PositiveDuration | None = None


Window = Annotated[
    TumblingWindow | SlidingWindow | SessionWindow, Field(discriminator="type")
]


class WatermarkSpec(_Model):
    delay: Duration = 0
    idle_timeout: Duration = 60_000
    # None switches the guard off; replays and backfills of old data are never suspicious.
    max_future_skew: Duration | None = None
    # When every partition is idle the closer advances the watermark by processing time;
    # switch off for replays of old data so they are not marked late.
    advance_when_idle: bool = True


class CapacityBounds(_Model):
    """Auto-scaling bounds of provisioned capacity units."""

    min: int = Field(default=1, ge=1)
    max: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CapacityBounds:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must not be below min ({self.min})")
        return self


class CapacitySpec(_Model):
    """How the state table is billed: `on_demand` per request (the default), or
    `provisioned` capacity that auto-scaling keeps near `target_utilization` percent of use
    within the bounds (about a third of on-demand's price per write at steady use)."""

    mode: Literal["on_demand", "provisioned"] = "on_demand"
    write_units: CapacityBounds = CapacityBounds()
    read_units: CapacityBounds = CapacityBounds()
    target_utilization: int = Field(default=70, ge=20, le=90)


# Lambda's event source mapping keeps a tumbling window's state for at most 15 minutes.
MAX_MINI_BATCH_MS = 900_000


class MiniBatchSpec(_Model):
    """Pre-aggregation before state is written (Flink SQL's mini-batch): partials are folded
    for up to `allow_latency` and written once (tidegate/mini_batch.py). 0 switches it off."""

    allow_latency: Duration = 0

    @field_validator("allow_latency")
    @classmethod
    def _at_most_15_min(cls, value: int) -> int:
        if value > MAX_MINI_BATCH_MS:
            raise ValueError(
                f"at most 15m (the event source mapping keeps a window's state that long), "
                f"not {value} ms"
            )
        if value and value < 1_000:
            raise ValueError(f"at least 1s (whole seconds), not {value} ms")
        if value % 1_000:
            raise ValueError(f"whole seconds (the event source mapping's unit), not {value} ms")
        return value


class AggregateSpec(_Model):
    op: str  # a registered op (aggregates/registry.py)
    field: str | None = None

    @field_validator("op")
    @classmethod
    def _registered(cls, op: str) -> str:
        if op not in aggregate_ops.ops():
            raise ValueError(f"unknown op {op!r} (use {', '.join(aggregate_ops.ops())})")
        return op

    @model_validator(mode="after")
    def _field_needed(self) -> AggregateSpec:
        if aggregate_ops.needs_field(self.op) and not self.field:
            raise ValueError(f"`{self.op}` needs a `field`")
        return self


class KinesisSink(_Model):
    type: Literal["kinesis"]
    stream: str = Field(min_length=1, max_length=128)


class SqsSink(_Model):
    type: Literal["sqs"]
    queue: str = Field(min_length=1, max_length=80)


class SnsSink(_Model):
    type: Literal["sns"]
    topic: str = Field(min_length=1, max_length=256)


class EventBridgeSink(_Model):
    type: Literal["eventbridge"]
    bus: str = "default"
    source: str = "tidegate"
    detail_type: str = "WindowResult"


Sink = Annotated[
    KinesisSink | SqsSink | SnsSink | EventBridgeSink, Field(discriminator="type")
]


def _schema_kind(value: Any) -> str:
    if isinstance(value, RefSchema) or (isinstance(value, dict) and "ref" in value):
        return "ref"
    if isinstance(value, RegistrySchema) or (isinstance(value, dict) and "registry" in value):
        return "folder"
    return "inline"


class Pipeline(_Model):
    name: str = Field(min_length=1, max_length=40)
    source: Source
    format: Literal["json", "avro"] = "json"
    schema_: Annotated[
        Annotated[InlineSchema, Tag("inline")]
        | Annotated[RefSchema, Tag("ref")]
        | Annotated[RegistrySchema, Tag("folder")],
        Discriminator(_schema_kind),
    ] = Field(alias="schema")
    event_time: str
    key: list[str] = Field(min_length=1)
    window: Window
    watermark: WatermarkSpec = WatermarkSpec()
    allowed_lateness: Duration = 0
    aggregates: dict[str, AggregateSpec] = Field(min_length=1)
    emit: Literal["final", "updates"] = "final"
    sink: Sink
    mini_batch: MiniBatchSpec = MiniBatchSpec()
    capacity: CapacitySpec = CapacitySpec()
    # Active keys expected at peak: when `index_shards` is not given, it is derived from
    # this (state/index_sizing.py). Either one changes where open windows are indexed:
    # change them only with a new `state_version`.
    expected_keys: int | None = Field(default=None, ge=1)
    # Open-window index partitions (`open#<pipeline>#<n>`): the unit of closer fan-out.
    index_shards: int = Field(default=DEFAULT_INDEX_SHARDS, ge=1, le=MAX_INDEX_SHARDS)
    state_version: int = Field(default=1, ge=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError("must match [a-z0-9-]+")
        return value

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("aggregates")
    @classmethod
    def _aggregate_names(cls, value: dict[str, AggregateSpec]) -> dict[str, AggregateSpec]:
        bad = [name for name in value if not IDENTIFIER.match(name)]
        if bad:
            raise ValueError(f"not valid result names: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _mini_batch_fits(self) -> Pipeline:
        latency = self.mini_batch.allow_latency
        if not latency:
            return self
        if isinstance(self.window, SessionWindow) and self.window.max_length is not None:
            # A buffered fragment holds many events: where one event would have started a
            # new session at max_length, a fragment cannot be split.
            raise PydanticCustomError(
                "setting_conflict",
                "mini_batch: not available for session windows with window.max_length "
                "(fragments of many events cannot be split where a session reaches it)",
            )
        if self.watermark.idle_timeout <= latency:
            # A shard holding partials it has not written must not count as idle, or the
            # other shards' watermark would close windows those partials belong to.
            raise PydanticCustomError(
                "setting_conflict",
                "mini_batch.allow_latency: {latency} ms must be below watermark.idle_timeout "
                "({idle} ms)",
                {"latency": latency, "idle": self.watermark.idle_timeout},
            )
        return self

    @model_validator(mode="after")
    def _derive_index_shards(self) -> Pipeline:
        if self.expected_keys is not None and "index_shards" not in self.model_fields_set:
            window = self.window
            cadence = (window.slide if isinstance(window, SlidingWindow)
                       else window.gap if isinstance(window, SessionWindow) else window.size)
            # Frozen model: set once, while validating, as a default would be.
            object.__setattr__(
                self, "index_shards", index_shards_for(self.expected_keys, cadence)
            )
        return self

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def _cross_checks(
    schema: object, event_time: object, key: object, aggregates: object
) -> list[str]:
    """Checks that span sections; pydantic validates each section on its own. Takes raw
    values too, so a file with section errors still gets its cross-section problems listed."""
    problems: list[str] = []
    if isinstance(schema, RegistrySchema):
        schema = schema.current
    if not isinstance(schema, InlineSchema):
        return problems  # a referenced model is checked when it is imported
    if isinstance(event_time, str):
        kind = schema.field_type(event_time)
        if kind is None:
            problems.append(f"event_time: schema has no field {event_time!r}")
        elif kind not in ("timestamp", "integer"):
            problems.append(f"event_time: field {event_time!r} is {kind}, not timestamp")
        elif schema.is_optional(event_time):
            problems.append(f"event_time: field {event_time!r} must not be optional")
    for i, field in enumerate(key if isinstance(key, list) else [key]):
        if not isinstance(field, str):
            continue
        if schema.field_type(field) is None:
            problems.append(f"key[{i}]: schema has no field {field!r}")
        elif schema.is_optional(field):
            problems.append(f"key[{i}]: key field {field!r} must not be optional")
    for name, agg in (aggregates.items() if isinstance(aggregates, dict) else []):
        op = getattr(agg, "op", None) or (agg.get("op") if isinstance(agg, dict) else None)
        field = getattr(agg, "field", None) or (agg.get("field") if isinstance(agg, dict) else None)
        if not isinstance(field, str):
            continue
        ftype = schema.field_type(field)
        if ftype is None:
            problems.append(f"aggregates.{name}.field: schema has no field {field!r}")
        elif isinstance(op, str) and aggregate_ops.numeric(op) and ftype not in NUMERIC_TYPES:
            problems.append(
                f"aggregates.{name}.field: {op} needs a numeric field; {field!r} is {ftype}"
            )
    return problems


def _raw_schema(data: dict[str, Any]) -> InlineSchema | None:
    try:
        return InlineSchema.model_validate(data.get("schema"))
    except ValidationError:
        return None


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("tumbling", "sliding", "session", "kinesis", "msk", "sqs", "sns",
                      "eventbridge", "inline", "ref", "folder", "str", "EnumField",
                      "function-after[_known_types(), dict[str,union[str,EnumField]]]"):
            continue  # union branch tags, not positions in the file
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _format_error(err: Any) -> str:
    msg = str(err["msg"])
    loc = tuple(err["loc"])
    if err["type"] in ("slide_too_large", "setting_conflict"):
        # A cross-field rule reported at its own field, named before the colon.
        field, msg = msg.split(": ", 1)
        loc = (*loc, field)
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err["type"] == "extra_forbidden":
        msg = "unknown setting"
    elif err["type"] == "missing":
        msg = "is required"
    return f"{_format_loc(loc)}: {msg}"


def parse_pipeline(data: Any, source: str = "pipeline") -> Pipeline:
    """Validate a decoded pipeline document; raise PipelineError listing every problem."""
    if not isinstance(data, dict):
        raise PipelineError(["(top level): must be a mapping of settings"], source)
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_format_error(e) for e in exc.errors()))
        problems += _cross_checks(
            _raw_schema(data), data.get("event_time"), data.get("key"), data.get("aggregates")
        )
        raise PipelineError(list(dict.fromkeys(problems)), source) from None
    problems = _cross_checks(
        pipeline.schema_, pipeline.event_time, pipeline.key, pipeline.aggregates
    )
    if problems:
        raise PipelineError(problems, source)
    return pipeline


def pipeline_from_json(text: str) -> Pipeline:
    return parse_pipeline(json.loads(text), "TIDEGATE_PIPELINE")


def load_pipeline_file(path: str | Path) -> Pipeline:
    """Read a YAML (or JSON) pipeline file. YAML is imported here only: Lambda never needs it."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PipelineError([f"(file): cannot read: {exc.strerror}"], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineError([f"(file): not valid YAML: {exc}"], str(path)) from None
    return parse_pipeline(_with_registry(data, path), str(path))


def _with_registry(data: Any, path: Path) -> Any:
    """Embed the versions of a registry-folder schema (`schema.registry`), read relative to
    the pipeline file, so the spec carries them wherever it goes."""
    schema = data.get("schema") if isinstance(data, dict) else None
    if not (isinstance(schema, dict) and "versions" not in schema):
        return data
    registry, name = schema.get("registry"), schema.get("name")
    if not (isinstance(registry, str) and registry and isinstance(name, str) and name):
        return data  # parse_pipeline reports what is missing
    from tidegate.schemas.registry import RegistryError, load_versions

    try:
        versions = load_versions(path.parent, registry, name)
    except RegistryError as exc:
        raise PipelineError([f"schema.registry: {p}" for p in exc.problems], str(path)) from None
    return {**data, "schema": {**schema, "versions": versions}}
