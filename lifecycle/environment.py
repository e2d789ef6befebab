"""Process environment for offline, quiet runs: set before ZenML, MLflow or BentoML are imported."""

import os

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
