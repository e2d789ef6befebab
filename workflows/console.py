"""Compact terminal output: ZenML's console log cut down to one line per finished step (with its time) and
its warnings and errors, and MLflow's own output (progress bars, logs, warnings) kept out of it but for its errors.
`python run.py --verbose ...` keeps ZenML's and MLflow's whole output."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable

STEP_FINISHED = re.compile(r"Step `(?P<step>[^`]+)` has finished in `?(?P<took>[^`]+?)`?\.?$")
STEP_CACHED = re.compile(r"Using cached version of step `(?P<step>[^`]+)`")
PIPELINE_STARTED = re.compile(r"Initiating a new run for the pipeline: `(?P<pipeline>[^`]+)`")
# Warnings that say nothing a user can act on: ZenML's MLflow tracker disables autologging for every framework
# MLflow knows and warns about those that are not installed here (fastai, ...).
HARMLESS_WARNINGS = (re.compile(r"Failed to disable MLflow autologging for the following frameworks"),)
# MLflow reads these when it is imported or downloads: no progress bars, only its errors logged.
MLFLOW_QUIET = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_LOGGING_LEVEL": "ERROR"}


class CompactSteps(logging.Filter):
    """Keeps warnings, errors and step progress; rewrites the progress as `  ✓ step  (time)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return record.levelno > logging.WARNING or not any(p.search(message) for p in HARMLESS_WARNINGS)
        for pattern, line in (
            (STEP_FINISHED, "  ✓ {step}  ({took})"),
            (STEP_CACHED, "  ✓ {step}  (cached)"),
            (PIPELINE_STARTED, "{pipeline}:"),
        ):
            found = pattern.search(message)
            if found:
                record.msg, record.args = line.format(**found.groupdict()), ()
                return True
        return False


def _console_handlers() -> list[logging.Handler]:
    from zenml.logger import ZenMLConsoleHandler

    return [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]


def compact_zenml_console() -> None:
    """Install `CompactSteps` on ZenML's console handler (ZenML re-creates its handlers when it re-reads its
    logging settings, so this is also done again after that)."""
    import zenml.logger as zenml_logger

    for handler in _console_handlers():
        if not any(isinstance(f, CompactSteps) for f in handler.filters):
            handler.addFilter(CompactSteps())
    if not getattr(zenml_logger.init_logging, "_compact", False):
        original = zenml_logger.init_logging

        def init_logging() -> None:
            original()
            for handler in _console_handlers():
                handler.addFilter(CompactSteps())

        init_logging._compact = True  # type: ignore[attr-defined]
        zenml_logger.init_logging = init_logging


def quiet_mlflow() -> None:
    """MLflow's own console output out of the compact console: no "Downloading artifacts" progress bars, no INFO
    or WARNING logs ("Creating initial MLflow database tables..."), none of the Python warnings its modules raise
    (type hints, input examples); its errors still show, and exceptions are untouched. What the user exported
    (MLFLOW_LOGGING_LEVEL, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR, python -W / PYTHONWARNINGS) wins."""
    for name, value in MLFLOW_QUIET.items():
        os.environ.setdefault(name, value)
    if "mlflow" in sys.modules:  # imported already: it read MLFLOW_LOGGING_LEVEL then
        level = logging.getLevelName(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
        if isinstance(level, int):
            logging.getLogger("mlflow").setLevel(level)
    if sys.warnoptions:
        return
    # Python's warnings go to stderr, or (ZenML calls logging.captureWarnings) to the `py.warnings` logger: both
    # ways lose the ones raised in MLflow's own files. (A `module=` warnings filter does not catch them: MLflow
    # raises them with a `stacklevel` that points into its code, and the filter sees another module.)
    folders = _mlflow_folders()
    if folders and not getattr(warnings.showwarning, "_drops_mlflow", False):
        warnings.showwarning = _without_mlflow_warnings(warnings.showwarning, folders)
    captured = logging.getLogger("py.warnings")
    if folders and not any(isinstance(f, WithoutMlflowWarnings) for f in captured.filters):
        captured.addFilter(WithoutMlflowWarnings(folders))


def _mlflow_folders() -> tuple[str, ...]:
    """Where MLflow is installed (found without importing it); empty when it is not."""
    spec = importlib.util.find_spec("mlflow")
    return tuple(f"{folder}{os.sep}" for folder in (spec.submodule_search_locations or [])) if spec else ()


def _without_mlflow_warnings(show: Callable[..., None], folders: tuple[str, ...]) -> Callable[..., None]:
    """`warnings.showwarning` that drops the warnings raised in MLflow's files."""

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if not str(filename).startswith(folders):
            show(message, category, filename, lineno, file, line)

    showwarning._drops_mlflow = True  # type: ignore[attr-defined]
    return showwarning


class WithoutMlflowWarnings(logging.Filter):
    """On the `py.warnings` logger: drops the captured warnings raised in MLflow's files (their text starts with
    the file's path)."""

    def __init__(self, folders: tuple[str, ...]) -> None:
        super().__init__()
        self.folders = folders

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.folders)


def progress_bar(done: int, total: int, width: int = 12) -> str:
    """`[█████░░░░░░░] 5/12`: how far a long command (the replay, the comparison) has come."""
    filled = round(width * min(done, total) / total) if total > 0 else width
    return f"[{'█' * filled}{'░' * (width - filled)}] {done}/{total if total > 0 else '?'}"
