"""The synthesized templates deployed into moto's CloudFormation, and the Kinesis one driven.

Every variant (Kinesis, MSK, each sink, replay, production, customer key) is created as
CloudFormation would create it; only the resource types moto's CloudFormation cannot model
are taken out, each listed below with what depends on it. The Kinesis stack is then run:
the demo's events go through the real handlers, configured by the environment the deployed
functions got from CloudFormation and reading the pipeline file shipped in their code, against
the stream, table, queues and sink the stack created (names read from the stack). The results
must equal `tidegate local run`'s.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.infra.conftest import VARIANTS, Synthesized
from tidegate import topology
from tidegate.aws import client
from tidegate.spec import Pipeline, pipeline_from_json

# What moto's CloudFormation has no model for (moto.cloudformation.parsing), and why the
# stack is still whole without it here: nothing in a test reads these.
UNMODELLED = {
    "AWS::CloudWatch::Alarm": "alarms (their settings are asserted on the template)",
    "AWS::SQS::QueuePolicy": "the TLS-only queue policies",
    "AWS::SNS::TopicPolicy": "the TLS-only topic policies",
    "AWS::Lambda::EventInvokeConfig": "the closer's no-retry async setting",
    "AWS::SNS::Subscription": "the alarm topic's e-mail subscription",
}
# Modelled, but moto's Lambda refuses a Kafka source ("Invalid EventSourceArn"): it
# knows Kinesis, DynamoDB and SQS mappings. test_cdk_kafka_source.py asserts this one.
KAFKA_MAPPING = "AWS::Lambda::EventSourceMapping with Topics (a Kafka source)"
# Kept out because they name an unmodelled resource (the dashboard's alarm widget).
DEPENDENTS = {"AWS::CloudWatch::Dashboard"}
BOOTSTRAP_VERSION = "/cdk-bootstrap/hnb659fds/version"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


def deployable(template: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The template less the unmodelled resources (and those naming them); their ids."""
    from moto.cloudformation.parsing import resource_class_from_type

    resources = template["Resources"]
    unmodelled = {r["Type"] for r in resources.values()
                  if resource_class_from_type(r["Type"]) is None}
    # The list above is the truth: a type moto learns to model must leave it.
    assert unmodelled <= set(UNMODELLED), f"moto cannot model {unmodelled - set(UNMODELLED)}"
    removed = {k for k, r in resources.items() if r["Type"] in UNMODELLED
               or (r["Type"] == "AWS::Lambda::EventSourceMapping"
                   and "Topics" in r.get("Properties", {}))}
    removed |= {k for k, r in resources.items() if r["Type"] in DEPENDENTS
                and any(f'"{gone}"' in json.dumps(r) for gone in removed)}
    kept = {}
    for logical_id, resource in resources.items():
        if logical_id in removed:
            continue
        resource = dict(resource)
        depends = resource.get("DependsOn")
        if depends:
            depends = [depends] if isinstance(depends, str) else depends
            resource["DependsOn"] = [d for d in depends if d not in removed]
        kept[logical_id] = resource
    outputs = {k: v for k, v in template.get("Outputs", {}).items()
               if not any(f'"{gone}"' in json.dumps(v) for gone in removed)}
    return {**template, "Resources": kept, "Outputs": outputs}, removed


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "")
    return buffer.getvalue()


def _upload_assets(synth: Synthesized) -> None:
    """As `cdk deploy` publishes them: moto's Lambda reads each code object from S3 (it
    never runs it, so a stand-in archive is enough)."""
    manifest = json.loads((synth.outdir / f"{synth.stack_name}.assets.json").read_text())
    s3 = client("s3")
    body = _zip()
    for asset in manifest["files"].values():
        for dest in asset["destinations"].values():
            bucket = (dest["bucketName"].replace("${AWS::AccountId}", "123456789012")
                      .replace("${AWS::Region}", "us-east-1"))
            if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=dest["objectKey"], Body=body)


