"""Every resource and setting of `TidegatePipeline`, asserted on the synthesized template."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.constructs.pipeline import (
    STATE_ACTIONS,
    IngestSettings,
    TidegateConfigError,
    TidegatePipeline,
)
from tidegate import topology
from tidegate.spec import Pipeline, parse_pipeline

SOURCE_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/existing-events"


def _function_env(template: Template, service: str) -> dict[str, Any]:
    functions = template.find_resources("AWS::Lambda::Function", {
        "Properties": {"Environment": {"Variables": {"POWERTOOLS_SERVICE_NAME": service}}}
    })
    (function,) = functions.values()
    return function["Properties"]["Environment"]["Variables"]


def _ref_type(template: Template, value: Any) -> str:
    """The resource type a Ref/GetAtt in `value` points at."""
    logical = value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
    return template.to_json()["Resources"][logical]["Type"]


def _policy_statements(template: Template, role_description: str) -> list[dict[str, Any]]:
    roles = template.find_resources("AWS::IAM::Role", {
        "Properties": {"Description": Match.string_like_regexp(role_description)}
    })
    (role_id,) = roles
    policies = template.find_resources("AWS::IAM::Policy", {
        "Properties": {"Roles": [{"Ref": role_id}]}
    })
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


# -- source ----------------------------------------------------------------------------------
def test_source_stream_is_provisioned_per_spec_and_kms_encrypted(template: Template) -> None:
    template.has_resource_properties("AWS::Kinesis::Stream", {
        "Name": "user-events",
        "ShardCount": 2,
        "StreamModeDetails": {"StreamMode": "PROVISIONED"},
        "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
    })


def test_source_without_shards_is_on_demand(
    variant: Callable[..., Template], clickstream_data: dict[str, Any]
) -> None:
    source = {k: v for k, v in clickstream_data["source"].items() if k != "shards"}
    template = variant(source=source)
    template.has_resource_properties("AWS::Kinesis::Stream", {
        "Name": "user-events",
        "ShardCount": Match.absent(),
        "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
        "StreamEncryption": Match.object_like({"EncryptionType": "KMS"}),
    })


def test_existing_source_by_arn_creates_no_source_stream(
    variant: Callable[..., Template], clickstream_data: dict[str, Any]
) -> None:
    template = variant(source={**clickstream_data["source"], "arn": SOURCE_ARN})
    # Only the sink stream is created; the mapping and the closer use the given ARN.
    template.resource_count_is("AWS::Kinesis::Stream", 1)
    template.has_resource_properties("AWS::Kinesis::Stream", {"Name": "analytics-output"})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": SOURCE_ARN,
    })
    assert _function_env(template, "tidegate-closer")[topology.ENV_SOURCE_STREAM] == SOURCE_ARN


def _bare_stack(tmp_path: Any) -> Stack:
    app = App(outdir=str(tmp_path))
    return Stack(app, "Probe")


def _layer(stack: Stack) -> lambda_.ILayerVersion:
    return lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:tidegate:1"
    )


def test_existing_stream_and_props_for_a_new_one_are_refused(
    tmp_path: Any, clickstream: Pipeline
) -> None:
    stack = _bare_stack(tmp_path)
    existing = kinesis.Stream.from_stream_arn(stack, "Existing", SOURCE_ARN)
    with pytest.raises(TidegateConfigError, match="exclusive"):
        TidegatePipeline(
            stack, "Pipeline", pipeline=clickstream, runtime_layer=_layer(stack),
            source_stream=existing, source_stream_props=kinesis.StreamProps(shard_count=1),
        )


def test_existing_stream_given_twice_is_refused(
    tmp_path: Any, clickstream: Pipeline, clickstream_data: dict[str, Any]
) -> None:
    stack = _bare_stack(tmp_path)
    pipeline = parse_pipeline(
        {**clickstream_data, "source": {**clickstream_data["source"], "arn": SOURCE_ARN}}
    )
    existing = kinesis.Stream.from_stream_arn(stack, "Existing", SOURCE_ARN)
    with pytest.raises(TidegateConfigError, match=r"not as source_stream and source\.arn"):
        TidegatePipeline(
            stack, "Pipeline", pipeline=pipeline, runtime_layer=_layer(stack),
            source_stream=existing,
        )


def test_given_stream_is_used_as_is(tmp_path: Any, clickstream: Pipeline) -> None:
    stack = _bare_stack(tmp_path)
    existing = kinesis.Stream.from_stream_arn(stack, "Existing", SOURCE_ARN)
    pipeline = TidegatePipeline(
        stack, "Pipeline", pipeline=clickstream, runtime_layer=_layer(stack),
        source_stream=existing,
    )
    assert pipeline.source_stream is existing


# -- ingest ----------------------------------------------------------------------------------
def test_ingest_function_runs_the_ingest_handler_on_python_312_with_the_layer(
    template: Template,
) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.12",
        "Handler": "handler.handler",
        "Architectures": ["arm64"],
        "Layers": [{"Ref": Match.string_like_regexp("^RuntimeLayer")}],
        "TracingConfig": {"Mode": "Active"},
        "Environment": {"Variables": Match.object_like({
            "POWERTOOLS_SERVICE_NAME": "tidegate-ingest",
            "POWERTOOLS_METRICS_NAMESPACE": "tidegate",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        })},
    })


def test_ingest_mapping_has_aws_safety_settings(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("SourceStream"), "Arn"]},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 500,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 86400,
        "ParallelizationFactor": 1,
        "DestinationConfig": {"OnFailure": {"Destination": {
            "Fn::GetAtt": [Match.string_like_regexp("FailedBatchesQueue"), "Arn"],
        }}},
    })


def test_parallelization_above_one_is_refused_unless_partitioned_by_key(
    tmp_path: Any, clickstream: Pipeline
) -> None:
    stack = _bare_stack(tmp_path)
    with pytest.raises(TidegateConfigError, match=r"ParallelizationFactor 4.*userId"):
        TidegatePipeline(
            stack, "Pipeline", pipeline=clickstream, runtime_layer=_layer(stack),
            ingest=IngestSettings(parallelization_factor=4),
        )


def test_parallelization_above_one_is_allowed_when_partitioned_by_key(
    synth_app: Callable[..., list[Any]],
) -> None:
    (stack,) = synth_app(parallelization_factor="4", partitioned_by_key="true")
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::EventSourceMapping", {"ParallelizationFactor": 4}
    )


def test_app_context_parallelization_without_key_partitioning_fails_synth(
    synth_app: Callable[..., list[Any]],
) -> None:
    with pytest.raises(TidegateConfigError):
        synth_app(parallelization_factor="2")


# -- state -----------------------------------------------------------------------------------
def test_state_table_is_on_demand_with_pitr_sse_ttl_and_key_stream(template: Template) -> None:
    template.has_resource("AWS::DynamoDB::Table", {
        "DeletionPolicy": "Retain",
        "Properties": Match.object_like({
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [
                {"AttributeName": topology.PK, "KeyType": "HASH"},
                {"AttributeName": topology.SK, "KeyType": "RANGE"},
            ],
            "GlobalSecondaryIndexes": [{
                "IndexName": topology.OPEN_INDEX,
                "KeySchema": [
                    {"AttributeName": topology.OPEN_PK, "KeyType": "HASH"},
                    {"AttributeName": topology.OPEN_SK, "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": list(topology.OPEN_INDEX_PROJECTED),
                },
            }],
            "TimeToLiveSpecification": {
                "AttributeName": topology.TTL_ATTRIBUTE, "Enabled": True,
            },
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "StreamSpecification": {"StreamViewType": "KEYS_ONLY"},
        }),
    })


# -- closer ----------------------------------------------------------------------------------
def test_closer_is_woken_only_by_watermark_items_of_the_table_stream(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": {"Fn::GetAtt": [Match.string_like_regexp("StateTable"), "StreamArn"]},
        "StartingPosition": "LATEST",
        "MaximumBatchingWindowInSeconds": 2,
        "MaximumRetryAttempts": 2,
        "FilterCriteria": {"Filters": [{"Pattern": Match.serialized_json({
            "eventName": ["INSERT", "MODIFY"],
            "dynamodb": {"Keys": {topology.SK: {"S": [{"prefix": "WM#"}]}}},
        })}]},
    })


def test_closer_also_runs_every_minute_for_idle_streams(template: Template) -> None:
    template.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "rate(1 minute)",
        "State": "ENABLED",
        "Targets": [Match.object_like({
            "Arn": {"Fn::GetAtt": [Match.string_like_regexp("CloserFunction"), "Arn"]},
            "RetryPolicy": {"MaximumEventAgeInSeconds": 120, "MaximumRetryAttempts": 2},
        })],
    })
    template.has_resource_properties("AWS::Lambda::Permission", {
        "Action": "lambda:InvokeFunction",
        "Principal": "events.amazonaws.com",
    })
    template.has_resource_properties("AWS::Lambda::EventInvokeConfig", {
        "MaximumRetryAttempts": 0,
    })


def test_closer_function_settings(template: Template) -> None:
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.12",
        "Handler": "handler.handler",
        "Timeout": 120,
        "Environment": {"Variables": Match.object_like({
            "POWERTOOLS_SERVICE_NAME": "tidegate-closer",
            "POWERTOOLS_METRICS_NAMESPACE": "tidegate",
        })},
    })


# -- queues and sink -------------------------------------------------------------------------
def test_queues_are_encrypted_and_refuse_plain_http(template: Template) -> None:
    template.resource_count_is("AWS::SQS::Queue", 3)
    template.all_resources_properties("AWS::SQS::Queue", {
        "SqsManagedSseEnabled": True,
        "MessageRetentionPeriod": 1209600,
    })
    template.resource_count_is("AWS::SQS::QueuePolicy", 3)
    template.all_resources_properties("AWS::SQS::QueuePolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })


def test_environment_contract_points_at_the_resources(template: Template) -> None:
    for service in ("tidegate-ingest", "tidegate-closer"):
        env = _function_env(template, service)
        assert set(topology.HANDLER_ENV) <= set(env)
        # The spec itself ships in the function's code (test_cdk_cli_synth checks it there)
        assert env[topology.ENV_PIPELINE] == "file:tidegate-pipeline.json"
        assert _ref_type(template, env[topology.ENV_TABLE]) == "AWS::DynamoDB::Table"
        assert _ref_type(template, env[topology.ENV_DLQ_URL]) == "AWS::SQS::Queue"
        assert _ref_type(template, env[topology.ENV_LATE_URL]) == "AWS::SQS::Queue"
        assert env[topology.ENV_DLQ_URL] != env[topology.ENV_LATE_URL]
        assert _ref_type(template, env[topology.ENV_SOURCE_STREAM]) == "AWS::Kinesis::Stream"
        assert env[topology.ENV_RETENTION] == str(topology.DEFAULT_RETENTION_S)


def test_kinesis_sink_is_a_named_encrypted_stream(template: Template) -> None:
    template.has_resource_properties("AWS::Kinesis::Stream", {
        "Name": "analytics-output",
        "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
        "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
    })
    target = _function_env(template, "tidegate-closer")[topology.ENV_SINK_TARGET]
    assert _ref_type(template, target) == "AWS::Kinesis::Stream"


def test_sqs_sink(variant: Callable[..., Template]) -> None:
    template = variant(sink={"type": "sqs", "queue": "results"})
    template.has_resource_properties("AWS::SQS::Queue", {
        "QueueName": "results", "SqsManagedSseEnabled": True,
    })
    target = _function_env(template, "tidegate-closer")[topology.ENV_SINK_TARGET]
    assert _ref_type(template, target) == "AWS::SQS::Queue"  # Ref of a queue is its URL
    statements = _policy_statements(template, "closer")
    assert any(s["Action"][0] == "sqs:SendMessage" and s["Resource"]["Fn::GetAtt"][1] == "Arn"
               and _ref_type(template, s["Resource"]) == "AWS::SQS::Queue"
               for s in statements if isinstance(s["Resource"], dict))


def test_sns_sink(variant: Callable[..., Template]) -> None:
    template = variant(sink={"type": "sns", "topic": "results"})
    template.has_resource_properties("AWS::SNS::Topic", {
        "TopicName": "results",
        "KmsMasterKeyId": Match.any_value(),
    })
    template.has_resource_properties("AWS::SNS::TopicPolicy", {
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        })])},
    })
    target = _function_env(template, "tidegate-closer")[topology.ENV_SINK_TARGET]
    assert _ref_type(template, target) == "AWS::SNS::Topic"  # Ref of a topic is its ARN
    assert any(s["Action"] == "sns:Publish" for s in _policy_statements(template, "closer"))


def test_eventbridge_sink_on_a_named_bus(variant: Callable[..., Template]) -> None:
    template = variant(sink={"type": "eventbridge", "bus": "analytics"})
    template.has_resource_properties("AWS::Events::EventBus", {"Name": "analytics"})
    target = _function_env(template, "tidegate-closer")[topology.ENV_SINK_TARGET]
    assert _ref_type(template, target) == "AWS::Events::EventBus"
    assert any(s["Action"] == "events:PutEvents" for s in _policy_statements(template, "closer"))


def test_eventbridge_sink_on_the_default_bus(variant: Callable[..., Template]) -> None:
    template = variant(sink={"type": "eventbridge"})
    template.resource_count_is("AWS::Events::EventBus", 0)
    assert _function_env(template, "tidegate-closer")[topology.ENV_SINK_TARGET] == "default"
    statements = _policy_statements(template, "closer")
    (put,) = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert "event-bus/default" in json.dumps(put["Resource"])


# -- least privilege -------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["ingest", "closer"])
def test_no_wildcard_actions_and_only_xray_or_liststreams_on_any_resource(
    template: Template, role: str
) -> None:
    for statement in _policy_statements(template, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]
        ]
        assert all("*" not in action for action in actions), statement
        if statement["Resource"] == "*":
            assert set(actions) <= {
                "xray:PutTraceSegments", "xray:PutTelemetryRecords", "dynamodb:ListStreams"
            }


def test_functions_use_own_roles_without_aws_managed_policies(template: Template) -> None:
    template.resource_count_is("AWS::IAM::Role", 2)
    template.all_resources_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})


def test_ingest_gets_exactly_the_state_actions_on_the_table_and_sends_to_its_queues(
    template: Template,
) -> None:
    statements = _policy_statements(template, "ingest")
    state = [s for s in statements if s["Action"] == list(STATE_ACTIONS)]
    assert [s["Resource"] for s in state] == [
        {"Fn::GetAtt": [state[0]["Resource"]["Fn::GetAtt"][0], "Arn"]}
    ]
    sends = [s for s in statements if "sqs:SendMessage" in s["Action"]]
    assert len(sends) == 3  # dead letters, late events, failed batches (the mapping's)
    assert not any("sink" in json.dumps(s).lower() for s in statements)
    assert not any(a.startswith(("kinesis:Put", "dynamodb:Delete", "dynamodb:Scan"))
                   for s in statements for a in (s["Action"] if isinstance(s["Action"], list)
                                                  else [s["Action"]]))


def test_closer_reads_the_open_index_and_writes_only_the_sink(template: Template) -> None:
    statements = _policy_statements(template, "closer")
    (state,) = [s for s in statements if s["Action"] == list(STATE_ACTIONS)]
    assert f"/index/{topology.OPEN_INDEX}" in json.dumps(state["Resource"])
    puts = [s for s in statements if "kinesis:PutRecords" in s["Action"]]
    assert len(puts) == 1 and "SinkStream" in json.dumps(puts[0]["Resource"])
    assert not any("sqs:SendMessage" in s["Action"] for s in statements)
    (list_shards,) = [s for s in statements if s["Action"] == "kinesis:ListShards"]
    assert "SourceStream" in json.dumps(list_shards["Resource"])


# -- monitoring ------------------------------------------------------------------------------
def test_alarms(template: Template) -> None:
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "IteratorAge", "Namespace": "AWS/Lambda", "Statistic": "Maximum",
        "Threshold": 300000, "ComparisonOperator": "GreaterThanThreshold",
    })
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "Errors", "Namespace": "AWS/Lambda",
        "Dimensions": [{"Name": "FunctionName",
                        "Value": {"Ref": Match.string_like_regexp("IngestFunction")}}],
        "Threshold": 0,
    })
    for queue in ("DeadLetterQueue", "FailedBatchesQueue"):
        template.has_resource_properties("AWS::CloudWatch::Alarm", {
            "MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS",
            "Dimensions": [{"Name": "QueueName", "Value": {
                "Fn::GetAtt": [Match.string_like_regexp(queue), "QueueName"]}}],
            "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
        })
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "WatermarkLagMs", "Namespace": "tidegate",
        # As the closer publishes it: Powertools adds the `service` dimension.
        "Dimensions": Match.array_with([
            {"Name": "pipeline", "Value": "clickstream"},
            {"Name": "service", "Value": "tidegate-closer"},
        ]),
        # delay 5s + allowed lateness 0 + 5 minutes of slack
        "Threshold": 305000, "TreatMissingData": "notBreaching",
    })


def test_dashboard(template: Template) -> None:
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    body = json.dumps(template.find_resources("AWS::CloudWatch::Dashboard"))
    for metric in ("IteratorAge", "WatermarkLagMs", "Processed", "WindowsClosed"):
        assert metric in body


# -- app -------------------------------------------------------------------------------------
def test_one_stack_per_pipeline_and_stage(
    synth_app: Callable[..., list[Any]], tmp_path: Any, clickstream_data: dict[str, Any]
) -> None:
    import yaml

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**clickstream_data, "name": "other",
                                     "source": {"type": "kinesis", "stream": "other-events"}}))
    stacks = synth_app(pipelines=f"pipelines/clickstream.yaml,{other}", stage="staging")
    assert [s.stack_name for s in stacks] == [
        "tidegate-clickstream-staging", "tidegate-other-staging"
    ]
    assert all((s.account, s.region) == ("123456789012", "us-east-1") for s in stacks)
    Template.from_stack(stacks[1]).has_resource_properties(
        "AWS::Kinesis::Stream", {"Name": "other-events-staging"}
    )


def test_a_spec_past_lambdas_4_kb_environment_still_deploys(
    variant: Callable[..., Template], clickstream_data: dict[str, Any]
) -> None:
    # GIVEN a schema of 150 more fields: the spec alone is more than Lambda's 4 KB of
    # environment variables (all of them together) could hold
    fields = {**clickstream_data["schema"]["fields"],
              **{f"attribute_{i:03d}": "string" for i in range(150)}}
    schema = {**clickstream_data["schema"], "fields": fields}
    spec = parse_pipeline({**clickstream_data, "schema": schema}).to_json()
    assert len(spec) > 4_096
    template = variant(schema=schema)
    for service in ("tidegate-ingest", "tidegate-closer"):
        env = _function_env(template, service)
        # THEN the environment only names the spec's file, and stays far below the limit
        assert env[topology.ENV_PIPELINE] == "file:tidegate-pipeline.json"
        assert len(json.dumps(env)) < 2_048
