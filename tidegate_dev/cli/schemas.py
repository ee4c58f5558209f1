"""`tidegate schemas check | export`: a registry's versions under a compatibility mode, and
pydantic models as JSON Schema files for the registry folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tidegate.schemas.definitions import DefinitionError
from tidegate.schemas.registry import RegistryError, read_folder
from tidegate.spec import RegistrySchema, load_pipeline_file
from tidegate_dev.schemas.compat import MODES, Version, check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="schemas_command", required=True)
    checking = commands.add_parser(
        "check", help="check the pipeline schema's versions; non-zero on a breaking change"
    )
    checking.add_argument("pipeline", help="pipeline file (YAML) with schema.registry")
    checking.add_argument(
        "--mode", choices=MODES, help="compatibility mode (default: schema.compatibility, "
        "else BACKWARD)"
    )
    export = commands.add_parser("export", help="a pydantic model as a JSON Schema file")
    export.add_argument("ref", help="package.module:Model")
    export.add_argument("--out", help="write here (e.g. schemas/UserEvent/v2.json), not stdout")


def schemas(args: argparse.Namespace) -> int:
    if args.schemas_command == "export":
        return _export(args.ref, args.out)
    return _check(Path(args.pipeline), args.mode)


def _check(path: Path, mode: str | None) -> int:
    pipeline = load_pipeline_file(path)
    schema = pipeline.schema_
    if not isinstance(schema, RegistrySchema):
        print(f"{path}: the schema has one version (inline or ref): nothing to check")
        return 0
    mode = mode or schema.compatibility
    try:
        files = read_folder(path.parent, schema.registry, schema.name)
        versions = [Version.of(f) for f in files]
    except (RegistryError, DefinitionError) as exc:  # the file changed since it was loaded
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    numbers = ", ".join(f"v{v.number}" for v in versions)
    breaches = check(schema.name, versions, mode)
    for breach in breaches:
        print(breach)
    if breaches:
        print(f"{schema.name} ({numbers}): {len(breaches)} breaking change(s) under {mode}")
        return 1
    print(f"{schema.name} ({numbers}): compatible under {mode}")
    return 0


def _export(ref: str, out: str | None) -> int:
    from tidegate.schemas.compile import import_ref
    from tidegate.schemas.definitions import from_json_schema

    try:
        model = import_ref(ref)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        print(f"error: {ref}: {exc}", file=sys.stderr)
        return 2
    document = model.model_json_schema()
    try:
        from_json_schema(document)  # refuse what a registry folder could not load
    except DefinitionError as exc:
        print(f"error: {ref}: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(document, indent=2) + "\n"
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"{ref} -> {out}")
    else:
        sys.stdout.write(text)
    return 0
