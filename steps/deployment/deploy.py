from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import get_step_context, log_metadata, step
from zenml.logger import get_logger

from lifecycle.config import DeploymentConfig
from lifecycle.environment import state_dir
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
    model: Pipeline, feature_schema: FeatureSchema, test_set: pd.DataFrame, role: str = "production"
) -> Release:
    """The pipeline's model version as a Release in `role`: its MCP identity and MLflow registry twin."""
    mcp = get_step_context().model
    registered = (mcp.run_metadata.get("mlflow") or {}).get("mlflow_registered_version")
    return Release(
        model_name=mcp.name,
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
    model: Pipeline,
    feature_schema: FeatureSchema,
    test_set: pd.DataFrame,
    deployment: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    role: str = "production",
    weight: float | None = None,
) -> Annotated[dict[str, Any], "deployment"]:
    """Serve the production version with the stack's deployer: start beside the old server, smoke-test on
    held-out rows, then retire the old one (a canary or shadow: beside production, behind its front door). The
    endpoint, backend, role and parity are recorded on the version."""
    release = release_of(model, feature_schema, test_set, role)
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
    )
    record = done.metadata()
    if role == "production":  # the `try it` request is production's
        record["example_request"] = str(write_example_request(release, test_set))
    log_metadata(metadata={"deployment": record}, model_name=release.model_name, model_version=release.model_version)
    return record
