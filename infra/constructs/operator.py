"""The operator's managed policy: what `tidegate status|tail|dlq|replay|smoke --stack` call,
on this stack's resources only. Attach it to the role or group that runs the pipeline.

Read the pipeline's state and queues; redrive dead letters (receive and delete them, put
their records back on the source); drive a replay's cut-over (pause and resume the
mappings, switch the active version, update the `LiveStateVersion` parameter through the
stack, passing the role CloudFormation deployed it with); put and remove smoke-test
events. It cannot change code, policies or any other stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment as Ack
from aws_cdk import Aws, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from infra.constructs.pipeline import TidegatePipeline
from tidegate import topology

if TYPE_CHECKING:
    from infra.constructs.replay import ReplayResources

TABLE_ACTIONS = (
    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan",
    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable",
)
QUEUE_ACTIONS = (
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
)
STREAM_READ_ACTIONS = (
    "kinesis:ListShards", "kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
    "kinesis:GetShardIterator", "kinesis:GetRecords",
)


def operator_policy(
    stack: Stack,
    pipeline: TidegatePipeline,
    replay: ReplayResources | None,
    key: kms.IKey | None,
) -> iam.ManagedPolicy:
    statements = [
        iam.PolicyStatement(
            sid="StackOutputsAndCutover",
            actions=["cloudformation:DescribeStacks", "cloudformation:UpdateStack",
                     "cloudformation:DescribeStackEvents", "cloudformation:GetTemplate"],
            resources=[stack.stack_id],
        ),
        iam.PolicyStatement(
            sid="CutoverDeploysWithTheStacksOwnRole",
            actions=["iam:PassRole"],
            resources=[f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/cdk-*-cfn-exec-role-*"],
            conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
        ),
        # A stack update resolves the stack's SSM-typed parameter (CDK's BootstrapVersion).
        iam.PolicyStatement(
            sid="CutoverReadsTheBootstrapVersion",
            actions=["ssm:GetParameters"],
            resources=[f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                       "parameter/cdk-bootstrap/*"],
        ),
        iam.PolicyStatement(
            sid="State",
            actions=list(TABLE_ACTIONS),
            resources=[pipeline.table.table_arn,
                       f"{pipeline.table.table_arn}/index/{topology.OPEN_INDEX}"],
        ),
    ]
    queues: list[sqs.IQueue] = [
        pipeline.dead_letter_queue, pipeline.late_queue, pipeline.failed_batches_queue
    ]
    if replay is not None:
        queues += [replay.dead_letter_queue, replay.late_queue]
    sink = pipeline.sink.resource
    if pipeline.pipeline.sink.type == "sqs":
        queues.append(sink)  # type: ignore[arg-type]
    statements.append(iam.PolicyStatement(
        sid="Queues", actions=list(QUEUE_ACTIONS), resources=[q.queue_arn for q in queues],
    ))
    streams: list[kinesis.IStream] = []
    if pipeline.source_stream is not None:
        streams.append(pipeline.source_stream)
        # Redrive and the smoke test put records on the source, never on the sink.
        statements.append(iam.PolicyStatement(
            sid="RedriveToSource", actions=["kinesis:PutRecords", "kinesis:PutRecord"],
            resources=[pipeline.source_stream.stream_arn],
        ))
    if pipeline.pipeline.sink.type == "kinesis":
        streams.append(sink)  # type: ignore[arg-type]
    if streams:
        statements.append(iam.PolicyStatement(
            sid="ReadStreams", actions=list(STREAM_READ_ACTIONS),
            resources=[s.stream_arn for s in streams],
        ))
    functions = [pipeline.ingest_function, pipeline.closer_function]
    if replay is not None:
        functions += [replay.ingest_function, replay.closer_function]
    statements += [
        iam.PolicyStatement(
            sid="Functions", actions=["lambda:GetFunctionConfiguration"],
            resources=[f.function_arn for f in functions],
        ),
        # Mappings have no name to write down before they exist: the condition names
        # the functions they belong to.
        iam.PolicyStatement(
            sid="PauseAndResumeMappings",
            actions=["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
            resources=[f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
                       "event-source-mapping:*"],
            conditions={"StringEquals": {"lambda:FunctionArn": [
                f.function_arn for f in functions]}},
        ),
        # List and metric reads have no resource-level permissions.
        iam.PolicyStatement(
            sid="ListMappingsAndReadMetrics",
            actions=["lambda:ListEventSourceMappings", "cloudwatch:GetMetricStatistics"],
            resources=["*"],
        ),
    ]
    if key is not None:
        statements.append(iam.PolicyStatement(
            sid="Key", actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn],
        ))
    policy = iam.ManagedPolicy(
        stack, "OperatorPolicy",
        description=f"tidegate {pipeline.pipeline.name}: status, tail, dlq, replay and smoke "
                    f"on stack {stack.stack_name}",
        statements=statements,
    )
    reasons = {
        "Resource::*": "lambda:ListEventSourceMappings and cloudwatch:GetMetricStatistics "
                       "have no resource-level permissions.",
        "Resource::arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:"
        "event-source-mapping:*": "Mapping ids are generated at deploy time; the "
                                  "lambda:FunctionArn condition limits the updates to this "
                                  "stack's functions.",
        "Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:"
        "parameter/cdk-bootstrap/*": "The CDK bootstrap's version parameter, whose name "
                                     "carries the bootstrap's qualifier; read only.",
        "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/cdk-*-cfn-exec-role-*":
            "The cut-over updates the stack with the CDK bootstrap's CloudFormation "
            "execution role (its qualifier is the bootstrap's); passed to CloudFormation only.",
    }
    for finding, reason in reasons.items():
        Validations.of(policy).acknowledge(Ack(
            id=f"AwsSolutions-IAM5[{finding}]", reason=f"Operator policy: {reason}",
        ))
    return policy
