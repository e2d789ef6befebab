"""The served model line the deployment tests share: versions 1 and 2 of one model trained on the `full` stack,
and version 1 deployed on each backend's stack (module-scoped in each test file that uses them)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO_CONFIG, activate_stack, free_port_block
from zenml.client import Client

from lifecycle.config import DeploymentConfig, apply_overrides, load_config
from lifecycle.names import FEATURE_SCHEMA, MODEL, TEST_SET
from serving.prediction_log_reader import read_predictions
from serving.processes import still_running
from serving.rollout import undeploy
from serving.stack_backend import backend_for
from stacks.manage import select, stack_specs, stacks_up
from workflows.runner import run_deployment, run_training

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "served_bikes"
BACKEND_STACKS = {"zenml": "local", "mlflow": "mlflow", "bentoml": "bentoml"}


def set_production(number: int) -> None:
    Client().update_model_version(MODEL_NAME, str(number), stage="production", force=True)


def settings(**changes) -> DeploymentConfig:
    """No warm standby unless a test asks for one: a test counts the servers a deploy leaves."""
    changes = {"standby": {"count": 0}, **changes}
    return DeploymentConfig(
        port=free_port_block(), drain_seconds=1.0, smoke_rows=20, front_door={"port": free_port_block()}, **changes
    )


def _model_exists() -> bool:
    try:
        Client().get_model(MODEL_NAME)
    except KeyError:
        return False
    return True


def _train_two_versions(bike_slice: Path, data_dir: Path) -> None:
    activate_stack("full")
    table = pd.read_csv(bike_slice)
    early = data_dir / "bike_may.csv"
    table[pd.to_datetime(table["dteday"]) < "2011-06-01"].to_csv(early, index=False)
    try:
        for path in (early, bike_slice):
            config = apply_overrides(load_config(DEMO_CONFIG), model_name=MODEL_NAME, enable_cache=False)
            dataset = config.dataset.model_copy(update={"path": str(path)})
            outcome = run_training(config.model_copy(update={"dataset": dataset}))
            assert outcome.decision.promoted, outcome.decision.reason
    finally:
        Client().activate_stack("default")


@pytest.fixture(scope="module")
def two_versions(zenml_client, bike_slice, data_dir):
    """Versions 1 (trained on May only) and 2 (May-August, better) of MODEL_NAME, trained on `full`, with 2 in
    production. A worker's session store is shared by its test files: when another file of the same worker made
    them already, they are reused (and 2 put back in production) instead of trained again."""
    stacks_up(select([], stack_specs(), for_registration=True))
    made = set()
    if _model_exists():
        made = {v.number for v in zenml_client.list_model_versions(model_name_or_id=MODEL_NAME, size=100)}
    if {1, 2} <= made:
        set_production(2)
    else:
        _train_two_versions(bike_slice, data_dir)
    version = zenml_client.get_model_version(MODEL_NAME, "2")
    return {
        "test_set": version.get_artifact(TEST_SET).load(),
        "schema": version.get_artifact(FEATURE_SCHEMA).load(),
        "models": {
            n: zenml_client.get_model_version(MODEL_NAME, str(n)).get_model_artifact(MODEL).load() for n in (1, 2)
        },
    }


@pytest.fixture(scope="module", params=list(BACKEND_STACKS))
def served(request, two_versions, zenml_client):
    """Version 1 deployed on the backend's stack; everything of this model stopped afterwards."""
    backend_name = request.param
    backend = backend_for(activate_stack(BACKEND_STACKS[backend_name]))
    assert backend.name == backend_name
    config = settings()
    set_production(1)
    record = run_deployment(MODEL_NAME, config)
    yield {"backend": backend, "config": config, "record": record, **two_versions}
    activate_stack(BACKEND_STACKS[backend_name])
    stopped = undeploy(backend, MODEL_NAME)
    assert all(not still_running(e.pid) for e in stopped)
    assert backend.endpoints(MODEL_NAME) == []
    zenml_client.activate_stack("default")


def logged_rows(request_ids: set[str]) -> pd.DataFrame:
    """The prediction log's rows of these requests (the log this session's servers write)."""
    frame = read_predictions(DeploymentConfig().log.root(), MODEL_NAME).frame
    return frame[frame["request_id"].isin(request_ids)]
