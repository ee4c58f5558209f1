"""`tidegate smoke`: what it refuses, and the events it writes (the deployed run itself is
in tests/infra/test_cfn_deployed.py, against a stack moto's CloudFormation created)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tidegate.spec import Pipeline
from tidegate_dev.ops.smoke import Smoke, SmokeError

OUTPUTS = {"SourceStreamName": "events", "StateTableName": "state"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"source": {"type": "msk", "topic": "events"}}, r"smoke tests Kinesis sources"),
    ({"schema": {"name": "R", "version": 1,
                 "fields": {"user": "integer", "ts": "timestamp", "v": "number"}}},
     r"key fields user are not strings"),
])
def test_pipelines_it_cannot_tag_are_refused(
    make_pipeline: Callable[..., Pipeline], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SmokeError, match=message):
        Smoke(make_pipeline(**overrides), OUTPUTS)


def test_a_stack_without_a_source_stream_is_refused(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    with pytest.raises(SmokeError, match="no SourceStreamName output"):
        Smoke(make_pipeline(), {"StateTableName": "state"})


def test_events_are_valid_tagged_and_keyed_by_the_run(
    make_pipeline: Callable[..., Pipeline],
) -> None:
    smoke = Smoke(make_pipeline(), OUTPUTS, events=3)
    key = smoke.key("0")
    assert key.startswith("tidegate-smoke-") and smoke.run in key
    event = smoke.event(key, 1_700_000_000_123, 0)
    assert event["user"] == key and event["ts"] == 1_700_000_000_123
    assert isinstance(event["v"], float)
    # the state key the runtime stores a one-field key under
    assert smoke.pk(key) == f'A#tg-test#v1#["{key}"]'


def test_the_command_exits_2_naming_what_is_missing(
    moto_url: str, make_pipeline: Callable[..., Pipeline], tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tidegate.aws import client
    from tidegate_dev.cli.main import main
    from tidegate_dev.local.server import endpoint

    name = f"not-tidegate-{uuid.uuid4().hex[:8]}"
    with endpoint(moto_url):
        client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(
            {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}))
    assert main(["smoke", "--stack", name, "--endpoint-url", moto_url]) == 2
    assert "carries no tidegate:pipeline metadata" in capsys.readouterr().err
