"""The handlers read the pipeline spec from the environment, inline (local runs) or from the
file of the function's code that the environment names (deployed functions)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tidegate import topology
from tidegate.runtime import Runtime
from tidegate.spec import Pipeline, PipelineError


def _env(spec: str) -> dict[str, str]:
    env = {name: "x" for name in topology.HANDLER_ENV}
    env[topology.ENV_PIPELINE] = spec
    return env


def test_inline_and_file_give_the_same_pipeline(
    tmp_path: Path, make_pipeline: Callable[..., Pipeline]
) -> None:
    pipeline = make_pipeline(window={"type": "sliding", "size": "30s", "slide": "10s"})
    (tmp_path / topology.PIPELINE_FILE).write_text(pipeline.to_json(), encoding="utf-8")
    from_file = Runtime.from_env(
        {**_env("file:tidegate-pipeline.json"), "LAMBDA_TASK_ROOT": str(tmp_path)}
    )
    inline = Runtime.from_env(_env(pipeline.to_json()))
    assert from_file.pipeline == inline.pipeline == pipeline


def test_a_missing_spec_file_names_the_variable_and_the_path(tmp_path: Path) -> None:
    env = {**_env("file:tidegate-pipeline.json"), "LAMBDA_TASK_ROOT": str(tmp_path)}
    expected = str(tmp_path / "tidegate-pipeline.json")
    with pytest.raises(RuntimeError) as caught:
        Runtime.from_env(env)
    message = str(caught.value)
    assert message.startswith("TIDEGATE_PIPELINE='file:tidegate-pipeline.json': cannot read")
    assert expected in message and "No such file or directory" in message


def test_a_broken_spec_file_is_refused_as_a_pipeline_error(tmp_path: Path) -> None:
    (tmp_path / topology.PIPELINE_FILE).write_text('{"name": "half"}', encoding="utf-8")
    env = {**_env("file:tidegate-pipeline.json"), "LAMBDA_TASK_ROOT": str(tmp_path)}
    with pytest.raises(PipelineError, match="TIDEGATE_PIPELINE"):
        Runtime.from_env(env)
