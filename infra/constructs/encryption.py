"""Encryption at rest: a customer key when the deployment gives one, else AWS-managed keys.

One key (context `kms_key_arn`, or `kms: customer`) covers a pipeline's table, queues,
streams, topics and log groups, so revoking it stops the whole pipeline at once and its
CloudTrail log shows every use.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment as Ack
from aws_cdk import Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct


def stream_encryption(key: kms.IKey | None) -> dict[str, object]:
    """Stream props: the customer key, else aws/kinesis (no per-stream key bill)."""
    if key is None:
        return {"encryption": kinesis.StreamEncryption.MANAGED}
    return {"encryption": kinesis.StreamEncryption.KMS, "encryption_key": key}


def acknowledge_stream_key(stream: IConstruct, key: kms.IKey | None) -> None:
    if key is not None:
        Validations.of(stream).acknowledge(Ack(
            id="AwsSolutions-KDS3",
            reason="A customer key was asked for (context kms / kms_key_arn): the "
                   "deployment's one key for all its data, instead of aws/kinesis.",
        ))


def grant_key(key: kms.IKey, role: iam.IRole) -> None:
    """Encrypt and decrypt under the deployment's key (queues, streams, state, logs)."""
    key.grant_encrypt_decrypt(role)
    Validations.of(role).acknowledge(Ack(
        id="AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        reason="kms:GenerateDataKey* and kms:ReEncrypt* (CDK's grant_encrypt_decrypt) on "
               "the deployment's one key only: SQS, Kinesis and DynamoDB ask for data keys "
               "of either kind.",
    ))
    Validations.of(role).acknowledge(Ack(
        id="AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
        reason="As kms:GenerateDataKey*: on the deployment's one key only.",
    ))


def queue_encryption(key: kms.IKey | None) -> dict[str, object]:
    if key is None:
        return {"encryption": sqs.QueueEncryption.SQS_MANAGED}
    return {"encryption": sqs.QueueEncryption.KMS, "encryption_master_key": key}
