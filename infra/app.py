"""Reads the app's context (cdk.json or `-c`) and builds one stack per pipeline file.

The context keys are listed, with their defaults, in infra/context.py (`CONTEXT_KEYS`) and
docs/deploy.md; `source.type: msk` pipelines read their Kafka cluster from the `kafka_*`
keys (infra/constructs/kafka.py), and `replayVersion`, `replayFrom` and `replayTimestamp`
add a replay beside each pipeline (infra/constructs/replay.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment

from infra.constructs.errors import TidegateConfigError
from infra.constructs.kafka import settings_from_context
from infra.constructs.pipeline import IngestSettings
from infra.constructs.replay import ReplaySettings
from infra.context import DeploySettings, read_settings
from infra.layer import ROOT, build_layer
from infra.stacks.pipeline_stack import TidegatePipelineStack
from tidegate.spec import Pipeline, load_pipeline_file

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


def pipeline_options(app: App, settings: DeploySettings) -> dict[str, Any]:
    factor = _context(app, "parallelization_factor")
    if factor is not None and not str(factor).isdigit():
        raise TidegateConfigError(
            f"context parallelization_factor: a whole number 1..10, not {factor!r}"
        )
    return {
        "ingest": IngestSettings(
            parallelization_factor=int(factor or 1),
            partitioned_by_key=_flag(_context(app, "partitioned_by_key")),
            max_record_age_s=settings.max_record_age_hours * 3600,
        ),
        "removal_policy": settings.removal_policy,
    }


def check_production(pipeline: Pipeline, path: Path, settings: DeploySettings) -> None:
    """The default 4 open-window index partitions are too few at scale (`tidegate plan`), and
    changing them later needs a new state version: a production stage says so up front."""
    if not settings.production:
        return
    if "index_shards" not in pipeline.model_fields_set and pipeline.expected_keys is None:
        raise TidegateConfigError(
            f"pipeline {pipeline.name!r} ({path.name}): stage={settings.stage} needs "
            "`index_shards` or `expected_keys` in the pipeline file (the default "
            f"{pipeline.index_shards} index partitions limit how far the closer fans out; "
            "`tidegate plan` sizes them)"
        )


def build_app(app: App, *, layer_dir: Path | None = None) -> list[TidegatePipelineStack]:
    """Add one stack per pipeline file named in the context; returns them in order."""
    settings = read_settings(lambda key: _context(app, key))
    stage = settings.stage
    env = environment(app)
    options = pipeline_options(app, settings)
    kafka = settings_from_context(lambda key: _context(app, key))
    replay = ReplaySettings.from_context(
        _context(app, "replayVersion"), _context(app, "replayFrom"),
        _context(app, "replayTimestamp"),
    )
    pipelines = [(path, load_pipeline_file(path))
                 for path in pipeline_paths(_context(app, "pipelines"))]
    for path, pipeline in pipelines:
        check_production(pipeline, path, settings)
    # Only once every setting is known good: building the layer takes seconds.
    layer_dir = layer_dir or build_layer()
    stacks = []
    for path, pipeline in pipelines:
        # The cluster is the deployment's; Kinesis pipelines of the same app ignore it.
        source_options = {"kafka": kafka} if pipeline.source.type == "msk" else {}
        stack_name = f"tidegate-{pipeline.name}" + (f"-{stage}" if stage else "")
        stacks.append(TidegatePipelineStack(
            app, stack_name,
            pipeline=pipeline,
            layer_dir=layer_dir,
            settings=settings,
            pipeline_options={**options, **source_options},
            replay=replay,
            env=env,
            description=f"tidegate pipeline {pipeline.name} ({path.name})",
        ))
    return stacks
