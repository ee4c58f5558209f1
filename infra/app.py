"""Reads the app's context (cdk.json or `-c`) and builds one stack per pipeline file.

Context keys: `pipelines` (a list, or comma-separated paths), `stage` (suffix of stack and
stream names), `account`/`region`, `removal_policy` (`retain`, the default, or `destroy`),
`parallelization_factor` and `partitioned_by_key` (see IngestSettings), and for
`source.type: msk` pipelines the Kafka cluster: `msk_cluster_arn` or
`kafka_bootstrap_servers`, with `kafka_*` settings (infra/constructs/kafka.py CONTEXT_KEYS);
`replayVersion`, `replayFrom` and `replayTimestamp` add a replay beside each pipeline
(infra/constructs/replay.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, RemovalPolicy

from infra.constructs.kafka import settings_from_context
from infra.constructs.pipeline import IngestSettings
from infra.constructs.replay import ReplaySettings
from infra.layer import ROOT, build_layer
from infra.stacks.pipeline_stack import TidegatePipelineStack
from tidegate.spec import load_pipeline_file

DEFAULT_PIPELINES = ("pipelines/clickstream.yaml",)
# Synth must work offline without credentials: a placeholder account when none is known.
OFFLINE_ACCOUNT = "123456789012"
OFFLINE_REGION = "us-east-1"


def _context(app: App, key: str) -> Any:
    return app.node.try_get_context(key)


def pipeline_paths(value: Any, root: Path = ROOT) -> list[Path]:
    if value is None or value == "":
        items: list[str] = list(DEFAULT_PIPELINES)
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    else:
        items = [str(v) for v in value]
    return [p if p.is_absolute() else root / p for p in map(Path, items)]


def environment(app: App) -> Environment:
    account = _context(app, "account") or os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = _context(app, "region") or os.environ.get("CDK_DEFAULT_REGION")
    return Environment(account=account or OFFLINE_ACCOUNT, region=region or OFFLINE_REGION)


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def pipeline_options(app: App) -> dict[str, Any]:
    options: dict[str, Any] = {}
    factor = _context(app, "parallelization_factor")
    if factor is not None or _context(app, "partitioned_by_key") is not None:
        options["ingest"] = IngestSettings(
            parallelization_factor=int(factor or 1),
            partitioned_by_key=_flag(_context(app, "partitioned_by_key")),
        )
    policy = str(_context(app, "removal_policy") or "retain").lower()
    if policy not in ("retain", "destroy"):
        raise ValueError(f"context removal_policy: 'retain' or 'destroy', not {policy!r}")
    options["removal_policy"] = RemovalPolicy(policy.upper())
    return options


def build_app(app: App, *, layer_dir: Path | None = None) -> list[TidegatePipelineStack]:
    """Add one stack per pipeline file named in the context; returns them in order."""
    stage = str(_context(app, "stage") or "")
    layer_dir = layer_dir or build_layer()
    env = environment(app)
    options = pipeline_options(app)
    kafka = settings_from_context(lambda key: _context(app, key))
    replay = ReplaySettings.from_context(
        _context(app, "replayVersion"), _context(app, "replayFrom"),
        _context(app, "replayTimestamp"),
    )
    stacks = []
    for path in pipeline_paths(_context(app, "pipelines")):
        pipeline = load_pipeline_file(path)
        # The cluster is the deployment's; Kinesis pipelines of the same app ignore it.
        source_options = {"kafka": kafka} if pipeline.source.type == "msk" else {}
        stack_name = f"tidegate-{pipeline.name}" + (f"-{stage}" if stage else "")
        stacks.append(TidegatePipelineStack(
            app, stack_name,
            pipeline=pipeline,
            layer_dir=layer_dir,
            stage=stage,
            pipeline_options={**options, **source_options},
            replay=replay,
            env=env,
            description=f"tidegate pipeline {pipeline.name} ({path.name})",
        ))
    return stacks
