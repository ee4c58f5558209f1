"""`source.type: msk`: the Kafka event source mapping (Amazon MSK and self-managed brokers),
its grants, alarms and cdk-nag, synthesized in process from the app's context keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from infra.constructs.kafka import KafkaSourceSettings, settings_from_context
from infra.constructs.pipeline import IngestSettings, TidegateConfigError, TidegatePipeline
from tidegate import topology
from tidegate.spec import parse_pipeline

CLUSTER_PATH = "events/0a1b2c3d-4e5f-6789-abcd-ef0123456789-4"
CLUSTER_ARN = f"arn:aws:kafka:us-east-1:123456789012:cluster/{CLUSTER_PATH}"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:tidegate/kafka-AbCdEf"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
BROKERS = "b-1.kafka.internal:9096,b-2.kafka.internal:9096"
MSK_SOURCE = {"type": "msk", "topic": "user-events", "shards": 3}

MSK_CONTEXT = {"msk_cluster_arn": CLUSTER_ARN}
MSK_SCRAM_CONTEXT = {
    "msk_cluster_arn": CLUSTER_ARN,
    "kafka_secret_arn": SECRET_ARN,  # no kafka_auth: a secret means SASL/SCRAM-512
    "kafka_secret_key_arn": KEY_ARN,
    "stage": "staging",
}
SELF_MANAGED_CONTEXT = {
    "kafka_bootstrap_servers": BROKERS,
    "kafka_auth": "sasl_scram_512",
    "kafka_secret_arn": SECRET_ARN,
    "kafka_secret_key_arn": KEY_ARN,
    "kafka_subnet_ids": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "kafka_security_group_ids": "sg-0123456789abcdef0",
    "kafka_max_pollers": "4",
}


@pytest.fixture(scope="module")
def msk_pipeline_file(
    tmp_path_factory: pytest.TempPathFactory, clickstream_data: dict[str, Any]
) -> Path:
    data = {**clickstream_data, "source": MSK_SOURCE}
    parse_pipeline(data)
    path = tmp_path_factory.mktemp("msk") / "clickstream-msk.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def synth_kafka(
    tmp_path_factory: pytest.TempPathFactory, stub_layer_dir: Path, msk_pipeline_file: Path
) -> Any:
    """The app as `npx cdk synth -c ...` builds it, cdk-nag included; one synth per context."""
    cache: dict[str, tuple[Template, list[str]]] = {}

    def synth(context: dict[str, str]) -> tuple[Template, list[str]]:
        key = json.dumps(context, sort_keys=True)
        if key not in cache:
            outdir = tmp_path_factory.mktemp("kafka-app")
            app = App(outdir=str(outdir),
                      context={"pipelines": str(msk_pipeline_file), **context})
            Validations.of(app).add_plugins(AwsSolutionsChecks(app))
            (stack,) = build_app(app, layer_dir=stub_layer_dir)
            template = Template.from_stack(stack)
            app.synth()
            report = json.loads((outdir / "validation-report.json").read_text())
            findings = [
                f"{v['ruleName']} at {c['constructPath']}"
                for plugin in report.get("pluginReports", [])
                for v in plugin.get("violations", [])
                for c in v.get("violatingConstructs", [])
            ]
            cache[key] = (template, findings)
        return cache[key]

    return synth


def _kafka_mapping(template: Template) -> dict[str, Any]:
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping", {
        "Properties": {"Topics": Match.any_value()}
    })
    (mapping,) = mappings.values()
    return mapping["Properties"]


def _ingest_statements(template: Template) -> list[dict[str, Any]]:
    roles = template.find_resources("AWS::IAM::Role", {
        "Properties": {"Description": Match.string_like_regexp("ingest")}
    })
    (role_id,) = roles
    policies = template.find_resources("AWS::IAM::Policy", {
        "Properties": {"Roles": [{"Ref": role_id}]}
    })
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def _env(template: Template, service: str) -> dict[str, Any]:
    (function,) = template.find_resources("AWS::Lambda::Function", {
        "Properties": {"Environment": {"Variables": {"POWERTOOLS_SERVICE_NAME": service}}}
    }).values()
    return function["Properties"]["Environment"]["Variables"]


# -- Amazon MSK --------------------------------------------------------------------------------
def test_msk_mapping_has_the_failure_settings_in_provisioned_mode(synth_kafka: Any) -> None:
    template, _ = synth_kafka(MSK_CONTEXT)
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": CLUSTER_ARN,
        "Topics": ["user-events"],
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 500,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 5,
        "MaximumRecordAgeInSeconds": 86400,
        "DestinationConfig": {"OnFailure": {"Destination": {
            "Fn::GetAtt": [Match.string_like_regexp("FailedBatchesQueue"), "Arn"],
        }}},
        # Retries, bisect, record age and partial failures exist for Kafka in this mode only.
        "ProvisionedPollerConfig": {"MinimumPollers": 1, "MaximumPollers": 10},
        "AmazonManagedKafkaEventSourceConfig": {"ConsumerGroupId": "tidegate-clickstream"},
        "ParallelizationFactor": Match.absent(),
        "SourceAccessConfigurations": Match.absent(),  # IAM access control
    })
    # No source stream is created (the sink stream only), the watermark waits for the
    # declared partitions, and the lag alarm is Kafka's (records), not Kinesis' (age).
    template.resource_count_is("AWS::Kinesis::Stream", 1)
    for service in ("tidegate-ingest", "tidegate-closer"):
        env = _env(template, service)
        assert env[topology.ENV_SOURCE_PARTITIONS] == "user-events-0,user-events-1,user-events-2"
        assert env[topology.ENV_SOURCE_STREAM] == "user-events"
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "OffsetLag", "Namespace": "AWS/Lambda", "Threshold": 100_000,
    })
    assert not template.find_resources("AWS::CloudWatch::Alarm", {
        "Properties": {"MetricName": "IteratorAge"}
    })
    outputs = template.to_json()["Outputs"]
    assert outputs["KafkaCluster"]["Value"] == CLUSTER_ARN
    assert outputs["SourceTopic"]["Value"] == "user-events"
    assert "SourceStreamArn" not in outputs


def test_msk_iam_grants_name_the_cluster_topic_and_consumer_group(synth_kafka: Any) -> None:
    template, _ = synth_kafka(MSK_CONTEXT)
    statements = _ingest_statements(template)
    by_action = {a: s["Resource"] for s in statements for a in _actions(s)}
    cluster = CLUSTER_ARN
    topic = f"arn:aws:kafka:us-east-1:123456789012:topic/{CLUSTER_PATH}/user-events"
    group = f"arn:aws:kafka:us-east-1:123456789012:group/{CLUSTER_PATH}/tidegate-clickstream"
    assert {a: by_action.get(a) for a in (
        "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers", "kafka-cluster:Connect",
        "kafka-cluster:DescribeTopic", "kafka-cluster:ReadData",
        "kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup",
    )} == {
        "kafka:DescribeClusterV2": cluster, "kafka:GetBootstrapBrokers": cluster,
        "kafka-cluster:Connect": cluster,
        "kafka-cluster:DescribeTopic": topic, "kafka-cluster:ReadData": topic,
        "kafka-cluster:DescribeGroup": group, "kafka-cluster:AlterGroup": group,
    }
    # Only X-Ray and the pollers' network interfaces are on "*"; no write to Kafka, no
    # secret (IAM auth), no AWS managed policy (ManagedKafkaEventSource would attach one).
    wildcard = {a for s in statements if s["Resource"] == "*" for a in _actions(s)}
    assert wildcard == {
        "xray:PutTraceSegments", "xray:PutTelemetryRecords",
        "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets", "ec2:DescribeVpcs",
    }
    assert not [a for a in by_action if a.startswith(("secretsmanager:", "kafka-cluster:Write"))]
    template.all_resources_properties("AWS::IAM::Role", {"ManagedPolicyArns": Match.absent()})


def test_msk_with_a_scram_secret_reads_it_instead_of_using_iam(synth_kafka: Any) -> None:
    template, _ = synth_kafka(MSK_SCRAM_CONTEXT)
    mapping = _kafka_mapping(template)
    assert mapping["EventSourceArn"] == CLUSTER_ARN
    assert mapping["SourceAccessConfigurations"] == [
        {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET_ARN}
    ]
    # The default consumer group carries the stage, as stack and stream names do.
    assert mapping["AmazonManagedKafkaEventSourceConfig"] == {
        "ConsumerGroupId": "tidegate-clickstream-staging"
    }
    actions = {a: s["Resource"] for s in _ingest_statements(template) for a in _actions(s)}
    assert actions["secretsmanager:GetSecretValue"] == SECRET_ARN
    assert actions["kms:Decrypt"] == KEY_ARN
    assert actions["kafka:DescribeClusterV2"] == CLUSTER_ARN
    assert not [a for a in actions if a.startswith("kafka-cluster:")]


# -- self-managed --------------------------------------------------------------------------------
def test_self_managed_brokers_in_a_vpc_with_a_scram_secret(synth_kafka: Any) -> None:
    template, _ = synth_kafka(SELF_MANAGED_CONTEXT)
    mapping = _kafka_mapping(template)
    assert mapping["SelfManagedEventSource"] == {
        "Endpoints": {"KafkaBootstrapServers": BROKERS.split(",")}
    }
    assert "EventSourceArn" not in mapping
    assert mapping["SourceAccessConfigurations"] == [
        {"Type": "SASL_SCRAM_512_AUTH", "URI": SECRET_ARN},
        {"Type": "VPC_SUBNET", "URI": "subnet:subnet-0a1b2c3d"},
        {"Type": "VPC_SUBNET", "URI": "subnet:subnet-4e5f6a7b"},
        {"Type": "VPC_SECURITY_GROUP", "URI": "security_group:sg-0123456789abcdef0"},
    ]
    assert mapping["SelfManagedKafkaEventSourceConfig"] == {
        "ConsumerGroupId": "tidegate-clickstream"
    }
    assert mapping["ProvisionedPollerConfig"] == {"MinimumPollers": 1, "MaximumPollers": 4}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True

    statements = _ingest_statements(template)
    (secret,) = [s for s in statements if "secretsmanager:GetSecretValue" in _actions(s)]
    assert secret["Resource"] == SECRET_ARN and _actions(secret) == [
        "secretsmanager:GetSecretValue"
    ]
    (decrypt,) = [s for s in statements if "kms:Decrypt" in _actions(s)]
    assert decrypt["Resource"] == KEY_ARN
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
    }
    assert any("ec2:CreateNetworkInterface" in _actions(s) for s in statements)
    assert not [a for s in statements for a in _actions(s) if a.startswith("kafka")]


@pytest.mark.parametrize("context", [MSK_CONTEXT, MSK_SCRAM_CONTEXT, SELF_MANAGED_CONTEXT],
                         ids=["msk-iam", "msk-scram", "self-managed"])
def test_kafka_sources_pass_cdk_nag(synth_kafka: Any, context: dict[str, str]) -> None:
    _, findings = synth_kafka(context)
    assert findings == []


# -- refused configurations ------------------------------------------------------------------
def test_msk_pipeline_without_a_cluster_names_the_context_keys_to_set(
    synth_app: Any, msk_pipeline_file: Path
) -> None:
    with pytest.raises(TidegateConfigError) as error:
        synth_app(pipelines=str(msk_pipeline_file))
    message = str(error.value)
    assert "'clickstream'" in message and "'user-events'" in message
    assert "msk_cluster_arn" in message and "kafka_bootstrap_servers" in message


@pytest.mark.parametrize(("settings", "ingest", "expected"), [
    (KafkaSourceSettings(cluster_arn=CLUSTER_ARN, bootstrap_servers=("b:9092",)), None,
     r"msk_cluster_arn .* and kafka_bootstrap_servers .* are exclusive"),
    (KafkaSourceSettings(cluster_arn="arn:aws:kinesis:us-east-1:123456789012:stream/x"), None,
     r"msk_cluster_arn .*'arn:aws:kinesis.*' is not an MSK cluster ARN"),
    (KafkaSourceSettings(cluster_arn=CLUSTER_ARN, subnet_ids=("subnet-1",)), None,
     r"kafka_subnet_ids .* is for self-managed brokers"),
    (KafkaSourceSettings(cluster_arn=CLUSTER_ARN, auth="basic", secret_arn=SECRET_ARN), None,
     r"kafka_auth .* 'basic': Amazon MSK takes one of iam, sasl_scram_512, mtls"),
    (KafkaSourceSettings(bootstrap_servers=("b-1:9092",)), None,
     r"over the internet need authentication"),
    (KafkaSourceSettings(bootstrap_servers=("b-1:9092",), auth="mtls"), None,
     r"kafka_auth .* 'mtls' needs kafka_secret_arn"),
    (KafkaSourceSettings(bootstrap_servers=("b-1:9092",), subnet_ids=("subnet-1",)), None,
     r"need both kafka_subnet_ids .* and kafka_security_group_ids"),
    (KafkaSourceSettings(bootstrap_servers=("b-1",), secret_arn=SECRET_ARN), None,
     r"kafka_bootstrap_servers .*: host:port expected"),
    (KafkaSourceSettings(cluster_arn=CLUSTER_ARN, min_pollers=5, max_pollers=2), None,
     r"kafka_min_pollers .* 1\.\.200 and kafka_max_pollers .* not 5\.\.2"),
    (KafkaSourceSettings(cluster_arn=CLUSTER_ARN), IngestSettings(parallelization_factor=2),
     r"parallelization_factor 2 is a Kinesis setting.*userId"),
])
def test_refused_kafka_settings_name_what_to_change(
    tmp_path: Path, clickstream_data: dict[str, Any],
    settings: KafkaSourceSettings, ingest: IngestSettings | None, expected: str,
) -> None:
    stack = Stack(App(outdir=str(tmp_path)), "Probe")
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:tidegate:1"
    )
    pipeline = parse_pipeline({**clickstream_data, "source": MSK_SOURCE})
    with pytest.raises(TidegateConfigError, match=expected):
        TidegatePipeline(stack, "Pipeline", pipeline=pipeline, runtime_layer=layer,
                         kafka=settings, ingest=ingest)


def test_kafka_settings_on_a_kinesis_pipeline_are_refused(
    tmp_path: Path, clickstream: Any
) -> None:
    stack = Stack(App(outdir=str(tmp_path)), "Probe")
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:tidegate:1"
    )
    with pytest.raises(TidegateConfigError, match=r"kafka settings are for source\.type msk"):
        TidegatePipeline(stack, "Pipeline", pipeline=clickstream, runtime_layer=layer,
                         kafka=KafkaSourceSettings(cluster_arn=CLUSTER_ARN))


def test_context_values_become_settings() -> None:
    context = {
        "kafka_bootstrap_servers": " b-1:9092, b-2:9092 ",
        "kafka_subnet_ids": ["subnet-1", "subnet-2"],  # cdk.json lists
        "kafka_min_pollers": "2",
        "kafka_auth": "basic",
    }
    settings = settings_from_context(context.get)
    assert settings == KafkaSourceSettings(
        bootstrap_servers=("b-1:9092", "b-2:9092"), subnet_ids=("subnet-1", "subnet-2"),
        min_pollers=2, auth="basic",
    )
    assert settings_from_context({}.get) is None
    with pytest.raises(TidegateConfigError, match="kafka_max_pollers: a whole number"):
        settings_from_context({"kafka_max_pollers": "many"}.get)
