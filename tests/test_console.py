"""The compact console: ZenML's log cut to one line per finished step; the progress bar of long commands.
(`tests/test_dashboard.py` checks the output of a real `run.py train` as a user sees it.)"""

from __future__ import annotations

import logging

from workflows.console import CompactSteps, progress_bar


def shown(message: str, level: int = logging.INFO, *args) -> str | None:
    record = logging.LogRecord("zenml.orchestrators.step_launcher", level, __file__, 1, message, args, None)
    return record.getMessage() if CompactSteps().filter(record) else None


def test_finished_and_cached_steps_become_one_line_each_and_the_rest_of_the_info_log_goes():
    assert shown("Step `train_model` has finished in `17.214s`.") == "  ✓ train_model  (17.214s)"
    assert shown("Using cached version of step `%s`.", logging.INFO, "ingest_data") == "  ✓ ingest_data  (cached)"
    assert shown("Initiating a new run for the pipeline: `training_pipeline`.") == "training_pipeline:"
    for noise in (
        "Step `train_model` has started.",
        "Using stack: default",
        "You can visualize your pipeline runs in the ZenML Dashboard. Try ZenML Pro",
    ):
        assert shown(noise) is None, noise


def test_warnings_and_errors_pass_unchanged():
    assert shown("Step `evaluate` failed.", logging.ERROR) == "Step `evaluate` failed."
    assert shown("disk almost full", logging.WARNING) == "disk almost full"


def test_progress_bar():
    assert progress_bar(0, 4, width=4) == "[░░░░] 0/4"
    assert progress_bar(3, 12) == "[███░░░░░░░░░] 3/12"
    assert progress_bar(5, 5, width=5) == "[█████] 5/5"
    assert progress_bar(7, 0, width=2) == "[██] 7/?"  # an unknown total never divides by zero
