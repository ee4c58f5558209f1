"""One deployable stack: the runtime layer and one `TidegatePipeline`, with its outputs.

Besides the pipeline the stack owns what the deployment settings (infra/context.py) ask
for: the customer key, the alarm topic, the `LiveStateVersion` parameter through which a
replay's cut-over switches the live functions' state version, and the operator policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment as Ack
from aws_cdk import Aws, CfnOutput, CfnParameter, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.constructs.operator import operator_policy
from infra.constructs.pipeline import ARCHITECTURE, RUNTIME, TidegatePipeline
from infra.constructs.replay import ReplaySettings, add_replay
from infra.context import DeploySettings
from tidegate.spec import Pipeline

# The deploy parameter naming the state version the live ingest and closer run. `cdk
# deploy` keeps a parameter's previous value (--previous-parameters, the default), so a
# cut-over made by `tidegate replay --deployed --switch` survives later deployments.
LIVE_STATE_VERSION_PARAMETER = "LiveStateVersion"
PIPELINE_METADATA = "tidegate:pipeline"  # tidegate_dev/ops/smoke.py reads it


class TidegatePipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipeline: Pipeline,
        layer_dir: Path,
        settings: DeploySettings | None = None,
        pipeline_options: dict[str, Any] | None = None,
        replay: ReplaySettings | None = None,
        **stack_props: Any,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        # `tidegate smoke --stack` reads the pipeline back from the deployed template.
        self.add_metadata(PIPELINE_METADATA, json.loads(pipeline.to_json()))
        settings = settings or DeploySettings()
        self.settings = settings
        self.runtime_layer = lambda_.LayerVersion(
            self, "RuntimeLayer",
            code=lambda_.Code.from_asset(str(layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="tidegate runtime library and its pinned dependencies",
        )
        self.encryption_key = self._key(settings)
        self.alarm_topic = self._alarm_topic(settings, pipeline.name)
        self.live_state_version = CfnParameter(
            self, LIVE_STATE_VERSION_PARAMETER,
            # A string checked by pattern rather than a Number: it becomes an environment
            # variable, and every reader gets it as text.
            type="String",
            allowed_pattern=r"^[1-9][0-9]{0,5}$",
            constraint_description="a state version: a whole number from 1",
            default=str(pipeline.state_version),
            description="The state version the live ingest and closer read and write. "
                        "Changed by a replay's cut-over (tidegate replay --deployed --switch).",
        )
        self.pipeline = TidegatePipeline(
            self, "Pipeline",
            pipeline=pipeline,
            runtime_layer=self.runtime_layer,
            name_suffix=settings.name_suffix,
            alarm_topic=self.alarm_topic,
            encryption_key=self.encryption_key,
            stream_retention_hours=settings.stream_retention_hours,
            deletion_protection=settings.deletion_protection,
            table_max_read_units=settings.table_max_read_units,
            table_max_write_units=settings.table_max_write_units,
            closer_reserved_concurrency=settings.closer_reserved_concurrency,
            live_state_version=self.live_state_version.value_as_string,
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
            "LiveStateVersionParameter": LIVE_STATE_VERSION_PARAMETER,
            "LiveStateVersionValue": self.live_state_version.value_as_string,
        })
        if self.alarm_topic is not None:
            outputs["AlarmTopicArn"] = self.alarm_topic.topic_arn
        self.replay = None
        if replay is not None:
            options = pipeline_options or {}
            self.replay = add_replay(
                p, replay, options.get("ingest"), options.get("closer"),
                reserved_concurrency=settings.replay_reserved_concurrency,
            )
            outputs.update({
                "ReplayVersion": str(replay.version),
                "ReplayIngestFunctionName": self.replay.ingest_function.function_name,
                "ReplayCloserFunctionName": self.replay.closer_function.function_name,
                "ReplayDeadLetterQueueUrl": self.replay.dead_letter_queue.queue_url,
                "ReplayLateQueueUrl": self.replay.late_queue.queue_url,
            })
        self.operator_policy = operator_policy(self, p, self.replay, self.encryption_key)
        outputs["OperatorPolicyArn"] = self.operator_policy.managed_policy_arn
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _key(self, settings: DeploySettings) -> kms.IKey | None:
        if settings.kms_key_arn:
            return kms.Key.from_key_arn(self, "Key", settings.kms_key_arn)
        if not settings.customer_key:
            return None
        key = kms.Key(
            self, "Key",
            description=f"tidegate {self.stack_name}: state, queues, streams, topics, logs",
            enable_key_rotation=True,
            removal_policy=settings.removal_policy,
        )
        # Log groups are encrypted by CloudWatch Logs itself, which needs the key policy
        # to say so (an IAM grant cannot reach a service principal's own calls).
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                     "kms:Describe*"],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:*"}},
        ))
        # CloudWatch alarms publish to the alarm topic under this key.
        key.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
        ))
        return key

    def _alarm_topic(self, settings: DeploySettings, name: str) -> sns.ITopic | None:
        if settings.alarm_topic_arn:
            return sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        if not settings.alarm_email:
            return None
        topic = sns.Topic(
            self, "AlarmTopic",
            display_name=f"tidegate {name} alarms",
            master_key=self.encryption_key,
            enforce_ssl=True,
        )
        topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        topic.add_to_resource_policy(iam.PolicyStatement(
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn":
                                    f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:"
                                    f"{Aws.ACCOUNT_ID}:alarm:*"}},
        ))
        if self.encryption_key is None:
            Validations.of(topic).acknowledge(Ack(
                id="AwsSolutions-SNS2",
                reason="CloudWatch alarms cannot publish to a topic under the AWS-managed "
                       "aws/sns key (its key policy cannot grant cloudwatch.amazonaws.com); "
                       "alarm notifications carry alarm states, no pipeline data. Deploy "
                       "with -c kms=customer or -c kms_key_arn=... to encrypt it.",
            ))
        return topic
