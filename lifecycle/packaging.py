"""The project code a served model carries: exactly the modules that loading and predicting import.

A model is an sklearn Pipeline whose transformers are classes of `lifecycle.modeling`, so unpickling it needs
that module and what it imports. A bento also needs its service module and the request contract. Both are found
by following the project's own imports (read from the source, nothing is executed) from the entry modules, so a
module that a model does not need (the comparison, the load generator, the pipelines) is never shipped.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What unpickling a trained model imports: the sklearn Pipeline's transformers, or an H2O model's MOJO wrapper.
MODEL_MODULES = ("lifecycle.modeling", "lifecycle.mojo_model")


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an import in the file (at any depth: a function's import runs at predict time too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def module_closure(entry_modules: Iterable[str], root: Path = PROJECT_ROOT) -> list[Path]:
    """The project files (relative to `root`) that importing `entry_modules` loads, package `__init__`s included."""
    seen: set[Path] = set()
    queue = list(entry_modules)
    while queue:
        module = queue.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            path = _module_file(".".join(parts[:depth]), root)
            if path is None:
                if depth == len(parts) and module in entry_modules:
                    raise ValueError(f"{module} is not a module of the project under {root}")
                continue
            if path not in seen:
                seen.add(path)
                queue.extend(_imported_modules(path))
    return sorted(path.relative_to(root) for path in seen)


def copy_model_code(destination: Path, entry_modules: Iterable[str], root: Path = PROJECT_ROOT) -> list[Path]:
    """Copy the closure of `entry_modules` into `destination` (same layout); returns its top-level packages."""
    files = module_closure(entry_modules, root)
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    return sorted({destination / relative.parts[0] for relative in files})
