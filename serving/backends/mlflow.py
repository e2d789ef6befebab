"""MLflow: MLflow's scoring server for the version's twin in the stack's MLflow registry, run by the stack's MLflow
model deployer. A version trained on a stack without MLflow is registered there first (`register_twin`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from lifecycle.config import DeploymentConfig
from serving.backends.base import DeploymentFailed, Endpoint, Release
from serving.backends.model_deployer import ModelDeployerBackend


class MLflowBackend(ModelDeployerBackend):
    name = "mlflow"
    predict_path = "/invocations"
    health_path = "/ping"
    serves_our_contract = False  # MLflow's own request shape
    chooses_own_port = True  # ZenML's MLflow service allocates a free port on `localhost`

    @classmethod
    def request_body(cls, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"dataframe_records": records}

    def service_class(self) -> Any:
        from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentService

        return MLFlowDeploymentService

    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentConfig

        registered = release.mlflow_registered_version or register_twin(release)
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


def register_twin(release: Release) -> str:
    """Register the version's model in the stack's MLflow registry (a version trained on a stack without MLflow
    has no twin there), point the alias `champion` at it, and link it on the MCP version."""
    import mlflow
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import StackComponent

    from lifecycle.tracking import CHAMPION_ALIAS, as_plain_columns, log_and_register

    stack = Client().active_stack_model
    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER) or []
    if not trackers or trackers[0].flavor_name != "mlflow":
        raise DeploymentFailed(
            f"{release.model_name} version {release.model_version} is not in an MLflow registry and stack "
            f"`{stack.name}` has no MLflow tracker to register it with. Fix: add the stack's MLflow tracker "
            "(see stacks/mlflow.yaml) or serve from another stack."
        )
    tracker = StackComponent.from_model(trackers[0])
    tracker.configure_mlflow()
    mlflow.set_experiment(tracker.config.experiment_name or "mlops_lifecycle")
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
        links = log_and_register(release.model, example, client, release.model_name, run.info.run_id, tags, description)
    version = links["mlflow_registered_version"]
    client.set_registered_model_alias(release.model_name, CHAMPION_ALIAS, version)
    log_metadata(metadata={"mlflow": links}, model_name=release.model_name, model_version=release.model_version)
    release.mlflow_registered_version = version
    return version
