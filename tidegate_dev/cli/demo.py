"""`tidegate demo`: the seed's click/purchase analytics, end to end, on the embedded moto."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from tidegate.spec import load_pipeline_file
from tidegate_dev.cli.console import err, out, progress_bar, results_table, summary_table
from tidegate_dev.cli.errors import CliError
from tidegate_dev.demo_events import generate
from tidegate_dev.local.runner import run_pipeline

DEFAULT_PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "clickstream.yaml"


def demo(args: argparse.Namespace) -> int:
    if not args.pipeline and not DEFAULT_PIPELINE.exists():
        # The wheel installs pipelines/ beside tidegate_dev; a copy without it says so.
        raise CliError(f"the demo's pipeline is missing ({DEFAULT_PIPELINE}): pass "
                       "--pipeline FILE (e.g. pipelines/clickstream.yaml)", exit_code=2)
    pipeline = load_pipeline_file(args.pipeline or DEFAULT_PIPELINE)
    lines = generate(args.events, args.users, args.seed, args.max_step_ms)
    err.print(
        f"[bold]tidegate demo[/]: {len(lines)} events, {args.users} users, "
        f"{args.shards} shards, batch {args.batch_size} -> pipeline '{pipeline.name}' "
        "on an embedded moto server"
    )
    recorder = None
    if getattr(args, "timeline", None):
        from tidegate_dev.ops.timeline import TimelineRecorder

        recorder = TimelineRecorder(pipeline)
    with progress_bar("ingesting") as progress:
        output = run_pipeline(
            pipeline, lines, shards=args.shards, batch_size=args.batch_size, progress=progress,
            observer=recorder, chaos_seed=args.chaos,
        )
    if recorder is not None:
        from tidegate_dev.ops.timeline import render

        err.print(f"timeline: {render(recorder, args.timeline)}")
    out.print(results_table(output.results))
    reasons = Counter(d["reason"] for d in output.dead_letters)
    if reasons:
        out.print("dead-lettered: " + ", ".join(f"{r} x{n}" for r, n in reasons.items()))
        example = output.dead_letters[0]
        out.print(f"  e.g. {example['reason']}: {example['detail']}")
    out.print(summary_table(output.summary))
    if output.chaos is not None:
        faults = ", ".join(f"{k} x{v}" for k, v in output.chaos.items()) or "none"
        out.print(f"chaos seed {args.chaos}: injected {faults}")
    accounted = sum(output.summary[k] for k in ("aggregated", "late", "dead_lettered"))
    verdict = "holds" if accounted == output.summary["events_in"] else "BROKEN"
    out.print(f"accounting: events_in {output.summary['events_in']} == aggregated + late + "
              f"dead_lettered {accounted}: {verdict}")
    print(json.dumps(output.summary))
    return 0
