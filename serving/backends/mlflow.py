"""MLflow: MLflow's scoring server for the version's twin in the stack's MLflow registry, run by the stack's MLflow
model deployer. A version trained on a stack without MLflow is registered there first (`register_twin`)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.config import DeploymentConfig
from lifecycle.packaging import MODEL_MODULES, copy_model_code
from serving.backends.base import DeploymentFailed, Endpoint, Release
from serving.backends.model_deployer import ModelDeployerBackend

SERVICE_MODULE = "serving.backends.mlflow_service"
SERVICE_MODULES = (*MODEL_MODULES, SERVICE_MODULE)  # the code an MLflow model ships: the model's and its wrapper's


class MLflowBackend(ModelDeployerBackend):
    name = "mlflow"
    predict_path = "/invocations"
    health_path = "/ping"
    serves_our_contract = False  # MLflow's own request shape
    chooses_own_port = True  # ZenML's MLflow service allocates a free port on `localhost`

    @classmethod
    def request_body(cls, records: list[dict[str, Any]], request_id: str | None = None) -> dict[str, Any]:
        """MLflow's request shape; a client's request id travels as a parameter (see mlflow_service.py)."""
        return {"dataframe_records": records, **({"params": {"request_id": request_id}} if request_id else {})}

    @classmethod
    def parse_predictions(cls, body: Any) -> list[Any]:
        """MLflow answers `{"predictions": [...]}`: plain values, or one object per row from our wrapper."""
        rows = list(body["predictions"])
        return [row["prediction"] if isinstance(row, dict) else row for row in rows]

    @classmethod
    def predict(
        cls, endpoint: Endpoint, records: list[dict[str, Any]], timeout: float = 60.0, request_id: str | None = None
    ) -> tuple[list, Any]:
        """As the other backends, with the answer in our contract's shape (probabilities, request id, version)."""
        predictions, body = super().predict(endpoint, records, timeout, request_id)
        rows = body.get("predictions") or []
        answer: dict[str, Any] = {"predictions": predictions, "model_version": endpoint.model_version}
        if rows and isinstance(rows[0], dict):
            answer["request_id"] = rows[0].get("request_id")
            if "probability" in rows[0]:
                answer["probabilities"] = [row["probability"] for row in rows]
        return predictions, answer

    def service_class(self) -> Any:
        from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentService

        return MLFlowDeploymentService

    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentConfig

        registered = release.mlflow_registered_version or register_twin(release, config)
        from serving.backends.mlflow_service import LOG_SETTINGS_ENV

        # The scoring server (a daemon this process starts) logs with this deploy's settings.
        os.environ[LOG_SETTINGS_ENV] = json.dumps(config.log.settings(release.role))
        # MLflow's server runs `uvicorn` by name: it must be found next to this interpreter.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        service_config = MLFlowDeploymentConfig(
            model_uri=f"models:/{release.model_name}/{registered}",
            model_name=release.model_name,
            model_version=release.model_version,
            registry_model_name=release.model_name,
            registry_model_version=registered,
            workers=1,
            timeout=timeout,
            service_name=release.server_name(),
            description=f"{release.model_name} version {release.model_version}",
        )
        service = self._deploy(service_config, timeout)
        return self._endpoint(service)


