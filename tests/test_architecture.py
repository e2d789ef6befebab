"""The layout's rules, checked on the source: layers import only downwards, no module imports itself through
others (lazy imports inside functions included), and a served model carries only the code that loading and
predicting need."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lifecycle.packaging import module_closure

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Lowest first: a package may import its own modules and those of the layers below it, never above.
LAYERS = ["lifecycle", "stacks", "serving", "steps", "pipelines", "workflows", "measurement", "cli"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
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


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, packages: list[str], scripts: tuple[str, ...] = ()) -> dict[str, Path]:
    """Every module of the packages (a package's own name stands for its __init__.py), and the top-level scripts."""
    found = {module_name(path, root): path for package in packages for path in (root / package).rglob("*.py")}
    return found | {name: root / f"{name}.py" for name in scripts if (root / f"{name}.py").is_file()}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, but those under `if TYPE_CHECKING:` (imported for the type checker only, never run)."""
    nodes, stack = [], [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a project module (`lifecycle.config.X` -> `lifecycle.config`)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def module_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports, at module level or inside functions: `from package import name`
    imports the submodule `package.name` when there is one, else the package's __init__.py."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(alias.name, modules) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.update(filter(None, [_resolve(f"{base}.{alias.name}", modules) or _resolve(base, modules)]))
    found.discard(module)
    return found


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (`a -> b -> a`), or None: a depth-first search that meets a module it is still inside."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    return next(filter(None, (visit(module) for module in sorted(graph))), None)


def import_graph(root: Path, packages: list[str], scripts: tuple[str, ...] = ()) -> dict[str, set[str]]:
    modules = project_modules(root, packages, scripts)
    return {module: module_imports(module, path, modules) for module, path in modules.items()}


def test_no_module_imports_itself_through_others():
    """Within a package and across packages, lazy imports included: a cycle means two modules that cannot be
    understood, tested or split apart one without the other."""
    graph = import_graph(PROJECT_ROOT, LAYERS, ("run",))
    assert {"cli", "cli.options", "workflows.runner", "run"} <= set(graph)
    assert "workflows.runner" in graph["workflows.release"] and "cli" in graph["run"]
    cycle = import_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_cycle_check_finds_cycles_through_lazy_and_cross_package_imports(tmp_path):
    _write(
        tmp_path,
        {
            "alpha/__init__.py": "",
            "alpha/first.py": "from alpha import second\n",
            "alpha/second.py": "def late():\n    from alpha.first import value\n    return value\n",
            "beta/__init__.py": "",
            "beta/one.py": "import gamma.two\n",
            "gamma/__init__.py": "",
            "gamma/two.py": "def late():\n    from ..beta import one\n",
            "delta/__init__.py": "",
            "delta/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from delta import plain\n",
            "delta/plain.py": "from delta.typed import TYPE_CHECKING\n",
        },
    )
    within = import_cycle(import_graph(tmp_path, ["alpha"]))
    assert within in (["alpha.first", "alpha.second", "alpha.first"], ["alpha.second", "alpha.first", "alpha.second"])
    across = import_cycle(import_graph(tmp_path, ["beta", "gamma"]))
    assert across == ["beta.one", "gamma.two", "beta.one"]
    assert import_cycle(import_graph(tmp_path, ["delta"])) is None  # a type-checking import never runs


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
