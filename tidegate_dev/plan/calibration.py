"""What `tidegate plan` takes from measurement, and where it comes from.

A calibration holds, per window type, the figures `tidegate bench` measures with its own
functions: ingest CPU per event (`ingest_cpu.handler_path_rate`, with DynamoDB
serialisation and the group writes in flight as deployed), DynamoDB requests per batch and
item sizes (`writes.measure`, counted at the boto3 level against moto), and the closer's
requests per window (`close_path.measure`).

The plan reads a stored calibration (by default the committed `calibration.json`, written
by `tidegate plan --measure --save-calibration` on the development machine, its date and
machine inside) so that planning is instant and repeatable; `--measure` re-measures on this
machine first (about a minute) for figures of your own hardware and code.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tidegate_dev.plan.model import Calibrated

DEFAULT_PATH = Path(__file__).with_name("calibration.json")
WINDOW_TYPES = ("tumbling", "sliding", "session")


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class WindowCalibration:
    cpu_s_per_event: float
    writes_over_floor: float
    overhead_requests_per_batch: float
    pane_item_bytes: float
    closer_requests_per_window: float
    closer_writes_per_window: float
    closer_reads_per_window: float
    result_item_bytes: float
    # As the bench reports them, for reference: the plan derives both for its own workload
    # (requests from the batch's distinct groups, windows/s from requests at DynamoDB's
    # latency; moto serves requests about ten times slower than DynamoDB).
    ingest_requests_per_1000_events: float
    closer_windows_per_s_on_moto: float
    windows_closed: int  # the closer sample behind the per-window figures

    def calibrated(self) -> Calibrated:
        return Calibrated(
            cpu_s_per_event=self.cpu_s_per_event,
            writes_over_floor=self.writes_over_floor,
            overhead_requests_per_batch=self.overhead_requests_per_batch,
            closer_requests_per_window=self.closer_requests_per_window,
            closer_writes_per_window=self.closer_writes_per_window,
            closer_reads_per_window=self.closer_reads_per_window,
        )


@dataclass(frozen=True)
class Calibration:
    measured_on: str  # UTC date and time
    machine: str
    command: str
    event_bytes: float  # the bench workload's average event
    reference_acc_bytes: float  # the bench pipeline's accumulator, to re-size items
    workload: dict[str, Any] = field(default_factory=dict)
    windows: dict[str, WindowCalibration] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        try:
            path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        except OSError as exc:
            raise CalibrationError(f"{path}: cannot write ({exc.strerror})") from None


def _number(data: dict[str, Any], name: str, where: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(f"{where}.{name}: expected a number, got {value!r}")
    if value < 0:
        raise CalibrationError(f"{where}.{name}: must not be negative, got {value!r}")
    return float(value)


def from_dict(data: Any, source: str) -> Calibration:
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: expected a JSON object")
    windows = data.get("windows")
    if not isinstance(windows, dict):
        raise CalibrationError(f"{source}: windows: expected an object by window type")
    parsed: dict[str, WindowCalibration] = {}
    for kind in WINDOW_TYPES:
        entry = windows.get(kind)
        where = f"{source}: windows.{kind}"
        if not isinstance(entry, dict):
            raise CalibrationError(f"{where}: missing")
        numbers = {name: _number(entry, name, where)
                   for name in WindowCalibration.__dataclass_fields__ if name != "windows_closed"}
        if numbers["cpu_s_per_event"] <= 0:
            raise CalibrationError(f"{where}.cpu_s_per_event: must be positive")
        parsed[kind] = WindowCalibration(
            **numbers, windows_closed=int(_number(entry, "windows_closed", where)))
    for name in ("measured_on", "machine", "command"):
        if not isinstance(data.get(name), str):
            raise CalibrationError(f"{source}: {name}: expected a string")
    return Calibration(
        measured_on=data["measured_on"],
        machine=data["machine"],
        command=data["command"],
        event_bytes=_number(data, "event_bytes", source),
        reference_acc_bytes=_number(data, "reference_acc_bytes", source),
        workload=dict(data.get("workload") or {}),
        windows=parsed,
    )


def load(path: Path = DEFAULT_PATH) -> Calibration:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such calibration file") from None
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{path}: not JSON ({exc})") from None
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read ({exc.strerror})") from None
    return from_dict(data, str(path))


# -- measuring -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How much `measure` runs: a minute or two here, small enough for `--measure`."""

    cpu_events: int = 5_000
    cpu_repeats: int = 3
    write_events: int = 1_000
    close_events: int = 1_500
    close_keys: int = 30


MEASURE_SIZES = Sizes()


def measure(command: str, sizes: Sizes = MEASURE_SIZES) -> Calibration:
    """Run the bench's measurement functions once per window type (moto in process)."""
    from tidegate.runtime import LAMBDA_WRITE_CONCURRENCY
    from tidegate_dev.bench import close_path, ingest_cpu, workload, writes
    from tidegate_dev.bench.requests import RequestCounter
    from tidegate_dev.cli.console import err
    from tidegate_dev.local.server import endpoint
    from tidegate_dev.plan.shape import accumulator_bytes

    lines = workload.Workload(events=sizes.cpu_events).lines()
    cpu: dict[str, float] = {}
    for kind in WINDOW_TYPES:
        err.print(f"[bold]ingest CPU[/], {kind}: {sizes.cpu_events:,} events")
        # As deployed: the group writes in flight (their threads' CPU counted too).
        rate = ingest_cpu.handler_path_rate(workload.pipeline(kind), lines, writes.BATCH,
                                            sizes.cpu_repeats, serialize=True,
                                            write_concurrency=LAMBDA_WRITE_CONCURRENCY)
        cpu[kind] = 1 / rate
    counter = RequestCounter()
    with endpoint(None), counter.installed():
        err.print(f"[bold]writes[/]: {sizes.write_events:,} events per window type on moto")
        by_kind = {w.window: w for w in writes.measure(sizes.write_events, counter)}
        closes = {}
        for kind in WINDOW_TYPES:
            err.print(f"[bold]close path[/], {kind}: {sizes.close_events:,} events on moto")
            closes[kind] = close_path.measure(sizes.close_events, counter, sizes.close_keys,
                                              window=kind)
    windows: dict[str, WindowCalibration] = {}
    for kind in WINDOW_TYPES:
        w, c = by_kind[kind], closes[kind]
        batches = math.ceil(w.events / writes.BATCH)
        gets = w.requests.get("dynamodb.BatchGetItem", 0)
        closed = max(1, c.windows_closed)
        windows[kind] = WindowCalibration(
            cpu_s_per_event=cpu[kind],
            writes_over_floor=w.writes / max(1, w.floor),
            overhead_requests_per_batch=max(0, w.ddb_requests - w.writes - gets) / batches,
            pane_item_bytes=w.bytes_put / max(1, w.items_put),
            closer_requests_per_window=c.ddb_requests / closed,
            closer_writes_per_window=c.write_units / closed,
            closer_reads_per_window=c.read_units / closed,
            result_item_bytes=c.bytes_put / max(1, c.items_put),
            ingest_requests_per_1000_events=1_000 * w.ddb_requests / w.events,
            closer_windows_per_s_on_moto=c.windows_per_second,
            windows_closed=c.windows_closed,
        )
    return Calibration(
        measured_on=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}",
        command=command,
        event_bytes=sum(map(len, lines)) / len(lines),
        reference_acc_bytes=accumulator_bytes(workload.pipeline("tumbling")),
        workload={"keys": workload.KEYS, "zipf_s": workload.ZIPF_S, "batch": writes.BATCH,
                  **asdict(sizes)},
        windows=windows,
    )
