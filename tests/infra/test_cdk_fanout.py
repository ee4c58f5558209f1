"""The closer may invoke exactly itself, and the template has no dependency cycle."""

from __future__ import annotations

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from infra.constructs.fanout import allow_self_invoke


def test_the_closer_may_invoke_only_its_own_function() -> None:
    stack = Stack(App(), "fanout")
    fn = lambda_.Function(
        stack, "Closer", runtime=lambda_.Runtime.PYTHON_3_12, handler="handler.handler",
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
    )
    allow_self_invoke(stack, fn)
    template = Template.from_stack(stack)  # raises on a dependency cycle

    arn = {"Fn::GetAtt": [stack.get_logical_id(fn.node.default_child), "Arn"]}
    template.has_resource_properties("AWS::IAM::Policy", {
        "PolicyDocument": {"Statement": [
            {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": arn},
        ]},
        "Roles": Match.any_value(),
    })
    # the function's own async settings are the construct's (one config per function)
    template.resource_count_is("AWS::Lambda::EventInvokeConfig", 0)
