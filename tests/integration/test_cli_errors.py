"""Every failure a user meets on the command line is one line that says what to do, with a
non-zero exit and no traceback: no region, no credentials, no endpoint, no stream, a
missing input file, an output folder that is not there, an optional extra not installed.
An input line too large for the source is not a failure at all: it is dead-lettered."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import tidegate.aws
from tidegate_dev.cli.main import main
from tidegate_dev.local.runner import MAX_RECORD_BYTES

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipelines" / "clickstream.yaml"
EVENTS = REPO / "examples" / "dlq_events.jsonl"
OPS = [
    ["status", str(PIPELINE)],
    ["tail", str(PIPELINE)],
    ["dlq", "list", str(PIPELINE)],
    ["produce", str(PIPELINE), "--count", "3", "--quiet"],
]


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    tidegate.aws.reset_clients()
    yield
    tidegate.aws.reset_clients()


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    """The stderr's last line, after checking it is the only complaint and no traceback."""
    assert code != 0
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [x for x in stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.parametrize("argv", OPS, ids=lambda a: a[0])
def test_without_a_region(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _no_aws_configuration(monkeypatch, tmp_path)
    message = _one_line_error(capsys, main(argv))
    assert "no AWS region" in message and "--region" in message


@pytest.mark.parametrize("argv", OPS, ids=lambda a: a[0])
def test_without_credentials(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _no_aws_configuration(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    message = _one_line_error(capsys, main(argv))
    assert "no AWS credentials" in message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("argv", OPS, ids=lambda a: a[0])
def test_with_an_endpoint_nobody_listens_on(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    message = _one_line_error(capsys, main([*argv, "--endpoint-url", url]))
    assert f"cannot reach {url}" in message
    assert "tidegate local run" in message and "--follow" in message


@pytest.mark.parametrize("argv", [a for a in OPS if a[0] != "dlq"], ids=lambda a: a[0])
def test_on_an_endpoint_without_the_pipeline(
    argv: list[str], moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `produce` example of docs/operating.md against a bare moto server."""
    spec = yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))
    spec["name"] = f"absent-{uuid.uuid4().hex[:6]}"
    spec["source"]["stream"] = f"{spec['name']}-events"
    spec["sink"]["stream"] = f"{spec['name']}-results"
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    argv = [argv[0], str(path), *argv[2:]]
    message = _one_line_error(capsys, main([*argv, "--endpoint-url", moto_url]))
    assert "not found" in message and moto_url in message
    assert "--follow" in message


def test_dlq_on_an_endpoint_without_the_pipeline(
    moto_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    message = _one_line_error(capsys, main(["dlq", "list", str(PIPELINE), "--dlq-url",
                                            f"absent-{uuid.uuid4().hex[:6]}",
                                            "--endpoint-url", moto_url]))
    assert "dead-letter queue" in message


def test_a_missing_events_file_stops_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    message = _one_line_error(capsys, main(
        ["local", "run", str(PIPELINE), "--events", str(missing),
         "--results", str(tmp_path / "out.jsonl")]))
    assert str(missing) in message and "no such file" in message


@pytest.mark.parametrize("flag", ["--results", "--summary", "--dead-letters", "--late"])
def test_an_output_in_a_missing_folder_stops_before_the_run(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tidegate_dev.cli.local_run as runner

    def must_not_run(*_: object, **__: object) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(runner, "run_pipeline", must_not_run)
    argv = ["local", "run", str(PIPELINE), "--events", str(EVENTS),
            "--results", str(tmp_path / "out.jsonl")]
    target = tmp_path / "missing" / "file.jsonl"
    argv = [*argv, flag, str(target)] if flag != "--results" else [*argv[:-1], str(target)]
    message = _one_line_error(capsys, main(argv))
    assert flag in message and "does not exist" in message


def test_a_missing_extra_names_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import matplotlib` raise ModuleNotFoundError, as when the
    # [plot] extra is not installed.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    import tidegate_dev.cli.local_run as runner

    def must_not_run(*_: object, **__: object) -> None:
        raise AssertionError("the run started: it would be lost at the end")

    monkeypatch.setattr(runner, "run_pipeline", must_not_run)
    message = _one_line_error(capsys, main(
        ["local", "run", str(PIPELINE), "--events", str(EVENTS),
         "--results", str(tmp_path / "out.jsonl"), "--timeline", str(tmp_path / "t.png"),
         "--quiet"]))
    assert "pip install 'tidegate[plot]'" in message


def test_an_unexpected_failure_is_one_line_unless_debugging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tidegate_dev.cli.local_run as local_run

    def broken(*_: object, **__: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(local_run, "run_pipeline", broken)
    argv = ["local", "run", str(PIPELINE), "--events", str(EVENTS),
            "--results", str(tmp_path / "out.jsonl"), "--quiet"]
    message = _one_line_error(capsys, main(argv))
    assert "unexpected KeyError" in message and "TIDEGATE_DEBUG=1" in message
    monkeypatch.setenv("TIDEGATE_DEBUG", "1")
    with pytest.raises(KeyError):
        main(argv)


def test_a_line_too_large_for_the_source_is_dead_lettered(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN the example events and one event a little over the record limit
    WHEN they run locally THEN the big one is dead-lettered as record_too_large, counted,
    and written to --dead-letters with where it was in the input."""
    lines = EVENTS.read_bytes().splitlines()
    event = json.loads(lines[0])
    event["page"] = "x" * MAX_RECORD_BYTES
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([*lines, json.dumps(event).encode()]) + b"\n")
    dead = tmp_path / "dead.jsonl"
    code = main(["local", "run", str(PIPELINE), "--events", str(events), "--results",
                 str(tmp_path / "out.jsonl"), "--dead-letters", str(dead), "--quiet",
                 "--endpoint-url", moto_url])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["events_in"] == len(lines) + 1
    assert summary["events_in"] == (summary["aggregated"] + summary["late"]
                                    + summary["dead_lettered"])
    rows = [json.loads(x) for x in dead.read_text(encoding="utf-8").splitlines()]
    too_large = [r for r in rows if r["reason"] == "record_too_large"]
    assert len(too_large) == 1
    assert too_large[0]["source"]["partition"] == "input"
    assert too_large[0]["source"]["position"] == str(len(lines) + 1)


@pytest.mark.slow
def test_no_traceback_reaches_a_terminal(tmp_path: Path) -> None:
    """The same, as a user sees it: a process, its stderr, its exit status."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from tidegate_dev.cli import main; sys.exit(main())",
         "local", "run", str(PIPELINE),
         "--events", str(tmp_path / "missing.jsonl"), "--results", str(tmp_path / "o.jsonl")],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --events {tmp_path / 'missing.jsonl'}: no such file"
    ]
