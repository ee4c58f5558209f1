"""Fixtures: the app synthesized once through the project's own CDK CLI, and in-process.

The CLI run proves what CI and users run (`npx cdk synth`, offline, no credentials) and
yields cdk-nag's report; the in-process templates let `aws_cdk.assertions` look closely.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Validations
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from infra.layer import ROOT, build_layer
from tidegate.spec import Pipeline, load_pipeline_file, parse_pipeline

CLICKSTREAM = ROOT / "pipelines" / "clickstream.yaml"
STACK = "tidegate-clickstream"


def offline_env() -> dict[str, str]:
    """The caller's environment without any way to reach an AWS account."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CDK_DEFAULT_")) and k not in ("CDK_CONTEXT_JSON",)
    }
    env.update(
        AWS_EC2_METADATA_DISABLED="true",  # no instance-metadata credential probing
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CDK_DISABLE_CLI_TELEMETRY="true",
    )
    return env


@pytest.fixture(scope="session")
def layer_dir() -> Path:
    return build_layer()


@pytest.fixture(scope="session")
def cli_synth(tmp_path_factory: pytest.TempPathFactory, layer_dir: Path) -> Path:
    """`npx cdk synth` into a temporary cloud assembly; returns its folder."""
    npx = shutil.which("npx")
    if npx is None or not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the CDK CLI is not installed: run `make node_modules` (npm ci)")
    out = tmp_path_factory.mktemp("cdk") / "cdk.out"
    proc = subprocess.run(
        [npx, "--no-install", "cdk", "synth", "--no-notices", "--quiet", "--output", str(out)],
        cwd=ROOT, env=offline_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"cdk synth failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def cli_template(cli_synth: Path) -> dict[str, Any]:
    return json.loads((cli_synth / f"{STACK}.template.json").read_text())


@pytest.fixture(scope="session")
def clickstream() -> Pipeline:
    return load_pipeline_file(CLICKSTREAM)


@pytest.fixture(scope="session")
def clickstream_data() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(CLICKSTREAM.read_text())


@pytest.fixture(scope="session")
def stub_layer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """In-process templates do not depend on the layer's content (the CLI synth checks
    that); a tiny stand-in saves copying 20+ MB into every assembly."""
    folder = tmp_path_factory.mktemp("layer")
    (folder / "python" / "tidegate").mkdir(parents=True)
    (folder / "python" / "tidegate" / "__init__.py").write_text("")
    return folder


@pytest.fixture(scope="session")
def synth_app(
    tmp_path_factory: pytest.TempPathFactory, stub_layer_dir: Path
) -> Callable[..., list[Any]]:
    """Build the app in process with a given context; returns its stacks."""

    def build(**context: Any) -> list[Any]:
        app = App(outdir=str(tmp_path_factory.mktemp("app")), context=context)
        return build_app(app, layer_dir=stub_layer_dir)

    return build


@pytest.fixture(scope="session")
def template(synth_app: Callable[..., list[Any]]) -> Template:
    (stack,) = synth_app()
    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def variant(
    tmp_path_factory: pytest.TempPathFactory,
    synth_app: Callable[..., list[Any]],
    clickstream_data: dict[str, Any],
) -> Callable[..., Template]:
    """The clickstream pipeline with some sections replaced, synthesized in process."""
    import yaml

    cache: dict[str, Template] = {}

    def make(**changes: Any) -> Template:
        data = {**clickstream_data, **changes}
        parse_pipeline(data)  # an invalid variant is a broken test, say so early
        key = json.dumps(changes, sort_keys=True)
        if key not in cache:
            path = tmp_path_factory.mktemp("pipeline") / "variant.yaml"
            path.write_text(yaml.safe_dump(data))
            (stack,) = synth_app(pipelines=str(path))
            cache[key] = Template.from_stack(stack)
        return cache[key]

    return make


# -- template variants: each kind of stack the app can synthesize ------------------------------
CLUSTER_ARN = ("arn:aws:kafka:us-east-1:123456789012:cluster/tidegate/"
               "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-1")
ALARM_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ops"
PROD_CONTEXT = {"stage": "prod", "alarm_topic_arn": ALARM_TOPIC_ARN}
# name -> (pipeline file sections replaced, context)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "kinesis": ({}, {}),
    "msk": ({"source": {"type": "msk", "topic": "user-events", "shards": 2}},
            {"msk_cluster_arn": CLUSTER_ARN}),
    "sink-sqs": ({"sink": {"type": "sqs", "queue": "results"}}, {}),
    "sink-sns": ({"sink": {"type": "sns", "topic": "results"}}, {}),
    "sink-eventbridge": ({"sink": {"type": "eventbridge", "bus": "analytics"}}, {}),
    "replay": ({}, {"replayVersion": "2"}),
    "prod": ({}, PROD_CONTEXT),
    "kms-customer": ({}, {"kms": "customer", "alarm_email": "ops@example.com"}),
}


@dataclass
class Synthesized:
    stack_name: str
    template: dict[str, Any]
    outdir: Path
    stack: Any
    nag_findings: list[str]

    def code_dir(self, object_key: str) -> Path:
        """The folder of the asset `cdk deploy` would upload as `object_key`."""
        manifest = json.loads((self.outdir / f"{self.stack_name}.assets.json").read_text())
        for asset in manifest["files"].values():
            if any(d["objectKey"] == object_key for d in asset["destinations"].values()):
                return self.outdir / asset["source"]["path"]
        raise KeyError(object_key)


@pytest.fixture(scope="session")
def synth_variant(
    tmp_path_factory: pytest.TempPathFactory,
    stub_layer_dir: Path,
    clickstream_data: dict[str, Any],
) -> Callable[..., Synthesized]:
    """A variant synthesized in process into its own cloud assembly (template and assets),
    once per session. Its stage is this session's own (but `prod`'s), so its physical
    names are apart from every other test's on a shared moto server."""
    import yaml

    cache: dict[tuple[str, str | None], Synthesized] = {}
    session_stage = f"ci{uuid.uuid4().hex[:8]}"

    def make(name: str, stage: str | None = None) -> Synthesized:
        """`stage`: a stack of its own, for a test that must not share one."""
        if (name, stage) not in cache:
            cache[(name, stage)] = build(name, stage or session_stage)
        return cache[(name, stage)]

    def build(name: str, stage: str) -> Synthesized:
        changes, variant_context = VARIANTS[name]
        context = {} if "stage" in variant_context else {"stage": stage}
        folder = tmp_path_factory.mktemp(f"variant-{name}-{stage}")
        path = folder / "pipeline.yaml"
        path.write_text(yaml.safe_dump({**clickstream_data, **changes}))
        outdir = folder / "cdk.out"
        app = App(outdir=str(outdir),
                  context={"pipelines": str(path), **variant_context, **context})
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))  # as app.py does
        (stack,) = build_app(app, layer_dir=stub_layer_dir)
        assembly = app.synth()
        template = assembly.get_stack_by_name(stack.stack_name).template
        report = json.loads((outdir / "validation-report.json").read_text())
        findings = [
            f"{v['ruleName']} at {c['constructPath']}"
            for plugin in report.get("pluginReports", [])
            for v in plugin.get("violations", [])
            for c in v.get("violatingConstructs", [])
        ]
        return Synthesized(stack.stack_name, template, outdir, stack, findings)

    return make
