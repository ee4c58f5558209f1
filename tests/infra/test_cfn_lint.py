"""cfn-lint on every synthesized template: the variants (Kinesis, MSK, each sink, replay,
production, customer key) and the one `npx cdk synth` writes. Zero errors; warnings are
reported by the linter's own run, not failed on here."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.conftest import VARIANTS, Synthesized

REGIONS = ["us-east-1"]


@functools.cache
def _rules() -> Any:
    """Loaded once: loading the rules costs more than linting a template."""
    from cfnlint.core import get_rules

    return get_rules([], [], [])


def lint_errors(template: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint

    matches = lint(json.dumps(template), rules=_rules(), regions=REGIONS)
    return [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}"
            for m in matches if m.rule.id.startswith("E")]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_templates_have_no_cfn_lint_errors(
    name: str, synth_variant: Callable[..., Synthesized]
) -> None:
    assert lint_errors(synth_variant(name).template) == []


def test_the_cli_template_has_no_cfn_lint_errors(cli_template: dict[str, Any]) -> None:
    assert lint_errors(cli_template) == []


def test_the_linter_finds_errors() -> None:
    # A reference to nothing is an error: the check above can fail.
    broken = {"Resources": {"Q": {"Type": "AWS::SQS::Queue",
                                  "Properties": {"RedrivePolicy": {"Ref": "Missing"}}}}}
    assert any(e.startswith("E") for e in lint_errors(broken))
