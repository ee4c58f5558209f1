"""`tidegate tail`: follow a pipeline's sink and print results as they arrive.

A Kinesis sink is read on every shard (from LATEST, or the oldest record with
--from-start). An SQS-read sink (sqs, or a queue subscribed to SNS/EventBridge) is received
with a short visibility timeout and left in the queue for its real consumer, unless
--consume: tail is an observer, not the consumer.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from tidegate.aws import client
from tidegate.spec import load_pipeline_file

_POLL_S = 0.25
_PEEK_VISIBILITY_S = 5


def follow_kinesis(stream: str, from_start: bool, stop: Callable[[], bool]) -> Iterator[bytes]:
    kinesis = client("kinesis")
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    kind = "TRIM_HORIZON" if from_start else "LATEST"
    iterators: dict[str, str | None] = {
        s["ShardId"]: kinesis.get_shard_iterator(
            StreamName=stream, ShardId=s["ShardId"], ShardIteratorType=kind
        )["ShardIterator"]
        for s in shards
    }
    while not stop() and any(iterators.values()):
        quiet = True
        for shard_id, iterator in list(iterators.items()):
            if iterator is None:
                continue  # a closed shard, read to its end
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            iterators[shard_id] = page.get("NextShardIterator")
            for record in page.get("Records", []):
                quiet = False
                yield record["Data"]
        if quiet:
            time.sleep(_POLL_S)


def follow_queue(url: str, consume: bool, stop: Callable[[], bool]) -> Iterator[bytes]:
    sqs = client("sqs")
    seen: set[str] = set()  # a peeked message comes back after its visibility timeout
    while not stop():
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   VisibilityTimeout=_PEEK_VISIBILITY_S)
        messages = page.get("Messages", [])
        for message in messages:
            if message["MessageId"] in seen:
                continue
            seen.add(message["MessageId"])
            yield message["Body"].encode("utf-8")
        if consume and messages:
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])


def tail_results(kind: str, target: str, *, from_start: bool = False, consume: bool = False,
                 max_results: int | None = None, timeout_s: float | None = None,
                 ) -> Iterator[dict[str, Any]]:
    """Results from the sink until `max_results` have arrived or `timeout_s` has passed."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    count = 0

    def stop() -> bool:
        return (deadline is not None and time.monotonic() >= deadline) or (
            max_results is not None and count >= max_results)

    source = (follow_kinesis(target, from_start, stop) if kind == "kinesis"
              else follow_queue(target, consume, stop))
    for data in source:
        try:
            result = json.loads(data)
        except ValueError:
            result = {"unparsed": data.decode("utf-8", "replace")}
        count += 1
        yield result
        if stop():
            return


def _row_table(first: bool, names: list[str]) -> Any:
    from rich.table import Table

    # Fixed widths: each arrival is its own table, and the columns must line up.
    table = Table(show_header=first, box=None, pad_edge=False, padding=(0, 1))
    for name, width in (("key", 14), ("window (UTC)", 19), *((n, 11) for n in names),
                        ("v", 2), ("final", 5)):
        table.add_column(name, width=width, no_wrap=True,
                         justify="left" if width > 11 else "right")
    return table


def tail(args: argparse.Namespace) -> int:
    from tidegate.schemas.eventtime import format_ms
    from tidegate_dev.cli.console import err, out
    from tidegate_dev.ops.common import aws_endpoint, resolve

    pipeline = load_pipeline_file(args.pipeline)
    names = list(pipeline.aggregates)
    with aws_endpoint(args.endpoint_url, args.region):
        targets = resolve(pipeline, stack=args.stack, stream=args.stream, sink=args.sink,
                          resolve_queues=False)
        sink = targets.sink
        if targets.sink_kind == "sqs":
            from tidegate_dev.ops.common import queue_url

            sink = queue_url(sink)
        if not sink:
            raise SystemExit("error: cannot find the sink to read; give --sink")
        if not args.json:
            err.print(f"following {targets.sink_kind} {sink} (Ctrl-C to stop)")
        first = True
        try:
            for result in tail_results(targets.sink_kind, sink, from_start=args.from_start,
                                       consume=args.consume, max_results=args.max,
                                       timeout_s=args.timeout):
                if args.json:
                    print(json.dumps(result, separators=(",", ":")), flush=True)
                    continue
                table = _row_table(first, names)
                first = False
                key = ", ".join(f"{k}={v}" for k, v in result.get("key", {}).items())
                start, end = result.get("window_start"), result.get("window_end")
                window = "" if start is None else \
                    f"{format_ms(start)[5:19].replace('T', ' ')}+{(end - start) // 1000}s"
                aggregates = result.get("aggregates", {})
                table.add_row(key, window, *(str(aggregates.get(n, "")) for n in names),
                              str(result.get("version", "")), str(result.get("final", "")))
                out.print(table)
        except KeyboardInterrupt:
            pass
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tidegate_dev.ops.common import add_location_args

    add_location_args(parser, with_queues=False)
    parser.add_argument("--from-start", action="store_true",
                        help="Kinesis sink: from the oldest record instead of LATEST")
    parser.add_argument("--consume", action="store_true",
                        help="queue sink: delete what is read (default: leave it)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--max", type=int, metavar="N", help="stop after N results")
    parser.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
