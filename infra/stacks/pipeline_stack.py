"""One deployable stack: the runtime layer and one `TidegatePipeline`, with its outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs.pipeline import ARCHITECTURE, RUNTIME, TidegatePipeline
from infra.constructs.replay import ReplaySettings, add_replay
from tidegate.spec import Pipeline


class TidegatePipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: Pipeline,
        layer_dir: Path,
        stage: str = "",
        pipeline_options: dict[str, Any] | None = None,
        replay: ReplaySettings | None = None,
        **stack_props: Any,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        self.runtime_layer = lambda_.LayerVersion(
            self, "RuntimeLayer",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="tidegate runtime library and its pinned dependencies",
        )
        self.pipeline = TidegatePipeline(
            self, "Pipeline",
            pipeline=pipeline,
            runtime_layer=self.runtime_layer,
            name_suffix=f"-{stage}" if stage else "",
            **(pipeline_options or {}),
        )
        p = self.pipeline
        outputs: dict[str, str] = {}
        if p.source_stream is not None:
            outputs["SourceStreamName"] = p.source_stream.stream_name
            outputs["SourceStreamArn"] = p.source_stream.stream_arn
        if p.kafka is not None:
            outputs["SourceTopic"] = pipeline.source.topic_name  # type: ignore[union-attr]
            outputs["KafkaCluster"] = p.kafka.cluster_arn or ",".join(p.kafka.bootstrap_servers)
            outputs["KafkaConsumerGroup"] = p.kafka_consumer_group_id or ""
        outputs.update({
            "StateTableName": p.table.table_name,
            "DeadLetterQueueUrl": p.dead_letter_queue.queue_url,
            "LateQueueUrl": p.late_queue.queue_url,
            "FailedBatchesQueueUrl": p.failed_batches_queue.queue_url,
            "SinkTarget": p.sink.target,
            "IngestFunctionName": p.ingest_function.function_name,
            "CloserFunctionName": p.closer_function.function_name,
            "DashboardName": p.dashboard.dashboard_name,
        })
        self.replay = None
        if replay is not None:
            options = pipeline_options or {}
            self.replay = add_replay(p, replay, options.get("ingest"), options.get("closer"))
            outputs.update({
                "ReplayVersion": str(replay.version),
                "ReplayIngestFunctionName": self.replay.ingest_function.function_name,
                "ReplayCloserFunctionName": self.replay.closer_function.function_name,
                "ReplayDeadLetterQueueUrl": self.replay.dead_letter_queue.queue_url,
            })
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
