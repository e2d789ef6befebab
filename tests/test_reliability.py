"""Reliability, through `python run.py` as a user or a scheduler runs it: two training runs at once on one store,
a model server killed outright, a training run killed half-way.

One model line is trained by two concurrent runs on the `mlflow` stack and its production version is served
there; the server is SIGKILLed and brought back; a third training run is killed mid-way and a fourth must
succeed. Nothing may be left running (checked at the end of the session).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml
from conftest import DEMO_CONFIG, activate_stack, needs_stacks, run_cli, start_cli
from zenml.client import Client

from lifecycle.config import DeploymentConfig
from lifecycle.modeling import predict_scores
from lifecycle.names import FEATURE_SCHEMA, MODEL, PROMOTE_STEP, TEST_SET, TRAINING_PIPELINE
from lifecycle.tracking import CHAMPION_ALIAS, register_version
from measurement.load import process_tree
from serving.backends.base import ServingBackend
from serving.client import is_healthy
from serving.contract import json_records
from serving.processes import still_running
from serving.rollout import live_endpoint, undeploy
from serving.stack_backend import active_backend
from stacks.capabilities import active_capabilities
from stacks.manage import select, stack_specs, stacks_up
from workflows.runner import production_version, run_deployment

pytestmark = [pytest.mark.integration, needs_stacks("mlflow")]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL_NAME = "sturdy_bikes"
STACK = "mlflow"


def training_config(path: Path, data: Path) -> Path:
    """The demo's training config (time columns, leaks dropped) on `data`, for MODEL_NAME."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["model"]["name"] = MODEL_NAME
    config["dataset"]["path"] = str(data)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def configs(zenml_client, bike_slice, data_dir) -> dict[str, Path]:
    """Two configs that train different models: May-August, and May-July only."""
    stacks_up(select([], stack_specs(), for_registration=True))
    table = pd.read_csv(bike_slice)
    early = data_dir / "bike_may_july.csv"
    table[pd.to_datetime(table["dteday"]) < "2011-08-01"].to_csv(early, index=False)
    yield {
        "all": training_config(data_dir / "sturdy_all.yaml", bike_slice),
        "early": training_config(data_dir / "sturdy_early.yaml", early),
    }
    zenml_client.activate_stack("default")


@pytest.fixture(scope="module")
def trained_together(configs, data_dir) -> list[subprocess.CompletedProcess]:
    """Two `python run.py train` of the same new model on the same store, started at the same moment."""
    plan = {1: "all", 2: "early"}  # seed: config
    logs = {seed: data_dir / f"sturdy-train-{seed}.log" for seed in plan}
    runs = {
        seed: start_cli(logs[seed], "train", "--config", str(configs[name]), "--stack", STACK, "--seed", str(seed))
        for seed, name in plan.items()
    }
    for process in runs.values():
        process.wait(timeout=1200)
    return [subprocess.CompletedProcess(p.args, p.returncode, logs[seed].read_text()) for seed, p in runs.items()]


def test_two_training_runs_at_once_leave_one_consistent_production(trained_together, zenml_client):
    for run in trained_together:
        assert run.returncode == 0, run.stdout[-4000:]
    versions = zenml_client.list_model_versions(MODEL_NAME, size=10).items
    assert len(versions) == 2
    production = [v for v in versions if str(v.stage) == "production"]
    assert len(production) == 1, [(v.number, v.stage) for v in versions]
    # The two promotion decisions were taken one after the other: only the first saw no production version.
    decisions = {v.number: v.run_metadata["promotion"] for v in versions}
    assert sum("production_version" not in d for d in decisions.values()) == 1, decisions
    # MLflow: one registered version per run, each linked to its MCP version; `champion` is production's twin.
    activate_stack(STACK)
    client = mlflow.MlflowClient(tracking_uri=active_capabilities().tracking_uri)
    twins = {v.number: v.run_metadata["mlflow"]["mlflow_registered_version"] for v in versions}
    assert len(set(twins.values())) == 2
    for number, registered in twins.items():
        assert client.get_model_version(MODEL_NAME, registered).tags["zenml_model_version"] == str(number)
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    assert str(champion.version) == twins[production[0].number]
    promoted = sorted((n, d["promoted"]) for n, d in decisions.items())
    print(f"\nconcurrent runs (version, promoted): {promoted}; production: {production[0].number}")


