"""Local mode's topology is the deployed one: the same table, index, TTL, streams, queues
and environment contract, read from moto after `tidegate local run`'s deploy step and from
the synthesized template."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tidegate import topology
from tidegate.spec import Pipeline


@pytest.fixture(scope="module")
def local(clickstream: Pipeline) -> Iterator[dict[str, Any]]:
    """Deploy the pipeline's local resources on an embedded moto server and describe them."""
    from tidegate.aws import client
    from tidegate_dev.local.resources import deploy
    from tidegate_dev.local.server import endpoint

    # moto's state is per process, shared with other tests' servers: own the names.
    suffix = f"-parity-{uuid.uuid4().hex[:8]}"
    with endpoint():
        deployment = deploy(clickstream, shards=clickstream.source.shards or 1, suffix=suffix)
        ddb = client("dynamodb")
        table = ddb.describe_table(TableName=deployment.table)["Table"]
        ttl = ddb.describe_time_to_live(TableName=deployment.table)["TimeToLiveDescription"]
        # Described by name: listing pages through every stream other tests left in moto.
        kinesis = client("kinesis")
        streams = [
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamName"
            ].removesuffix(suffix)
            for name in (deployment.source_stream, deployment.sink_target)
        ]
        yield {"deployment": deployment, "table": table, "ttl": ttl, "streams": streams}


def _resources(template: Template, kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template.find_resources(kind).values()]


def _by_name(items: list[dict[str, Any]]) -> dict[str, str]:
    return {a["AttributeName"]: a.get("AttributeType") or a["KeyType"] for a in items}


def test_table_keys_and_attributes(template: Template, local: dict[str, Any]) -> None:
    (deployed,) = _resources(template, "AWS::DynamoDB::Table")
    table = local["table"]
    assert deployed["KeySchema"] == table["KeySchema"]
    assert _by_name(deployed["AttributeDefinitions"]) == _by_name(table["AttributeDefinitions"])
    assert deployed["BillingMode"] == table["BillingModeSummary"]["BillingMode"]
    # and both are topology's, the one definition
    shape = topology.table_definition("-")
    assert deployed["KeySchema"] == shape["KeySchema"]
    assert _by_name(deployed["AttributeDefinitions"]) == _by_name(shape["AttributeDefinitions"])


def test_open_windows_index(template: Template, local: dict[str, Any]) -> None:
    (deployed,) = _resources(template, "AWS::DynamoDB::Table")

    def shape(index: dict[str, Any]) -> tuple[Any, ...]:
        projection = index["Projection"]
        return (index["IndexName"], index["KeySchema"], projection["ProjectionType"],
                sorted(projection.get("NonKeyAttributes", [])))

    local_indexes = sorted(shape(i) for i in local["table"]["GlobalSecondaryIndexes"])
    assert sorted(shape(i) for i in deployed["GlobalSecondaryIndexes"]) == local_indexes
    assert local_indexes == [shape(i) for i in
                             topology.table_definition("-")["GlobalSecondaryIndexes"]]


def test_ttl_attribute(template: Template, local: dict[str, Any]) -> None:
    (deployed,) = _resources(template, "AWS::DynamoDB::Table")
    assert deployed["TimeToLiveSpecification"] == {
        "AttributeName": local["ttl"]["AttributeName"], "Enabled": True,
    }
    assert local["ttl"]["AttributeName"] == topology.TTL_ATTRIBUTE


def test_streams(template: Template, local: dict[str, Any], clickstream: Pipeline) -> None:
    streams = _resources(template, "AWS::Kinesis::Stream")
    deployed = {s["Name"]: s.get("ShardCount") for s in streams}
    assert set(deployed) == set(local["streams"]) == {
        clickstream.source.stream, clickstream.sink.stream,
    }
    assert deployed[clickstream.source.stream] == clickstream.source.shards


def test_queues_behind_the_environment_contract(
    template: Template, local: dict[str, Any]
) -> None:
    env_local = local["deployment"].env
    resources = template.to_json()["Resources"]
    for function in _resources(template, "AWS::Lambda::Function"):
        env = function["Environment"]["Variables"]
        for name in (topology.ENV_DLQ_URL, topology.ENV_LATE_URL):
            assert env_local[name].startswith("http")  # a queue URL locally
            assert resources[env[name]["Ref"]]["Type"] == "AWS::SQS::Queue"  # and deployed


def test_handler_environment_names(template: Template, local: dict[str, Any]) -> None:
    local_names = set(local["deployment"].env)
    for function in _resources(template, "AWS::Lambda::Function"):
        deployed_names = set(function["Environment"]["Variables"])
        contract = set(topology.HANDLER_ENV)
        assert contract <= deployed_names
        assert contract <= local_names
        # Nothing tidegate reads exists on one side only (Powertools settings may differ).
        tidegate_names = {n for n in deployed_names | local_names if n.startswith("TIDEGATE_")}
        # The state version is the deploy parameter's deployed (a replay's cut-over changes
        # it); a local run uses the pipeline file's.
        optional = {topology.ENV_RETENTION, topology.ENV_CLOCK, topology.ENV_STATE_VERSION}
        assert tidegate_names - optional == contract
