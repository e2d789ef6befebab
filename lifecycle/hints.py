"""Commands printed for the user to run next (`try it: …`, `Fix: …`), rendered so that they work where they are
printed: from a plain shell in the project folder, after `make run`, without activating the project's `.venv`.

`make run` installs into the project's own `.venv/`, so a bare `python run.py …` or `zenml …` in a fresh shell finds
another interpreter (or none) and fails with `ModuleNotFoundError`. Every hint is built here, by `run_hint` (this
project's command line) or `tool_hint` (a tool installed beside it: `zenml`, `mlflow`, `bentoml`)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_VENV = PROJECT_ROOT / ".venv"


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _bin_folder() -> str:
    """Where the interpreter running this command keeps its scripts, as the user should type it.

    - the project's own `.venv` (what `make run` uses): `.venv/bin/`, relative to the project folder;
    - an interpreter that a plain `python` on PATH already finds (an activated environment, CI's Python): nothing;
    - any other interpreter: its absolute folder."""
    prefix = Path(sys.prefix)
    folder = Path(sys.executable).parent
    if _same_path(prefix, PROJECT_VENV):
        return ".venv/bin/"
    on_path = shutil.which("python", path=os.environ.get("PATH"))
    if on_path and _same_path(Path(on_path).parent, folder):
        return ""
    return f"{folder}/"


def run_hint(arguments: str = "") -> str:
    """`python run.py ARGUMENTS` as the user can run it from the project folder (see the module's docstring)."""
    command = f"{_bin_folder()}python run.py"
    return f"{command} {arguments}".rstrip()


def tool_hint(command: str) -> str:
    """A tool's command (`zenml model list`) as the user can run it from the project folder: the tool from the same
    environment as this project."""
    return f"{_bin_folder()}{command}"
