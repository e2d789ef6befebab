"""Compact terminal output: ZenML's console log cut down to one line per finished step (with its time) and
its warnings and errors. `python run.py --verbose ...` keeps ZenML's whole log."""

from __future__ import annotations

import logging
import re

STEP_FINISHED = re.compile(r"Step `(?P<step>[^`]+)` has finished in `?(?P<took>[^`]+?)`?\.?$")
STEP_CACHED = re.compile(r"Using cached version of step `(?P<step>[^`]+)`")
PIPELINE_STARTED = re.compile(r"Initiating a new run for the pipeline: `(?P<pipeline>[^`]+)`")


class CompactSteps(logging.Filter):
    """Keeps warnings, errors and step progress; rewrites the progress as `  ✓ step  (time)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        message = record.getMessage()
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


def progress_bar(done: int, total: int, width: int = 12) -> str:
    """`[█████░░░░░░░] 5/12`: how far a long command (the replay, the comparison) has come."""
    filled = round(width * min(done, total) / total) if total > 0 else width
    return f"[{'█' * filled}{'░' * (width - filled)}] {done}/{total if total > 0 else '?'}"
