"""Deployable stacks: one per pipeline and stage."""

from __future__ import annotations

from infra.stacks.pipeline_stack import TidegatePipelineStack

__all__ = ["TidegatePipelineStack"]
