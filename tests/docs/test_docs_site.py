"""The docs describe the software as it is: the README stays a front page, the reference
lists every key the models accept, the JSON Schema accepts every example pipeline, and the
examples the docs show are run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tidegate.spec import Pipeline
from tidegate_dev.reference.jsonschema import pipeline_json_schema, schema_json
from tidegate_dev.reference.keys import NAME, accepted_paths, duration_paths
from tidegate_dev.reference.markdown import generate

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PIPELINE_FILES = sorted(ROOT.glob("pipelines/**/*.yaml"))


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= 12_000
    # Its first commands are the two that set everything up themselves.
    first_block = readme.decode().split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_relative_link_of_the_readme_resolves() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert targets
    assert [t for t in targets if not (ROOT / t).exists()] == []


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_tell_no_story_of_how_they_were_written(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in (r"\bsession \d", r"\bissue \d", r"\bthis machine\b", r"\bagents?\b"):
        assert not re.search(pattern, text, re.I), (pattern, path)


def test_the_committed_reference_is_the_generated_one() -> None:
    page = DOCS / "reference" / "pipeline-file.md"
    assert page.read_text(encoding="utf-8") == generate(), (
        "the pipeline file models changed: run `.venv/bin/python -m tidegate_dev.reference`")


def _schema_paths(node: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    """Every key path a JSON Schema accepts, found without tidegate_dev.reference.keys: a
    second opinion on the walk the reference is made from."""
    if "$ref" in node:
        return _schema_paths(defs[node["$ref"].rsplit("/", 1)[1]], defs, prefix)
    paths: set[str] = set()
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        paths |= _schema_paths(branch, defs, prefix)
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        paths.add(path)
        paths |= _schema_paths(sub, defs, f"{path}.")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        paths |= _schema_paths(extra, defs, f"{prefix}{NAME}.")
    return paths


def test_the_reference_lists_every_key_the_models_accept() -> None:
    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    from_schema = _schema_paths(schema, schema["$defs"])
    assert accepted_paths() == from_schema
    page = generate()
    missing = [path for path in sorted(from_schema) if f"`{path}`" not in page]
    assert missing == []
    # Durations are described as durations, with the file's notation.
    assert {"window.size", "watermark.delay", "allowed_lateness"} <= duration_paths()


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_json_schema_accepts_every_example_pipeline(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")),
                        pipeline_json_schema())


def test_the_json_schema_refuses_what_the_models_refuse() -> None:
    document = yaml.safe_load((ROOT / "pipelines" / "clickstream.yaml").read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(pipeline_json_schema())
    assert not list(validator.iter_errors(document))
    for broken in ({**document, "windw": {}},
                   {**document, "window": {"type": "tumbling", "size": "a minute"}},
                   {**document, "emit": "sometimes"}):
        assert list(validator.iter_errors(broken))


def test_the_example_pipelines_point_editors_at_the_committed_schema() -> None:
    committed = (ROOT / "pipelines" / "tidegate.schema.json").read_text(encoding="utf-8")
    assert committed == schema_json(), (
        "run `tidegate schema-json -o pipelines/tidegate.schema.json`")
    for path in PIPELINE_FILES:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        target = first.removeprefix("# yaml-language-server: $schema=")
        assert target != first and (path.parent / target).resolve() == (
            ROOT / "pipelines" / "tidegate.schema.json"), path


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks(DOCS / "python-api.md"))))
def test_the_python_api_page_runs(
    index: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)  # its examples name pipelines/ as a user in a checkout would
    block = _python_blocks(DOCS / "python-api.md")[index]
    exec(compile(block, f"docs/python-api.md block {index}", "exec"), {})
    capsys.readouterr()


@pytest.mark.slow
def test_the_cdk_example_adds_a_pipeline_to_an_app_of_ones_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_cdk import App
    from aws_cdk.assertions import Match, Template

    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    assert '--8<-- "examples/cdk_app.py"' in (DOCS / "cdk.md").read_text(encoding="utf-8")
    from examples.cdk_app import AnalyticsStack

    app = App()
    stack = AnalyticsStack(app, "analytics", pipeline_file="pipelines/clickstream.yaml")
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Lambda::LayerVersion", 1)
    template.has_resource_properties("AWS::Kinesis::Stream", {"Name": "user-events"})
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Layers": Match.any_value(), "Runtime": "python3.12"})
    assert "ResultsTarget" in template.to_json()["Outputs"]