@pytest.fixture(scope="module")
def cloudformation(moto_url: str) -> Iterator[Callable[[Synthesized], dict[str, Any]]]:
    from tidegate_dev.local.server import endpoint

    with endpoint(moto_url):
        ssm = client("ssm")
        ssm.put_parameter(Name=BOOTSTRAP_VERSION, Value="30", Type="String", Overwrite=True)

        created: dict[str, dict[str, Any]] = {}

        def deploy(synth: Synthesized) -> dict[str, Any]:
            """Create the stack once; later calls get the same one."""
            if synth.stack_name not in created:
                created[synth.stack_name] = create(synth)
            return created[synth.stack_name]

        def create(synth: Synthesized) -> dict[str, Any]:
            template, removed = deployable(synth.template)
            _upload_assets(synth)
            cfn = client("cloudformation")
            cfn.create_stack(StackName=synth.stack_name, TemplateBody=json.dumps(template),
                             Capabilities=CAPABILITIES)
            stack = cfn.describe_stacks(StackName=synth.stack_name)["Stacks"][0]
            assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
            created = cfn.describe_stack_resources(StackName=synth.stack_name)["StackResources"]
            return {
                "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
                "resources": {r["LogicalResourceId"]: r for r in created},
                "template": template,
                "removed": removed,
            }

        yield deploy


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_template_variant_is_created_by_cloudformation(
    name: str, synth_variant: Callable[..., Synthesized],
    cloudformation: Callable[[Synthesized], dict[str, Any]],
) -> None:
    synth = synth_variant(name)
    deployed = cloudformation(synth)
    # every resource the test did not take out was created
    assert set(deployed["resources"]) == set(deployed["template"]["Resources"])
    not_created = {k: (r["ResourceType"], r["ResourceStatus"])
                   for k, r in deployed["resources"].items()
                   if r["ResourceStatus"] != "CREATE_COMPLETE"}
    assert not_created == {}
    outputs = deployed["outputs"]
    assert outputs["StateTableName"] and outputs["OperatorPolicyArn"].startswith("arn:aws:iam::")
    table = client("dynamodb").describe_table(TableName=outputs["StateTableName"])["Table"]
    assert table["TableStatus"] == "ACTIVE"
    if name == "sink-eventbridge":
        # moto resolves a Ref to an event bus (in the closer's environment) to its model
        # object, which its Lambda API then fails to serialize: the stack is created, its
        # functions cannot be described.
        return
    closer = client("lambda").get_function_configuration(
        FunctionName=outputs["CloserFunctionName"])
    env = closer["Environment"]["Variables"]
    # The references resolved to what CloudFormation created
    assert env[topology.ENV_TABLE] == outputs["StateTableName"]
    assert env[topology.ENV_DLQ_URL] == outputs["DeadLetterQueueUrl"]
    assert env[topology.ENV_STATE_VERSION] == outputs["LiveStateVersionValue"] == "1"


