"""Process environment for offline, quiet runs: set before ZenML, MLflow or BentoML are imported."""

import os
from pathlib import Path

QUIET_OFFLINE = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "ZENML_DISABLE_INTERACTIVE_INPUT": "true",
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
}


def configure_environment() -> None:
    """Apply the quiet, offline defaults without overriding what the user exported."""
    for name, value in QUIET_OFFLINE.items():
        os.environ.setdefault(name, value)
    # BentoML keeps models and bentos in the project's state folder, like MLflow's database.
    state = Path(os.environ.get("MLOPS_STATE_DIR", Path(__file__).resolve().parent.parent / ".state"))
    os.environ.setdefault("BENTOML_HOME", str(state.resolve() / "bentoml"))
