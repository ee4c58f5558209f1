"""`tidegate local run` as users and scripts run it: a subprocess, files in, files out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import BASE_MS as B
from tests.support import assert_accounting, line, pipeline_spec

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
S = 10_000


def tidegate_command() -> list[str]:
    script = Path(sys.executable).parent / "tidegate"
    if script.exists():
        return [str(script)]
    found = shutil.which("tidegate")
    return [found] if found else [sys.executable, "-m", "tidegate_dev.cli.main"]


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "layers/runtime/python"), str(REPO)])
    return subprocess.run(
        [*tidegate_command(), *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


# Delay 2 s, 10 s windows. Per event (one shard, batches of one), the watermark is the
# running max - 2000:
#   t      key  v    wm after   verdict
#   1000   a    1    -1000      [0, 10000)
#   4000   b    2    2000       [0, 10000)
#   12500  a    3    10500      [10000, 20000); window 0 is final from here on
#   9000   a    4               late: 10000 <= 10500
#   (bad)                       dead-lettered (invalid JSON)
#   11000  b    5               [10000, 20000)
#   ISO    b    6               2023-11-14T22:13:27.5Z = B + 7500: late
EVENTS = [
    line("a", B + 1_000, 1),
    line("b", B + 4_000, 2),
    line("a", B + 12_500, 3),
    line("a", B + 9_000, 4),
    b'{"user": "a", "ts": }',
    line("b", B + 11_000, 5.5),
    line("b", "2023-11-14T22:13:27.500Z", 6),
]


def result(user: str, start: int, n: int, total: int | float) -> dict[str, Any]:
    return {"key": {"user": user}, "window_start": start, "window_end": start + S,
            "aggregates": {"n": n, "total": total}, "version": 1, "final": True,
            "pipeline": "cli-test"}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    spec = pipeline_spec(name="cli-test",
                         aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(EVENTS) + b"\n")
    return tmp_path


@pytest.mark.parametrize(
    ("options", "expected_results", "expected_summary"),
    [
        (
            ["--shards", "1", "--batch-size", "1"],
            [result("a", B, 1, 1), result("b", B, 1, 2),
             result("a", B + S, 1, 3), result("b", B + S, 1, 5.5)],
            {"events_in": 7, "aggregated": 4, "late": 2, "dead_lettered": 1,
             "duplicates_skipped": 0, "results": 4},
        ),
        (
            # one batch of everything: judged against the watermark as the batch began
            [],
            [result("a", B, 2, 5), result("b", B, 2, 8),
             result("a", B + S, 1, 3), result("b", B + S, 1, 5.5)],
            {"events_in": 7, "aggregated": 6, "late": 0, "dead_lettered": 1,
             "duplicates_skipped": 0, "results": 4},
        ),
    ],
    ids=["per-event", "default-batch"],
)
def test_local_run_writes_results_and_summary(
    files: Path,
    options: list[str],
    expected_results: list[dict[str, Any]],
    expected_summary: dict[str, int],
) -> None:
    proc = run_cli(
        "local", "run", files / "pipeline.yaml",
        "--events", files / "events.jsonl",
        "--results", files / "RESULTS.jsonl",
        "--summary", files / "SUMMARY.json",
        *options,
        cwd=files,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(row) for row in
               (files / "RESULTS.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in results:
        assert len(row.pop("idempotency_key")) >= 16
    order = lambda r: (r["window_start"], r["key"]["user"])  # noqa: E731
    assert sorted(results, key=order) == sorted(expected_results, key=order)
    for row in results:  # a count is an integer; the sum of a `number` field a float in
        # every window, the whole ones included (one type per result, whatever the window)
        assert isinstance(row["aggregates"]["n"], int)
        assert isinstance(row["aggregates"]["total"], float)
    summary = json.loads((files / "SUMMARY.json").read_text(encoding="utf-8"))
    assert summary == expected_summary
    assert_accounting(summary)
    last_line = proc.stdout.strip().splitlines()[-1]
    assert json.loads(last_line) == expected_summary


def test_an_invalid_pipeline_is_refused_with_every_problem_before_anything_runs(
    files: Path,
) -> None:
    spec = pipeline_spec(name="Not Valid", window={"type": "tumbling", "size": "0s"},
                         aggregates={"top": {"op": "max"}})
    (files / "bad.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")

    proc = run_cli(
        "local", "run", files / "bad.yaml",
        "--events", files / "events.jsonl",
        "--results", files / "RESULTS.jsonl",
        "--summary", files / "SUMMARY.json",
        cwd=files,
    )

    assert proc.returncode != 0
    assert "window.size: must be a positive duration" in proc.stderr
    assert "name: must match [a-z0-9-]+" in proc.stderr
    assert "aggregates.top: `max` needs a `field`" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip() == ""
    assert not (files / "RESULTS.jsonl").exists()
    assert not (files / "SUMMARY.json").exists()


def test_quiet_prints_the_summary_line_alone_and_touching_sessions_merge(
    tmp_path: Path,
) -> None:
    # Over 100 invocations at batch size 1: Powertools prints a metric set once it holds 100
    # values, whatever POWERTOOLS_METRICS_DISABLED says, unless the runner drops them.
    spec = pipeline_spec(name="cli-quiet", window={"type": "session", "gap": "3s"},
                         watermark={"delay": "2s"}, aggregates={"n": {"op": "count"}})
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    touching = [line("k", B + t, 1) for t in (1_000, 4_000, 20_000)]  # 1000 and 4000 touch
    filler = [line(f"f{i % 7}", B + 30_000 + i * 10, 1) for i in range(110)]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(touching + filler) + b"\n")

    proc = run_cli("local", "run", tmp_path / "pipeline.yaml", "--events",
                   tmp_path / "events.jsonl", "--results", tmp_path / "out.jsonl",
                   "--batch-size", "1", "--shards", "3", "--quiet", cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""
    (only_line,) = proc.stdout.splitlines()
    assert json.loads(only_line)["events_in"] == 113
    rows = [json.loads(r) for r in (tmp_path / "out.jsonl").read_text().splitlines()]
    sessions = sorted((r["window_start"] - B, r["window_end"] - B, r["aggregates"]["n"])
                      for r in rows if r["key"] == {"user": "k"})
    assert sessions == [(1_000, 7_000, 2), (20_000, 23_000, 1)]
