"""Alarms and a dashboard for one pipeline.

The alarms watch what means "results are late or lost": the ingest falling behind the
stream (iterator age; for a Kafka topic, offset lag), anything in a dead-letter or
failed-batch queue, function errors, and the pipeline watermark lagging behind processing
time.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from tidegate.spec import Pipeline

METRICS_NAMESPACE = "tidegate"  # the handlers' Powertools namespace
WATERMARK_LAG_METRIC = "WatermarkLagMs"
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
    ) -> None:
        super().__init__(scope, construct_id)
        name = pipeline.name
        minute = Duration.minutes(1)

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
        self.alarms: dict[str, cw.Alarm] = {
            lag_alarm: source_lag.create_alarm(
                self, f"{lag_alarm}Alarm",
                alarm_description=f"{name}: the ingest is falling behind {lag_what}",
                threshold=lag_threshold,
                evaluation_periods=settings.evaluation_periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "IngestErrors": ingest.metric_errors(period=minute).create_alarm(
                self, "IngestErrorsAlarm",
                alarm_description=f"{name}: the ingest function failed whole invocations",
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "CloserErrors": closer.metric_errors(period=minute).create_alarm(
                self, "CloserErrorsAlarm",
                alarm_description=f"{name}: the closer failed; windows are not being emitted",
                threshold=0,
                evaluation_periods=settings.evaluation_periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
            "WatermarkLag": self.watermark_lag.create_alarm(
                self, "WatermarkLagAlarm",
                alarm_description=f"{name}: the pipeline watermark is stuck; windows do not close",
                threshold=watermark_lag_threshold(pipeline, settings),
                evaluation_periods=settings.evaluation_periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            ),
        }
        for label, queue in failure_queues.items():
            depth = queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=minute
            )
            self.alarms[f"{label}Depth"] = depth.create_alarm(
                self, f"{label}DepthAlarm",
                alarm_description=f"{name}: records are waiting in the {label} queue",
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
        if alarm_topic is not None:
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))

        self.dashboard = self._dashboard(
            pipeline, ingest, closer, (lag_title, source_lag), failure_queues, late_queue
        )

    def _dashboard(
        self,
        pipeline: Pipeline,
        ingest: lambda_.IFunction,
        closer: lambda_.IFunction,
        source_lag: tuple[str, cw.IMetric],
        failure_queues: dict[str, sqs.IQueue],
        late_queue: sqs.IQueue,
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
                       ingest.metric_throttles(label="ingest throttles")],
                width=12,
            ),
            cw.GraphWidget(
                title="Duration p99 (ms)",
                left=[ingest.metric_duration(statistic="p99", label="ingest"),
                      closer.metric_duration(statistic="p99", label="closer")],
                width=12,
            ),
            cw.AlarmStatusWidget(alarms=list(self.alarms.values()), width=24),
        )
        return dashboard
