from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.logger import get_logger

from lifecycle.config import DeploymentConfig
from lifecycle.environment import state_dir
from lifecycle.model_versions import metadata_dict
from lifecycle.mojo_model import TrainedModel
from lifecycle.project_state import write_json
from lifecycle.validation import FeatureSchema
from serving.backends.base import Release
from serving.contract import json_records
from serving.rollout import rollout
from serving.stack_backend import backend_for
from stacks.capabilities import active_capabilities

logger = get_logger(__name__)


def write_example_request(release: Release, test_set: pd.DataFrame, rows: int = 3) -> Path:
    """A request for this model that works (held-out rows, model inputs only), for the `try it` hint."""
    path = state_dir() / "requests" / f"{release.model_name}.json"
    write_json(path, {"records": json_records(test_set.tail(rows), release.schema)})
    return path


def release_of(
    model: TrainedModel,
    feature_schema: FeatureSchema,
    test_set: pd.DataFrame,
    number: str | None = None,
    role: str = "production",
) -> Release:
    """Version `number` of the pipeline's model (the version the artifacts belong to; None: the run's model
    version) as a Release in `role`: its MCP identity and MLflow registry twin."""
    context = get_step_context().model
    mcp = Client().get_model_version(context.name, int(number)) if number else context
    registered = metadata_dict(mcp.run_metadata, "mlflow").get("mlflow_registered_version")
    return Release(
        model_name=context.name,  # (a version's own `name` is the version's name)
        model_version=str(mcp.number),
        model_version_id=str(mcp.id),
        model=model,
        schema=feature_schema,
        mlflow_registered_version=str(registered) if registered else None,
        example=test_set.head(5),
        role=role,
    )


@step(enable_cache=False)
def deploy_model(
    model: TrainedModel,
    feature_schema: FeatureSchema,
    test_set: pd.DataFrame,
    version_number: str | None,
    deployment: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    role: str = "production",
    weight: float | None = None,
    only_if_stale: bool = False,
) -> Annotated[dict[str, Any], "deployment"]:
    """Serve the production version with the stack's deployer: start beside the old server, smoke-test on
    held-out rows, then retire the old one (a canary or shadow: beside production, behind its front door). The
    endpoint, backend, role and parity are recorded on the version served.

    The inputs are version `version_number`, production when the deploy was asked for; when production moves
    while this deploy waits for the model's deploy lock, the rollout serves the version production is at its
    switch instead (`serving.rollout.rollout`), so the record may name another version than the run's.
    `only_if_stale`: nothing is started when production's version serves already (the redeploy after a stage
    change)."""
    release = release_of(model, feature_schema, test_set, version_number, role)
    backend = backend_for(active_capabilities())
    done = rollout(
        backend,
        release,
        test_set,
        deployment,
        port=port,
        timeout=timeout,
        progress=logger.info,
        notice=logger.warning,
        weight=weight,
        only_if_stale=only_if_stale,
    )
    record = done.metadata()
    served, rows = done.release or release, test_set if done.holdout is None else done.holdout
    if role == "production":  # the `try it` request is production's
        record["example_request"] = str(write_example_request(served, rows))
    if not done.already_serving:  # the version's record stays that of the deploy that started its server
        log_metadata(metadata={"deployment": record}, model_name=served.model_name, model_version=served.model_version)
    return record
