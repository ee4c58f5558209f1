"""Section 3: cold start. Import time of each handler module (`python -X importtime` in a
fresh interpreter) and the unzipped size of the layer and each function.

Import time counts only what the handler import brings in: modules an empty interpreter
already has (site, encodings) are left out. Bytecode is cached (a warm-up run writes it under
a private `pycache_prefix`), as for a layer that ships .pyc files; the figure without any
bytecode, what a layer built with `--no-compile` pays in Lambda, is reported beside it.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidegate_dev.bench.workload import ROOT

HANDLERS = ("functions.ingest.handler", "functions.closer.handler")
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)$")


def _env(pycache: Path, write_bytecode: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "runtime" / "python"), str(ROOT)])
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _top_level(stderr: str) -> dict[str, int]:
    """Cumulative microseconds of each top-level import (nested ones are inside them)."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m and len(m.group(3)) == 1:  # one space: imported by the statement itself
            out[m.group(4)] = int(m.group(2))
    return out


def _imports(code: str, pycache: Path, write_bytecode: bool) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=_env(pycache, write_bytecode), capture_output=True, text=True, check=True,
        cwd=ROOT,
    )
    return _top_level(proc.stderr)


def import_ms(module: str, pycache: Path, write_bytecode: bool = True,
              baseline: set[str] | None = None) -> float:
    """Milliseconds to import `module` in a fresh interpreter, start-up imports excluded."""
    if baseline is None:
        baseline = set(_imports("pass", pycache, write_bytecode))
    ours = {m: us for m, us in _imports(f"import {module}", pycache, write_bytecode).items()
            if m not in baseline}
    return sum(ours.values()) / 1_000


@dataclass
class ColdStart:
    import_ms: dict[str, float]  # median with cached bytecode
    import_ms_no_bytecode: dict[str, float]
    runs: int
    sizes: dict[str, int] = field(default_factory=dict)  # bytes, unzipped
    size_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_ms": {m: round(v, 1) for m, v in self.import_ms.items()},
            "import_ms_no_bytecode": {m: round(v, 1) for m, v in
                                      self.import_ms_no_bytecode.items()},
            "runs": self.runs,
            "unzipped_bytes": self.sizes,
            "size_note": self.size_note,
        }


def _sizes(build: bool) -> tuple[dict[str, int], str]:
    from infra.layer import ROOT as INFRA_ROOT
    from infra.layer import build_layer, tree_size

    sizes: dict[str, int] = {}
    for folder in sorted((INFRA_ROOT / "functions").iterdir()):
        if (folder / "handler.py").exists():
            sizes[f"function {folder.name}"] = tree_size(folder)
    built = sorted((INFRA_ROOT / "build" / "layer").glob("layer-*"),
                   key=lambda p: p.stat().st_mtime)
    note = ""
    if build:
        layer: Path | None = build_layer()
    elif built:
        layer = built[-1]
        note = f"layer: the last build ({layer.name}), not rebuilt (--quick)"
    else:
        layer = None
        note = "layer not built (--quick skips the build; run `make layer` or a full bench)"
    if layer is not None:
        sizes["layer"] = tree_size(layer)
    return sizes, note


def measure(runs: int, build_layer: bool) -> ColdStart:
    with tempfile.TemporaryDirectory(prefix="tidegate-pycache-") as cache:
        warm = Path(cache) / "warm"
        cold = Path(cache) / "cold"  # stays empty: every import compiles from source
        timed: dict[str, float] = {}
        uncached: dict[str, float] = {}
        # What an empty interpreter imports at start-up is the same with or without bytecode.
        baseline = set(_imports("pass", warm, True))
        for module in HANDLERS:
            import_ms(module, warm, baseline=baseline)  # writes the bytecode
            timed[module] = statistics.median(
                import_ms(module, warm, baseline=baseline) for _ in range(runs)
            )
            uncached[module] = import_ms(module, cold, write_bytecode=False, baseline=baseline)
    sizes, note = _sizes(build_layer)
    return ColdStart(timed, uncached, runs, sizes, note)
