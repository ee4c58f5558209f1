"""Each sink chunks to its service's batch limit and reports, as positions in the list it was
given, exactly the entries the service said failed (botocore's Stubber answers the calls)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from tidegate import aws
from tidegate.sinks.eventbridge import EventBridgeResultSink
from tidegate.sinks.kinesis import KinesisResultSink
from tidegate.sinks.sns import SnsResultSink
from tidegate.sinks.sqs import SqsResultSink

RESULTS = [
    {"pipeline": "p", "key": {"user": f"u{i}"}, "window_start": 0, "window_end": 10,
     "aggregates": {"n": i}, "version": 1, "final": True, "idempotency_key": f"k{i}"}
    for i in range(25)
]


@pytest.fixture(autouse=True)
def offline_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws.reset_clients()
    yield
    aws.reset_clients()


def _stubbed(service: str, operation: str, responses: list[dict[str, Any]]) -> Stubber:
    stubber = Stubber(aws.client(service))
    for response in responses:
        stubber.add_response(operation, response)
    stubber.activate()
    return stubber


def test_sqs_reports_the_failed_ids_of_every_chunk_as_positions() -> None:
    # Chunks of 10: entry ids restart at 0 in each chunk.
    stubber = _stubbed("sqs", "send_message_batch", [
        {"Successful": [], "Failed": [
            {"Id": "3", "SenderFault": False, "Code": "InternalError"}]},
        {"Successful": [], "Failed": []},
        {"Successful": [], "Failed": [
            {"Id": "0", "SenderFault": False, "Code": "InternalError"},
            {"Id": "4", "SenderFault": False, "Code": "InternalError"}]},
    ])
    failed = SqsResultSink("https://sqs.us-east-1.amazonaws.com/1/q").publish(RESULTS)
    stubber.assert_no_pending_responses()
    assert failed == [3, 20, 24]


def test_sns_reports_the_failed_ids_of_every_chunk_as_positions() -> None:
    stubber = _stubbed("sns", "publish_batch", [
        {"Successful": [], "Failed": []},
        {"Successful": [], "Failed": [
            {"Id": "9", "Code": "Throttled", "SenderFault": False}]},
        {"Successful": [], "Failed": []},
    ])
    failed = SnsResultSink("arn:aws:sns:us-east-1:123456789012:t").publish(RESULTS)
    stubber.assert_no_pending_responses()
    assert failed == [19]


def test_eventbridge_reports_entries_with_an_error_code() -> None:
    ok: dict[str, str] = {"EventId": "e"}
    bad = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
    stubber = _stubbed("events", "put_events", [
        {"FailedEntryCount": 1, "Entries": [ok] * 7 + [bad] + [ok] * 2},
        {"FailedEntryCount": 0, "Entries": [ok] * 10},
        {"FailedEntryCount": 1, "Entries": [bad] + [ok] * 4},
    ])
    failed = EventBridgeResultSink("default", "tidegate", "WindowResult").publish(RESULTS)
    stubber.assert_no_pending_responses()
    assert failed == [7, 20]


def test_kinesis_sends_one_put_records_and_reports_the_records_that_failed() -> None:
    ok = {"SequenceNumber": "1", "ShardId": "shardId-0"}
    bad = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
    records = [ok] * 25
    records[0], records[13] = bad, bad
    stubber = _stubbed("kinesis", "put_records", [{"FailedRecordCount": 2, "Records": records}])
    failed = KinesisResultSink("results").publish(RESULTS)
    stubber.assert_no_pending_responses()
    assert failed == [0, 13]
