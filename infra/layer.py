"""Builds the runtime layer folder (third-party wheels + the `tidegate` package) without Docker.

pip is asked for the Lambda platform's wheels directly (manylinux, CPython 3.12), so the
build needs neither Docker nor a 3.12 interpreter. Builds are cached under `build/layer/`
by a hash of their inputs: the wheels only change with requirements.txt, the library with
every edit, so the two are cached separately and the slow step (pip) rarely runs.

`python -m infra.layer` builds and prints the unzipped sizes of the layer and functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tidegate import topology

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PYTHON = "3.12"  # must match the functions' runtime (infra/constructs/pipeline.py)
# arm64 (Graviton) functions: 20 % cheaper per GB-s than x86_64, and every runtime
# dependency (pydantic-core, fastavro) ships aarch64 wheels for CPython 3.12.
LAMBDA_PLATFORM = "manylinux2014_aarch64"
_IGNORED = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store")


@dataclass(frozen=True)
class LayerSources:
    requirements: Path
    library: Path  # the `tidegate` package folder

    @classmethod
    def of_repo(cls, root: Path = ROOT) -> LayerSources:
        if not (root / "requirements.txt").exists():
            return cls.of_installed()
        return cls(
            requirements=root / "requirements.txt",
            library=root / "layers" / "runtime" / "python" / "tidegate",
        )

    @classmethod
    def of_installed(cls) -> LayerSources:
        """From a pip-installed tidegate (a CDK app of the user's own): the installed
        library, and its runtime dependencies pinned at the versions installed beside it."""
        from importlib.metadata import version

        import tidegate

        pins = "".join(f"{name}=={version(name)}\n" for name in _LAYER_DISTRIBUTIONS)
        requirements = build_root() / f"layer-requirements-{_digest(pins.encode())}.txt"
        if not requirements.exists():
            requirements.parent.mkdir(parents=True, exist_ok=True)
            requirements.write_text(pins, encoding="utf-8")
        return cls(requirements=requirements, library=Path(tidegate.__file__).resolve().parent)


# What the layer bundles when there is no requirements.txt (an installed package): the
# runtime dependencies of pyproject.toml but boto3, which Lambda's runtime provides.
_LAYER_DISTRIBUTIONS = ("aws-lambda-powertools", "pydantic", "fastavro")


def build_root() -> Path:
    """Build outputs: build/ in a source checkout; in an installed package (whose folder
    may not be writable), build/tidegate/ under the CDK app's working directory."""
    if (ROOT / "requirements.txt").exists():
        return ROOT / "build"
    return Path.cwd() / "build" / "tidegate"


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _deps_hash(sources: LayerSources) -> str:
    return _digest(
        sources.requirements.read_bytes(), LAMBDA_PYTHON.encode(), LAMBDA_PLATFORM.encode()
    )


def _library_hash(sources: LayerSources) -> str:
    parts: list[bytes] = []
    for path in _files(sources.library):
        parts += [path.relative_to(sources.library).as_posix().encode(), path.read_bytes()]
    return _digest(*parts)


def _install_deps(requirements: Path, target: Path) -> None:
    # --no-compile: the interpreter running pip is not the Lambda's, its .pyc would be dead weight.
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile", "--platform", LAMBDA_PLATFORM, "--implementation", "cp",
        "--python-version", LAMBDA_PYTHON, "--only-binary=:all:",
        "--target", str(target), "-r", str(requirements),
    ]
    subprocess.run(command, check=True)


def _replace_atomically(staging: Path, final: Path) -> None:
    """A half-written build must never look finished: build aside, then rename."""
    if final.exists():
        shutil.rmtree(staging, ignore_errors=True)
        return
    staging.rename(final)


def _prune(folder: Path, prefix: str, keep: Path) -> None:
    for old in folder.glob(f"{prefix}*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def build_layer(
    out_dir: Path | None = None, sources: LayerSources | None = None
) -> Path:
    """Return a folder laid out as a Lambda layer (`python/...`), building it if needed."""
    sources = sources or LayerSources.of_repo()
    out_dir = out_dir or build_root() / "layer"
    out_dir.mkdir(parents=True, exist_ok=True)

    deps = out_dir / f"deps-{_deps_hash(sources)}"
    if not deps.exists():
        staging = out_dir / f".staging-{deps.name}"
        shutil.rmtree(staging, ignore_errors=True)
        _install_deps(sources.requirements, staging / "python")
        _replace_atomically(staging, deps)
        _prune(out_dir, "deps-", deps)

    layer = out_dir / f"layer-{deps.name[5:]}-{_library_hash(sources)}"
    if not layer.exists():
        staging = out_dir / f".staging-{layer.name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(deps, staging)
        shutil.copytree(
            sources.library, staging / "python" / "tidegate",
            ignore=shutil.ignore_patterns(*_IGNORED),
        )
        _replace_atomically(staging, layer)
        _prune(out_dir, "layer-", layer)
    return layer


def build_function(folder: Path, pipeline_json: str, out_dir: Path | None = None) -> Path:
    """A function's code folder: its handler folder plus the pipeline spec as a file.

    Lambda allows 4 KB of environment variables in all, and a spec carries its schema (every
    version of a registry schema): a real one outgrows that, and CloudFormation would only
    say so minutes into a deploy. So the spec ships in the code asset, and the environment
    names the file (topology.ENV_PIPELINE). Cached by content like the layer.
    """
    out_dir = out_dir or build_root() / "functions"
    out_dir.mkdir(parents=True, exist_ok=True)
    parts: list[bytes] = [pipeline_json.encode()]
    for path in _files(folder):
        parts += [path.relative_to(folder).as_posix().encode(), path.read_bytes()]
    built = out_dir / f"{folder.name}-{_digest(*parts)}"
    if not built.exists():
        staging = out_dir / f".staging-{built.name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(*_IGNORED))
        (staging / topology.PIPELINE_FILE).write_text(pipeline_json, encoding="utf-8")
        _replace_atomically(staging, built)
    return built


def tree_size(folder: Path) -> int:
    """Bytes of the files an asset would ship (Lambda's limits count unzipped bytes)."""
    return sum(p.stat().st_size for p in _files(folder))


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main() -> None:
    layer = build_layer()
    rows = [("layer (unzipped)", layer)]
    rows += [(f"function {p.name}", p) for p in sorted((ROOT / "functions").iterdir())
             if p.is_dir() and (p / "handler.py").exists()]
    for label, folder in rows:
        size = tree_size(folder)
        print(f"{label:24} {_mib(size):>10}  {size:>11,d} B  {folder.relative_to(ROOT)}")
    # Lambda: 250 MB unzipped for function code plus all its layers.
    print(f"{'limit (code + layers)':24} {_mib(250 * 10**6):>10}")


if __name__ == "__main__":
    main()
