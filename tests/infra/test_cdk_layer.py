"""The runtime layer: built for Lambda's platform without Docker, cached by its inputs."""

from __future__ import annotations

from pathlib import Path

from infra.layer import LayerSources, _library_hash, build_layer, tree_size


def test_layer_has_the_library_and_cp312_manylinux_wheels(layer_dir: Path) -> None:
    python = layer_dir / "python"
    assert (python / "tidegate" / "topology.py").is_file()
    assert (python / "aws_lambda_powertools").is_dir()
    assert list((python / "pydantic_core").glob("_pydantic_core.cpython-312-aarch64-linux-gnu.so"))
    assert not list(python.rglob("__pycache__"))
    assert not (python / "boto3").exists()  # the Lambda runtime provides it
    # Lambda's limit is 250 MB unzipped for code plus layers; stay far below it.
    assert tree_size(layer_dir) < 100 * 2**20


def test_layer_build_is_cached(layer_dir: Path) -> None:
    assert build_layer() == layer_dir


def test_library_change_changes_the_build_key(tmp_path: Path) -> None:
    library = tmp_path / "tidegate"
    library.mkdir()
    (library / "a.py").write_text("x = 1\n")
    sources = LayerSources(requirements=tmp_path / "requirements.txt", library=library)
    before = _library_hash(sources)
    (library / "a.py").write_text("x = 2\n")
    assert _library_hash(sources) != before
