"""The pipeline file reference page, generated from the models (tidegate_dev.reference.keys).

The keys, their types, defaults and the branch each belongs to come from the models; only
the one-line meanings below are written by hand. A key without one still appears: the
reference can lack a sentence, never a key.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic_core import PydanticUndefined

from tidegate.durations import format_duration_ms
from tidegate_dev.reference.keys import Key, walk

MEANING = {
    "name": "Pipeline name, `[a-z0-9-]+`, unique per stage; names every resource.",
    "source": "Where events come from: a Kinesis stream or a Kafka topic.",
    "source.type": "`kinesis` or `msk` (Amazon MSK or self-managed Kafka).",
    "source.stream": "Kinesis stream name (for `msk`, an alias of `topic`).",
    "source.shards": "Shard count (Kinesis, provisioned) or the topic's partition count (msk:"
                     " the watermark waits for every partition). `local run` uses it when"
                     " `--shards` is absent.",
    "source.arn": "An existing Kinesis stream to read instead of creating one.",
    "source.topic": "Kafka topic name.",
    "format": "Record encoding: `json`, or `avro` in the Glue Schema Registry wire format.",
    "schema": "The event schema: inline fields, a Pydantic model (`ref`), or a registry"
              " folder of versions.",
    "schema.name": "Schema name (the registry folder's subfolder for a registry schema).",
    "schema.version": "The schema version the pipeline aggregates; other versions are"
                      " upgraded to it.",
    "schema.fields": "Field name to type: `string`, `integer`, `number`, `boolean`,"
                     " `timestamp`, or `{enum: [...]}`; a trailing `?` makes it optional.",
    "schema.fields.<name>.enum": "The allowed values of an enum field.",
    "schema.fields.<name>.optional": "Whether an enum field may be absent.",
    "schema.ref": "`package.module:Model`, a Pydantic model to validate events with.",
    "schema.registry": "Folder (relative to the pipeline file) holding `NAME/v1.json`,"
                       " `v2.avsc`, ...",
    "schema.compatibility": "Compatibility mode `tidegate schemas check` enforces between"
                            " versions, as the Glue Schema Registry defines it.",
    "schema.versions": "Filled in from the registry folder when the file is loaded; not"
                       " written by hand.",
    "schema.versions.<name>.file": "The version's file in the registry folder.",
    "schema.versions.<name>.fields": "The version's fields, as inline fields.",
    "schema.versions.<name>.fields.<name>.enum": "The allowed values of an enum field.",
    "schema.versions.<name>.fields.<name>.optional": "Whether an enum field may be absent.",
    "schema.versions.<name>.defaults": "Values for fields a record of this version lacks.",
    "schema.versions.<name>.fingerprint": "Avro versions: the schema's fingerprint.",
    "event_time": "The field that holds event time (epoch ms or ISO-8601 with an offset).",
    "key": "Aggregation key: one field or a list of fields.",
    "window": "The window kind and its sizes.",
    "window.type": "`tumbling`, `sliding` or `session`.",
    "window.size": "Window length.",
    "window.slide": "How far apart sliding windows start; at most `size`.",
    "window.gap": "Session gap: sessions whose `[first, last + gap)` intervals overlap or"
                  " touch merge.",
    "window.max_length": "Caps a session's length.",
    "watermark": "How event time advances.",
    "watermark.delay": "Watermark = max event time seen per partition minus this.",
    "watermark.idle_timeout": "A partition without records for this long (processing time)"
                              " leaves the watermark minimum.",
    "watermark.max_future_skew": "Events stamped further ahead of their arrival are"
                                 " dead-lettered (`future_timestamp`); absent = off.",
    "watermark.advance_when_idle": "When every partition is idle, advance the watermark by"
                                   " processing time; switch off for replays of old data.",
    "allowed_lateness": "A window is final at `watermark >= end + allowed_lateness`.",
    "aggregates": "Result name to aggregate; each is in every result.",
    "aggregates.<name>.op": "The aggregate: one of the registered ops.",
    "aggregates.<name>.field": "The numeric field aggregated (all ops but `count`).",
    "emit": "`final`: one result per window; `updates`: a version when the watermark"
            " passes the end, then one per batch of accepted late events.",
    "sink": "Where results are published.",
    "sink.type": "`kinesis`, `sqs`, `sns` or `eventbridge`.",
    "sink.stream": "Kinesis stream name.",
    "sink.queue": "SQS queue name.",
    "sink.topic": "SNS topic name.",
    "sink.bus": "EventBridge bus name.",
    "sink.source": "EventBridge `Source` of each result event.",
    "sink.detail_type": "EventBridge `DetailType` of each result event.",
    "mini_batch": "Pre-aggregation before state is written (Kinesis: the event source"
                  " mapping's tumbling window; Kafka: larger batches).",
    "mini_batch.allow_latency": "How long a shard's partials may wait before they are"
                                " written (1s-15m, whole seconds; `0s` = off). Results come"
                                " up to this much later; must be below"
                                " `watermark.idle_timeout`. Tumbling and sliding windows.",
    "capacity": "How the state table is billed.",
    "capacity.mode": "`on_demand` (per request; the default) or `provisioned` (capacity"
                     " units that auto-scaling keeps near `target_utilization`).",
    "capacity.write_units": "Provisioned write capacity units of the table and its index.",
    "capacity.write_units.min": "Auto-scaling's lower bound (and the starting capacity).",
    "capacity.write_units.max": "Auto-scaling's upper bound.",
    "capacity.read_units": "Provisioned read capacity units of the table and its index.",
    "capacity.read_units.min": "Auto-scaling's lower bound (and the starting capacity).",
    "capacity.read_units.max": "Auto-scaling's upper bound.",
    "capacity.target_utilization": "Percent of the provisioned capacity auto-scaling aims"
                                   " to use (20-90).",
    "expected_keys": "Active keys at peak: sizes `index_shards` when that is not given.",
    "index_shards": "Partitions of the open-window index, the unit of closer fan-out"
                    " (1-4096). Change only with a new `state_version`.",
    "state_version": "Version of the state layout; a replay builds a new one beside the"
                     " live one.",
}

SECTION_TITLES = {
    "source": "Source", "schema": "Schema", "window": "Window", "watermark": "Watermark",
    "aggregates": "Aggregates", "sink": "Sink",
}


def _default(key: Key) -> str:
    if key.required:
        return "required"
    if key.default is PydanticUndefined or key.default is None:
        return "—"
    if key.duration and isinstance(key.default, int):
        return f"`{format_duration_ms(key.default)}`"
    if hasattr(key.default, "model_dump"):
        return "see below"
    return f"`{str(key.default).lower() if isinstance(key.default, bool) else key.default}`"


def _row(key: Key) -> str:
    kind = key.type
    if key.path == "aggregates.<name>.op":
        # A string the model checks against the registry of ops: name them.
        from tidegate.aggregates.registry import ops

        kind = " | ".join(f'"{op}"' for op in ops())
    kind = kind.replace("|", "\\|")
    meaning = MEANING.get(key.path, "")
    return f"| `{key.path}` | {kind} | {_default(key)} | {meaning} |"


def generate() -> str:
    keys = walk()
    sections: dict[str, list[Key]] = defaultdict(list)
    for key in keys:
        top = key.path.split(".")[0]
        sections[top if top in SECTION_TITLES and "." in key.path else ""].append(key)
    out = [
        "# Pipeline file reference",
        "",
        "Every key a pipeline file accepts, generated from the models that validate it"
        " (`tidegate.spec`). Durations are `250ms`, `5s`, `1m`, `1h`, `1d` or an integer of"
        " milliseconds (`tidegate validate` warns about a bare integer under 1000). An"
        " unknown key is an error, reported by its path. `<name>` stands for a name you"
        " choose. For editor completion, `tidegate schema-json` writes the same as a"
        " JSON Schema.",
        "",
        "## Top level",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        *(_row(k) for k in sections[""]),
    ]
    for top, title in SECTION_TITLES.items():
        out += ["", f"## {title}", ""]
        by_variant: dict[str | None, list[Key]] = defaultdict(list)
        for key in sections[top]:
            by_variant[key.variant if key.path.count(".") == 1 else
                       by_variant_parent(sections[top], key)].append(key)
        for variant, members in by_variant.items():
            if variant is not None:
                out += [f"**{_variant_title(top, variant)}**", ""]
            out += ["| key | type | default | meaning |", "|---|---|---|---|",
                    *(_row(k) for k in members), ""]
    return "\n".join(out).rstrip() + "\n"


def by_variant_parent(keys: list[Key], key: Key) -> str | None:
    """Keys nested under a branch (a registry schema's versions) sit with that branch."""
    parent = next((k for k in keys if key.path.startswith(k.path + ".")
                   and k.path.count(".") == 1), None)
    return parent.variant if parent is not None else key.variant


def _variant_title(top: str, variant: str) -> str:
    if top == "schema":
        return {"inline": "inline fields", "ref": "a Pydantic model (`ref`)",
                "folder": "a registry folder (`registry`)"}.get(variant, variant)
    return f"`type: {variant}`"
