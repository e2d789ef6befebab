"""A European CSV (`;`, decimal commas) with a True/False column, an integer code with gaps, leading-zero codes,
unicode categories and a free-text column trains through the training pipeline, is served on every backend behind
its front door, and answers the same rows exactly as `score` and the model in-process do, whichever natural JSON
spelling the client uses for each value (generated: `true`/`"True"`, `1`/`"1"`/`"001"`, `null`/NaN)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_CONFIG, activate_stack, free_port_block, needs_stacks, note
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data_contract import make_table, natural_spellings, write_csv

from lifecycle.config import DeploymentConfig, apply_overrides, load_config
from lifecycle.data import read_table
from lifecycle.names import FEATURE_SCHEMA, MODEL
from serving.contract import json_records
from serving.processes import still_running
from serving.rollout import live_endpoint, undeploy
from serving.stack_backend import backend_for
from stacks.manage import select, stack_specs, stacks_up
from workflows.runner import run_deployment, run_scoring, run_training

pytestmark = [pytest.mark.integration, needs_stacks("mlflow", "bentoml", "full")]
MODEL_NAME = "european_contract"
BACKEND_STACKS = {"zenml": "local", "mlflow": "mlflow", "bentoml": "bentoml"}


@pytest.fixture(scope="module")
def european_model(zenml_client, data_dir):
    """The generated European table trained on `full` (so MLflow has its registry twin) and promoted; the rows
    to send, as read from a batch file, and `score`'s predictions of that file on the plain stack."""
    generated = make_table(seed=11, rows=240, european=True, gaps=True, classification=False)
    source = write_csv(generated, generated.table, data_dir / "european.csv")
    stacks_up(select([], stack_specs(), for_registration=True))
    activate_stack("full")
    try:
        config = apply_overrides(load_config(DEMO_CONFIG), model_name=MODEL_NAME, enable_cache=False)
        config = config.model_copy(update={"dataset": generated.dataset.model_copy(update={"path": str(source)})})
        outcome = run_training(config)
        assert outcome.decision.promoted, outcome.decision.reason
    finally:
        zenml_client.activate_stack("default")
    version = zenml_client.get_model_version(MODEL_NAME, "production")
    schema = version.get_artifact(FEATURE_SCHEMA).load()
    assert "amount" in schema.numeric_features and "flag" in schema.boolean_features, schema
    batch_rows = generated.table.drop(columns=["target"]).tail(60)
    batch_file = write_csv(generated, batch_rows, data_dir / "european_batch.csv")
    scored = run_scoring(MODEL_NAME, str(batch_file), None, DeploymentConfig())
    assert scored.skipped.empty, scored.skipped
    rows = read_table(batch_file)
    in_process = version.get_model_artifact(MODEL).load().predict(rows[schema.model_inputs])
    assert list(scored.scored["prediction"]) == list(in_process)
    return {"schema": schema, "rows": rows, "expected": list(in_process), "version": str(version.number)}


@pytest.mark.parametrize("backend_name", list(BACKEND_STACKS))
def test_served_answers_equal_score_on_every_backend(european_model, zenml_client, backend_name):
    backend = backend_for(activate_stack(BACKEND_STACKS[backend_name]))
    config = DeploymentConfig(
        port=free_port_block(), drain_seconds=1.0, smoke_rows=20, front_door={"port": free_port_block()}
    )
    schema, expected = european_model["schema"], european_model["expected"]
    records = json.loads(json.dumps(json_records(european_model["rows"], schema)))
    try:
        record = run_deployment(MODEL_NAME, config)
        assert record["model_version"] == european_model["version"]
        endpoint = live_endpoint(backend, MODEL_NAME)
        door = dataclasses.replace(endpoint, url=record["front_door_url"]) if record["front_door_url"] else endpoint
        answered = 0

        @settings(
            max_examples=6, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(seed=st.integers(0, 2**16))
        def same_answers(seed: int) -> None:
            nonlocal answered
            respelled = natural_spellings(records, schema, np.random.default_rng(seed))
            predictions, _ = backend.predict(door, respelled, timeout=60)
            assert predictions == expected
            one, _ = backend.predict(door, respelled[seed % len(respelled) : seed % len(respelled) + 1], timeout=60)
            assert one == [expected[seed % len(respelled)]]
            answered += len(respelled) + 1

        same_answers()
        note(
            f"data contract, served on {backend_name}: {answered} rows in 6 generated spellings through "
            f"{'the front door' if record['front_door_url'] else 'the server'}, equal to score and in-process"
        )
    finally:
        stopped = undeploy(backend, MODEL_NAME)
        assert all(not still_running(e.pid) for e in stopped)
        zenml_client.activate_stack("default")


def test_the_served_rows_hold_gaps_in_the_boolean_and_the_code(european_model):
    """The rows the backends answered include the blanks that made pandas read the codes as floats."""
    rows: pd.DataFrame = european_model["rows"]
    assert rows["flag"].isna().any() and rows["code"].isna().any() and len(rows) == 60
