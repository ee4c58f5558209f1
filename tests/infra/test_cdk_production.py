"""What a platform team signs off: `-c stage=prod -c alarm_topic_arn=...` gives alarms that
reach someone, nothing lost on teardown or with time, customer keys on request, limits on
blast radius, and operations through the stack; bad settings are refused by name."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.constructs.errors import TidegateConfigError
from infra.context import CONTEXT_KEYS, read_settings
from infra.layer import ROOT
from tests.infra.conftest import ALARM_TOPIC_ARN, VARIANTS, Synthesized, offline_env
from tidegate import topology

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _alarm_metrics(alarm: dict[str, Any]) -> set[str]:
    """The metric names an alarm watches (one metric, or each of a math expression's)."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return {props["MetricName"]}
    return {q["MetricStat"]["Metric"]["MetricName"]
            for q in props.get("Metrics", []) if "MetricStat" in q}


def _alarms_on(template: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    return [a for a in _of_type(template, "AWS::CloudWatch::Alarm").values()
            if metric in _alarm_metrics(a)]


def _dimension(alarm: dict[str, Any], name: str) -> str:
    for d in alarm["Properties"].get("Dimensions", []):
        if d["Name"] == name:
            return json.dumps(d["Value"])
    return ""


@pytest.fixture(scope="module")
def prod(synth_variant: Callable[..., Synthesized]) -> dict[str, Any]:
    return synth_variant("prod").template


# -- alarms that reach someone ---------------------------------------------------------------
def test_every_alarm_notifies_the_given_topic(prod: dict[str, Any]) -> None:
    alarms = _of_type(prod, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 15
    assert {k: a["Properties"].get("AlarmActions") for k, a in alarms.items()} == {
        k: [ALARM_TOPIC_ARN] for k in alarms
    }


def test_alarms_for_sink_throttles_kinesis_dynamodb_late_queue_and_retention(
    prod: dict[str, Any],
) -> None:
    (publish,) = _alarms_on(prod, "PublishFailures")
    assert publish["Properties"]["Namespace"] == "tidegate"
    assert publish["Properties"]["Threshold"] == 0
    throttled = {_dimension(a, "FunctionName") for a in _alarms_on(prod, "Throttles")}
    assert any("IngestFunction" in f for f in throttled)
    assert any("CloserFunction" in f for f in throttled)
    for metric in ("ReadProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded"):
        (alarm,) = _alarms_on(prod, metric)
        assert "SourceStream" in _dimension(alarm, "StreamName")
    for metric in ("ThrottledRequests", "SystemErrors"):
        (alarm,) = _alarms_on(prod, metric)
        # one metric per operation the state store makes, summed
        assert len(alarm["Properties"]["Metrics"]) >= 6
    late = [a for a in _alarms_on(prod, "ApproximateNumberOfMessagesVisible")
            if "LateQueue" in _dimension(a, "QueueName")]
    assert [a["Properties"]["Threshold"] for a in late] == [1000]
    # iterator age at half of the stream's 168 h, besides the 5-minute one
    thresholds = sorted(a["Properties"]["Threshold"] for a in _alarms_on(prod, "IteratorAge"))
    assert thresholds == [300_000, 168 * 3600_000 // 2]


def test_dashboard_has_dynamodb_panels(prod: dict[str, Any]) -> None:
    (dashboard,) = _of_type(prod, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits",
                   "ThrottledRequests", "SystemErrors", "SuccessfulRequestLatency"):
        assert metric in body


# -- nothing lost ----------------------------------------------------------------------------
def test_queues_retained_table_protected_stream_keeps_a_week(prod: dict[str, Any]) -> None:
    queues = _of_type(prod, "AWS::SQS::Queue")
    assert len(queues) == 3
    assert {q["DeletionPolicy"] for q in queues.values()} == {"Retain"}
    (table,) = _of_type(prod, "AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    streams = {s["Properties"]["Name"]: s for s in _of_type(prod, "AWS::Kinesis::Stream").values()}
    assert streams["user-events-prod"]["Properties"]["RetentionPeriodHours"] >= 168
    (mapping,) = [m for m in _of_type(prod, "AWS::Lambda::EventSourceMapping").values()
                  if m["Properties"].get("StartingPosition") == "TRIM_HORIZON"]
    assert mapping["Properties"]["MaximumRecordAgeInSeconds"] == 24 * 3600


def test_physical_names_carry_the_stage(prod: dict[str, Any]) -> None:
    names = {s["Properties"]["Name"] for s in _of_type(prod, "AWS::Kinesis::Stream").values()}
    assert names == {"user-events-prod", "analytics-output-prod"}


# -- blast radius ----------------------------------------------------------------------------
def test_closer_reserved_concurrency_and_table_ceiling(prod: dict[str, Any]) -> None:
    closers = [f for f in _of_type(prod, "AWS::Lambda::Function").values()
               if f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
               == "tidegate-closer"]
    # index_shards 4 workers, plus the coordinators
    assert [f["Properties"]["ReservedConcurrentExecutions"] for f in closers] == [7]
    (table,) = _of_type(prod, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["OnDemandThroughput"] == {
        "MaxReadRequestUnits": 30_000, "MaxWriteRequestUnits": 10_000,
    }


def test_the_ceilings_and_concurrency_follow_the_context(
    synth_app: Callable[..., list[Any]],
) -> None:
    from aws_cdk.assertions import Template

    (stack,) = synth_app(table_max_write_units="2500", closer_reserved_concurrency="20")
    template = Template.from_stack(stack).to_json()
    (table,) = _of_type(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["OnDemandThroughput"]["MaxWriteRequestUnits"] == 2500
    reserved = [f["Properties"].get("ReservedConcurrentExecutions")
                for f in _of_type(template, "AWS::Lambda::Function").values()]
    assert sorted(reserved, key=str) == [20, None]


# -- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize(("context", "message"), [
    ({"stage": "prod", "removal_policy": "destroy", "alarm_topic_arn": ALARM_TOPIC_ARN},
     r"removal_policy=destroy is refused for stage=prod: `cdk destroy` would delete"),
    ({"stage": "prod"}, r"stage=prod needs somewhere for alarms to go: -c alarm_topic_arn="),
    ({"removal_policy": "wipe"}, r"removal_policy: 'retain' or 'destroy', not 'wipe'"),
    ({"alarm_topic_arn": "arn:aws:sqs:us-east-1:123456789012:ops"},
     r"alarm_topic_arn: an SNS topic ARN"),
    ({"alarm_topic_arn": ALARM_TOPIC_ARN, "alarm_email": "a@b.co"}, r"are exclusive"),
    ({"alarm_email": "ops"}, r"alarm_email: an e-mail address, not 'ops'"),
    ({"kms": "mine"}, r"kms: 'aws' or 'customer', not 'mine'"),
    ({"kms": "customer", "kms_key_arn": KEY_ARN}, r"give one of them"),
    ({"kms_key_arn": "alias/mine"}, r"kms_key_arn: a KMS key ARN"),
    ({"stream_retention_hours": "12"}, r"stream_retention_hours: a whole number 24\.\.8760"),
    ({"max_record_age_hours": "200"}, r"max_record_age_hours: a whole number 1\.\.168"),
    ({"table_max_write_units": "0"}, r"table_max_write_units: a whole number >= 1"),
    ({"deletion_protection": "maybe"}, r"deletion_protection: true or false"),
    ({"stage": "Prod!"}, r"context stage: lower-case letters"),
])
def test_bad_settings_are_refused_by_name(context: dict[str, str], message: str) -> None:
    with pytest.raises(TidegateConfigError, match=message):
        read_settings(context.get)


def test_both_production_problems_are_reported_together() -> None:
    with pytest.raises(TidegateConfigError) as error:
        read_settings({"stage": "prod", "removal_policy": "destroy"}.get)
    assert "removal_policy=destroy" in str(error.value) and "alarm_topic_arn" in str(error.value)


def test_deletion_protection_follows_the_removal_policy_unless_given() -> None:
    assert read_settings({}.get).deletion_protection is True
    assert read_settings({"removal_policy": "destroy"}.get).deletion_protection is False
    assert read_settings({"removal_policy": "destroy", "deletion_protection": "true"}.get
                         ).deletion_protection is True


def test_production_needs_a_sized_index(
    synth_app: Callable[..., list[Any]], tmp_path: Path, clickstream_data: dict[str, Any],
) -> None:
    import yaml

    unsized = {k: v for k, v in clickstream_data.items() if k != "index_shards"}
    path = tmp_path / "unsized.yaml"
    path.write_text(yaml.safe_dump(unsized))
    with pytest.raises(TidegateConfigError, match=r"stage=prod needs `index_shards` or "
                                                  r"`expected_keys`"):
        synth_app(pipelines=str(path), stage="prod", alarm_topic_arn=ALARM_TOPIC_ARN)
    # expected_keys sizes it as well
    path.write_text(yaml.safe_dump({**unsized, "expected_keys": 100_000}))
    (stack,) = synth_app(pipelines=str(path), stage="prod", alarm_topic_arn=ALARM_TOPIC_ARN)
    assert stack.pipeline.pipeline.index_shards > 4


def test_the_cli_refuses_destroy_for_prod_with_the_message() -> None:
    npx = shutil.which("npx")
    if npx is None or not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the CDK CLI is not installed: run `make node_modules` (npm ci)")
    proc = subprocess.run(
        [npx, "--no-install", "cdk", "synth", "--no-notices", "--quiet",
         "-c", "stage=prod", "-c", "removal_policy=destroy",
         "-c", f"alarm_topic_arn={ALARM_TOPIC_ARN}"],
        cwd=ROOT, env=offline_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "error: removal_policy=destroy is refused for stage=prod" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- keys ------------------------------------------------------------------------------------
def test_customer_key_covers_table_queues_streams_topic_and_logs(
    synth_variant: Callable[..., Synthesized],
) -> None:
    template = synth_variant("kms-customer").template
    (key_id, key), = _of_type(template, "AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    ref = {"Fn::GetAtt": [key_id, "Arn"]}
    (table,) = _of_type(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["SSESpecification"] == {
        "KMSMasterKeyId": ref, "SSEEnabled": True, "SSEType": "KMS"}
    for queue in _of_type(template, "AWS::SQS::Queue").values():
        assert queue["Properties"]["KmsMasterKeyId"] == ref
    for stream in _of_type(template, "AWS::Kinesis::Stream").values():
        assert stream["Properties"]["StreamEncryption"] == {"EncryptionType": "KMS",
                                                            "KeyId": ref}
    for group in _of_type(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["KmsKeyId"] == ref
    # the alarm topic the e-mail address asked for, under the key, subscribed
    (topic,) = _of_type(template, "AWS::SNS::Topic").values()
    assert topic["Properties"]["KmsMasterKeyId"] == ref
    (subscription,) = _of_type(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    # and CloudWatch may use the key to publish alarms to that topic
    principals = json.dumps(key["Properties"]["KeyPolicy"])
    assert "cloudwatch.amazonaws.com" in principals and "logs." in principals


def test_an_existing_key_is_used_as_given(synth_app: Callable[..., list[Any]]) -> None:
    from aws_cdk.assertions import Template

    (stack,) = synth_app(kms_key_arn=KEY_ARN)
    template = Template.from_stack(stack).to_json()
    assert _of_type(template, "AWS::KMS::Key") == {}
    (table,) = _of_type(template, "AWS::DynamoDB::Table").values()
    assert table["Properties"]["SSESpecification"]["KMSMasterKeyId"] == KEY_ARN


def test_default_stays_aws_managed(synth_variant: Callable[..., Synthesized]) -> None:
    template = synth_variant("kinesis").template
    assert _of_type(template, "AWS::KMS::Key") == {}
    for queue in _of_type(template, "AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


# -- replay and operations -------------------------------------------------------------------
def _statements_of(template: dict[str, Any], role_pattern: str) -> list[dict[str, Any]]:
    roles = [k for k, r in _of_type(template, "AWS::IAM::Role").items()
             if re.search(role_pattern, k)]
    return [s for p in _of_type(template, "AWS::IAM::Policy").values()
            if any(r.get("Ref") in roles for r in p["Properties"]["Roles"])
            for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_replay_roles_write_only_their_own_version(
    synth_variant: Callable[..., Synthesized],
) -> None:
    template = synth_variant("replay").template
    for role in ("ReplayV2IngestRole", "ReplayV2CloserRole"):
        writes = [s for s in _statements_of(template, role)
                  if any(a in ("dynamodb:PutItem", "dynamodb:UpdateItem")
                         for a in (s["Action"] if isinstance(s["Action"], list)
                                   else [s["Action"]]))]
        assert writes, role
        for statement in writes:
            assert statement["Condition"] == {"ForAllValues:StringLike": {
                "dynamodb:LeadingKeys": ["A#clickstream#v2#*", "M#clickstream#v2"]}}
    # the live ones are not held to a version
    live = [s for s in _statements_of(template, "^PipelineIngestRole")
            if "dynamodb:PutItem" in s["Action"]]
    assert live and all("Condition" not in s for s in live)


def test_replay_functions_are_limited_and_watched(
    synth_variant: Callable[..., Synthesized],
) -> None:
    template = synth_variant("replay").template
    functions = _of_type(template, "AWS::Lambda::Function")
    replay = {k: f["Properties"].get("ReservedConcurrentExecutions")
              for k, f in functions.items() if "ReplayV2" in k}
    assert replay == {k: v for k, v in replay.items() if v} and len(replay) == 2
    labels = " ".join(_of_type(template, "AWS::CloudWatch::Alarm"))
    for label in ("ReplayV2IngestErrors", "ReplayV2IngestThrottles", "ReplayV2CloserErrors",
                  "ReplayV2DeadLetterDepth", "ReplayV2LateDepth",
                  "ReplayV2IngestIteratorAgeRetention"):
        assert label in labels


def test_live_functions_take_their_state_version_from_the_parameter(
    prod: dict[str, Any],
) -> None:
    assert prod["Parameters"]["LiveStateVersion"]["Default"] == "1"
    for function in _of_type(prod, "AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env[topology.ENV_STATE_VERSION] == {"Ref": "LiveStateVersion"}
    assert prod["Outputs"]["LiveStateVersionParameter"]["Value"] == "LiveStateVersion"
    # `tidegate smoke --stack` reads the pipeline back from the template
    assert prod["Metadata"]["tidegate:pipeline"]["name"] == "clickstream"


def test_operator_policy_is_an_output_scoped_to_the_stack(prod: dict[str, Any]) -> None:
    (policy_id, policy), = _of_type(prod, "AWS::IAM::ManagedPolicy").items()
    assert prod["Outputs"]["OperatorPolicyArn"]["Value"] == {"Ref": policy_id}
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["StackOutputsAndCutover"]["Resource"] == {"Ref": "AWS::StackId"}
    assert "Condition" in statements["PauseAndResumeMappings"]
    assert statements["ListMappingsAndReadMetrics"]["Resource"] == "*"
    actions = {a for s in statements.values()
               for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    # it operates the pipeline; it cannot change code or permissions
    assert not {a for a in actions if a.startswith(("lambda:Update", "iam:Put", "iam:Create"))
                if a not in ("lambda:UpdateEventSourceMapping",)}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_cdk_nag_is_clean(name: str, synth_variant: Callable[..., Synthesized]) -> None:
    assert synth_variant(name).nag_findings == []


def test_docs_list_every_context_key() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    rows = set(re.findall(r"^\| `([A-Za-z_]+)` \|", text, flags=re.MULTILINE))
    assert rows == set(CONTEXT_KEYS)