def register_twin(release: Release, config: DeploymentConfig) -> str:
    """Register the version's model in the stack's MLflow registry (a version trained on a stack without MLflow
    has no twin there), point the alias `champion` at it, and link it on the MCP version."""
    import mlflow
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.integrations.mlflow.experiment_trackers import MLFlowExperimentTracker
    from zenml.stack import StackComponent

    from lifecycle.tracking import CHAMPION_ALIAS, as_plain_columns
    from stacks.capabilities import ensure_local_experiment

    stack = Client().active_stack_model
    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER) or []
    if not trackers or trackers[0].flavor_name != "mlflow":
        raise DeploymentFailed(
            f"{release.model_name} version {release.model_version} is not in an MLflow registry and stack "
            f"`{stack.name}` has no MLflow tracker to register it with. Fix: add the stack's MLflow tracker "
            "(see stacks/mlflow.yaml) or serve from another stack."
        )
    tracker = StackComponent.from_model(trackers[0])
    assert isinstance(tracker, MLFlowExperimentTracker)  # its flavor is mlflow (checked above)
    tracker.configure_mlflow()
    experiment = tracker.config.experiment_name or "mlops_lifecycle"
    ensure_local_experiment(tracker.config.tracking_uri, experiment)  # its artifacts beside the database
    mlflow.set_experiment(experiment)
    example = as_plain_columns(release.example[release.schema.model_inputs]) if release.example is not None else None
    tags = {
        "zenml_model_name": release.model_name,
        "zenml_model_version": release.model_version,
        "zenml_model_version_id": release.model_version_id,
        "registered_by": "deployment (trained on a stack without MLflow)",
    }
    with mlflow.start_run(run_name=f"{release.model_name}-v{release.model_version}-registration") as run:
        mlflow.set_tags(tags)
        client = mlflow.MlflowClient()
        description = f"{release.model_name} version {release.model_version} ({release.model_version_id})"
        logged = LoggedModel(release.model, release.schema, release.model_name, release.model_version, config)
        links = log_and_register(logged, example, client, run.info.run_id, tags, description)
    version = links["mlflow_registered_version"]
    client.set_registered_model_alias(release.model_name, CHAMPION_ALIAS, version)
    log_metadata(metadata={"mlflow": links}, model_name=release.model_name, model_version=release.model_version)
    release.mlflow_registered_version = version
    return version


@dataclass
class LoggedModel:
    """What is logged to MLflow for one Model Control Plane version."""

    model: Any  # the sklearn Pipeline
    schema: Any  # its FeatureSchema
    model_name: str
    model_version: str
    deployment: DeploymentConfig  # the prediction log and request limits it serves with

    def model_config(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": str(self.model_version),
            "schema": self.schema.model_dump(mode="json"),
            "max_rows": self.deployment.max_rows_per_request,
            "log": self.deployment.log.settings(),
        }


def log_model(logged: LoggedModel, input_example: Any = None) -> tuple[str, str]:
    """Log the version as an `mlflow.pyfunc` model (`mlflow_service.LoggedPipeline`: the sklearn pipeline, the
    request contract and the prediction log) with the project code it imports (`lifecycle.packaging`), nothing
    else. The pipeline is stored with cloudpickle, as ZenML stores it.

    The signature declares only the `request_id` parameter: MLflow then passes every column of a request to the
    model, so fields that are not model inputs (an order id) reach the log as keys. The input example is kept
    as a file for readers, not run: running it would write to the prediction log."""
    import logging

    import cloudpickle
    import mlflow
    import pandas as pd
    import sklearn
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    from serving.backends.mlflow_service import PIPELINE_ARTIFACT, LoggedPipeline

    # MLflow warns on every pickled python_model; the wrapper is pickled by reference to its shipped module.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    signature = ModelSignature(inputs=None, outputs=None, params=ParamSchema([ParamSpec("request_id", "string", "")]))
    with tempfile.TemporaryDirectory(prefix="model-code-") as staging:
        packages = copy_model_code(Path(staging) / "code", SERVICE_MODULES)
        pipeline = Path(staging) / "pipeline.pkl"
        pipeline.write_bytes(cloudpickle.dumps(logged.model))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LoggedPipeline(),
            artifacts={PIPELINE_ARTIFACT: str(pipeline)},
            code_paths=[str(package) for package in packages],
            model_config=logged.model_config(),
            signature=signature,
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"scikit-learn=={sklearn.__version__}",
                f"pandas=={pd.__version__}",
                f"cloudpickle=={cloudpickle.__version__}",
            ],
        )
        if input_example is not None:
            mlflow.log_dict(
                {"dataframe_records": json.loads(input_example.to_json(orient="records"))}, "model-input-example.json"
            )
    return info.model_uri, info.model_id


def log_and_register(
    logged: LoggedModel,
    example: Any,
    client: Any,
    run_id: str,
    tags: dict[str, str],
    description: str,
) -> dict[str, str]:
    """Log the model to the active run and, given a registry client, register it as a new version of its name.
    Returns the links recorded on the Model Control Plane version (run, model URI, registered version)."""
    from lifecycle.tracking import register_version

    model_uri, model_id = log_model(logged, example)
    links = {"mlflow_run_id": run_id, "mlflow_model_uri": model_uri}
    if client is not None:
        version = register_version(client, logged.model_name, model_uri, model_id, run_id, tags, description)
        links.update(mlflow_registered_model=logged.model_name, mlflow_registered_version=version)
    return links
