"""Deployment pipeline: serve the production model version with whatever deployer the active stack has."""

from zenml import pipeline

from lifecycle.config import DeploymentConfig
from lifecycle.names import DEPLOYMENT_PIPELINE
from pipelines.production import production_artifacts
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
    only_if_stale: bool = False,
) -> None:
    """Serve the production version; or, as `role` canary or shadow, `version` beside it behind the front door.

    For production, `version` is the number production had when the deploy was asked for (`run_deployment` reads
    it once, so that the step's artifacts and the version it serves are one version: ZenML resolves a stage
    lazily, the artifacts when the step launches and the run's model version when the run starts, and a promotion
    can fall between). The step then serves the version that is production when it switches the model's front
    door, which can be another one when production moved while it waited for the deploy lock (it loads that
    version's artifacts itself: `serving.rollout.rollout`). `only_if_stale`: the redeploy after a stage change
    starts nothing when production's version serves already."""
    served = production_artifacts(model_name, stage=version or "production", command="deploy")
    deploy_model(
        served["model"],
        served["feature_schema"],
        served["test_set"],
        version,
        deployment=deployment,
        port=port,
        timeout=timeout,
        role=role,
        weight=weight,
        only_if_stale=only_if_stale,
    )
