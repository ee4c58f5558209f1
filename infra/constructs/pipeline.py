"""`TidegatePipeline`: one pipeline file's resources, wired and monitored.

source stream or Kafka topic --(Kinesis / Kafka ESM)--> ingest --> state table
--(DynamoDB stream, WM# items only)--> closer --> sink; plus an every-minute schedule for
the closer, dead-letter, late and failed-batch queues, alarms and a dashboard. The table
shape and the environment contract come from tidegate.topology, the same module the local
runner builds from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment as Ack
from aws_cdk import Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encryption import (
    acknowledge_stream_key,
    grant_key,
    queue_encryption,
    stream_encryption,
)
from infra.constructs.errors import TidegateConfigError
from infra.constructs.fanout import allow_self_invoke
from infra.constructs.kafka import KafkaSourceSettings, add_kafka_source, partition_names
from infra.constructs.kafka import validate as validate_kafka
from infra.constructs.monitoring import (
    CLOSER_SERVICE,
    INGEST_SERVICE,
    METRICS_NAMESPACE,
    AlarmSettings,
    PipelineMonitoring,
)
from infra.constructs.sink import SinkBinding, create_sink
from infra.layer import build_function
from tidegate import topology
from tidegate.fanout import MAX_LAMBDA_WORKERS
from tidegate.spec import KinesisSource, MskSource, Pipeline
from tidegate.state import keys
from tidegate.versions import active_pk

FUNCTIONS_ROOT = Path(__file__).resolve().parents[2] / "functions"
RUNTIME = lambda_.Runtime.PYTHON_3_12  # infra/layer.py builds the layer's wheels for this
ARCHITECTURE = lambda_.Architecture.ARM_64  # and for this platform (infra/layer.py)
# What tidegate.state.dynamodb calls (transactions are authorized per Put/Update inside).
# A new call there needs its action here: the grant is exact on purpose.
STATE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
WATERMARK_SK_PREFIX = keys.watermark_sk("")
# Closer runs besides its fan-out workers: the schedule's, and wake-ups from the table
# stream's shards (one batch per shard at a time) that overlap it.
CLOSER_COORDINATORS = 3


def closer_concurrency(pipeline: Pipeline) -> int:
    """What one pipeline's closer can use at once: a coordinator fans out to at most one
    worker per open-window index partition (tidegate/fanout.py), plus the coordinators.
    Reserved, so a burst of closing cannot take the account's concurrency from the ingest,
    nor a runaway fan-out more than this."""
    return min(MAX_LAMBDA_WORKERS, pipeline.index_shards) + CLOSER_COORDINATORS


@dataclass(frozen=True)
class IngestSettings:
    """The ingest's event source mapping (Kinesis or Kafka) and function; defaults favour
    safety. The Kafka mapping takes the same batch and failure settings (in provisioned mode);
    parallelization_factor is Kinesis only."""

    batch_size: int = 500
    max_batching_window_s: int = 1
    retry_attempts: int = 5
    # A batch still failing after a day goes to the failed-batch queue as a pointer into the
    # stream; the stream keeps records a week by default, so the pointer can be read back.
    max_record_age_s: int = 24 * 3600
    parallelization_factor: int = 1
    # Set only when every producer uses the pipeline's aggregation key as partition key:
    # then order per key survives ParallelizationFactor > 1 (order holds per partition key).
    partitioned_by_key: bool = False
    memory_mb: int = 1024
    timeout_s: int = 60


@dataclass(frozen=True)
class CloserSettings:
    # Coalesces watermark advances: under load every ingest batch touches a watermark item.
    max_batching_window_s: int = 2
    schedule_minutes: int = 1
    memory_mb: int = 512
    timeout_s: int = 120


# Kafka with `mini_batch`: the largest batch Lambda takes, and its longest batching window.
KAFKA_MINI_BATCH_SIZE = 10_000
MAX_BATCHING_WINDOW_S = 300


class TidegatePipeline(Construct):
    """All resources of one pipeline; the created resources are exposed as attributes.

    Give an existing source stream (`source_stream`, or `source.arn` in the pipeline file)
    or let the construct create one (optionally shaped by `source_stream_props`): never both.
    A `source.type: msk` pipeline reads its topic from the cluster `kafka` names (an Amazon
    MSK cluster ARN or self-managed bootstrap servers; see infra/constructs/kafka.py).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: Pipeline,
        runtime_layer: lambda_.ILayerVersion,
        source_stream: kinesis.IStream | None = None,
        source_stream_props: kinesis.StreamProps | None = None,
        kafka: KafkaSourceSettings | None = None,
        ingest: IngestSettings | None = None,
        closer: CloserSettings | None = None,
        alarms: AlarmSettings | None = None,
        alarm_topic: sns.ITopic | None = None,
        name_suffix: str = "",
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        log_level: str = "INFO",
        state_retention_s: int = topology.DEFAULT_RETENTION_S,
        encryption_key: kms.IKey | None = None,
        stream_retention_hours: int = 168,
        deletion_protection: bool = True,
        table_max_read_units: int | None = None,
        table_max_write_units: int | None = None,
        closer_reserved_concurrency: int | None = None,
        live_state_version: str | None = None,
    ) -> None:
        """`encryption_key`: a customer key for the table, queues, streams, sink topic and
        log groups (default: AWS-managed keys). `live_state_version`: the state version the
        live functions run (a deploy parameter's value, so a replay's cut-over is a stack
        update, not an edit behind CloudFormation's back); default the pipeline file's."""
        super().__init__(scope, construct_id)
        self.pipeline = pipeline
        self.runtime_layer = runtime_layer
        self.removal_policy = removal_policy
        self.encryption_key = encryption_key
        self.stream_retention_hours = stream_retention_hours
        ingest = ingest or IngestSettings()
        closer = closer or CloserSettings()
        _check_ordering(pipeline, ingest)

        self.kafka: KafkaSourceSettings | None = None
        self.kafka_consumer_group_id: str | None = None
        self.source_stream: kinesis.IStream | None = None
        if isinstance(pipeline.source, MskSource):
            if source_stream is not None or source_stream_props is not None:
                raise TidegateConfigError(
                    f"pipeline {pipeline.name!r}: source.type msk reads a Kafka topic; "
                    "source_stream and source_stream_props are for Kinesis sources"
                )
            self.kafka = validate_kafka(pipeline, kafka)
            self.kafka_consumer_group_id = (
                self.kafka.consumer_group_id or f"tidegate-{pipeline.name}{name_suffix}"
            )
        else:
            if kafka is not None:
                raise TidegateConfigError(
                    f"pipeline {pipeline.name!r}: kafka settings are for source.type msk, "
                    f"not {pipeline.source.type!r}"
                )
            self.source_stream = self._source(
                pipeline, source_stream, source_stream_props, name_suffix, removal_policy
            )
        self.table = self._table(
            removal_policy, deletion_protection, table_max_read_units, table_max_write_units
        )
        self.dead_letter_queue = self._queue("DeadLetterQueue", "dead-letter output")
        self.late_queue = self._queue("LateQueue", "late-event output")
        self.failed_batches_queue = self._queue(
            "FailedBatchesQueue", "on-failure destination of the ingest mapping"
        )
        self.sink: SinkBinding = create_sink(
            self, pipeline, name_suffix=name_suffix, removal_policy=removal_policy,
            encryption_key=encryption_key,
        )

        env = {
            # The spec ships in each function's code (infra/layer.py build_function).
            topology.ENV_PIPELINE: topology.PIPELINE_FILE_PREFIX + topology.PIPELINE_FILE,
            topology.ENV_TABLE: self.table.table_name,
            topology.ENV_DLQ_URL: self.dead_letter_queue.queue_url,
            topology.ENV_LATE_URL: self.late_queue.queue_url,
            # The stream lists its shards; a Kafka topic's partitions are configured.
            topology.ENV_SOURCE_STREAM: (
                self.source_stream.stream_arn if self.source_stream is not None
                else pipeline.source.topic_name  # type: ignore[union-attr]
            ),
            topology.ENV_SINK_TARGET: self.sink.target,
            topology.ENV_RETENTION: str(state_retention_s),
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
        if self.kafka is not None and partition_names(pipeline):
            env[topology.ENV_SOURCE_PARTITIONS] = ",".join(partition_names(pipeline))
        self.environment = env  # the handlers' environment contract (replay.py adds to it)
        live_env = dict(env)
        if live_state_version is not None:
            live_env[topology.ENV_STATE_VERSION] = live_state_version
        self.ingest_function = self._function(
            "Ingest", "ingest", INGEST_SERVICE, live_env, ingest.memory_mb, ingest.timeout_s
        )
        self.closer_function = self._function(
            "Closer", "closer", CLOSER_SERVICE, live_env, closer.memory_mb, closer.timeout_s,
            # A failed scheduled run is simply the next minute's run; no async retries.
            retry_attempts=0,
            reserved_concurrent_executions=(
                closer_reserved_concurrency or closer_concurrency(pipeline)
            ),
        )
        self._wire_ingest(ingest)
        self._wire_closer(closer)

        self.monitoring = PipelineMonitoring(
            self, "Monitoring",
            pipeline=pipeline,
            ingest=self.ingest_function,
            closer=self.closer_function,
            failure_queues={
                "DeadLetter": self.dead_letter_queue,
                "FailedBatches": self.failed_batches_queue,
            },
            late_queue=self.late_queue,
            kafka_source=self.kafka is not None,
            settings=alarms or AlarmSettings(),
            alarm_topic=alarm_topic,
            table=self.table,
            source_stream=self.source_stream,
            # An existing stream's retention is its owner's; only ours is known.
            stream_retention_hours=(
                stream_retention_hours if isinstance(self.source_stream, kinesis.Stream)
                else None
            ),
        )
        self.alarms = self.monitoring.alarms
        self.dashboard = self.monitoring.dashboard

    # -- resources ---------------------------------------------------------------------------
    def _source(
        self,
        pipeline: Pipeline,
        given: kinesis.IStream | None,
        props: kinesis.StreamProps | None,
        name_suffix: str,
        removal_policy: RemovalPolicy,
    ) -> kinesis.IStream:
        spec = pipeline.source
        if not isinstance(spec, KinesisSource):
            raise TidegateConfigError(
                f"pipeline {pipeline.name!r}: source.type {spec.type!r} cannot be deployed "
                "by this construct yet (Kinesis only)"
            )
        existing = [label for label, value in (
            ("source_stream", given), ("source.arn in the pipeline file", spec.arn)
        ) if value]
        if len(existing) > 1:
            raise TidegateConfigError(
                f"pipeline {pipeline.name!r}: give the source stream once, not as "
                f"{' and '.join(existing)}"
            )
        if existing and props is not None:
            raise TidegateConfigError(
                f"pipeline {pipeline.name!r}: an existing source stream ({existing[0]}) and "
                "source_stream_props for a new one are exclusive"
            )
        if given is not None:
            return given
        if spec.arn:
            return kinesis.Stream.from_stream_arn(self, "SourceStream", spec.arn)
        if props is not None:
            # jsii structs keep their keyword arguments in _values: pass them on unchanged.
            return kinesis.Stream(self, "SourceStream", **props._values)
        provisioned = spec.shards is not None
        stream = kinesis.Stream(
            self, "SourceStream",
            stream_name=f"{spec.stream}{name_suffix}",
            stream_mode=(
                kinesis.StreamMode.PROVISIONED if provisioned else kinesis.StreamMode.ON_DEMAND
            ),
            shard_count=spec.shards if provisioned else None,
            retention_period=Duration.hours(self.stream_retention_hours),
            **stream_encryption(self.encryption_key),
            removal_policy=removal_policy,
        )
        acknowledge_stream_key(stream, self.encryption_key)
        return stream

    def _table(
        self,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
        max_read_units: int | None,
        max_write_units: int | None,
    ) -> dynamodb.Table:
        shape = topology.table_definition("-")
        types = {
            a["AttributeName"]: _ATTRIBUTE_TYPES[a["AttributeType"]]
            for a in shape["AttributeDefinitions"]
        }

        def key(schema: list[dict], kind: str) -> dynamodb.Attribute | None:
            names = [k["AttributeName"] for k in schema if k["KeyType"] == kind]
            return dynamodb.Attribute(name=names[0], type=types[names[0]]) if names else None

        capacity = self.pipeline.capacity
        provisioned = capacity.mode == "provisioned"
        billing: dict[str, Any] = (
            {"billing_mode": dynamodb.BillingMode.PROVISIONED,
             "read_capacity": capacity.read_units.min, "write_capacity": capacity.write_units.min}
            if provisioned else
            # On-demand without a ceiling scales a runaway producer (or replay) into the
            # bill; the ceiling throttles instead, and the throttle alarm says so.
            {"billing_mode": dynamodb.BillingMode.PAY_PER_REQUEST,
             "max_read_request_units": max_read_units,
             "max_write_request_units": max_write_units}
        )
        table = dynamodb.Table(
            self, "StateTable",
            partition_key=key(shape["KeySchema"], "HASH"),
            sort_key=key(shape["KeySchema"], "RANGE"),
            **billing,
            time_to_live_attribute=topology.TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED if self.encryption_key is not None
                else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=self.encryption_key,
            # Keys are enough to wake the closer: it reads the watermarks itself.
            stream=dynamodb.StreamViewType.KEYS_ONLY,
            removal_policy=removal_policy,
            deletion_protection=deletion_protection,
        )
        for index in shape["GlobalSecondaryIndexes"]:
            projection = index["Projection"]
            table.add_global_secondary_index(
                index_name=index["IndexName"],
                partition_key=key(index["KeySchema"], "HASH"),
                sort_key=key(index["KeySchema"], "RANGE"),
                projection_type=dynamodb.ProjectionType(projection["ProjectionType"]),
                non_key_attributes=projection.get("NonKeyAttributes"),
                **({"read_capacity": capacity.read_units.min,
                    "write_capacity": capacity.write_units.min} if provisioned else {}),
            )
            if provisioned:
                self._auto_scale(
                    table.auto_scale_global_secondary_index_read_capacity(
                        index["IndexName"], min_capacity=capacity.read_units.min,
                        max_capacity=capacity.read_units.max),
                    table.auto_scale_global_secondary_index_write_capacity(
                        index["IndexName"], min_capacity=capacity.write_units.min,
                        max_capacity=capacity.write_units.max),
                )
        if provisioned:
            self._auto_scale(
                table.auto_scale_read_capacity(min_capacity=capacity.read_units.min,
                                               max_capacity=capacity.read_units.max),
                table.auto_scale_write_capacity(min_capacity=capacity.write_units.min,
                                                max_capacity=capacity.write_units.max),
            )
        return table

    def _auto_scale(self, *scalings: dynamodb.IScalableTableAttribute) -> None:
        target = self.pipeline.capacity.target_utilization
        for scaling in scalings:
            scaling.scale_on_utilization(target_utilization_percent=target)

    def _queue(self, construct_id: str, role: str) -> sqs.Queue:
        queue = sqs.Queue(
            self, construct_id,
            **queue_encryption(self.encryption_key),
            enforce_ssl=True,
            # The longest SQS allows: an operator needs time to look before records expire.
            retention_period=Duration.days(14),
            # These queues hold the only copy of records that were not aggregated.
            removal_policy=self.removal_policy,
        )
        Validations.of(queue).acknowledge(Ack(
            id="AwsSolutions-SQS3",
            reason=f"This queue is the pipeline's {role}: it is itself the end of the line "
                   "for records that could not be aggregated, alarmed on when not empty. A "
                   "second dead-letter queue behind it would only move them again.",
        ))
        return queue

    def _function(
        self,
        construct_id: str,
        folder: str,
        service: str,
        env: dict[str, str],
        memory_mb: int,
        timeout_s: int,
        **extra: object,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
            encryption_key=self.encryption_key,
        )
        # An own role instead of AWSLambdaBasicExecutionRole: logs only to its own group.
        role = iam.Role(
            self, f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"tidegate {self.pipeline.name} {folder} function",
        )
        log_group.grant_write(role)
        if self.encryption_key is not None:
            # State, queues, streams and the sink are all under this key; the grants made
            # per resource below do not all add it (the state grant is written by hand).
            grant_key(self.encryption_key, role)
        function = lambda_.Function(
            self, f"{construct_id}Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=lambda_.Code.from_asset(
                str(build_function(FUNCTIONS_ROOT / folder, self.pipeline.to_json()))
            ),
            layers=[self.runtime_layer],
            role=role,
            log_group=log_group,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_s),
            tracing=lambda_.Tracing.ACTIVE,
            environment={**env, "POWERTOOLS_SERVICE_NAME": service},
            description=f"tidegate {self.pipeline.name}: {folder}",
            **extra,  # type: ignore[arg-type]
        )
        Validations.of(function).acknowledge(Ack(
            id="AwsSolutions-L1",
            reason="Pinned to Python 3.12 on purpose: the runtime layer's compiled wheels "
                   "(pydantic-core, fastavro) are built for cp312 (infra/layer.py); the "
                   "runtime and the layer build are raised together.",
        ))
        Validations.of(role).acknowledge(Ack(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray's PutTraceSegments/PutTelemetryRecords (active tracing), for "
                   "the closer dynamodb:ListStreams (its DynamoDB stream mapping), and for an "
                   "ingest reading Kafka in a VPC the EC2 network-interface calls of Lambda's "
                   "pollers (Describe* has no resource-level permissions; the interfaces do "
                   "not exist before the mapping creates them); every other statement names "
                   "its resource.",
        ))
        return function

    # -- wiring --------------------------------------------------------------------------------
    def _wire_ingest(self, settings: IngestSettings) -> None:
        fn = self.ingest_function
        self.grant_state(fn)
        self.dead_letter_queue.grant_send_messages(fn)
        self.late_queue.grant_send_messages(fn)
        self.ingest_source: sources.KinesisEventSource | None = None
        self.kafka_mapping: lambda_.EventSourceMapping | None = None
        latency_s = self.pipeline.mini_batch.allow_latency // 1000
        if self.kafka is not None:
            batch_size, window_s = settings.batch_size, settings.max_batching_window_s
            if latency_s:
                # Kafka mappings have no tumbling window: the latency buys larger batches
                # instead (the batching window is at most 5 minutes, a batch 10,000 records
                # or 6 MB), so each invocation writes each key-pane once for more events.
                batch_size = max(batch_size, KAFKA_MINI_BATCH_SIZE)
                window_s = max(window_s, min(latency_s, MAX_BATCHING_WINDOW_S))
            self.kafka_mapping = add_kafka_source(
                fn,
                pipeline=self.pipeline,
                settings=self.kafka,
                consumer_group_id=self.kafka_consumer_group_id or "",
                batch_size=batch_size,
                max_batching_window_s=window_s,
                retry_attempts=settings.retry_attempts,
                max_record_age_s=settings.max_record_age_s,
                failed_batches=self.failed_batches_queue,
            )
            return
        assert self.source_stream is not None
        # The mapping grants the stream reads; the on-failure destination its sends.
        self.ingest_source = sources.KinesisEventSource(
            self.source_stream,
            # The log is the source of truth: start from its oldest record, never skip.
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=settings.batch_size,
            max_batching_window=Duration.seconds(settings.max_batching_window_s),
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=settings.retry_attempts,
            max_record_age=Duration.seconds(settings.max_record_age_s),
            on_failure=sources.SqsDlq(self.failed_batches_queue),
            parallelization_factor=settings.parallelization_factor,
            # `mini_batch`: the mapping carries the shard's partials between invocations and
            # makes a final invocation per window (tidegate/mini_batch.py).
            tumbling_window=Duration.seconds(latency_s) if latency_s else None,
        )
        fn.add_event_source(self.ingest_source)

    def grant_state(self, fn: lambda_.Function, version: int | None = None,
                    index: bool = False) -> None:
        """The state actions on the table (and the open-window index). With `version`, only
        that state version's items may be written (`dynamodb:LeadingKeys`): a replay
        builds its own version and must not touch the live one; it still reads the
        pipeline's version record and the live version's watermark (who owns a window)."""
        open_index = f"{self.table.table_arn}/index/{topology.OPEN_INDEX}"
        if version is None:
            iam.Grant.add_to_principal(
                grantee=fn, actions=list(STATE_ACTIONS),
                resource_arns=[self.table.table_arn, *([open_index] if index else [])],
            )
            return
        name = self.pipeline.name
        own = [keys.key_pk(name, version, "*"), keys.meta_pk(name, version)]
        writes = [a for a in STATE_ACTIONS if a.endswith(("PutItem", "UpdateItem"))]
        reads = [a for a in STATE_ACTIONS if a not in writes]
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=writes, resources=[self.table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": own}},
        ))
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=reads, resources=[self.table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [
                own[0], active_pk(name), keys.meta_pk(name, "*"),  # type: ignore[arg-type]
            ]}},
        ))
        if index:
            # The index is keyed by open#<pipeline>#v<N>#<n>; reading it writes nothing.
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["dynamodb:Query"], resources=[open_index],
            ))

    def grant_closer(self, fn: lambda_.Function, version: int | None = None) -> None:
        """What any closer of this pipeline needs (the live one, a replay's): its state and
        the open-window index, the sink, the source's shard list, and, past
        TIDEGATE_FANOUT_THRESHOLD due windows, asynchronous invocations of itself
        (tidegate/fanout.py). `version`: a replay's closer, held to its own state version."""
        self.grant_state(fn, version, index=True)
        self.sink.grant_publish(fn)
        # The watermark counts every open shard, so a silent one holds it back until idle.
        # (A Kafka topic's partitions come from the pipeline file: nothing to list.)
        if self.source_stream is not None:
            self.source_stream.grant(fn, "kinesis:ListShards")
        allow_self_invoke(self, fn)

    def schedule_closer(
        self, rule_id: str, fn: lambda_.Function, description: str, minutes: int
    ) -> events.Rule:
        return events.Rule(
            self, rule_id,
            description=description,
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[targets.LambdaFunction(
                fn,
                event=events.RuleTargetInput.from_object({"source": "tidegate.schedule"}),
                # A run older than its period is superseded by the next one.
                max_event_age=Duration.minutes(minutes * 2),
                retry_attempts=2,
            )],
        )

    def _wire_closer(self, settings: CloserSettings) -> None:
        fn = self.closer_function
        self.grant_closer(fn)
        self.closer_source = sources.DynamoEventSource(
            self.table,
            starting_position=lambda_.StartingPosition.LATEST,
            batch_size=1000,
            max_batching_window=Duration.seconds(settings.max_batching_window_s),
            # A wake-up that fails is not data: the schedule runs the closer again anyway.
            retry_attempts=2,
            max_record_age=Duration.minutes(5),
            filters=[lambda_.FilterCriteria.filter({
                # TTL expiry (REMOVE) of a watermark item is no reason to close anything.
                "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                "dynamodb": {
                    "Keys": {topology.SK: {"S": lambda_.FilterRule.begins_with(
                        WATERMARK_SK_PREFIX
                    )}},
                },
            })],
        )
        fn.add_event_source(self.closer_source)
        self.schedule = self.schedule_closer(
            "CloserSchedule", fn, f"tidegate {self.pipeline.name}: close windows of idle streams",
            settings.schedule_minutes,
        )


