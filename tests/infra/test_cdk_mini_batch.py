"""`mini_batch` in the construct: the Kinesis mapping's tumbling window, larger Kafka batches,
and the settings it cannot be combined with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.app import build_app
from infra.constructs.pipeline import IngestSettings, TidegateConfigError, TidegatePipeline
from tidegate.spec import parse_pipeline

CLUSTER_ARN = ("arn:aws:kafka:us-east-1:123456789012:cluster/events/"
               "0a1b2c3d-1111-2222-3333-444455556666-1")


def _stack(tmp_path: Path) -> tuple[Stack, lambda_.ILayerVersion]:
    stack = Stack(App(outdir=str(tmp_path)), "Probe")
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:tidegate:1")
    return stack, layer


def _mapping(template: Template) -> dict[str, Any]:
    (mapping,) = template.find_resources("AWS::Lambda::EventSourceMapping", {
        "Properties": {"StartingPosition": "TRIM_HORIZON"}}).values()
    return dict(mapping["Properties"])


@pytest.mark.parametrize(("latency", "window_s"), [("90s", 90), (None, None)])
def test_kinesis_mapping_gets_a_tumbling_window_of_the_allowed_latency(
    tmp_path: Path, clickstream_data: dict[str, Any], latency: str | None, window_s: int | None,
) -> None:
    data = {**clickstream_data, "watermark": {**clickstream_data.get("watermark", {}),
                                              "idle_timeout": "5m"}}
    if latency:
        data["mini_batch"] = {"allow_latency": latency}
    stack, layer = _stack(tmp_path)

    TidegatePipeline(stack, "Pipeline", pipeline=parse_pipeline(data), runtime_layer=layer)

    mapping = _mapping(Template.from_stack(stack))
    assert mapping.get("TumblingWindowInSeconds") == window_s
    assert mapping["ParallelizationFactor"] == 1


def test_mini_batch_refuses_a_parallelized_shard(
    tmp_path: Path, clickstream_data: dict[str, Any]
) -> None:
    data = {**clickstream_data, "mini_batch": {"allow_latency": "30s"}}
    stack, layer = _stack(tmp_path)
    with pytest.raises(TidegateConfigError, match=r"mini_batch.*ParallelizationFactor 2"):
        TidegatePipeline(
            stack, "Pipeline", pipeline=parse_pipeline(data), runtime_layer=layer,
            ingest=IngestSettings(parallelization_factor=2, partitioned_by_key=True),
        )


def test_kafka_mapping_takes_larger_batches_for_the_allowed_latency(
    tmp_path: Path, stub_layer_dir: Path, clickstream_data: dict[str, Any]
) -> None:
    data = {**clickstream_data, "mini_batch": {"allow_latency": "10m"},
            "watermark": {**clickstream_data.get("watermark", {}), "idle_timeout": "15m"},
            "source": {"type": "msk", "topic": "user-events", "shards": 2}}
    path = tmp_path / "clickstream-msk.yaml"
    path.write_text(yaml.safe_dump(data))
    app = App(outdir=str(tmp_path / "out"),
              context={"pipelines": str(path), "msk_cluster_arn": CLUSTER_ARN})

    (stack,) = build_app(app, layer_dir=stub_layer_dir)

    Template.from_stack(stack).has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "EventSourceArn": CLUSTER_ARN,
        "BatchSize": 10_000,
        "MaximumBatchingWindowInSeconds": 300,  # Lambda's longest: 10m is beyond it
        "TumblingWindowInSeconds": Match.absent(),
    })


def test_provisioned_capacity_auto_scales_the_table_and_its_index(
    tmp_path: Path, clickstream_data: dict[str, Any]
) -> None:
    data = {**clickstream_data, "capacity": {
        "mode": "provisioned", "write_units": {"min": 5, "max": 400},
        "read_units": {"min": 2, "max": 50}, "target_utilization": 60}}
    stack, layer = _stack(tmp_path)

    TidegatePipeline(stack, "Pipeline", pipeline=parse_pipeline(data), runtime_layer=layer)

    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "BillingMode": Match.absent(),
        "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 5},
        "GlobalSecondaryIndexes": [Match.object_like({
            "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 5}})],
        "OnDemandThroughput": Match.absent(),
    })
    targets = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    # Reads and writes, of the table and of the open-window index.
    assert sorted((t["Properties"]["ScalableDimension"].rsplit(":", 1)[1],
                   t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"])
                  for t in targets.values()) == [
        ("ReadCapacityUnits", 2, 50), ("ReadCapacityUnits", 2, 50),
        ("WriteCapacityUnits", 5, 400), ("WriteCapacityUnits", 5, 400)]
    policies = template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert {p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
            for p in policies.values()} == {60}


def test_on_demand_is_the_default(tmp_path: Path, clickstream_data: dict[str, Any]) -> None:
    stack, layer = _stack(tmp_path)
    TidegatePipeline(stack, "Pipeline", pipeline=parse_pipeline(clickstream_data),
                     runtime_layer=layer)
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::DynamoDB::Table", {"BillingMode": "PAY_PER_REQUEST"})
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
