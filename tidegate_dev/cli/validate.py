"""`tidegate validate`: check pipeline files without running anything."""

from __future__ import annotations

import argparse
import sys

from tidegate.spec import PipelineError, load_pipeline_file


def validate(args: argparse.Namespace) -> int:
    status = 0
    for path in args.pipelines:
        try:
            pipeline = load_pipeline_file(path)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{path}: ok ({pipeline.name}, {pipeline.window.type} window)")
    return status
