"""Alarms and a dashboard for one pipeline.

The alarms watch what means "results are late or lost": the ingest falling behind the
stream (iterator age; for a Kafka topic, offset lag), records nearing the end of the
stream's retention, anything in a dead-letter or failed-batch queue, a filling late queue,
function errors and throttles, results the sink refused, Kinesis and DynamoDB throttling or
DynamoDB system errors, and the pipeline watermark lagging behind processing time. Every
alarm notifies the alarm topic when one is given (`add` is the one way in, so a later
alarm cannot miss it).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from tidegate.spec import Pipeline

METRICS_NAMESPACE = "tidegate"  # the handlers' Powertools namespace
WATERMARK_LAG_METRIC = "WatermarkLagMs"
# Results the sink refused, counted by every closer run: the windows stay claimed and are
# published again by a later run, so a count that keeps rising is a sink that is down.
PUBLISH_FAILURES_METRIC = "PublishFailures"
# The operations tidegate.state.dynamodb makes (TransactWriteItems for its transactions):
# DynamoDB reports throttles and system errors per operation.
TABLE_OPERATIONS = (
    dynamodb.Operation.GET_ITEM,
    dynamodb.Operation.BATCH_GET_ITEM,
    dynamodb.Operation.QUERY,
    dynamodb.Operation.PUT_ITEM,
    dynamodb.Operation.UPDATE_ITEM,
    dynamodb.Operation.TRANSACT_WRITE_ITEMS,
)
INGEST_SERVICE = "tidegate-ingest"  # the handlers' Powertools service names
CLOSER_SERVICE = "tidegate-closer"


@dataclass(frozen=True)
class AlarmSettings:
    iterator_age_ms: int = 5 * 60_000
    # Kafka sources report lag in records, not time (Lambda's OffsetLag metric).
    offset_lag_records: int = 100_000
    # On top of the pipeline's own delay and allowed lateness (see watermark_lag_threshold).
    watermark_lag_slack_ms: int = 5 * 60_000
    evaluation_periods: int = 3
    # Late events are normal in small numbers; a queue this deep means the watermark runs
    # ahead of the data (delay or allowed_lateness too small) or nobody reads the queue.
    late_queue_depth: int = 1_000


def watermark_lag_threshold(pipeline: Pipeline, settings: AlarmSettings) -> int:
    """A healthy watermark trails processing time by the delay; more than that means stuck."""
    return pipeline.watermark.delay + pipeline.allowed_lateness + settings.watermark_lag_slack_ms


class PipelineMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: Pipeline,
        ingest: lambda_.IFunction,
        closer: lambda_.IFunction,
        failure_queues: dict[str, sqs.IQueue],
        late_queue: sqs.IQueue,
        settings: AlarmSettings,
        alarm_topic: sns.ITopic | None = None,
        kafka_source: bool = False,
        table: dynamodb.ITable | None = None,
        source_stream: kinesis.IStream | None = None,
        stream_retention_hours: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        name = pipeline.name
        minute = Duration.minutes(1)
        self.pipeline = pipeline
        self.settings = settings
        self.alarm_topic = alarm_topic
        self.stream_retention_hours = stream_retention_hours
        self.alarms: dict[str, cw.Alarm] = {}

        if kafka_source:
            # Kafka mappings publish no IteratorAge: how far behind is OffsetLag, in records.
            source_lag = ingest.metric("OffsetLag", statistic="Maximum", period=minute)
            lag_alarm, lag_threshold, lag_title = (
                "OffsetLag", settings.offset_lag_records, "Ingest offset lag (records)"
            )
            lag_what = "its Kafka topic"
        else:
            source_lag = ingest.metric("IteratorAge", statistic="Maximum", period=minute)
            lag_alarm, lag_threshold, lag_title = (
                "IteratorAge", settings.iterator_age_ms, "Ingest iterator age (ms)"
            )
            lag_what = "its source stream"
        # Published by every closer run (EMF): processing time minus pipeline watermark.
        self.watermark_lag = cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=WATERMARK_LAG_METRIC,
            dimensions_map={"pipeline": name, "service": CLOSER_SERVICE},
            statistic="Maximum",
            period=minute,
        )
        self.add(lag_alarm, source_lag, lag_threshold,
                 f"the ingest is falling behind {lag_what}", settings.evaluation_periods)
        self.add("WatermarkLag", self.watermark_lag, watermark_lag_threshold(pipeline, settings),
                 "the pipeline watermark is stuck; windows do not close",
                 settings.evaluation_periods)
        self.publish_failures = cw.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=PUBLISH_FAILURES_METRIC,
            dimensions_map={"pipeline": name, "service": CLOSER_SERVICE},
            statistic="Sum",
            period=minute,
        )
        self.add("PublishFailures", self.publish_failures, 0,
                 "the sink refused results; closed windows are not being published", 1)
        self.watch_function("Ingest", ingest, "the ingest function failed whole invocations",
                            error_periods=1)
        self.watch_function("Closer", closer, "the closer failed; windows are not being emitted")
        if source_stream is not None:
            self.watch_iterator_age("Ingest", ingest)
            self.add("SourceReadThrottled",
                     source_stream.metric_read_provisioned_throughput_exceeded(
                         statistic="Sum", period=minute),
                     0, "reads of the source stream are throttled (too few shards, or too "
                        "many consumers)", settings.evaluation_periods)
            self.add("SourceWriteThrottled",
                     source_stream.metric_write_provisioned_throughput_exceeded(
                         statistic="Sum", period=minute),
                     0, "producers are throttled writing the source stream (too few shards)",
                     settings.evaluation_periods)
        self.table_throttles: cw.IMetric | None = None
        self.table_errors: cw.IMetric | None = None
        if table is not None:
            self.table_throttles = table.metric_throttled_requests_for_operations(
                operations=list(TABLE_OPERATIONS), period=minute, label="throttled requests")
            self.table_errors = table.metric_system_errors_for_operations(
                operations=list(TABLE_OPERATIONS), period=minute, label="system errors")
            self.add("TableThrottles", self.table_throttles, 0,
                     "DynamoDB throttles the state table (on-demand maximum, or a hot key)",
                     settings.evaluation_periods)
            self.add("TableSystemErrors", self.table_errors, 0,
                     "DynamoDB returned system errors on the state table", 1)
        for label, queue in failure_queues.items():
            self.watch_queue(label, queue, 0, f"records are waiting in the {label} queue")
        self.watch_queue("Late", late_queue, settings.late_queue_depth,
                         "late events are piling up (watermark delay too small, or nobody "
                         "reads the late queue)")

        self.dashboard = self._dashboard(
            pipeline, ingest, closer, (lag_title, source_lag), failure_queues, late_queue,
            table, source_stream,
        )

    # -- alarms (every one through `add`, so each gets the alarm action) -----------------------
    def add(
        self, label: str, metric: cw.IMetric, threshold: float, what: str, periods: int
    ) -> cw.Alarm:
        if label in self.alarms:
            raise ValueError(f"alarm {label} exists already")
        alarm = metric.create_alarm(
            self, f"{label}Alarm",
            alarm_description=f"{self.pipeline.name}: {what}",
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        if self.alarm_topic is not None:
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        self.alarms[label] = alarm
        return alarm

    def watch_function(
        self, label: str, fn: lambda_.IFunction, what: str, error_periods: int | None = None
    ) -> None:
        minute = Duration.minutes(1)
        periods = self.settings.evaluation_periods
        self.add(f"{label}Errors", fn.metric_errors(period=minute), 0, what,
                 error_periods or periods)
        self.add(f"{label}Throttles", fn.metric_throttles(period=minute), 0,
                 f"{label.lower()} invocations are throttled (reserved or account concurrency)",
                 periods)

    def watch_queue(self, label: str, queue: sqs.IQueue, threshold: int, what: str) -> None:
        depth = queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=Duration.minutes(1)
        )
        self.add(f"{label}Depth", depth, threshold, what, 1)

    def watch_iterator_age(self, label: str, fn: lambda_.IFunction) -> None:
        """Records older than half the stream's retention are half-way to being trimmed
        unread; failed-batch pointers, redrive and replays need them still there."""
        if self.stream_retention_hours is None:
            return
        age = fn.metric("IteratorAge", statistic="Maximum", period=Duration.minutes(1))
        self.add(f"{label}IteratorAgeRetention", age,
                 self.stream_retention_hours * 3600_000 // 2,
                 f"{label.lower()} reads records older than half the stream's retention "
                 f"({self.stream_retention_hours} h): they will be trimmed before they are "
                 "read", 1)

    def _dashboard(
        self,
        pipeline: Pipeline,
        ingest: lambda_.IFunction,
        closer: lambda_.IFunction,
        source_lag: tuple[str, cw.IMetric],
        failure_queues: dict[str, sqs.IQueue],
        late_queue: sqs.IQueue,
        table: dynamodb.ITable | None,
        source_stream: kinesis.IStream | None,
    ) -> cw.Dashboard:
        def counts(service: str, *names: str) -> list[cw.IMetric]:
            return [
                cw.Metric(
                    namespace=METRICS_NAMESPACE, metric_name=metric, statistic="Sum",
                    dimensions_map={"pipeline": pipeline.name, "service": service},
                    period=Duration.minutes(1),
                )
                for metric in names
            ]

        queues = {**failure_queues, "Late": late_queue}
        dashboard = cw.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Records",
                left=counts(INGEST_SERVICE, "Processed", "Aggregated", "Late", "DeadLettered",
                            "DuplicatesSkipped"),
                width=12,
            ),
            cw.GraphWidget(
                title="Windows",
                left=counts(CLOSER_SERVICE, "WindowsClosed", "ResultsPublished",
                            "PublishFailures"),
                width=12,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(title=source_lag[0], left=[source_lag[1]], width=8),
            cw.GraphWidget(title="Watermark lag (ms)", left=[self.watermark_lag], width=8),
            cw.GraphWidget(
                title="Queue depth",
                left=[
                    q.metric_approximate_number_of_messages_visible(label=label)
                    for label, q in queues.items()
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Invocations / errors / throttles",
                left=[ingest.metric_invocations(label="ingest"),
                      closer.metric_invocations(label="closer")],
                right=[ingest.metric_errors(label="ingest errors"),
                       closer.metric_errors(label="closer errors"),
                       ingest.metric_throttles(label="ingest throttles"),
                       closer.metric_throttles(label="closer throttles")],
                width=12,
            ),
            cw.GraphWidget(
                title="Duration p99 (ms)",
                left=[ingest.metric_duration(statistic="p99", label="ingest"),
                      closer.metric_duration(statistic="p99", label="closer")],
                width=12,
            ),
        )
        if table is not None:
            minute = Duration.minutes(1)
            dashboard.add_widgets(
                cw.GraphWidget(
                    title="State table: consumed units",
                    left=[table.metric_consumed_read_capacity_units(period=minute, label="read"),
                          table.metric_consumed_write_capacity_units(period=minute,
                                                                     label="write")],
                    width=8,
                ),
                # One graph each: the two sums share their per-operation metric ids.
                cw.GraphWidget(title="State table: throttled requests",
                               left=[self.table_throttles] if self.table_throttles else [],
                               width=4),
                cw.GraphWidget(title="State table: system errors",
                               left=[self.table_errors] if self.table_errors else [], width=4),
                cw.GraphWidget(
                    title="State table: latency p99 (ms)",
                    left=[table.metric_successful_request_latency(
                        dimensions_map={"TableName": table.table_name, "Operation": op},
                        statistic="p99", period=minute, label=op,
                    ) for op in ("Query", "UpdateItem", "BatchGetItem")],
                    width=8,
                ),
            )
        if source_stream is not None:
            dashboard.add_widgets(cw.GraphWidget(
                title="Source stream: throughput exceeded",
                left=[source_stream.metric_read_provisioned_throughput_exceeded(label="read"),
                      source_stream.metric_write_provisioned_throughput_exceeded(
                          label="write")],
                width=24,
            ))
        dashboard.add_widgets(cw.AlarmStatusWidget(alarms=list(self.alarms.values()), width=24))
        return dashboard