_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _check_ordering(pipeline: Pipeline, settings: IngestSettings) -> None:
    """Exactly-once effect needs each key's records in order (shared/DESIGN.md)."""
    factor = settings.parallelization_factor
    if isinstance(pipeline.source, MskSource):
        if factor != 1:
            raise TidegateConfigError(
                f"pipeline {pipeline.name!r}: parallelization_factor {factor} is a Kinesis "
                "setting; Lambda reads each Kafka partition in order, one batch at a time. "
                "Scale a Kafka source with more partitions (keyed by the aggregation key, "
                f"{', '.join(pipeline.key)}) and kafka max_pollers."
            )
        return
    if not 1 <= factor <= 10:
        raise TidegateConfigError(
            f"pipeline {pipeline.name!r}: parallelization_factor must be 1..10, not {factor}"
        )
    if factor > 1 and pipeline.mini_batch.allow_latency:
        raise TidegateConfigError(
            f"pipeline {pipeline.name!r}: mini_batch folds a shard's records into the state "
            "its tumbling window carries, skipping any at or below the highest position "
            f"folded; ParallelizationFactor {factor} would fold one shard in concurrent, "
            "unordered batches. Keep parallelization_factor=1 with mini_batch (add shards "
            "to scale)."
        )
    if factor > 1 and not settings.partitioned_by_key:
        raise TidegateConfigError(
            f"pipeline {pipeline.name!r}: ParallelizationFactor {factor} processes one shard "
            "in concurrent batches, ordered per partition key only; the per-item high-water "
            "marks that make redelivery harmless then break unless records of one "
            f"aggregation key ({', '.join(pipeline.key)}) share a partition key. Keep "
            "parallelization_factor=1, or set partitioned_by_key=True if every producer "
            "uses the aggregation key as the Kinesis partition key."
        )
