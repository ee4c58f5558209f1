"""The run timeline: recorded through the runner's observer, drawn at a fixed pixel size."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import BASE_MS, line
from tidegate.spec import Pipeline
from tidegate_dev.cli.main import main
from tidegate_dev.local.runner import run_pipeline
from tidegate_dev.local.server import endpoint
from tidegate_dev.ops.timeline import (
    DEAD,
    HEIGHT_PX,
    LATE,
    ON_TIME,
    WIDTH_PX,
    TimelineRecorder,
    _Event,
    render,
)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with endpoint() as started:
        yield started


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _lines() -> list[bytes]:
    """Three 10 s windows of two users; then a late event, and two broken records."""
    out: list[bytes] = []
    for i in range(60):
        out.append(line(f"u{i % 2}", BASE_MS + i * 500, i))
        if i == 45:
            out.append(line("u0", BASE_MS + 1_000, 99))  # window 1 closed long ago: late
        if i == 20:
            out.append(b"{not json")
        if i == 30:
            out.append(json.dumps({"user": "u1", "ts": "yesterday", "v": 1}).encode())
    return out


def test_recorder_verdicts_match_the_run(url: str, make_pipeline: type[Pipeline],
                                         tmp_path: Path) -> None:
    pipeline = make_pipeline()
    recorder = TimelineRecorder(pipeline)
    output = run_pipeline(pipeline, _lines(), batch_size=5, endpoint_url=url,
                          observer=recorder)
    counts = recorder.counts()
    assert counts == {ON_TIME: output.summary["aggregated"], LATE: output.summary["late"],
                      DEAD: output.summary["dead_lettered"]}
    assert counts[LATE] == 1 and counts[DEAD] == 2
    late = [e for e in recorder.events if e.verdict == LATE]
    assert late[0].t == BASE_MS + 1_000
    # The watermark was recorded after each round and never goes back.
    marks = [w for _, w in recorder.watermarks]
    assert marks == sorted(marks) and len(marks) >= 10
    spans = recorder.windows()
    assert [(s.start - BASE_MS, s.end - BASE_MS, s.keys) for s in spans] == [
        (0, 10_000, 2), (10_000, 20_000, 2), (20_000, 30_000, 2)]
    # Each window was emitted after its first event, the last one by the final flush.
    assert all(s.first_x < s.emitted_x for s in spans)
    assert spans[-1].at_flush and not spans[0].at_flush
    out = render(recorder, tmp_path / "run.png")
    assert png_size(out) == (WIDTH_PX, HEIGHT_PX)


def test_local_run_draws_a_timeline(url: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support import pipeline_spec

    pipeline_file = tmp_path / "p.json"  # JSON is YAML: the loader reads both
    pipeline_file.write_text(json.dumps(pipeline_spec()), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(_lines()) + b"\n")
    png = tmp_path / "out" / "timeline.png"
    code = main(["local", "run", str(pipeline_file), "--events", str(events),
                 "--results", str(tmp_path / "results.jsonl"), "--endpoint-url", url,
                 "--batch-size", "10", "--quiet", "--timeline", str(png)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["late"] == 1 and summary["dead_lettered"] == 2
    assert png_size(png) == (WIDTH_PX, HEIGHT_PX)


def test_a_hundred_thousand_events_stay_readable(make_pipeline: type[Pipeline],
                                                 tmp_path: Path) -> None:
    """Drawn as a density past 20,000 points, in well under the test budget."""
    recorder = TimelineRecorder(make_pipeline())
    for i in range(100_000):
        verdict = LATE if i % 97 == 0 else DEAD if i % 1_001 == 0 else ON_TIME
        t = BASE_MS + i * 10 - (60_000 if verdict == LATE else 0)
        recorder.events.append(_Event(i, None if verdict == DEAD else t, '["u1"]', verdict))
        if i % 1_000 == 999:
            recorder.watermarks.append((i + 1, BASE_MS + i * 10 - 2_000))
    for w in range(100):
        start = BASE_MS + w * 10_000
        recorder.emissions[('["u1"]', start, start + 10_000)] = (w * 1_000 + 1_200, False)
    out = render(recorder, tmp_path / "big.png")
    assert png_size(out) == (WIDTH_PX, HEIGHT_PX)
