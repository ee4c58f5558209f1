"""A replay beside a deployed pipeline: a new state version built from the source log.

`add_replay` gives a `TidegatePipeline` a second ingest function with its own Kinesis
mapping (starting at TRIM_HORIZON or AT_TIMESTAMP, Lambda's starting positions) and a
second closer on the one-minute schedule, both with `TIDEGATE_STATE_VERSION` set to the new
version, and dead-letter and late queues of their own (a replay must not repeat the live
version's dead letters where operators read them). Separate functions rather than an alias:
a published Lambda version freezes the function's environment, and one template cannot
publish two versions of one function with different environments. `tidegate replay
--deployed` then watches the replay catch up and drives the cut-over.

Blast radius: the replay's roles may write only their own state version's items
(`dynamodb:LeadingKeys`), its ingest sends only to its own queues and publishes nothing,
and both functions have reserved concurrency, so reading a week of log at full speed
cannot take the live pipeline's concurrency or write its state. The replay closer may
publish to the pipeline's sink: once the cut-over switches the active version, the windows
after the handover are the replay version's to publish (tidegate/versions.py decides, so
no window is published by both).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs

from infra.constructs.errors import TidegateConfigError
from infra.constructs.monitoring import CLOSER_SERVICE, INGEST_SERVICE
from infra.constructs.pipeline import (
    CloserSettings,
    IngestSettings,
    TidegatePipeline,
    closer_concurrency,
)
from tidegate import topology

STARTING_POSITIONS = ("TRIM_HORIZON", "AT_TIMESTAMP")


@dataclass(frozen=True)
class ReplaySettings:
    version: int
    starting_position: str = "TRIM_HORIZON"
    timestamp_s: float | None = None  # AT_TIMESTAMP: epoch seconds

    @classmethod
    def from_context(
        cls, version: object, start: object = None, timestamp: object = None
    ) -> ReplaySettings | None:
        """`-c replayVersion=2 [-c replayFrom=TRIM_HORIZON|AT_TIMESTAMP]
        [-c replayTimestamp=2026-01-01T00:00:00Z]`; None without replayVersion."""
        if version in (None, ""):
            return None
        if not str(version).isdigit() or int(str(version)) < 1:
            raise TidegateConfigError(f"context replayVersion: an integer >= 1, not {version!r}")
        kind = str(start or "TRIM_HORIZON").upper().replace("-", "_")
        if kind not in STARTING_POSITIONS:
            raise TidegateConfigError(
                f"context replayFrom: one of {', '.join(STARTING_POSITIONS)}, not {start!r} "
                "(per-shard sequence numbers are for local replays: Lambda mappings start "
                "only at TRIM_HORIZON, LATEST or AT_TIMESTAMP)"
            )
        when: float | None = None
        if kind == "AT_TIMESTAMP":
            if timestamp in (None, ""):
                raise TidegateConfigError("context replayFrom=AT_TIMESTAMP needs replayTimestamp")
            text = str(timestamp)
            try:
                when = float(text) if text.replace(".", "", 1).isdigit() else \
                    datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            except ValueError as exc:
                raise TidegateConfigError(
                    f"context replayTimestamp: epoch seconds or ISO-8601, not {text!r}"
                ) from exc
        return cls(int(str(version)), kind, when)


@dataclass
class ReplayResources:
    settings: ReplaySettings
    ingest_function: lambda_.Function
    closer_function: lambda_.Function
    ingest_source: sources.KinesisEventSource
    dead_letter_queue: sqs.Queue
    late_queue: sqs.Queue


def add_replay(
    pipeline: TidegatePipeline,
    settings: ReplaySettings,
    ingest: IngestSettings | None = None,
    closer: CloserSettings | None = None,
    reserved_concurrency: int | None = None,
) -> ReplayResources:
    """`reserved_concurrency` of each replay function; default: the closer's as the live
    closer's, the ingest's one per source shard and parallelization (an on-demand stream
    starts at 4 shards, Kinesis's own default)."""
    live = pipeline.pipeline.state_version
    stream = pipeline.source_stream
    if stream is None:
        raise TidegateConfigError(
            f"pipeline {pipeline.pipeline.name!r}: replays read Kinesis sources only so far "
            f"(source.type {pipeline.pipeline.source.type!r})"
        )
    if settings.version == live:
        raise TidegateConfigError(
            f"pipeline {pipeline.pipeline.name!r}: replayVersion {settings.version} is the "
            "live state_version; a replay builds a new one"
        )
    ingest = ingest or IngestSettings()
    closer = closer or CloserSettings()
    v = settings.version
    dlq = pipeline._queue(f"ReplayV{v}DeadLetterQueue", f"replay v{v} dead-letter output")
    late = pipeline._queue(f"ReplayV{v}LateQueue", f"replay v{v} late-event output")
    env = {
        **pipeline.environment,
        topology.ENV_STATE_VERSION: str(v),
        topology.ENV_DLQ_URL: dlq.queue_url,
        topology.ENV_LATE_URL: late.queue_url,
    }
    spec = pipeline.pipeline
    shards = getattr(spec.source, "shards", None) or 4
    ingest_fn = pipeline._function(
        f"ReplayV{v}Ingest", "ingest", INGEST_SERVICE, env, ingest.memory_mb, ingest.timeout_s,
        reserved_concurrent_executions=(
            reserved_concurrency or shards * ingest.parallelization_factor
        ),
    )
    pipeline.grant_state(ingest_fn, version=v)
    dlq.grant_send_messages(ingest_fn)
    late.grant_send_messages(ingest_fn)
    at_timestamp = settings.starting_position == "AT_TIMESTAMP"
    source = sources.KinesisEventSource(
        stream,
        starting_position=lambda_.StartingPosition(settings.starting_position),
        starting_position_timestamp=settings.timestamp_s if at_timestamp else None,
        batch_size=ingest.batch_size,
        max_batching_window=Duration.seconds(ingest.max_batching_window_s),
        report_batch_item_failures=True,
        bisect_batch_on_error=True,
        retry_attempts=ingest.retry_attempts,
        # A replay reads old records on purpose: only the stream's retention bounds it.
        on_failure=sources.SqsDlq(pipeline.failed_batches_queue),
        parallelization_factor=ingest.parallelization_factor,
    )
    ingest_fn.add_event_source(source)

    closer_fn = pipeline._function(
        f"ReplayV{v}Closer", "closer", CLOSER_SERVICE, env, closer.memory_mb, closer.timeout_s,
        retry_attempts=0,
        reserved_concurrent_executions=reserved_concurrency or closer_concurrency(spec),
    )
    pipeline.grant_closer(closer_fn, version=v)
    # The schedule alone: until the switch a replay publishes nothing, so closing it within
    # a minute is soon enough.
    pipeline.schedule_closer(
        f"ReplayV{v}CloserSchedule", closer_fn,
        f"tidegate {pipeline.pipeline.name}: close replay version {v}'s windows",
        closer.schedule_minutes,
    )
    monitoring = pipeline.monitoring
    label = f"ReplayV{v}"
    monitoring.watch_function(f"{label}Ingest", ingest_fn,
                              f"replay v{v}: the ingest failed whole invocations")
    monitoring.watch_function(f"{label}Closer", closer_fn,
                              f"replay v{v}: the closer failed; its windows are not closing")
    monitoring.watch_queue(f"{label}DeadLetter", dlq, 0,
                           f"replay v{v}: records are waiting in its dead-letter queue")
    monitoring.watch_queue(f"{label}Late", late, monitoring.settings.late_queue_depth,
                           f"replay v{v}: late events are piling up in its late queue")
    # A replay starts far behind on purpose (no plain iterator-age alarm), but falling
    # behind half the retention means the log is trimmed before the replay reads it.
    monitoring.watch_iterator_age(f"{label}Ingest", ingest_fn)
    return ReplayResources(settings, ingest_fn, closer_fn, source, dlq, late)
