"""Builds the collaborators of both functions from the environment contract (topology.py).

Called once per cold start: the schema is compiled, clients are created lazily.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tidegate import topology
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.clock import now_ms
from tidegate.errors import ConfigurationError
from tidegate.spec import Pipeline, pipeline_from_json
from tidegate.state.dynamodb import DynamoStore
from tidegate.state.store import StateStore
from tidegate.watermark import WatermarkStore
from tidegate.windows import WindowKind, window_kind
from tidegate.windows.panes import PaneState
from tidegate.windows.session import SessionState

if TYPE_CHECKING:
    from tidegate.bundle_closer import BundleCloser
    from tidegate.closer import PaneCloser
    from tidegate.ingest import Ingestor
    from tidegate.partitions import KinesisPartitions, StaticPartitions
    from tidegate.session_bundle_closer import SessionBundleCloser
    from tidegate.session_closer import SessionCloser

# Conditional writes in flight at once in Lambda, where each waits ~5 ms on the network.
LAMBDA_WRITE_CONCURRENCY = 8


def _pipeline_text(env: Mapping[str, str]) -> str:
    """The spec itself, or the file of the function's code it names (`file:NAME`)."""
    value = env[topology.ENV_PIPELINE]
    if not value.startswith(topology.PIPELINE_FILE_PREFIX):
        return value
    path = Path(env.get("LAMBDA_TASK_ROOT") or ".") / value.removeprefix(
        topology.PIPELINE_FILE_PREFIX
    )
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(
            f"{topology.ENV_PIPELINE}={value!r}: cannot read the pipeline spec at {path} "
            f"({exc.strerror or exc})"
        ) from None


@dataclass
class Runtime:
    pipeline: Pipeline
    env: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Runtime:
        env = dict(os.environ if env is None else env)
        missing = [name for name in topology.HANDLER_ENV if name not in env]
        if missing:
            raise ConfigurationError(f"missing environment variables: {', '.join(missing)}")
        pipeline = pipeline_from_json(_pipeline_text(env))
        version = env.get(topology.ENV_STATE_VERSION, "").strip()
        if version:
            if not version.isdigit() or int(version) < 1:
                raise ConfigurationError(
                    f"{topology.ENV_STATE_VERSION}={version!r}: must be an integer >= 1"
                )
            pipeline = pipeline.model_copy(update={"state_version": int(version)})
        return cls(pipeline, env)

    @cached_property
    def store(self) -> StateStore:
        return DynamoStore(self.env[topology.ENV_TABLE])

    @cached_property
    def watermarks(self) -> WatermarkStore:
        return WatermarkStore(self.store, self.pipeline.name, self.pipeline.state_version)

    @cached_property
    def window_kind(self) -> WindowKind:
        return window_kind(self.pipeline)

    @cached_property
    def window_state(self) -> PaneState | SessionState:
        return self.window_kind.state(self.accumulators)

    @cached_property
    def accumulators(self) -> AccumulatorSet:
        return AccumulatorSet(build_aggregates(self.pipeline))

    @cached_property
    def partitions(self) -> KinesisPartitions | StaticPartitions:
        from tidegate.partitions import KinesisPartitions, StaticPartitions

        if self.pipeline.source.type == "msk":
            # Kafka topics cannot be listed through the AWS API: configured, else those seen.
            listed = self.env.get(topology.ENV_SOURCE_PARTITIONS, "")
            return StaticPartitions([p.strip() for p in listed.split(",") if p.strip()])
        return KinesisPartitions(self.env.get(topology.ENV_SOURCE_STREAM) or None)

    @property
    def retention_s(self) -> int:
        return int(self.env.get(topology.ENV_RETENTION, topology.DEFAULT_RETENTION_S))

    def ingestor(self) -> Ingestor:
        from tidegate.dlq import QueueOutput
        from tidegate.ingest import Ingestor
        from tidegate.schemas.decode import JsonDecoder
        from tidegate.schemas.event_model import compile_schema
        from tidegate.spec import RegistrySchema

        model = compile_schema(self.pipeline)
        upgrader = None
        if isinstance(self.pipeline.schema_, RegistrySchema):
            from tidegate.schemas.versions import Upgrader

            upgrader = Upgrader(self.pipeline.schema_, model, self.pipeline.event_time)
        if self.pipeline.format == "avro":
            from tidegate.schemas.avro import AvroDecoder, GlueSchemas

            schemas = GlueSchemas.for_pipeline(self.pipeline, self.env)
            decoder: JsonDecoder = AvroDecoder(self.pipeline, model, schemas, upgrader)
        elif upgrader is not None:
            from tidegate.schemas.versions import VersionedJsonDecoder

            decoder = VersionedJsonDecoder(self.pipeline, model, upgrader)
        else:
            decoder = JsonDecoder(self.pipeline, model)
        return Ingestor(
            pipeline=self.pipeline,
            decoder=decoder,
            windows=self.window_state,
            store=self.store,
            watermarks=self.watermarks,
            dead_letters=QueueOutput(self.env[topology.ENV_DLQ_URL]),
            late_output=QueueOutput(self.env[topology.ENV_LATE_URL]),
            expected_partitions=self.partitions.expected,
            now_ms=now_ms,
            write_concurrency=self.write_concurrency,
        )

    @property
    def write_concurrency(self) -> int:
        """Conditional writes in flight at once, in the ingest (a batch's groups) and in the
        closer (a batch's windows of different keys). In Lambda a write waits ~5 ms on the
        network: 8 in flight. Locally one at a time, so a `--chaos` seed replays the same
        faults in the same order."""
        lambda_default = str(LAMBDA_WRITE_CONCURRENCY)
        default = lambda_default if self.env.get("AWS_LAMBDA_FUNCTION_NAME") else "1"
        value = self.env.get(topology.ENV_WRITE_CONCURRENCY, default)
        if not value.isdigit() or int(value) < 1:
            raise ConfigurationError(
                f"{topology.ENV_WRITE_CONCURRENCY} must be a whole number >= 1, "
                f"not {value!r}"
            )
        return int(value)

    def closer(self) -> PaneCloser | SessionCloser | BundleCloser | SessionBundleCloser:
        from tidegate.bundle_closer import BundleCloser
        from tidegate.closer import PaneCloser
        from tidegate.session_bundle_closer import SessionBundleCloser
        from tidegate.session_closer import SessionCloser
        from tidegate.sinks import sink_for

        common: dict[str, Any] = dict(
            pipeline=self.pipeline,
            accumulators=self.accumulators,
            store=self.store,
            watermarks=self.watermarks,
            sink=sink_for(self.pipeline, self.env[topology.ENV_SINK_TARGET]),
            expected_partitions=self.partitions.expected,
            now_ms=now_ms,
            retention_s=self.retention_s,
        )
        state = self.window_state
        closer: PaneCloser | SessionCloser | BundleCloser | SessionBundleCloser
        bundled = bool(self.pipeline.mini_batch.allow_latency)  # state by the kilobyte
        if isinstance(state, SessionState):  # the kind's own closing
            closer = (SessionBundleCloser(sessions=state, **common) if bundled
                      else SessionCloser(sessions=state, **common))
        elif bundled:
            closer = BundleCloser(assigner=state.assigner, **common)
        else:
            closer = PaneCloser(assigner=state.assigner, **common)
        closer.concurrency = self.write_concurrency
        return closer
