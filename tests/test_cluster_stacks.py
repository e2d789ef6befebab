"""The cluster stacks (stacks/examples/kubernetes.yaml and kubeflow.yaml) register on a live ZenML server from
the cluster environment (.venv-cluster: the project plus ZenML's kubernetes, kubeflow and s3 integrations), and
`stacks list` describes them. Nothing reaches a cluster, a bucket or a registry: the kubeconfig's only context
points at a closed port on 127.0.0.1, and registering or validating a stack contacts none of them.

`make test-cluster` builds that environment and runs this file (CI does, after `make test`); elsewhere it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, free_port_block

pytestmark = [pytest.mark.integration]

CLUSTER_PYTHON = os.path.abspath(os.environ["MLOPS_CLUSTER_PYTHON"]) if "MLOPS_CLUSTER_PYTHON" in os.environ else ""
if not CLUSTER_PYTHON:
    pytest.skip("the cluster environment's tests run with `make test-cluster`", allow_module_level=True)

CLUSTER_STACKS = {"k8s": "kubernetes", "kubeflow": "kubeflow"}  # stack name: its orchestrator's flavor

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: nobody
  user: {token: not-a-real-token}
contexts:
- name: team-cluster
  context: {cluster: nowhere, user: nobody}
current-context: team-cluster
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    from workflows import team

    root = tmp_path_factory.mktemp("cluster-servers")
    # The server runs in the cluster environment: it checks each component with its flavor's integration.
    started = team.up(root, zenml_port=free_port_block(), mlflow_port=free_port_block(), python=CLUSTER_PYTHON)
    try:
        yield started
    finally:
        team.down(root)


@pytest.fixture(scope="module")
def client_env(servers, tmp_path_factory) -> dict[str, str]:
    """A client of the server with its own ZenML configuration, and what the stack files read from the
    environment (a platform engineer's exports)."""
    home = tmp_path_factory.mktemp("cluster-client")
    (home / "kubeconfig").write_text(KUBECONFIG)
    own = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLOPS_", "MLFLOW_"))}
    return {
        **own,
        **servers.environment(),
        "ZENML_CONFIG_PATH": str(home / "zenml"),
        "ZENML_REPOSITORY_PATH": str(PROJECT_ROOT),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_DISABLE_INTERACTIVE_INPUT": "true",
        "MLOPS_STATE_DIR": str(home / "state"),
        "KUBECONFIG": str(home / "kubeconfig"),
        "KUBE_CONTEXT": "team-cluster",
        "ARTIFACT_BUCKET": "s3://team-bucket/zenml",
        "CONTAINER_REGISTRY_URI": "registry.example.com/team",
        "NO_COLOR": "1",
    }


def run_in(python: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)


def registered_stacks(servers) -> dict[str, dict[str, str]]:
    """Each stack on the server with its components' flavors, from the server's REST API."""
    api = f"{servers.zenml_url}/api/v1"
    stacks = servers.zenml_api().get(f"{api}/stacks", params={"size": 100, "hydrate": True}, timeout=10).json()["items"]
    return {
        stack["name"]: {
            kind: components[0]["body"]["flavor_name"]
            for kind, components in stack["metadata"]["components"].items()
            if components
        }
        for stack in stacks
    }


def test_the_project_environment_points_to_the_cluster_environment(client_env):
    """.venv lacks the cluster integrations: `stacks up k8s` there stops with the way to the one that has them."""
    refused = run_in(sys.executable, client_env, "run.py", "stacks", "up", "k8s")
    assert refused.returncode != 0
    assert "integration `kubernetes` is not installed" in refused.stderr, refused.stderr[-2000:]
    assert "make cluster-env" in refused.stderr and ".venv-cluster/bin/python run.py" in refused.stderr


def test_cluster_stacks_register_on_the_server_and_are_described(servers, client_env):
    up = run_in(CLUSTER_PYTHON, client_env, "run.py", "stacks", "up", *CLUSTER_STACKS)
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    for name in CLUSTER_STACKS:
        assert f"created stack {name}" in up.stdout
    assert "local database" not in up.stdout + up.stderr  # a server, not a SQLite file, holds them

    on_server = registered_stacks(servers)
    for name, orchestrator in CLUSTER_STACKS.items():
        assert on_server[name] == {
            "orchestrator": orchestrator,
            "artifact_store": "s3",
            "container_registry": "default",
            "image_builder": "local",
            "experiment_tracker": "mlflow",
            "model_registry": "mlflow",
        }

    again = run_in(CLUSTER_PYTHON, client_env, "run.py", "stacks", "up", *CLUSTER_STACKS)
    assert again.returncode == 0 and "already registered, no changes" in again.stdout, again.stderr[-2000:]

    # ZenML's own stack validation (the orchestrators check the kubeconfig context and that the registry and
    # artifact store are remote), with each component's implementation class loaded from its integration.
    validate = (
        "from zenml.client import Client\n"
        "from zenml.stack import Stack\n"
        f"for name in {list(CLUSTER_STACKS)!r}:\n"
        "    stack = Stack.from_model(Client().get_stack(name))\n"
        "    stack.validate()\n"
        "    print(name, type(stack.orchestrator).__name__, type(stack.artifact_store).__name__)\n"
    )
    checked = run_in(CLUSTER_PYTHON, client_env, "-c", validate)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "k8s KubernetesOrchestrator S3ArtifactStore" in checked.stdout
    assert "kubeflow KubeflowOrchestrator S3ArtifactStore" in checked.stdout

    listed = run_in(CLUSTER_PYTHON, client_env, "run.py", "stacks", "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    blocks = described(listed.stdout)
    for name, orchestrator in CLUSTER_STACKS.items():
        block = blocks[name]
        assert block[0].split()[1] == "registered" and "examples/" in block[0]
        assert f"orchestrator       {orchestrator} " in "\n".join(block)
        assert f"integrations:      {orchestrator}, s3, mlflow (installed)" in block
        needs = [line for line in block if line.startswith("to run it needs:")]
        assert any("container registry" in line for line in needs) and any("S3 bucket" in line for line in needs)


TRAINING_STEPS = (
    "ingest_data",
    "validate_data",
    "split_data",
    "train_model",
    "evaluate",
    "register_model",
    "promote_model",
    "write_model_card",
)  # pipelines/training.py, in order
IMAGE = "registry.example.com/team/mlops-lifecycle:0.1"


def _environment(container: dict) -> dict[str, object]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def test_training_compiles_for_kubeflow_and_kubernetes_without_a_cluster(servers, client_env, tmp_path):
    """ZenML's own orchestrator code turns `train` into what it would submit; the files show every step, the
    project's image, the team's ZenML server and MLflow tracker in the environment, and no usable token."""
    up = run_in(CLUSTER_PYTHON, client_env, "run.py", "stacks", "up", *CLUSTER_STACKS)
    assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
    zenml = str(Path(CLUSTER_PYTHON).parent / "zenml")
    compiled = {}
    for name, flavor in CLUSTER_STACKS.items():
        assert (
            subprocess.run(
                [zenml, "stack", "set", name], env=client_env, cwd=PROJECT_ROOT, capture_output=True
            ).returncode
            == 0
        )
        done = run_in(
            CLUSTER_PYTHON, client_env, "run.py", "stacks", "compile", "--image", IMAGE, "--output", str(tmp_path)
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert f"{flavor} spec of {len(TRAINING_STEPS)} steps on stack {name}" in done.stdout
        compiled[flavor] = (tmp_path / f"training_pipeline.{flavor}.yaml").read_text()

    secrets = [v for k, v in client_env.items() if k.endswith(("PASSWORD", "TOKEN"))]
    for text in compiled.values():
        assert "eyJ" not in text and not any(secret in text for secret in secrets)  # no JWT, no password

    spec = yaml.safe_load_all(compiled["kubeflow"]).__next__()
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(step.replace("_", "-") for step in TRAINING_STEPS)
    assert "dependentTasks" not in tasks["ingest-data"]
    assert tasks["train-model"]["dependentTasks"] == ["split-data", "validate-data"]
    assert "promote-model" in tasks["write-model-card"]["dependentTasks"]
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor["container"]
        env = _environment(container)
        assert container["image"] == IMAGE
        assert container["args"][container["args"].index("--step_name") + 1] in TRAINING_STEPS
        assert env["ZENML_STORE_URL"] == servers.zenml_url
        assert env["MLFLOW_TRACKING_URI"] == servers.mlflow_url  # the tracker component's environment
        assert env["ZENML_STORE_API_TOKEN"].startswith("<redacted")

    job = yaml.safe_load(compiled["kubernetes"])
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = _environment(container)
    assert container["image"] == IMAGE and job["spec"]["podFailurePolicy"]
    assert container["command"][-1].endswith("kubernetes_orchestrator_entrypoint")
    assert env["ZENML_STORE_URL"] == servers.zenml_url
    assert env["ZENML_STORE_API_TOKEN"]["secretKeyRef"]["key"] == "zenml_api_token"  # pass_zenml_token_as_secret
    assert pod["serviceAccountName"] == "zenml-service-account"

    # The snapshot both files run is on the server, under the name the command printed.
    snapshots = servers.zenml_api().get(
        f"{servers.zenml_url}/api/v1/pipeline_snapshots", params={"size": 100}, timeout=10
    )
    assert sum(s["name"].startswith("offline-compile-") for s in snapshots.json()["items"]) >= 2

    assert (
        subprocess.run(
            [zenml, "stack", "set", "default"], env=client_env, cwd=PROJECT_ROOT, capture_output=True
        ).returncode
        == 0
    )
    refused = run_in(
        CLUSTER_PYTHON, client_env, "run.py", "stacks", "compile", "--image", IMAGE, "--output", str(tmp_path)
    )
    assert refused.returncode != 0 and "offline compiling is for kubeflow and kubernetes" in refused.stderr


def test_without_the_environment_the_listing_says_what_is_missing(servers, client_env):
    """From .venv, with none of the cluster's variables set: what to export and what to install."""
    bare = {k: v for k, v in client_env.items() if k not in ("KUBE_CONTEXT", "ARTIFACT_BUCKET")}
    listed = run_in(sys.executable, bare, "run.py", "stacks", "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    block = "\n".join(described(listed.stdout)["kubeflow"])
    assert "needs environment: KUBE_CONTEXT, ARTIFACT_BUCKET" in block
    from stacks.capabilities import integrations_installed

    # s3 is installed in .venv once the `s3` or `remote` extra is (`make test-team` installs `remote`)
    missing = ["kubeflow"] + ([] if integrations_installed("s3") else ["s3"])
    assert f"not installed here: {', '.join(missing)}; `make cluster-env`" in block, block
    assert "drift:" not in block  # an unset variable is not a difference from the registered stack


def described(listing: str) -> dict[str, list[str]]:
    """`stacks list` cut into one block of stripped lines per stack, keyed by its name."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in listing.splitlines():
        if line[:1] in ("*", " ") and line[2:3] not in (" ", "") and not line.startswith("    "):
            current = [line[2:].strip()]
            blocks[current[0].split()[0]] = current
        elif line.startswith("    "):
            current.append(line.strip())
    return {name: lines for name, lines in blocks.items()}


def test_cluster_constraints_pin_what_the_project_pins():
    """The two environments share ZenML, MLflow, BentoML, Evidently, scikit-learn and pandas at one version."""

    def pins(path: Path) -> dict[str, str]:
        lines = (line.split("==") for line in path.read_text().splitlines() if "==" in line)
        return {name.strip().lower(): version.strip() for name, version in lines}

    project, cluster = pins(PROJECT_ROOT / "constraints.txt"), pins(PROJECT_ROOT / "constraints-cluster.txt")
    for package in ("zenml", "mlflow", "bentoml", "evidently", "scikit-learn", "pandas"):
        assert cluster[package] == project[package], package
    assert int(cluster["protobuf"].split(".")[0]) < 7  # why the cluster has an environment of its own
