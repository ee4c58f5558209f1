"""The deployed cut-over against moto: Lambda functions and mappings (created, never invoked:
moto needs Docker to invoke), Kinesis shards and the state table. The replay's progress is
written to its watermark items as its ingest would."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tidegate import topology
from tidegate.aws import client
from tidegate.state.dynamodb import DynamoStore
from tidegate.state.keys import key_pk, position_mark
from tidegate.watermark import WatermarkStore
from tidegate_dev.local.server import endpoint
from tidegate_dev.ops.deployed_replay import CutoverError, DeployedReplay

PIPELINE = "cutover"


@dataclass
class Stack:
    replay: DeployedReplay
    shards: list[str]
    store: DynamoStore

    def mapping_state(self, function: str) -> str:
        return self.replay.mapping(function)["State"]

    def env(self, function: str) -> dict[str, str]:
        config = client("lambda").get_function_configuration(FunctionName=function)
        return config["Environment"]["Variables"]

    def read(self, version: int, positions: list[int]) -> None:
        """Version `version` has read each shard up to `positions[i]`."""
        marks = WatermarkStore(self.store, PIPELINE, version)
        for shard, at in zip(self.shards, positions, strict=True):
            marks.advance_partition(shard, 1_000 * at, 1_000 * at, 1, position_mark(at))


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def stack(moto_url: str) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:8]
    with endpoint(moto_url):
        stream, table = f"src-{suffix}", f"state-{suffix}"
        kinesis = client("kinesis")
        kinesis.create_stream(StreamName=stream, ShardCount=2)
        arn = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["StreamARN"]
        client("dynamodb").create_table(**topology.table_definition(table))
        role = client("iam").create_role(
            RoleName=f"fn-{suffix}", AssumeRolePolicyDocument=json.dumps({"Statement": []})
        )["Role"]["Arn"]
        names = {}
        for kind in ("ingest", "closer", "replay"):
            names[kind] = f"{kind}-{suffix}"
            client("lambda").create_function(
                FunctionName=names[kind], Runtime="python3.12", Role=role,
                Handler="handler.handler", Code={"ZipFile": _zip()},
                Environment={"Variables": {topology.ENV_TABLE: table, "KEEP": kind}},
            )
        for kind, start in (("ingest", "TRIM_HORIZON"), ("replay", "TRIM_HORIZON")):
            client("lambda").create_event_source_mapping(
                FunctionName=names[kind], EventSourceArn=arn, StartingPosition=start,
            )
        logs: list[str] = []
        replay = DeployedReplay(
            pipeline=PIPELINE, table=table, stream=stream, live_ingest=names["ingest"],
            live_closer=names["closer"], replay_ingest=names["replay"], replay_version=2,
            live_version=1, poll_s=0.01, wait_s=0.5, log=logs.append,
        )
        shards = replay.partitions()
        yield Stack(replay, shards, DynamoStore(table))


def test_cut_over_refused_until_the_replay_has_caught_up(stack: Stack) -> None:
    replay = stack.replay
    stack.read(1, [50, 70])
    stack.read(2, [50, 60])  # shard 2 behind
    assert [r.caught_up for r in replay.progress()] == [True, False]
    with pytest.raises(CutoverError, match=r"has not caught up .* nothing was changed"):
        replay.cut_over()
    assert replay.versions.active() == 1
    assert stack.mapping_state(replay.live_ingest) == "Enabled"
    assert stack.mapping_state(replay.replay_ingest) == "Enabled"
    assert topology.ENV_STATE_VERSION not in stack.env(replay.live_ingest)


def test_cut_over_switches_repoints_and_expires(stack: Stack) -> None:
    replay = stack.replay
    store = stack.store
    stack.read(1, [50, 70])
    stack.read(2, [55, 70])  # the replay is ahead on one shard, level on the other
    WatermarkStore(store, PIPELINE, 1).advance_pipeline(42_000)
    old_pane = {"PK": key_pk(PIPELINE, 1, '["u1"]'), "SK": "P#1", "n": 3}
    store.create_once(old_pane)

    assert replay.cut_over() == 42_000

    assert replay.versions.active() == 2
    assert replay.versions.ownership(1).up_to == 42_000
    # the replay mapping stopped; the live functions now run version 2, other settings kept
    assert stack.mapping_state(replay.replay_ingest) == "Disabled"
    assert stack.mapping_state(replay.live_ingest) == "Enabled"
    for function, kind in ((replay.live_ingest, "ingest"), (replay.live_closer, "closer")):
        env = stack.env(function)
        assert env[topology.ENV_STATE_VERSION] == "2"
        assert env["KEEP"] == kind
    # version 1's state expires; version 2's does not
    pane = store.get(old_pane["PK"], old_pane["SK"])
    assert pane is not None and int(pane["expire_at"]) > 0
    assert "expire_at" not in (store.get(f"M#{PIPELINE}#v2", f"WM#{stack.shards[0]}") or {})

    # run again (say the first run stopped half-way): finishes, changes nothing more
    assert replay.cut_over() == 42_000
    assert replay.versions.active() == 2
    assert stack.mapping_state(replay.replay_ingest) == "Disabled"


def test_the_live_mapping_is_restarted_when_the_replay_does_not_catch_up(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = stack.replay
    stack.read(1, [50, 70])
    stack.read(2, [50, 70])
    calls: list[Any] = []
    real = replay.progress

    def live_moves_before_it_stops() -> Any:
        calls.append(1)
        if len(calls) == 2:  # the live version read more before its mapping stopped
            stack.read(1, [51, 70])
        return real()

    monkeypatch.setattr(replay, "progress", live_moves_before_it_stops)
    with pytest.raises(CutoverError, match=r"did not catch up .* started again"):
        replay.cut_over()
    assert replay.versions.active() == 1
    assert stack.mapping_state(replay.live_ingest) == "Enabled"


def test_the_command_reads_the_stack_and_cuts_over(
    stack: Stack, moto_url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from tests.support import pipeline_spec
    from tidegate_dev.cli.main import main

    replay = stack.replay
    stack.read(1, [50, 70])
    stack.read(2, [50, 69])
    arn = client("kinesis").describe_stream(StreamName=replay.stream)["StreamDescription"][
        "StreamARN"]
    outputs = {
        "StateTableName": replay.table, "SourceStreamArn": arn,
        "IngestFunctionName": replay.live_ingest, "CloserFunctionName": replay.live_closer,
        "ReplayIngestFunctionName": replay.replay_ingest, "ReplayVersion": "2",
    }
    name = _outputs_stack(outputs)
    path = tmp_path / "cutover.yaml"
    path.write_text(yaml.safe_dump(pipeline_spec(name=PIPELINE)))
    argv = ["replay", str(path), "--deployed", "--stack", name, "--endpoint-url", moto_url,
            "--json", "--wait", "0.3"]

    # behind on one shard: progress only, exit 1; --switch refuses
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["caught_up"] is False
    assert main([*argv, "--switch"]) == 1
    assert "has not caught up" in capsys.readouterr().err
    # caught up: the cut-over goes through
    stack.read(2, [50, 70])
    assert main([*argv, "--switch"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["switched"] is True and summary["replay_version"] == 2
    assert replay.versions.active() == 2
    assert stack.env(replay.live_ingest)[topology.ENV_STATE_VERSION] == "2"
    # a stack without a replay is refused with a message
    outputs.pop("ReplayIngestFunctionName")
    other = _outputs_stack(outputs)
    capsys.readouterr()
    assert main(["replay", str(path), "--deployed", "--stack", other,
                 "--endpoint-url", moto_url]) == 1
    assert "-c replayVersion=N first" in capsys.readouterr().err


def test_with_a_version_parameter_the_cut_over_is_a_stack_update(
    stack: Stack, moto_url: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from tests.support import pipeline_spec
    from tidegate_dev.cli.main import main

    replay = stack.replay
    stack.read(1, [50, 70])
    stack.read(2, [50, 70])
    arn = client("kinesis").describe_stream(StreamName=replay.stream)["StreamDescription"][
        "StreamARN"]
    # GIVEN a stack whose LiveStateVersion parameter sets what the live functions run
    # (here an SSM parameter stands in for their environment)
    marker = f"/tidegate/{uuid.uuid4().hex[:8]}/live-version"
    name = _outputs_stack({
        "StateTableName": replay.table, "SourceStreamArn": arn,
        "IngestFunctionName": replay.live_ingest, "CloserFunctionName": replay.live_closer,
        "ReplayIngestFunctionName": replay.replay_ingest, "ReplayVersion": "2",
        "LiveStateVersionParameter": "LiveStateVersion",
    }, marker=marker)
    path = tmp_path / "cutover.yaml"
    path.write_text(yaml.safe_dump(pipeline_spec(name=PIPELINE)))

    # WHEN the cut-over runs
    assert main(["replay", str(path), "--deployed", "--stack", name, "--endpoint-url",
                 moto_url, "--json", "--wait", "0.3", "--switch"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["switched"] is True

    # THEN the stack's parameter says version 2, and what it drives followed it
    described = client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]} == {
        "LiveStateVersion": "2", "Other": "kept"}
    assert client("ssm").get_parameter(Name=marker)["Parameter"]["Value"] == "2"
    # and nothing was edited behind CloudFormation's back
    assert topology.ENV_STATE_VERSION not in stack.env(replay.live_ingest)
    assert replay.versions.active() == 2


def _outputs_stack(outputs: dict[str, str], marker: str | None = None) -> str:
    """A stack that only carries outputs, as `cdk deploy` leaves them; with `marker`, also
    the LiveStateVersion parameter (and another one the update must keep), written to an
    SSM parameter of that name."""
    name = f"tidegate-{uuid.uuid4().hex[:8]}"
    template: dict[str, Any] = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    parameters = []
    if marker:
        template["Parameters"] = {"LiveStateVersion": {"Type": "String", "Default": "1"},
                                  "Other": {"Type": "String", "Default": "default"}}
        template["Resources"]["Live"] = {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": marker, "Type": "String", "Value": {"Ref": "LiveStateVersion"}}}
        parameters = [{"ParameterKey": "Other", "ParameterValue": "kept"}]
    client("cloudformation").create_stack(
        StackName=name, TemplateBody=json.dumps(template), Parameters=parameters)
    return name
