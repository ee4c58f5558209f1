"""mkdocs hook: the pipeline file reference is generated at build time from the models, so
the site can never describe keys the code no longer has (or miss new ones)."""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from tidegate_dev.reference.markdown import generate

PAGE = "reference/pipeline-file.md"


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, PAGE, content=generate()))
    return files
