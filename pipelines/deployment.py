"""Deployment pipeline: serve the production model version with whatever deployer the active stack has."""

from zenml import pipeline

from lifecycle.config import DeploymentConfig
from lifecycle.names import DEPLOYMENT_PIPELINE
from pipelines.monitoring import production_artifacts
from steps.deployment.deploy import deploy_model


@pipeline(name=DEPLOYMENT_PIPELINE, enable_cache=False)
def deployment_pipeline(
    model_name: str,
    deployment: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    role: str = "production",
    version: str | None = None,
    weight: float | None = None,
) -> None:
    """Serve the production version; or, as `role` canary or shadow, `version` beside it behind the front door."""
    served = production_artifacts(model_name, stage=version or "production", command="deploy")
    deploy_model(
        served["model"],
        served["feature_schema"],
        served["test_set"],
        deployment=deployment,
        port=port,
        timeout=timeout,
        role=role,
        weight=weight,
    )
