"""`pip install .` gives a working `tidegate`: the wheel carries the runtime package from
layers/, declares what the base install imports, and keeps optional tools behind extras;
the runtime package's Python API imports no dev tooling (it ships to Lambda)."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tidegate
from tidegate_dev.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "layers" / "runtime" / "python" / "tidegate"
OPTIONAL = ("moto", "aws_cdk", "constructs", "cdk_nag", "matplotlib", "confluent_kafka")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"tidegate {tidegate.__version__}"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT)


_WITHOUT_EXTRAS = f"""
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
"""


def test_the_base_install_validates_and_explains_without_any_extra() -> None:
    """What `pip install tidegate` (no extras) offers works without them, and a command
    that needs one says which."""
    done = _python(_WITHOUT_EXTRAS + """
import pkgutil, importlib, tidegate
for module in pkgutil.walk_packages(tidegate.__path__, "tidegate."):
    importlib.import_module(module.name)
from tidegate_dev.cli.main import main
assert main(["validate", "pipelines/clickstream.yaml"]) == 0
assert main(["schema-json", "-o", "/dev/null"]) == 0
code = main(["local", "run", "pipelines/clickstream.yaml", "--events",
             "examples/dlq_events.jsonl", "--results", "/dev/null", "--quiet"])
assert code == 1, code
""")
    assert done.returncode == 0, done.stderr
    assert "pip install 'tidegate[local]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_runtime_api_imports_no_dev_tooling() -> None:
    """tidegate.api and tidegate.local ship in the Lambda layer: importing them must not
    import the local runner, moto, the CLI or YAML."""
    done = _python("""
import sys
import tidegate.api, tidegate.local
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in ("tidegate_dev", "moto", "yaml", "rich", "boto3"))
print(heavy)
""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_wheel_carries_the_runtime_and_declares_its_dependencies(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--disable-pip-version-check", str(ROOT), "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("tidegate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(info))
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    runtime = {f"tidegate/{p.relative_to(RUNTIME).as_posix()}" for p in RUNTIME.rglob("*.py")}
    assert runtime <= names
    assert "tidegate_dev/plan/calibration.json" in names
    assert {"functions/ingest/handler.py", "infra/constructs/pipeline.py"} <= names
    # `tidegate demo` reads ../../pipelines/clickstream.yaml from tidegate_dev/cli/demo.py:
    # beside the installed tidegate_dev, as in a checkout.
    assert {"tidegate_dev/cli/demo.py", "pipelines/clickstream.yaml",
            "pipelines/examples/events.jsonl"} <= names
    assert metadata["Version"] == tidegate.__version__
    requires = metadata.get_all("Requires-Dist") or []
    base = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
            for r in requires if "extra ==" not in r}
    assert {"aws-lambda-powertools", "pydantic", "fastavro", "boto3", "pyyaml", "rich"} <= base
    assert set(metadata.get_all("Provides-Extra") or []) >= {"local", "cdk", "bench", "plot"}
    assert "tidegate = tidegate_dev.cli:main" in entry_points
