"""The replay context parameters: a second mapping and functions on the new state version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.constructs.errors import TidegateConfigError
from infra.constructs.replay import ReplaySettings


def test_replay_adds_a_mapping_at_the_timestamp_on_the_new_version(
    synth_app: Callable[..., list[Any]],
) -> None:
    (stack,) = synth_app(replayVersion="2", replayFrom="AT_TIMESTAMP",
                         replayTimestamp="2026-01-01T00:00:00Z")
    template = Template.from_stack(stack)
    mappings = template.find_resources("AWS::Lambda::EventSourceMapping", {
        "Properties": {"StartingPosition": Match.any_value(),
                       "EventSourceArn": Match.any_value()}})
    positions = sorted(m["Properties"]["StartingPosition"] for m in mappings.values())
    # the replay's, the closer's table stream and the live ingest's
    assert positions == ["AT_TIMESTAMP", "LATEST", "TRIM_HORIZON"]
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "StartingPosition": "AT_TIMESTAMP",
        "StartingPositionTimestamp": 1767225600,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    })
    replay_env = Match.object_like({"Variables": Match.object_like({
        "TIDEGATE_STATE_VERSION": "2"})})
    functions = template.find_resources("AWS::Lambda::Function", {
        "Properties": {"Environment": replay_env}})
    assert len(functions) == 2  # its ingest and its closer
    outputs = template.find_outputs("ReplayVersion")
    assert [o["Value"] for o in outputs.values()] == ["2"]


def test_no_replay_without_the_context(template: Template) -> None:
    assert template.find_outputs("ReplayVersion") == {}
    template.resource_count_is("AWS::Lambda::EventSourceMapping", 2)  # ingest and closer


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"version": "two"}, "replayVersion: an integer"),
        ({"version": "2", "start": "LATEST"}, "replayFrom: one of"),
        ({"version": "2", "start": "at-timestamp"}, "needs replayTimestamp"),
        ({"version": "2", "start": "AT_TIMESTAMP", "timestamp": "yesterday"},
         "replayTimestamp: epoch seconds or ISO-8601"),
    ],
)
def test_bad_replay_context_is_refused(context: dict[str, str], message: str) -> None:
    with pytest.raises(TidegateConfigError, match=message):
        ReplaySettings.from_context(**context)


def test_the_replay_closer_may_fan_out_to_itself_only(
    synth_app: Callable[..., list[Any]],
) -> None:
    (stack,) = synth_app(replayVersion="2", replayFrom="TRIM_HORIZON")
    template = Template.from_stack(stack)
    closers = [name for name in template.find_resources("AWS::Lambda::Function")
               if "Closer" in name]
    assert len(closers) == 2 and any("Replay" in name for name in closers)
    invoked = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Action"] == "lambda:InvokeFunction":
                invoked.append(statement["Resource"]["Fn::GetAtt"][0])
    # each closer may invoke exactly one function: itself
    assert sorted(invoked) == sorted(closers)
