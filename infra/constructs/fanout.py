"""The closer's permission to fan out to itself (tidegate/fanout.py): asynchronous
invocations of its own function, one per group of open-window index partitions."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct


def allow_self_invoke(scope: Construct, fn: lambda_.Function) -> iam.Policy:
    """A Policy of its own rather than a statement in the role's default policy: the
    function depends on that one, and a statement naming the function's own ARN there
    would be a dependency cycle."""
    if fn.role is None:
        raise ValueError(f"{fn.node.path}: the closer function needs a role to fan out")
    # Work orders share the function's async settings with its scheduled runs (no
    # retries, see pipeline.py): a lost order's partitions are the next run's, a minute on.
    return iam.Policy(
        scope, f"{fn.node.id}SelfInvoke",
        roles=[fn.role],
        statements=[iam.PolicyStatement(
            actions=["lambda:InvokeFunction"], resources=[fn.function_arn],
        )],
    )
