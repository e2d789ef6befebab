"""The compact console: ZenML's log cut to one line per finished step; the progress bar of long commands.
(`tests/test_dashboard.py` checks the output of a real `run.py train` as a user sees it.)"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

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


# MLflow doing what a training run on an MLflow stack makes it do, in a process of its own: a new SQLite store
# ("Creating initial MLflow database tables..."), a pyfunc model with a type hint and no input example (two
# UserWarnings), an artifact download (the "Downloading artifacts" progress bar), and an error of its own.
MLFLOW_WORK = """
import logging, sys
from pathlib import Path
if sys.argv[1] == "compact":
    from workflows.console import quiet_mlflow
    quiet_mlflow()
if sys.argv[3] == "captured":  # as ZenML does: warnings become records of the `py.warnings` logger
    logging.basicConfig()
    logging.captureWarnings(True)
import mlflow, mlflow.pyfunc
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[2]}/mlflow.db")

class Model(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: int):
        return model_input

with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="model", python_model=Model())
mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=sys.argv[2] + "/downloaded")
logging.getLogger("mlflow.store").error("an MLflow error stays visible")
print("done")
"""
MLFLOW_NOISE = ("Downloading artifacts", "UserWarning", "INFO mlflow")


@pytest.mark.integration
def test_mlflows_own_noise_stays_out_of_the_compact_output_but_its_errors_show(tmp_path):
    """About 15 s (three MLflow processes side by side). The same work with `--verbose` (no quieting) prints every
    kind of noise the compact output must not: so this test can fail. Warnings are printed, or captured into
    logging as ZenML does in a pipeline run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "PYTHONWARNINGS"}
    started = {}
    for mode, warned in (("compact", "printed"), ("verbose", "printed"), ("compact-captured", "captured")):
        (tmp_path / mode).mkdir()
        started[mode] = subprocess.Popen(
            [sys.executable, "-c", MLFLOW_WORK, mode.split("-")[0], str(tmp_path / mode), warned],
            cwd=tmp_path / mode,  # MLflow's artifacts (./mlruns) land there
            env={**env, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(PROJECT_ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    output = {mode: process.communicate(timeout=300)[0] for mode, process in started.items()}
    assert all(process.returncode == 0 for process in started.values()), output
    for noise in MLFLOW_NOISE:
        assert noise in output["verbose"], f"`{noise}` not printed without quieting: {output['verbose']}"
        for compact in ("compact", "compact-captured"):
            assert noise not in output[compact], f"`{noise}` in the compact output:\n{output[compact]}"
    for compact in ("compact", "compact-captured"):
        assert "an MLflow error stays visible" in output[compact] and output[compact].endswith("done\n")


def test_the_autologging_warning_goes_and_other_warnings_stay():
    autolog = "Failed to disable MLflow autologging for the following frameworks: ['fastai']."
    assert shown(autolog, logging.WARNING) is None
    assert shown(autolog, logging.ERROR) == autolog  # the same words as an error would still show
    assert shown("Failed to disable something else", logging.WARNING) == "Failed to disable something else"
