"""Generated tables with a True/False column, an integer code with gaps, leading-zero codes, unicode categories
and a free-text column train through the training pipeline, are served on every backend behind their front door,
and answer the same rows exactly as `score` and the model in-process do, whichever natural JSON spelling the
client uses for each value (generated: `true`/`"True"`, `1`/`"1"`/`"001"`, `null`/NaN). Two tables: a European
CSV (`;`, decimal commas) with a numeric target (`make test`), and a comma-separated one with a two-class text
target (`make test-e2e`, to keep `make test` short)."""

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
TABLES = {
    "european_regression": dict(seed=11, rows=240, european=True, gaps=True, classification=False),
    "plain_classification": dict(seed=29, rows=240, european=False, gaps=True, classification=True),
}
BACKEND_STACKS = {"zenml": "local", "mlflow": "mlflow", "bentoml": "bentoml"}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("european_regression"),
        pytest.param("plain_classification", marks=pytest.mark.e2e),
    ],
)
def european_model(request, zenml_client, data_dir):
    """A generated table trained on `full` (so MLflow has its registry twin) and promoted; the rows to send, as
    read from a batch file, and `score`'s predictions of that file on the plain stack."""
    table_name = request.param
    model_name = f"contract_{table_name}"
    generated = make_table(**TABLES[table_name])
    source = write_csv(generated, generated.table, data_dir / f"{table_name}.csv")
    stacks_up(select([], stack_specs(), for_registration=True))
    activate_stack("full")
    try:
        config = apply_overrides(load_config(DEMO_CONFIG), model_name=model_name, enable_cache=False)
        # the demo's config names rmse; metric None picks the task's own (f1_macro for a classifier)
        promotion = config.promotion.model_copy(update={"metric": None})
        dataset = generated.dataset.model_copy(update={"path": str(source)})
        config = config.model_copy(update={"dataset": dataset, "promotion": promotion})
        outcome = run_training(config)
        assert outcome.decision.promoted, outcome.decision.reason
    finally:
        zenml_client.activate_stack("default")
    version = zenml_client.get_model_version(model_name, "production")
    schema = version.get_artifact(FEATURE_SCHEMA).load()
    assert "amount" in schema.numeric_features and "flag" in schema.boolean_features, schema
    batch_rows = generated.table.drop(columns=["target"]).tail(60)
    batch_file = write_csv(generated, batch_rows, data_dir / f"{table_name}_batch.csv")
    scored = run_scoring(model_name, str(batch_file), None, DeploymentConfig())
    assert scored.skipped.empty, scored.skipped
    rows = read_table(batch_file)
    in_process = version.get_model_artifact(MODEL).load().predict(rows[schema.model_inputs])
    assert list(scored.scored["prediction"]) == list(in_process)
    return {
        "name": model_name,
        "schema": schema,
        "rows": rows,
        "expected": list(in_process),
        "version": str(version.number),
    }


@pytest.mark.parametrize("backend_name", list(BACKEND_STACKS))
def test_served_answers_equal_score_on_every_backend(european_model, zenml_client, backend_name):
    backend = backend_for(activate_stack(BACKEND_STACKS[backend_name]))
    config = DeploymentConfig(
        port=free_port_block(), drain_seconds=1.0, smoke_rows=20, front_door={"port": free_port_block()}
    )
    schema, expected = european_model["schema"], european_model["expected"]
    records = json.loads(json.dumps(json_records(european_model["rows"], schema)))
    try:
        record = run_deployment(european_model["name"], config)
        assert record["model_version"] == european_model["version"]
        endpoint = live_endpoint(backend, european_model["name"])
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
            f"data contract, {european_model['name']} served on {backend_name}: {answered} rows in 6 generated "
            f"spellings through {'the front door' if record['front_door_url'] else 'the server'}, equal to score "
            "and in-process"
        )
    finally:
        stopped = undeploy(backend, european_model["name"])
        assert all(not still_running(e.pid) for e in stopped)
        zenml_client.activate_stack("default")


def test_the_served_rows_hold_gaps_in_the_boolean_and_the_code(european_model):
    """The rows the backends answered include the blanks that made pandas read the codes as floats."""
    rows: pd.DataFrame = european_model["rows"]
    assert rows["flag"].isna().any() and rows["code"].isna().any() and len(rows) == 60
