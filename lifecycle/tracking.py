"""Mirroring a run's params, metrics and model to MLflow (called by steps when the stack tracks with MLflow)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mlflow

# mlflow is imported where it is used: importing it takes seconds, and the release commands (history, status,
# promote, rollback) read this module's names without ever calling MLflow on a stack that does not track with it.
CHAMPION_ALIAS = "champion"
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, with MLflow-safe keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = _UNSAFE_KEY.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def as_plain_columns(table: Any) -> Any:
    """Category columns as plain objects: MLflow infers no signature from pandas categories."""
    import pandas as pd

    categories = [c for c in table.columns if isinstance(table[c].dtype, pd.CategoricalDtype)]
    return table.astype({c: object for c in categories})


def log_params(params: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.log_params({key: str(value)[:6000] for key, value in flatten(params).items()})


def log_metrics(metrics: Mapping[str, Any]) -> None:
    import mlflow

    mlflow.log_metrics({key: float(value) for key, value in flatten(metrics).items() if value is not None})


def register_version(
    client: mlflow.MlflowClient,
    name: str,
    model_uri: str,
    model_id: str,
    run_id: str,
    tags: dict[str, str],
    description: str,
) -> str:
    """Register a logged model as a new version of `name` (created if needed); returns the version number.

    The model id is passed explicitly: an MLflow 3 tracking server refuses a `models:/` source without it."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=f"Mirrors the ZenML Model Control Plane model `{name}`.")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # else another run created it since the lookup
                raise
    version = client.create_model_version(
        name, source=model_uri, run_id=run_id, tags=tags, description=description, model_id=model_id
    )
    return str(version.version)


def active_run_id() -> str:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: the step was not configured with the experiment tracker")
    return run.info.run_id
