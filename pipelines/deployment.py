"""Deployment pipeline: serve the production model version with whatever deployer the active stack has."""

from zenml import pipeline

from lifecycle.config import DeploymentConfig
from lifecycle.names import DEPLOYMENT_PIPELINE
from pipelines.monitoring import production_artifacts
from steps.deployment.deploy import deploy_model


@pipeline(name=DEPLOYMENT_PIPELINE, enable_cache=False)
def deployment_pipeline(
    model_name: str, deployment: DeploymentConfig, port: int | None = None, timeout: int | None = None
) -> None:
    production = production_artifacts(model_name)
    deploy_model(
        production["model"],
        production["feature_schema"],
        production["test_set"],
        deployment=deployment,
        port=port,
        timeout=timeout,
    )
