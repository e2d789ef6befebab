"""Stacks as code, and the same training pipeline on each stack: local, embedded MLflow, MLflow server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
from conftest import DEMO_CONFIG, needs_stacks, run_cli, run_zenml

from lifecycle.config import EstimatorConfig, apply_overrides, load_config
from lifecycle.environment import state_dir
from lifecycle.errors import StackError
from lifecycle.packaging import module_closure
from lifecycle.tracking import CHAMPION_ALIAS
from serving.backends.mlflow import SERVICE_MODULES as MLFLOW_MODULES
from stacks.capabilities import (
    Component,
    StackCapabilities,
    active_capabilities,
    check_usable,
    missing_integration_error,
)
from stacks.manage import (
    STACKS_DIR,
    select,
    stack_specs,
    stack_statuses,
    stacks_down,
    stacks_up,
)
from workflows.runner import run_training

pytestmark = [pytest.mark.integration, needs_stacks("mlflow", "bentoml", "full")]
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def default_stacks(zenml_client):
    specs = select([], stack_specs(), for_registration=True)
    first = stacks_up(specs)
    yield specs, first
    zenml_client.activate_stack("default")


@pytest.fixture
def on_stack(zenml_client):
    """Activate a stack for one test; the default stack is active again afterwards."""

    def activate(name: str):
        zenml_client.activate_stack(zenml_client.get_stack(name, allow_name_prefix_match=False).id)
        return active_capabilities()

    yield activate
    zenml_client.activate_stack("default")


def bike_config(path, model_name: str, **training):
    config = apply_overrides(load_config(DEMO_CONFIG), model_name=model_name, enable_cache=False)
    config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"path": str(path)})})
    if training:
        config = config.model_copy(update={"training": config.training.model_copy(update=training)})
    return config


def mlflow_client_for(capabilities: StackCapabilities) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=capabilities.tracking_uri)


def assert_mirrored(zenml_client, client: mlflow.MlflowClient, model_name: str) -> None:
    """MCP production version <-> MLflow registered version, both ways; same metrics; alias follows."""
    production = zenml_client.get_model_version(model_name, "production")
    links = production.run_metadata["mlflow"]
    registered = client.get_model_version(model_name, links["mlflow_registered_version"])
    assert registered.tags["zenml_model_version"] == str(production.number)
    assert registered.tags["zenml_model_version_id"] == str(production.id)
    assert registered.run_id == links["mlflow_run_id"]
    run = client.get_run(links["mlflow_run_id"])
    for name, value in production.run_metadata["metrics"].items():
        assert run.data.metrics[name] == pytest.approx(value)
    assert run.data.params["seed"] == "42"
    assert client.get_model_version_by_alias(model_name, CHAMPION_ALIAS).version == registered.version


def test_stacks_up_is_idempotent(default_stacks):
    specs, first = default_stacks
    assert {spec.name for spec in specs} >= {"local", "mlflow"}
    assert "mlflow_server" not in {spec.name for spec in specs}  # needs a server: registered on request
    # The first call registered what was missing (other test modules may have registered some already).
    assert all(status.registered for status in stack_statuses(specs))
    assert stacks_up(specs) == []
    assert all(status.registered and not status.drift for status in stack_statuses(specs))


def test_drifted_component_is_reported_and_repaired(default_stacks, zenml_client):
    from zenml.enums import StackComponentType

    specs, _ = default_stacks
    zenml_client.update_stack_component(
        "mlflow_tracker", StackComponentType.EXPERIMENT_TRACKER, configuration={"experiment_name": "elsewhere"}
    )
    mlflow_status = next(s for s in stack_statuses(specs) if s.spec.name == "mlflow")
    assert mlflow_status.drift == ["mlflow_tracker.experiment_name differs from the file"]
    changes = stacks_up(specs)
    assert changes == ["updated experiment_tracker mlflow_tracker (experiment_name: 'elsewhere' -> 'mlops_lifecycle')"]
    assert stacks_up(specs) == []


def test_embedded_mlflow_lives_in_the_state_folder(default_stacks):
    tracker = stack_specs()["mlflow"].components["experiment_tracker"]
    assert tracker.configuration["tracking_uri"] == f"sqlite:///{state_dir()}/mlflow/mlflow.db"
    assert Path(tracker.configuration["tracking_uri"].removeprefix("sqlite:///")).is_absolute()


def test_local_stack_has_no_mlflow_side_effects(default_stacks, on_stack, zenml_client, bike_slice):
    capabilities = on_stack("local")
    assert capabilities.step_options() == {} and not capabilities.mlflow_tracking
    outcome = run_training(bike_config(bike_slice, "matrix_local"))
    assert outcome.decision.promoted and outcome.mlflow_links == {}
    assert "mlflow" not in zenml_client.get_model_version("matrix_local", "production").run_metadata
    database = state_dir() / "mlflow" / "mlflow.db"
    if database.exists():  # another test used the mlflow stack: it must know nothing of this model
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{database}")
        assert client.search_registered_models("name='matrix_local'") == []


def test_mlflow_stack_mirrors_runs_registry_and_alias(default_stacks, on_stack, zenml_client, bike_slice):
    capabilities = on_stack("mlflow")
    assert capabilities.step_options() == {"register_model": {"experiment_tracker": "mlflow_tracker"}}
    stump = run_training(
        bike_config(
            bike_slice, "matrix_mlflow", estimator=EstimatorConfig(name="decision_tree", params={"max_depth": 2})
        )
    )
    assert stump.decision.promoted
    client = mlflow_client_for(capabilities)
    assert_mirrored(zenml_client, client, "matrix_mlflow")
    better = run_training(bike_config(bike_slice, "matrix_mlflow"))
    assert better.decision.promoted and better.production_version == better.model_version
    assert_mirrored(zenml_client, client, "matrix_mlflow")  # the alias moved with the MCP stage
    worse = run_training(
        bike_config(
            bike_slice, "matrix_mlflow", estimator=EstimatorConfig(name="decision_tree", params={"max_depth": 1})
        )
    )
    assert not worse.decision.promoted
    champion = client.get_model_version_by_alias("matrix_mlflow", CHAMPION_ALIAS)
    assert str(champion.version) == better.mlflow_links["mlflow_registered_version"]
    assert_mirrored(zenml_client, client, "matrix_mlflow")
    experiment = client.get_experiment_by_name("mlops_lifecycle")
    assert experiment.artifact_location.startswith((state_dir() / "mlflow").as_uri())
    assert not (PROJECT_ROOT / "mlruns").exists()
    # The logged model carries the code that loading it needs, and no measurement or pipeline code.
    logged = client.get_logged_model(better.mlflow_links["mlflow_model_uri"].removeprefix("models:/"))
    model_dir = Path(urlparse(logged.artifact_location).path)
    shipped = {str(p.relative_to(model_dir / "code")) for p in (model_dir / "code").rglob("*.py")}
    assert shipped == {str(p) for p in module_closure(MLFLOW_MODULES)}
    loaded = mlflow.pyfunc.load_model(str(model_dir))
    assert loaded.metadata.flavors["python_function"]["code"] == "code"


@pytest.fixture(scope="module")
def mlflow_server(state_dir):
    """A real MLflow tracking server on 127.0.0.1, stopped (and checked gone) at the end."""
    port = free_port()
    root = state_dir / "mlflow-server"
    root.mkdir()
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root}/server.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                log_text = (root / "server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server did not start: {log_text}") from exc
            time.sleep(0.5)
    yield uri
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()
    assert process.poll() is not None


@pytest.mark.e2e
def test_shared_mlflow_server_stack(default_stacks, on_stack, zenml_client, bike_slice, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ci")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-a-real-secret")
    spec = stack_specs()["mlflow_server"]
    changes = stacks_up([spec])
    assert "created secret mlflow_server_credentials (keys: username, password)" in changes
    tracker = zenml_client.get_stack_component("experiment_tracker", "mlflow_server_tracker")
    assert "not-a-real-secret" not in str(tracker.configuration)  # only a reference to the ZenML secret
    capabilities = on_stack("mlflow_server")
    assert capabilities.tracking_uri == mlflow_server
    outcome = run_training(bike_config(bike_slice, "matrix_server"))
    assert outcome.decision.promoted
    assert_mirrored(zenml_client, mlflow.MlflowClient(tracking_uri=mlflow_server), "matrix_server")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the in-process MLflow client keeps no stale server


def test_unreachable_mlflow_server_is_an_actionable_error():
    closed = f"http://127.0.0.1:{free_port()}"
    capabilities = StackCapabilities("team", {"experiment_tracker": Component("t", "mlflow", {"tracking_uri": closed})})
    with pytest.raises(StackError) as error:
        check_usable(capabilities)
    assert closed in str(error.value) and "not reachable" in str(error.value)
    assert "mlflow server" in str(error.value) and "zenml stack set default" in str(error.value)


def test_missing_integration_names_the_install_command():
    error = missing_integration_error("tracked", "wandb", "experiment_tracker")
    assert error is not None and "zenml integration install wandb" in str(error)
    cluster = missing_integration_error("k8s", "kubernetes", "orchestrator")  # never in .venv (protobuf<7)
    assert cluster is not None and "make cluster-env" in str(cluster) and ".venv-cluster/bin/python" in str(cluster)
    assert missing_integration_error("mlflow", "mlflow", "experiment_tracker") is None  # installed here
    assert missing_integration_error("local", "local", "orchestrator") is None  # built into ZenML


def test_cluster_examples_are_named_not_registered_by_default():
    specs = stack_specs(include_examples=True)
    assert specs["k8s"].components["orchestrator"].flavor == "kubernetes"
    assert specs["kubeflow"].components["orchestrator"].flavor == "kubeflow"
    for name in ("k8s", "kubeflow"):
        assert specs[name].example and specs[name].needs and name not in stack_specs()
        assert name not in [spec.name for spec in select([], specs, for_registration=True)]
    assert set(specs["kubeflow"].integrations) == {"kubeflow", "s3", "mlflow"}


@pytest.mark.parametrize("path", sorted(STACKS_DIR.rglob("*.yaml")), ids=lambda p: p.name)
def test_stack_files_hold_no_credentials(path):
    """Credentials come from the environment (${VAR}) or ZenML secrets ({{secret.key}}), never literals."""
    import yaml

    def credentials(node):
        if isinstance(node, dict):
            for key, value in node.items():
                sensitive = any(word in str(key) for word in ("password", "token", "username", "secret", "key"))
                if sensitive and isinstance(value, str):
                    yield key, value
                yield from credentials(value)

    for key, value in credentials(yaml.safe_load(path.read_text())):
        assert value.startswith(("${", "{{")), f"{path.name}: `{key}` holds a literal value"


@pytest.mark.e2e
def test_users_path_through_subprocesses(default_stacks, zenml_client, bike_slice):
    """`python run.py stacks up`, `zenml stack set mlflow`, `python run.py train`, back to default."""
    up = run_cli("stacks", "up")
    assert up.returncode == 0 and "already registered, no changes" in up.stdout, up.stderr[-2000:]
    assert run_zenml("stack", "set", "mlflow").returncode == 0
    try:
        # the output a user sees by default: one line per step, none of MLflow's own progress bars, logs, warnings
        trained = run_cli(
            "train", "--data", str(bike_slice), "--target", "cnt", "--model-name", "user_path",
            unset=("ZENML_LOGGING_VERBOSITY",),
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "on stack `mlflow`" in trained.stdout and "MLflow: run" in trained.stdout
        console = trained.stdout + trained.stderr
        assert "  ✓ register_model  (" in console, console[-3000:]
        for noise in ("Downloading artifacts", "UserWarning", "INFO mlflow", "Failed to disable MLflow autologging"):
            assert noise not in console, f"`{noise}` in the compact output:\n{console[-3000:]}"
    finally:
        assert run_zenml("stack", "set", "default").returncode == 0
    again = run_cli("train", "--data", str(bike_slice), "--target", "cnt", "--model-name", "user_path")
    assert again.returncode == 0 and "on stack `default`" in again.stdout, again.stderr[-3000:]
    listing = run_cli("stacks", "list")
    assert "mlflow ui --backend-store-uri sqlite:///" in listing.stdout


def test_unregistered_stack_names_the_fix():
    result = run_cli("train", "--stack", "nowhere")
    assert result.returncode == 3  # infrastructure: the stack is not there (README, exit codes)
    assert "python run.py stacks up nowhere" in result.stderr and "Traceback" not in result.stderr


def test_stacks_down_removes_stack_and_own_components(default_stacks, zenml_client):
    specs, _ = default_stacks
    mlflow_spec = [spec for spec in specs if spec.name == "mlflow"]
    zenml_client.activate_stack(zenml_client.get_stack("mlflow", allow_name_prefix_match=False).id)
    changes = stacks_down(mlflow_spec)
    assert "deleted stack mlflow" in changes and "deleted model_deployer mlflow_deployer" in changes
    assert "deleted experiment_tracker mlflow_tracker" not in changes  # the `full` stack still uses it
    assert zenml_client.active_stack_model.name == "default"
    assert "deleted orchestrator default" not in changes
    assert not stack_statuses(mlflow_spec)[0].registered
    assert stacks_up(mlflow_spec)  # back, for whatever runs next
