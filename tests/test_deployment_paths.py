"""The deployment paths around the served model line: the MLflow stack serving a version trained without MLflow,
the user's CLI path on a stack (deploy, predict, status, undeploy), `predict` without a server, and the BentoML
workaround (why the project has its own `bentoml_local` flavor). Shares the model line of tests/test_deployment.py
through tests/deployment_fixtures.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_CONFIG, activate_stack, free_port_block, needs_stacks, run_cli, run_zenml
from deployment_fixtures import MODEL_NAME, PROJECT_ROOT, set_production, settings, two_versions
from zenml.client import Client

from lifecycle.config import DeploymentConfig, apply_overrides, load_config
from lifecycle.modeling import predict_scores
from serving.contract import json_records
from serving.rollout import undeploy
from serving.stack_backend import backend_for
from workflows.runner import run_deployment, run_training

pytestmark = [pytest.mark.integration, needs_stacks("mlflow", "bentoml", "full")]
__all__ = ["two_versions"]  # the shared fixture, used by name


def test_mlflow_serves_a_version_trained_without_mlflow(two_versions, zenml_client, data_dir):
    """Trained on the plain stack (no MLflow twin): deploying on `mlflow` registers it there first."""
    zenml_client.activate_stack("default")
    config = apply_overrides(load_config(DEMO_CONFIG), model_name="local_only", enable_cache=False)
    dataset = config.dataset.model_copy(update={"path": str(data_dir / "bike_may.csv")})
    assert run_training(config.model_copy(update={"dataset": dataset})).decision.promoted
    backend = backend_for(activate_stack("mlflow"))
    try:
        record = run_deployment("local_only", settings())
        assert record["backend"] == "mlflow" and record["parity_max_abs_difference"] == 0.0
        links = zenml_client.get_model_version("local_only", "1").run_metadata["mlflow"]
        assert links["mlflow_registered_version"] == "1"
        assert not (PROJECT_ROOT / "mlruns").exists()  # the twin's artifacts live beside MLflow's database
    finally:
        undeploy(backend, "local_only")
        zenml_client.activate_stack("default")


# --- the user's path: zenml stack set X && python run.py deploy / predict / status / undeploy -----------------


@pytest.mark.e2e
@pytest.mark.parametrize("stack", ["local", "full"])
def test_cli_deploy_predict_status_undeploy(stack, two_versions, data_dir):
    rows = two_versions["test_set"].tail(5)
    request = data_dir / "request.json"
    request.write_text(json.dumps(json_records(rows, two_versions["schema"])))
    expected, _ = predict_scores(two_versions["models"][2], rows[two_versions["schema"].model_inputs])
    set_production(2)
    assert run_zenml("stack", "set", stack).returncode == 0
    try:
        deployed = run_cli("deploy", "--model-name", MODEL_NAME, "--port", str(free_port_block()))
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert f"`{MODEL_NAME}` version 2" in deployed.stdout and "python run.py undeploy" in deployed.stdout
        predicted = run_cli("predict", "--model-name", MODEL_NAME, "--input", str(request))
        assert predicted.returncode == 0, predicted.stderr[-3000:]
        served = [float(line) for line in predicted.stdout.split()]
        assert served == pytest.approx(list(expected), abs=1e-9, rel=0)
        status = run_cli("status", "--model-name", MODEL_NAME)
        assert status.returncode == 0 and "healthy" in status.stdout and "version 2" in status.stdout, status.stdout
    finally:
        stopped = run_cli("undeploy", "--model-name", MODEL_NAME)
        assert run_zenml("stack", "set", "default").returncode == 0
    assert stopped.returncode == 0 and "1 server(s) stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    after = run_cli("status", "--model-name", MODEL_NAME, "--stack", stack)
    assert "nothing deployed" in after.stdout, after.stdout + after.stderr


def test_predict_without_a_server_names_the_fix(two_versions, data_dir):
    request = data_dir / "request.json"
    request.write_text(json.dumps({"records": []}))
    result = run_cli("predict", "--model-name", MODEL_NAME, "--input", str(request))
    assert result.returncode == 2 and "python run.py deploy" in result.stderr and "Traceback" not in result.stderr


# --- the BentoML workaround ----------------------------------------------------------------------------------


def test_zenml_bentoml_service_still_needs_the_project_flavor(two_versions, served_bento):
    """ZenML's own local BentoML service dies on a new-style service (the reason for stacks/bentoml_flavor.py).
    If this fails, ZenML fixed it: drop the `bentoml_local` flavor and use ZenML's `bentoml`."""
    bento = served_bento
    script = (
        "from zenml.integrations.bentoml.services.bentoml_local_deployment import "
        "BentoMLLocalDeploymentConfig, BentoMLLocalDeploymentService\n"
        f"config = BentoMLLocalDeploymentConfig(model_name='m', model_uri={str(bento.path)!r}, "
        f"bento_tag={str(bento.tag)!r}, working_dir={str(bento.path_of('src'))!r}, port={free_port_block()}, "
        "host='127.0.0.1')\n"
        "import uuid\nBentoMLLocalDeploymentService(uuid=uuid.uuid4(), config=config).run()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        start_new_session=True,
    )
    assert result.returncode != 0
    assert "has no attribute 'runners'" in result.stderr, result.stderr[-2000:]


def test_a_bento_ships_the_model_code_and_the_service_only(served_bento):
    from lifecycle.packaging import module_closure
    from serving.backends.bentoml import SERVICE_MODULES

    source = Path(served_bento.path_of("src"))
    shipped = {str(p.relative_to(source)) for p in source.rglob("*.py")}
    assert shipped == {str(p) for p in module_closure(SERVICE_MODULES)}
    assert (source / "bento_model.json").is_file()
    assert not {p for p in shipped if p.startswith(("measurement", "benchmarks", "pipelines", "workflows", "steps"))}


@pytest.fixture(scope="module")
def served_bento(two_versions):
    """The bento the `bentoml` backend builds for version 2 (built here if no test built it yet)."""
    from serving.backends.base import Release
    from serving.backends.bentoml import BentoMLBackend

    version = Client().get_model_version(MODEL_NAME, "2")
    release = Release(MODEL_NAME, "2", str(version.id), two_versions["models"][2], two_versions["schema"])
    return BentoMLBackend(deployer=None).bento_for(release, DeploymentConfig())
