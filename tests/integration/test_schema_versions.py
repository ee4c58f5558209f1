"""Per-event schema versions through the deployed ingest handler: each record is validated
against the version it names and upgraded to the pipeline's; unknown versions and records
invalid for their own version are dead-lettered with the version and the field named."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support import BASE_MS as B
from tests.support import assert_same_typed, deployed, seq
from tidegate.rejections import Rejected
from tidegate.schemas.avro import AvroDecoder, GlueSchemas, encode_record, glue_frame
from tidegate.schemas.event_model import compile_schema
from tidegate.schemas.versions import Upgrader
from tidegate.spec import Pipeline, RegistrySchema, load_pipeline_file
from tidegate_dev.local.context import LambdaContext

TS = {"type": ["integer", "string"], "format": "date-time"}
# v1 has a `note`; v2 drops it and adds `qty` with a default, which v2 sums.
V1 = {"type": "object", "required": ["user", "ts", "v", "note"], "properties": {
    "user": {"type": "string"}, "ts": TS, "v": {"type": "number"}, "note": {"type": "string"}}}
V2 = {"type": "object", "required": ["user", "ts", "v"], "properties": {
    "user": {"type": "string"}, "ts": TS, "v": {"type": "number"},
    "qty": {"type": "integer", "default": 1}}}
PIPELINE = """\
name: tg-versions
source: {type: kinesis, stream: tg-events}
schema: {name: Reading, version: 2, registry: schemas}
event_time: ts
key: [user]
window: {type: tumbling, size: 10s}
watermark: {delay: 2s, idle_timeout: 1m}
aggregates: {n: {op: count}, total: {op: sum, field: v}, qty: {op: sum, field: qty}}
sink: {type: kinesis, stream: tg-results}
"""


def load(folder: Path, v1: dict[str, Any], v2: dict[str, Any]) -> Pipeline:
    schemas = folder / "schemas" / "Reading"
    schemas.mkdir(parents=True)
    (schemas / "v1.json").write_text(json.dumps(v1))
    (schemas / "v2.json").write_text(json.dumps(v2))
    (folder / "p.yaml").write_text(PIPELINE)
    return load_pipeline_file(folder / "p.yaml")


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return load(tmp_path, V1, V2)


def enveloped(version: Any, data: dict[str, Any]) -> bytes:
    return json.dumps({"schema_version": version, "data": data}).encode()


def kafka_event(*records: tuple[int, bytes, bytes]) -> dict[str, Any]:
    """An MSK event; records are (offset, schema-version header, value)."""
    return {"eventSource": "aws:kafka", "records": {"tg-events-0": [
        {"topic": "tg-events", "partition": 0, "offset": offset, "timestamp": B,
         "timestampType": "CREATE_TIME", "value": base64.b64encode(value).decode(),
         "headers": [{"trace": [1, 2]}, {"schema-version": list(header)}]}
        for offset, header, value in records
    ]}}


def test_old_and_new_producers_side_by_side(moto_url: str, pipeline: Pipeline) -> None:
    a = {"user": "a", "ts": B + 1_000}
    batch = [
        # a new producer: plain v2 records, and one in a v2 envelope
        (seq(1), json.dumps({**a, "v": 1, "qty": 5}).encode()),
        (seq(2), enveloped(2, {**a, "v": 4, "qty": 3})),
        # an old producer: v1 records (note is dropped, qty takes v2's default)
        (seq(3), enveloped(1, {**a, "v": 2, "note": "old"})),
        # not valid for v1 (v1 requires note), a wrong type, an unknown version
        (seq(4), enveloped(1, {**a, "v": 8})),
        (seq(5), enveloped(1, {**a, "v": "8", "note": "x"})),
        (seq(6), enveloped(9, {**a, "v": 16})),
        (seq(7), enveloped("two", {**a, "v": 32})),
        # a time that is no time: the same reason as for plain records
        (seq(8), enveloped(1, {**a, "ts": "yesterday", "v": 64, "note": "x"})),
    ]
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(batch) == {"batchItemFailures": []}
        # Kafka producers name the version in a header instead
        kafka = kafka_event(
            (10, b"1", json.dumps({"user": "b", "ts": B + 2_000, "v": 1, "note": "x"}).encode()),
            (11, b"7", json.dumps({"user": "b", "ts": B + 2_000, "v": 1}).encode()),
        )
        assert env.ingest.handler(kafka, LambdaContext("tidegate-ingest")) == {
            "batchItemFailures": []}
        env.close(flush=True)
        out = env.collect(events_in=len(batch) + 2)

    assert_same_typed({r["key"]["user"]: r["aggregates"] for r in out.results}, {
        "a": {"n": 3, "total": 7.0, "qty": 9},
        "b": {"n": 1, "total": 1.0, "qty": 1},
    })
    dead = sorted((d["reason"], d["detail"]) for d in out.dead_letters)
    assert dead == [
        ("invalid_timestamp", "Reading v1: ts: 'yesterday' is not an ISO-8601 time"),
        ("schema_violation", "Reading v1: note: Field required"),
        ("schema_violation", "Reading v1: v.int: Input should be a valid integer; "
                             "v.float: Input should be a valid number"),
        ("unknown_schema_version", "Reading v7 is not a known version (the registry has v1, v2)"),
        ("unknown_schema_version", "Reading v9 is not a known version (the registry has v1, v2)"),
        ("unknown_schema_version",
         "envelope schema_version: 'two' is not a version number (1, 2, ...)"),
    ]


def test_a_record_that_cannot_be_upgraded_names_both_versions(tmp_path: Path) -> None:
    # GIVEN a v1 whose `v` is optional, while v2 requires it
    pipeline = load(tmp_path, {**V1, "required": ["user", "ts", "note"]}, V2)
    schema = pipeline.schema_
    assert isinstance(schema, RegistrySchema)
    upgrader = Upgrader(schema, compile_schema(pipeline))
    # WHEN a v1 record without `v` is upgraded, THEN it is refused naming both versions
    with pytest.raises(Rejected) as caught:
        upgrader.upgrade({"user": "a", "ts": 1, "note": "n"}, 1)
    assert (caught.value.reason, caught.value.detail) == (
        "schema_violation", "Reading v1 -> v2: field 'v' has no value in v1 and no default in v2"
    )


class _Writers(GlueSchemas):
    """Glue reduced to a dict: version id -> writer schema definition."""

    def __init__(self, definitions: dict[uuid.UUID, Any]) -> None:
        super().__init__("tidegate", "Reading")
        self.definitions = definitions

    def _fetch(self, version_id: uuid.UUID) -> Any:
        from tidegate.schemas.avro import parse_definition

        return parse_definition(self.definitions[version_id])


def test_avro_records_name_their_version_by_the_glue_header(pipeline: Pipeline) -> None:
    # GIVEN writers of v1 and of v2 (as .avsc files would define them) and a stranger
    def record(*fields: dict[str, Any]) -> dict[str, Any]:
        return {"type": "record", "name": "Reading", "fields": [
            {"name": "user", "type": "string"},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "v", "type": ["long", "double"]}, *fields]}

    from tidegate.schemas.avro import avro_record, parse_definition

    schema = pipeline.schema_
    assert isinstance(schema, RegistrySchema)
    v1, v2, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    writers = {
        v1: avro_record(schema.inline(1)),
        v2: avro_record(schema.inline(2)),
        stranger: record({"name": "other", "type": "string"}),
    }
    model = compile_schema(pipeline)
    decoder = AvroDecoder(pipeline, model, _Writers(writers), Upgrader(schema, model))

    def framed(version: uuid.UUID, values: dict[str, Any]) -> bytes:
        return glue_frame(version, encode_record(parse_definition(writers[version]), values))

    # THEN a v1 record is upgraded (qty from v2's default), a v2 record is as written
    old = decoder.decode_bytes(framed(v1, {"user": "a", "ts": B, "v": 2, "note": "n"}))
    new = decoder.decode_bytes(framed(v2, {"user": "a", "ts": B, "v": 2, "qty": 4}))
    assert (old.values, new.values) == ({"qty": 1, "v": 2}, {"qty": 4, "v": 2})
    # AND a writer schema that is no registry version is an unknown version
    with pytest.raises(Rejected) as caught:
        decoder.decode_bytes(framed(stranger, {"user": "a", "ts": B, "v": 2, "other": "x"}))
    assert caught.value.reason == "unknown_schema_version"
    assert caught.value.detail == (
        f"schema version {stranger} matches no version of Reading in the pipeline's "
        "registry (v1, v2)"
    )


EXAMPLE = Path(__file__).parents[2] / "pipelines" / "examples" / "evolution"


def test_the_readme_walkthrough_runs_as_written(moto_url: str) -> None:
    from tidegate_dev.local.runner import read_event_lines, run_pipeline

    pipeline = load_pipeline_file(EXAMPLE / "pipeline.yaml")
    out = run_pipeline(pipeline, read_event_lines(EXAMPLE / "events.jsonl"),
                       endpoint_url=moto_url)
    assert_same_typed(
        sorted([r["key"]["shop"], r["window_start"], r["aggregates"]] for r in out.results),
        [["berlin", 0, {"orders": 2, "revenue": 42.5, "items": 4}],
         ["berlin", 10_000, {"orders": 1, "revenue": 4.0, "items": 1}],
         ["paris", 0, {"orders": 2, "revenue": 13.0, "items": 3}]],
    )
    assert sorted(d["detail"] for d in out.dead_letters) == [
        "Order v1: amount.int: Input should be a valid integer; "
        "amount.float: Input should be a valid number",
        "Order v3 is not a known version (the registry has v1, v2)",
    ]
