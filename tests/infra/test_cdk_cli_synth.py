"""The app as users and CI run it: `npx cdk synth` offline, without credentials, nag clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.layer import ROOT
from tidegate import topology
from tidegate.runtime import Runtime
from tidegate.spec import load_pipeline_file

pytestmark = pytest.mark.slow

STACK = "tidegate-clickstream"  # the default pipeline's stack (cdk.json context)


def test_synth_writes_one_stack_per_pipeline_for_the_offline_account(cli_synth: Path) -> None:
    manifest = json.loads((cli_synth / "manifest.json").read_text())
    stacks = {
        name: artifact for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert list(stacks) == [STACK]
    assert stacks[STACK]["environment"] == "aws://123456789012/us-east-1"


def test_cdk_nag_reports_no_unacknowledged_finding(cli_synth: Path) -> None:
    # cdk-nag 3.x writes the policy-validation report beside the templates.
    report = json.loads((cli_synth / "validation-report.json").read_text())
    findings = [
        f"{v['ruleName']} at {c['constructPath']}"
        for plugin in report.get("pluginReports", [])
        for v in plugin.get("violations", [])
        for c in v.get("violatingConstructs", [])
    ]
    assert findings == []
    assert all(p.get("conclusion", "success") == "success" for p in report["pluginReports"])


def test_functions_ship_the_handler_folders_and_the_built_layer(
    cli_synth: Path, cli_template: dict[str, Any]
) -> None:
    assets = {
        path.name: path for path in cli_synth.iterdir() if path.name.startswith("asset.")
    }
    resources = cli_template["Resources"].values()
    functions = [r for r in resources if r["Type"] == "AWS::Lambda::Function"]
    shipped = {
        r["Properties"]["Handler"] + ":" + r["Metadata"]["aws:asset:path"] for r in functions
    }
    for entry in shipped:
        handler, asset = entry.split(":")
        assert handler == "handler.handler"
        assert (assets[asset] / "handler.py").is_file()
        assert not (assets[asset] / "__pycache__").exists()
    # Each function's code carries the pipeline spec its environment points at, and the
    # runtime reads it from there (Lambda's LAMBDA_TASK_ROOT is the code folder).
    for function in functions:
        env = function["Properties"]["Environment"]["Variables"]
        assert env[topology.ENV_PIPELINE] == "file:tidegate-pipeline.json"
        code = assets[function["Metadata"]["aws:asset:path"]]
        text = (code / topology.PIPELINE_FILE).read_text()
        assert text == load_pipeline_file(ROOT / "pipelines" / "clickstream.yaml").to_json()
        # The state version is the LiveStateVersion parameter's: resolved only when deployed.
        assert env.pop(topology.ENV_STATE_VERSION) == {"Ref": "LiveStateVersion"}
        runtime = Runtime.from_env({**env, "LAMBDA_TASK_ROOT": str(code)})
        assert runtime.pipeline.name == "clickstream"
    (layer,) = [r for r in resources if r["Type"] == "AWS::Lambda::LayerVersion"]
    layer_asset = assets[layer["Metadata"]["aws:asset:path"]]
    assert (layer_asset / "python" / "tidegate" / "topology.py").is_file()
    assert any((layer_asset / "python" / "pydantic_core").glob("*cpython-312-aarch64*.so"))


def test_handlers_get_the_whole_environment_contract(cli_template: dict[str, Any]) -> None:
    functions = [
        r for r in cli_template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert len(functions) == 2
    for function in functions:
        names = set(function["Properties"]["Environment"]["Variables"])
        assert set(topology.HANDLER_ENV) <= names
