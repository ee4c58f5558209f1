"""`python -m tidegate_dev.reference`: write the pipeline file reference page from the models
(`make docs` runs it; a test fails while the committed page differs from the models)."""

from __future__ import annotations

from pathlib import Path

from tidegate_dev.reference.markdown import generate

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "pipeline-file.md"

if __name__ == "__main__":
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(generate(), encoding="utf-8")
    print(PAGE)
