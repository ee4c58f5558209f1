"""A CDK app of your own with a tidegate pipeline in it (docs/cdk.md).

    pip install 'tidegate[cdk]'
    npx cdk synth --app "python examples/cdk_app.py"
"""

from __future__ import annotations

from typing import Any

from aws_cdk import App, CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.constructs import TidegatePipeline
from infra.constructs.pipeline import ARCHITECTURE, RUNTIME
from infra.layer import build_layer
from tidegate.spec import load_pipeline_file


class AnalyticsStack(Stack):
    """Your stack: your own resources, and one tidegate pipeline among them."""

    def __init__(self, scope: Construct, construct_id: str, *, pipeline_file: str,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # The runtime library and its dependencies as a Lambda layer, built by pip for
        # Lambda's platform (no Docker); one layer can serve several pipelines.
        layer = lambda_.LayerVersion(
            self, "TidegateRuntime",
            code=lambda_.Code.from_asset(str(build_layer())),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )
        clicks = TidegatePipeline(
            self, "Clicks",
            pipeline=load_pipeline_file(pipeline_file),
            runtime_layer=layer,
        )
        # What the construct creates is yours to wire: streams, table, queues, functions.
        CfnOutput(self, "ResultsTarget", value=clicks.sink.target)
        CfnOutput(self, "DeadLetterQueueUrl", value=clicks.dead_letter_queue.queue_url)


if __name__ == "__main__":
    app = App()
    AnalyticsStack(app, "analytics", pipeline_file="pipelines/clickstream.yaml")
    app.synth()
