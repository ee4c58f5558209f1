#!/usr/bin/env python3
"""The CDK app: one stack per pipeline file (`npx cdk synth -c pipelines=a.yaml,b.yaml`)."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.app import build_app
from infra.constructs.errors import TidegateConfigError


def main() -> None:
    app = App()
    try:
        build_app(app)
    except TidegateConfigError as exc:
        # A refused setting is the user's to fix: its message, not a traceback.
        raise SystemExit(f"error: {exc}") from None
    # cdk-nag 3.x is a policy-validation plugin (the 2.x Aspects form fails on 3.x); its
    # report lands in <outdir>/validation-report.json and any unacknowledged finding fails synth.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