class LookUpTogether:
    """An MLflow client whose registered-model look-ups return only once the other thread has looked up too."""

    def __init__(self, client: mlflow.MlflowClient, barrier: threading.Barrier):
        self.client, self.barrier = client, barrier

    def get_registered_model(self, name: str) -> Any:
        try:
            return self.client.get_registered_model(name)
        finally:
            self.barrier.wait(timeout=60)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_two_runs_registering_a_new_mlflow_model_at_once_both_get_a_version(tmp_path):
    """The MLflow side of two first runs, made deterministic: both find no registered model, then both create it."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("together", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    (tmp_path / "model").mkdir()
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def register() -> None:
        try:
            source = str(tmp_path / "model")
            outcomes.append(register_version(LookUpTogether(client, barrier), "twin", source, None, run_id, {}, ""))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=register) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(map(str, outcomes)) == ["1", "2"], outcomes


# --- serving -------------------------------------------------------------------------------------------------


def production_answers(test_set: pd.DataFrame) -> tuple[str, list[dict], list[float]]:
    """The production version, a few request records, and the predictions its artifact makes in-process."""
    version = Client().get_model_version(MODEL_NAME, "production")
    schema = version.get_artifact(FEATURE_SCHEMA).load()
    rows = test_set.tail(20)
    expected, _ = predict_scores(version.get_model_artifact(MODEL).load(), rows[schema.model_inputs])
    return str(version.number), json_records(rows, schema), list(expected)


def assert_serves(backend: ServingBackend, test_set: pd.DataFrame) -> str:
    """A healthy server of the production version answers exactly what its artifact predicts; its name."""
    number, records, expected = production_answers(test_set)
    endpoint = live_endpoint(backend, MODEL_NAME)
    assert endpoint is not None, backend.endpoints(MODEL_NAME)
    assert endpoint.model_version == number
    predictions, _ = backend.predict(endpoint, records)
    assert predictions == pytest.approx(expected, abs=1e-9, rel=0)
    return endpoint.name


@pytest.fixture(scope="module")
def serving(trained_together, zenml_client):
    """The production version served on the `mlflow` stack; every server of the model stopped afterwards."""
    assert all(run.returncode == 0 for run in trained_together)
    activate_stack(STACK)
    backend = active_backend()
    run_deployment(MODEL_NAME, DeploymentConfig(drain_seconds=1.0, smoke_rows=20))
    test_set = zenml_client.get_model_version(MODEL_NAME, "production").get_artifact(TEST_SET).load()
    yield {"backend": backend, "test_set": test_set}
    activate_stack(STACK)
    stopped = undeploy(backend, MODEL_NAME)
    assert all(not still_running(e.pid) for e in stopped)
    assert backend.endpoints(MODEL_NAME) == []
    zenml_client.activate_stack("default")


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and all its descendants at once, as a crash or the OOM killer would."""
    tree = process_tree(pid)
    for member in tree:
        os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(still_running(p) for p in tree):
        time.sleep(0.1)
    return tree


def test_a_killed_server_is_reported_down_and_deploy_brings_it_back(serving):
    backend, test_set = serving["backend"], serving["test_set"]
    assert_serves(backend, test_set)
    crashed = live_endpoint(backend, MODEL_NAME)
    tree = kill_tree(crashed.pid)
    assert len(tree) >= 2 and not any(still_running(p) for p in tree)  # the daemon and MLflow's server processes
    assert not is_healthy(crashed.health_url)

    status = run_cli("status", "--model-name", MODEL_NAME, "--stack", STACK)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "DOWN" in status.stdout and "healthy" not in status.stdout, status.stdout

    started = time.monotonic()
    deployed = run_cli("deploy", "--model-name", MODEL_NAME, "--stack", STACK)
    recovery = time.monotonic() - started
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-3000:]
    name = assert_serves(backend, test_set)
    assert name != crashed.name
    running = [e for e in backend.endpoints(MODEL_NAME) if e.running]
    assert [e.name for e in running] == [name]
    print(f"\nserver SIGKILLed ({len(tree)} processes); `run.py deploy` serving again after {recovery:.1f} s")


def newest_training_runs() -> list:
    return Client().list_pipeline_runs(pipeline_name=TRAINING_PIPELINE, sort_by="desc:created", size=5).items


def wait_for_step(known_runs: set, step: str, process: subprocess.Popen, timeout: float = 600) -> str:
    """The id of the training run started since `known_runs` were listed, once its step `step` has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for run in newest_training_runs():
            if run.id not in known_runs and step in Client().get_pipeline_run(run.id).steps:
                return str(run.id)
        time.sleep(0.5)
    raise AssertionError(f"no training run reached `{step}` before the process ended or {timeout:.0f} s passed")


def test_a_killed_training_run_changes_nothing_and_the_next_run_succeeds(serving, configs, zenml_client, data_dir):
    backend, test_set = serving["backend"], serving["test_set"]
    before = production_version(MODEL_NAME)
    serving_before = assert_serves(backend, test_set)
    known = {run.id for run in newest_training_runs()}

    log = data_dir / "sturdy-killed.log"
    process = start_cli(log, "train", "--config", str(configs["all"]), "--stack", STACK, "--seed", "7", "--no-cache")
    run_id = wait_for_step(known, "validate_data", process)  # the data is in the store; no model yet
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    killed = zenml_client.get_pipeline_run(run_id)
    assert PROMOTE_STEP not in killed.steps  # killed before it could promote anything
    assert production_version(MODEL_NAME) == before
    assert assert_serves(backend, test_set) == serving_before

    # The killed run stays recorded as it was (ZenML has no way to learn that its process died); it must not
    # get in the way of the next run. Same config and seed as a finished run: its steps come from the cache.
    following = run_cli("train", "--config", str(configs["all"]), "--stack", STACK, "--seed", "1")
    assert following.returncode == 0, following.stdout[-2000:] + following.stderr[-3000:]
    assert "production now: version" in following.stdout
    print(f"\nkilled training run left as `{zenml_client.get_pipeline_run(run_id).status}`; the next run succeeded")