# -- the Kinesis stack, driven ---------------------------------------------------------------
def _deployment(synth: Synthesized, deployed: dict[str, Any]) -> Any:
    """The stack's resources (from its outputs) and the deployed functions' environment."""
    from tidegate_dev.local.resources import LocalDeployment

    outputs = deployed["outputs"]
    lam = client("lambda")
    envs = {}
    for role in ("Ingest", "Closer"):
        config = lam.get_function_configuration(FunctionName=outputs[f"{role}FunctionName"])
        envs[role] = dict(config["Environment"]["Variables"])
    assert {k: v for k, v in envs["Ingest"].items() if k != "POWERTOOLS_SERVICE_NAME"} == {
        k: v for k, v in envs["Closer"].items() if k != "POWERTOOLS_SERVICE_NAME"}
    # The pipeline as the functions read it: the file shipped in their code.
    (ingest,) = [
        r for r in synth.template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME")
        == "tidegate-ingest"
    ]
    code = synth.code_dir(ingest["Properties"]["Code"]["S3Key"])
    assert envs["Ingest"][topology.ENV_PIPELINE] == f"file:{topology.PIPELINE_FILE}"
    pipeline: Pipeline = pipeline_from_json((code / topology.PIPELINE_FILE).read_text())
    env = {
        **envs["Ingest"],
        "LAMBDA_TASK_ROOT": str(code),  # where the runtime finds the shipped spec
        "POWERTOOLS_SERVICE_NAME": "tidegate-ingest",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    return LocalDeployment(
        pipeline=pipeline,
        source_stream=outputs["SourceStreamName"],
        table=outputs["StateTableName"],
        dlq_url=outputs["DeadLetterQueueUrl"],
        late_url=outputs["LateQueueUrl"],
        sink_target=outputs["SinkTarget"],
        env=env,
    )


def _deployed_run(
    synth: Synthesized, deployed: dict[str, Any], lines: list[bytes],
    monkeypatch: pytest.MonkeyPatch, url: str,
) -> Any:
    """The local runner's delivery and readback, with its own resource builder replaced by
    the stack's resources and the deployed functions' environment."""
    from tidegate_dev.local import runner

    deployment = _deployment(synth, deployed)
    monkeypatch.setattr(runner, "_deploy", lambda *args: deployment)
    return runner.run_pipeline(deployment.pipeline, lines, shards=2, batch_size=100,
                               endpoint_url=url)


def _comparable(results: list[dict[str, Any]]) -> list[str]:
    # A smoke test's results (its own keys) may share the sink: not the demo's.
    return sorted(json.dumps(r, sort_keys=True) for r in results
                  if "tidegate-smoke-" not in json.dumps(r.get("key")))


def test_the_kinesis_stack_runs_the_demo_as_local_run_does(
    synth_variant: Callable[..., Synthesized],
    cloudformation: Callable[[Synthesized], dict[str, Any]],
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tidegate_dev.demo_events import generate
    from tidegate_dev.local.runner import run_pipeline

    lines = generate(600, 6, seed=17)
    lines.insert(100, b"{\"not\": \"an event\"}")  # dead-lettered on both sides
    synth = synth_variant("kinesis")
    deployed = cloudformation(synth)
    outputs = deployed["outputs"]

    # GIVEN the stack CloudFormation created, WHEN the demo runs through it
    on_stack = _deployed_run(synth, deployed, lines, monkeypatch, moto_url)
    monkeypatch.undo()
    # THEN it equals `tidegate local run` of the same pipeline file and events
    pipeline = pipeline_from_json(synth.stack.pipeline.pipeline.to_json())
    local = run_pipeline(pipeline, lines, shards=2, batch_size=100, endpoint_url=moto_url)
    assert on_stack.summary == local.summary
    assert on_stack.summary["dead_lettered"] >= 1 and on_stack.summary["results"] > 10
    assert _comparable(on_stack.results) == _comparable(local.results)
    # and it went through the stack's own resources
    shards = client("kinesis").list_shards(StreamName=outputs["SourceStreamName"])["Shards"]
    assert len(shards) == 2
    items = client("dynamodb").scan(TableName=outputs["StateTableName"], Select="COUNT")
    assert items["Count"] > 0


def test_smoke_passes_on_the_deployed_stack_and_leaves_no_state(
    synth_variant: Callable[..., Synthesized],
    cloudformation: Callable[[Synthesized], dict[str, Any]],
) -> None:
    """`tidegate smoke` against the stack while its (emulated) mappings run the handlers.
    A stack of its own: the demo's run ends by flushing its watermark to the end of time,
    after which every new event is late (as it should be)."""
    import threading
    import time
    from datetime import UTC, datetime

    from tidegate_dev.local.context import LambdaContext
    from tidegate_dev.local.esm import KinesisEventSourceMapping, StartingPosition
    from tidegate_dev.local.runner import handler_environment
    from tidegate_dev.ops.smoke import Smoke, stack_pipeline

    synth = synth_variant("kinesis", stage=f"smoke{uuid.uuid4().hex[:8]}")
    deployed = cloudformation(synth)
    deployment = _deployment(synth, deployed)
    # The pipeline as the stack carries it (its template's metadata)
    pipeline = stack_pipeline(synth.stack_name)
    assert pipeline == deployment.pipeline
    # Event time runs 30 times faster than the wall clock (at most 2 minutes ahead, inside
    # max_future_skew), so a 1-minute window closes in seconds.
    started = time.monotonic()
    real_start = int(time.time() * 1000)

    def fast_clock() -> int:
        return real_start + min(int((time.monotonic() - started) * 30_000), 120_000)

    stop = threading.Event()
    with handler_environment(deployment) as (ingest, closer, _observed):
        mapping = KinesisEventSourceMapping(
            deployment.source_stream, ingest.handler, batch_size=100,
            start=StartingPosition("AT_TIMESTAMP", datetime.now(UTC)))

        def run_the_stack() -> None:
            while not stop.is_set():
                while mapping.pending():
                    mapping.deliver_round()
                closer.handler({}, LambdaContext("tidegate-closer"))
                stop.wait(0.05)

        worker = threading.Thread(target=run_the_stack, daemon=True)
        worker.start()
        try:
            check = Smoke(pipeline, deployed["outputs"], events=12, timeout_s=60, tick_s=0.2,
                          now_ms=fast_clock)
            report = check.run_check()
        finally:
            stop.set()
            worker.join(30)
        cleaned = check.clean_up()

    assert report.problems == []
    assert (report.aggregated, report.windows_open, report.result_count) == (12, 0, 12)
    assert report.results >= 5 and report.ticks > 0 and cleaned > 0
    # nothing of the run's keys is left in the state table
    assert check.state() == (0, 0) and check.items(check.key("tick")) == []
