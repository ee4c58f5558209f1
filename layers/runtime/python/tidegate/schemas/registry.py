"""The registry folder: one file per version of each named schema.

Layout, relative to the pipeline file (`schema: {name: UserEvent, version: 2, registry:
schemas/}`):

    schemas/UserEvent/v1.json     JSON Schema (an object schema)
    schemas/UserEvent/v2.avsc     or Avro (a record schema)

Versions are the numbers in the file names; other files in the folder are ignored. The
folder is read where the pipeline file is loaded (CLI, local runner, CDK app), and every
version is reduced to the field dialect and embedded in the pipeline spec, so the Lambda
function gets all versions with the pipeline (TIDEGATE_PIPELINE) and never reads files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidegate.schemas.definitions import AVRO, JSON_SCHEMA, DefinitionError, to_fields

_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.(json|avsc)$")
_FORMATS = {"json": JSON_SCHEMA, "avsc": AVRO}


class RegistryError(ValueError):
    """A registry folder that cannot be used; `problems` lists `where: what` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class SchemaFile:
    version: int
    path: str  # as the user wrote it: registry folder + name + file, for messages
    format: str  # JSON_SCHEMA | AVRO
    definition: Any


def read_folder(base: Path, registry: str, name: str) -> list[SchemaFile]:
    """Every version file of `name`, in version order; RegistryError lists what is wrong."""
    shown = (Path(registry) / name).as_posix()
    folder = base / registry / name
    if not folder.is_dir():
        raise RegistryError([
            f"{shown}: no such folder (expected v1.json, v2.json, ... or .avsc files there, "
            f"relative to the pipeline file)"
        ])
    files: dict[int, Path] = {}
    problems: list[str] = []
    for path in sorted(folder.iterdir()):
        match = _VERSION_FILE.match(path.name)
        if not match:
            continue
        number = int(match.group(1))
        if number in files:
            problems.append(f"{shown}: v{number} is defined twice ({files[number].name}, "
                            f"{path.name})")
        files[number] = path
    if not files and not problems:
        problems.append(f"{shown}: holds no version files (v1.json or v1.avsc, ...)")
    out: list[SchemaFile] = []
    for number, path in sorted(files.items()):
        where = f"{shown}/{path.name}"
        try:
            definition = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            problems.append(f"{where}: cannot read: {exc.strerror}")
            continue
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            problems.append(f"{where}: not valid JSON: {exc}")
            continue
        out.append(SchemaFile(number, where, _FORMATS[path.suffix[1:]], definition))
    if problems:
        raise RegistryError(problems)
    return out


def avro_fingerprint(definition: Any) -> str:
    """CRC-64-AVRO of the Parsing Canonical Form: equal for schemas that read alike."""
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    return str(fingerprint(to_parsing_canonical_form(definition), "CRC-64-AVRO"))


def embed(files: list[SchemaFile]) -> dict[int, dict[str, Any]]:
    """The versions as the pipeline spec carries them (`schema.versions`)."""
    problems: list[str] = []
    versions: dict[int, dict[str, Any]] = {}
    for file in files:
        try:
            fields, defaults = to_fields(file.format, file.definition)
        except DefinitionError as exc:
            problems.append(f"{file.path}: {exc}")
            continue
        version: dict[str, Any] = {"file": file.path, "fields": fields}
        if defaults:
            version["defaults"] = defaults
        if file.format == AVRO:
            version["fingerprint"] = avro_fingerprint(file.definition)
        versions[file.version] = version
    if problems:
        raise RegistryError(problems)
    return versions


def load_versions(base: Path, registry: str, name: str) -> dict[int, dict[str, Any]]:
    return embed(read_folder(base, registry, name))
