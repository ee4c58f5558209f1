"""`tidegate validate`: check pipeline files without running anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidegate.spec import PipelineError, load_pipeline_file


def short_duration_warnings(data: Any) -> list[str]:
    """Bare integers are milliseconds: `size: 60` is 60 ms, which is rarely what was meant.
    Under one second, say so (a warning: sub-second windows are legitimate)."""
    from tidegate_dev.reference.keys import duration_paths

    warnings: list[str] = []
    for path in sorted(duration_paths()):
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1000:
            warnings.append(
                f"{path}: {value} is {value} milliseconds (a bare integer is ms); write "
                f"{value}ms to keep it, or {value}s / {value}m for seconds or minutes"
            )
    return warnings


def validate(args: argparse.Namespace) -> int:
    import yaml

    status = 0
    for path in args.pipelines:
        try:
            pipeline = load_pipeline_file(path)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        # The file parsed once already; read again for what the models do not keep (how a
        # duration was written).
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        for warning in short_duration_warnings(raw):
            print(f"{path}: warning: {warning}", file=sys.stderr)
        print(f"{path}: ok ({pipeline.name}, {pipeline.window.type} window)")
    return status
