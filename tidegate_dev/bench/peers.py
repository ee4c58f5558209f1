"""Peers: Bytewax (and Quix Streams) running the same tumbling aggregation on the same
events, in-process with their own testing inputs, no broker.

Peers are never project dependencies. They are installed at bench time, when the package
registry has them, into `build/bench-peers/` and run in a subprocess with that folder on the
path, so their pinned libraries never meet ours.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidegate_dev.bench.workload import ROOT

PEERS_DIR = ROOT / "build" / "bench-peers"
PACKAGES = ("bytewax", "quixstreams")

# Items reach the dataflow 1,000 at a time, as records reach our handler; one at a time
# (TestingSource's default) wakes every key's window logic per item and is quadratic here.
# Same pipeline as the clickstream tumbling one: per userId, 1-minute windows, count, sum
# and max of `value`, event time from `timestamp`, 5 s of allowed disorder.
_BYTEWAX = r'''
import base64, json, sys, time
from datetime import datetime, timedelta, timezone
import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

data = json.load(open(sys.argv[1]))
epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)

def decode(b64):
    return json.loads(base64.b64decode(b64))

def fold(acc, e):
    v = e["value"]
    return [acc[0] + 1, acc[1] + v, v if acc[2] is None or v > acc[2] else acc[2]]

def merge(a, b):
    return [a[0] + b[0], a[1] + b[1], max(x for x in (a[2], b[2]) if x is not None)]

flow = Dataflow("bench")
events = op.map("decode", op.input("in", flow, TestingSource(data, batch_size=1000)), decode)
keyed = op.key_on("key", events, lambda e: e["userId"])
clock = win.EventClock(lambda e: epoch + timedelta(milliseconds=e["timestamp"]),
                       wait_for_system_duration=timedelta(seconds=5))
windower = win.TumblingWindower(length=timedelta(minutes=1), align_to=epoch)
out = []
windows = win.fold_window("agg", keyed, clock, windower, lambda: [0, 0, None], fold, merge)
op.output("out", windows.down, TestingSink(out))
start = time.process_time()
run_main(flow)
cpu = time.process_time() - start
print(json.dumps({"events": len(data), "cpu_s": cpu, "windows": len(out)}))
'''


@dataclass
class PeerResult:
    name: str
    status: str  # "measured", "not installed", "not measured: why"
    events_per_s: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "events_per_s": round(self.events_per_s)
                if self.events_per_s else None, "detail": self.detail}


def _installed(package: str) -> bool:
    return any(PEERS_DIR.glob(f"{package}-*.dist-info"))


def install(timeout_s: float = 240) -> str:
    """Install the peers into PEERS_DIR; returns a note (empty when they are there)."""
    if all(_installed(p) for p in PACKAGES):
        return ""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(PEERS_DIR), *PACKAGES]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"pip install timed out after {timeout_s:.0f} s"
    if proc.returncode != 0:
        return "pip install failed: " + proc.stderr.strip().splitlines()[-1][:200]
    return ""


def _bytewax(lines: list[bytes]) -> PeerResult:
    if not _installed("bytewax"):
        return PeerResult("bytewax", "not installed")
    with tempfile.TemporaryDirectory(prefix="tidegate-peer-") as tmp:
        data = Path(tmp) / "events.json"
        data.write_text(json.dumps([base64.b64encode(x).decode("ascii") for x in lines]))
        script = Path(tmp) / "bytewax_bench.py"
        script.write_text(_BYTEWAX)
        env = {**os.environ, "PYTHONPATH": str(PEERS_DIR)}
        try:
            proc = subprocess.run([sys.executable, str(script), str(data)], env=env,
                                  capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return PeerResult("bytewax", "not measured: over 300 s")
    if proc.returncode != 0:
        return PeerResult("bytewax", "not measured: it failed",
                          detail=proc.stderr.strip()[-300:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return PeerResult("bytewax", "measured", out["events"] / out["cpu_s"],
                      f"{out['windows']} windows; json.loads, no schema validation; "
                      "includes dataflow start-up")


def measure(lines: list[bytes], allow_install: bool) -> tuple[list[PeerResult], str]:
    note = install() if allow_install else ""
    results = [_bytewax(lines)]
    quix = ("not installed" if not _installed("quixstreams") else
            "not measured: its windows need an Application consuming a Kafka topic; "
            "there is no broker-less testing input for windowed state")
    results.append(PeerResult("quixstreams", quix))
    return results, note
