"""The layout's rules, checked on the source: layers import only downwards (so there is no import cycle, lazy
imports included), and a served model carries only the code that loading and predicting need."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lifecycle.packaging import module_closure

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Lowest first: a package may import its own modules and those of the layers below it, never above.
LAYERS = ["lifecycle", "stacks", "serving", "steps", "pipelines", "workflows", "measurement"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", LAYERS)
def test_packages_import_only_the_layers_below_them(package):
    above = set(LAYERS[LAYERS.index(package) + 1 :]) | {"run", "benchmarks", "tests"}
    wrong = {
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in (PROJECT_ROOT / package).rglob("*.py")
        for name in _imports(path) & above
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_a_served_model_ships_model_code_and_the_request_contract_only():
    from serving.backends.bentoml import SERVICE_MODULES

    shipped = {str(path) for path in module_closure(SERVICE_MODULES)}
    assert {"lifecycle/modeling.py", "serving/contract.py", "serving/backends/bentoml_service.py"} <= shipped
    assert all(path.startswith(("lifecycle/", "serving/")) for path in shipped), shipped
    assert not {p for p in shipped if "comparison" in p or "load" in p or "bare" in p or "backends/base" in p}
    from serving.backends.mlflow import SERVICE_MODULES as MLFLOW_MODULES

    mlflow_code = {str(path) for path in module_closure(MLFLOW_MODULES)}
    assert {"lifecycle/modeling.py", "serving/backends/mlflow_service.py", "serving/prediction_log.py"} <= mlflow_code
    assert all(p.startswith(("lifecycle/", "serving/")) for p in mlflow_code), mlflow_code
    assert not {p for p in mlflow_code if "backends/base" in p or "backends/mlflow.py" in p or "rollout" in p}
    assert "serving/prediction_log.py" in shipped


@pytest.mark.parametrize("script", sorted(p.name for p in (PROJECT_ROOT / "benchmarks").glob("*.py")))
def test_benchmark_scripts_start(script):
    """Each benchmark starts: its module-level imports resolve (its --help runs before any work). A benchmark
    script must not shadow a project package: `benchmarks/` is never put first on the import path."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr[-2000:]
