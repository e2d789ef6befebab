"""Shared by the security tests (tests/test_security.py, tests/test_security_models.py): the project's Python
sources and the calls in them, read with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The project's code: everything that starts servers, loads models or reads data (tests excluded).
CODE_DIRS = ("lifecycle", "serving", "pipelines", "stacks", "steps", "workflows", "measurement", "benchmarks")


def python_sources() -> list[Path]:
    files = [path for folder in CODE_DIRS for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))]
    return [*files, PROJECT_ROOT / "run.py"]


def relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def calls_in(path: Path, name: str) -> list[ast.Call]:
    """Calls of `name` (a function, class or method name) in a file."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == name:
                found.append(node)
    return found


def keyword_in(call: ast.Call, name: str) -> str | None:
    return next((ast.unparse(k.value) for k in call.keywords if k.arg == name), None)
