"""The remote set-up for real (`make test-remote`): `cluster up` starts the project's own Docker engine, registry,
object store, ZenML and MLflow servers and two nodes (containers with their own engine and sshd). On the `remote`
stack the training pipeline runs each step in a container on node 1 and the training on node 2 (SSH), artifacts in
the bucket, the MLflow run and model version on the MLflow server, with the default stack's result for the same
seed; the monitoring pipeline reads a batch there and retrains there; the model is served from this machine's
`team_s3` stack on the same store and answers; a step that fails on a node shows its own error; `down` leaves no
process, mount, cgroup folder or listening port.

The set-up lives in .state/remote-test/ of the checkout (its own ports), so the engine's images (the base image,
the step image) are reused by the next run; the root file system that debootstrap makes is shared with
`python run.py cluster up` (.state/remote-cache/)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, free_port_block, note, run_cli

pytestmark = [pytest.mark.remote, pytest.mark.integration]

TEST_FOLDER = PROJECT_ROOT / ".state" / "remote-test"
# A name of this session's own: the set-up's stores outlive `down` (kept for the next run's images), and a model
# they already hold would have a production version to compare with.
MODEL = f"remote_bikes_{int(time.time())}"
# Ports of their own, beside configs/remote.yaml's (a developer's own set-up may be running). The nodes share the
# project and this test session's folder (its data, its state: the retraining's input file).
TEST_SETTINGS = {
    "registry": {"port": 5250},
    "object_store": {"master_port": 9533, "volume_port": 9534, "filer_port": 9535, "s3_port": 9536},
    "servers": {"zenml_port": 8348, "mlflow_port": 5260},
    "nodes": {"count": 2, "ssh_port": 2332, "shared_folders": [".", str(Path(os.environ["MLOPS_STATE_DIR"]).parent)]},
}


def _missing_programs() -> list[str]:
    return [name for name in ("dockerd", "docker-registry", "debootstrap") if not shutil.which(name)]


if _missing_programs():
    pytest.skip(f"{', '.join(_missing_programs())} missing: `make test-remote` installs them", allow_module_level=True)


@pytest.fixture(scope="module")
def remote_config(tmp_path_factory) -> Path:
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "remote.yaml").read_text())
    for section, values in TEST_SETTINGS.items():
        raw[section] = {**raw[section], **values}
    raw["folder"] = str(TEST_FOLDER)
    path = tmp_path_factory.mktemp("remote") / "remote.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def cluster(remote_config: Path):
    from lifecycle.config import load_remote_config
    from workflows import remote_cluster

    config = load_remote_config(remote_config)
    started = time.monotonic()
    result = run_cli("cluster", "up", "--remote-config", str(remote_config), timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    known = remote_cluster.running(config)
    assert known is not None
    yield config, known, time.monotonic() - started
    remote_cluster.down(config)  # a failed test leaves nothing either (the last test checks `down` itself)


def client_environment(known, tmp_path: Path) -> dict[str, str]:
    """A user's shell after `source .state/remote/remote.env`, with a ZenML client configuration of its own."""
    from workflows import remote_cluster

    (tmp_path / "repo" / ".zen").mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZENML_STORE_")}
    env.update(remote_cluster.environment(known))
    env.update({"ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "ZENML_REPOSITORY_PATH": str(tmp_path / "repo")})
    return env


@pytest.fixture
def bike_data_batch(data_dir: Path) -> Path:
    """Two later months of the bike data, warmer than they were: a batch that drifts, with its labels."""
    import pandas as pd
    from conftest import BIKE_DATA

    table = pd.read_csv(BIKE_DATA)
    batch = table[(table["dteday"] >= "2011-09-01") & (table["dteday"] < "2011-11-01")].copy()
    batch["temp"] = batch["temp"] + 0.3
    path = data_dir / "remote_batch.csv"
    batch.to_csv(path, index=False)
    return path


def on_a_node(known, index: int, command: str) -> str:
    """A command's output on node `index`, over SSH with the set-up's key, its host key checked."""
    import subprocess

    from lifecycle.config import load_remote_config
    from workflows.remote_nodes import node_ports

    port = node_ports(load_remote_config(known.config_path))[index - 1]
    ssh = Path(known.root) / "ssh"
    answer = subprocess.run(
        ["ssh", "-i", str(ssh / "id_ed25519"), "-p", str(port), "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}",
         "-o", "BatchMode=yes", "root@127.0.0.1", command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    return answer.stdout


def zenml_value(env: dict[str, str], code: str) -> str:
    """What `code` prints in a Python of the user's client environment (`Client` imported)."""
    import subprocess
    import sys

    answer = subprocess.run(
        [sys.executable, "-c", f"from zenml.client import Client\n{code}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-2000:]
    return answer.stdout.strip().splitlines()[-1]


def predictions_on_test_rows(env: dict[str, str], version: int) -> str:
    """The version's test rows and its model's predictions on them, as digests, loaded from the store and artifact
    store `env` points at (the set-up's server and bucket, or this session's own)."""
    return zenml_value(
        env,
        "import hashlib\n"
        f"v = Client().get_model_version('{MODEL}', {version})\n"
        "rows, schema = v.get_artifact('test_set').load(), v.get_artifact('feature_schema').load()\n"
        "answers = v.get_model_artifact('model').load().predict(rows[schema.model_inputs])\n"
        "digest = lambda text: hashlib.sha256(text.encode()).hexdigest()[:16]\n"
        "print(len(rows), digest(rows.to_csv(index=False)), digest(repr([float(a) for a in answers])))",
    )


def run_name_id(env: dict[str, str], run_name: str) -> str:
    """The run's id: the SSH orchestrator names each step's container `<run id>-<step>`."""
    return zenml_value(env, f"print(Client().get_pipeline_run('{run_name}').id)")


# A training run in containers on a 2-CPU machine shared with other work took 30 minutes (8 steps, each a container
# that downloads the code and loads ZenML); on a quiet machine it takes a fraction of that.
RUN_TIMEOUT = 3600


def run_as(env: dict[str, str], *args: str, timeout: float = RUN_TIMEOUT):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "NO_COLOR": "1"},
    )


def test_up_is_idempotent_and_listens_on_loopback_only(cluster, remote_config):
    import psutil

    from workflows import remote_cluster

    config, known, seconds = cluster
    print(f"cluster up: {seconds:.0f} s")
    again = run_cli("cluster", "up", "--remote-config", str(remote_config), timeout=120)
    assert again.returncode == 0, again.stderr
    assert remote_cluster.running(config).pids() == known.pids()  # the same processes, nothing started twice
    family = set()
    for pid in known.pids().values():
        family |= {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.pid in family]
    assert listening, "the set-up's processes listen on no port"
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
    assert {c.laddr.port for c in listening} <= set(remote_cluster.planned_ports(config))


def test_train_on_the_remote_stack_runs_on_two_nodes_and_matches_the_default_stack(
    cluster, bike_slice, tmp_path_factory, monkeypatch
):
    from workflows import remote_cluster

    config, known, _ = cluster
    folder = tmp_path_factory.mktemp("remote-train")
    env = client_environment(known, folder)
    registered = run_as(env, "stacks", "up", "remote", timeout=300)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    common = ["--data", str(bike_slice), "--target", "cnt", "--seed", "7", "--no-redeploy"]
    started = time.monotonic()
    remote = run_as(
        env, "train", "--stack", "remote", "--model-name", MODEL, *common, "--summary-json", str(folder / "remote.json")
    )
    remote_seconds = time.monotonic() - started
    assert remote.returncode == 0, remote.stdout[-3000:] + remote.stderr[-3000:]
    started = time.monotonic()
    local = run_cli("train", "--model-name", MODEL, *common, "--summary-json", str(folder / "local.json"), timeout=1800)
    local_seconds = time.monotonic() - started
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    note(
        f"remote set-up: train on the `remote` stack {remote_seconds:.0f} s; on the default stack {local_seconds:.0f} s"
    )

    on_remote, on_default = (json.loads((folder / f"{name}.json").read_text()) for name in ("remote", "local"))
    assert on_remote["stack"] == "remote"
    assert on_remote["data"] == on_default["data"]  # same file, fingerprint, rows
    assert on_remote["metrics"] == on_default["metrics"]  # same seed, same model
    assert on_remote["promoted"] and on_default["promoted"]
    # the same test rows and the same predictions on them, each read back from its own stores
    on_nodes = predictions_on_test_rows(env, on_remote["version"])
    here = predictions_on_test_rows(dict(os.environ), on_default["version"])
    assert on_nodes == here and int(on_nodes.split()[0]) == on_remote["data"]["test_rows"], (on_nodes, here)

    # Each step ran in a container on node 1, the training on node 2 (the step operator's container is named on
    # the step), all against the set-up's ZenML server.
    run_name = on_remote["run"]
    steps = on_a_node(known, 1, "docker ps -a --format '{{.Names}}'")
    assert f"{run_name_id(env, run_name)}-ingest_data" in steps
    trained_on = zenml_value(
        env,
        f"r=Client().get_pipeline_run('{run_name}').steps['train_model']; "
        "print(r.config.step_operator, r.run_metadata.get('ssh_container_name'))",
    )
    operator, container = trained_on.split()
    assert operator == "remote_node_2" and container.startswith("zenml-step-")
    assert container in on_a_node(known, 2, "docker ps -a --format '{{.Names}}'")

    # The artifacts are in the bucket (the model among them), not on this machine's disk.
    client = remote_cluster.s3_client(known)
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=known.bucket)
        for item in page.get("Contents", [])
    ]
    assert any(key.startswith("train_model/") for key in keys), keys[:20]
    assert any(key.startswith("mlflow/") for key in keys), "MLflow's artifacts are not in the bucket"

    # The MLflow run and the registered version are on the set-up's MLflow server.
    from mlflow.tracking import MlflowClient

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, env[name])
    tracker = MlflowClient(tracking_uri=known.mlflow_url)
    versions = tracker.search_model_versions(f"name='{MODEL}'")
    assert versions, f"no registered version of {MODEL} on the MLflow server"
    assert tracker.get_run(versions[0].run_id).info.status == "FINISHED"


def test_monitoring_on_the_remote_stack_reads_the_batch_and_retrains_there(cluster, bike_data_batch, tmp_path):
    config, known, _ = cluster
    env = client_environment(known, tmp_path)
    monitored = run_as(
        env, "monitor", "--stack", "remote", "--model-name", MODEL, "--batch", str(bike_data_batch),
        "--retrain", "always", "--summary-json", str(tmp_path / "monitor.json"),
    )  # fmt: skip
    shown = monitored.stdout + monitored.stderr
    assert monitored.returncode == 0, shown[-3000:]
    summary = json.loads((tmp_path / "monitor.json").read_text())
    assert summary["batch_source"] == str(bike_data_batch) and summary["model_name"] == MODEL
    assert summary["retraining"] is not None and summary["retraining"]["stack"] == "remote"  # it retrained there
    assert "monitoring_pipeline" in shown and "Retraining on" in shown


def test_serving_is_from_this_machines_stack_on_the_same_store(cluster, tmp_path):
    config, known, _ = cluster
    env = client_environment(known, tmp_path)
    refused = run_as(env, "deploy", "--stack", "remote", "--model-name", MODEL, timeout=300)
    assert refused.returncode != 0
    assert "stacks up team_s3" in refused.stdout + refused.stderr
    registered = run_as(env, "stacks", "up", "team_s3", timeout=300)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    deployment = tmp_path / "deployment.yaml"
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "deployment.yaml").read_text())
    raw["port"], raw["front_door"]["port"] = free_port_block(), free_port_block()
    deployment.write_text(yaml.safe_dump(raw))
    deployed = run_as(env, "deploy", "--stack", "team_s3", "--model-name", MODEL, "--deployment-config",
                      str(deployment), timeout=900)  # fmt: skip
    try:
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        request = Path(env["MLOPS_STATE_DIR"]) / "requests" / f"{MODEL}.json"  # what `deploy` wrote for a first try
        answered = run_as(
            env, "predict", "--model-name", MODEL, "--input", str(request), "--deployment-config", str(deployment),
            timeout=300,
        )  # fmt: skip
        assert answered.returncode == 0, answered.stdout + answered.stderr
        assert "served by zenml" in answered.stderr  # the predictions on stdout, what answered on stderr
        assert len([float(line) for line in answered.stdout.split()]) == 3
    finally:
        run_as(env, "undeploy", "--model-name", MODEL, timeout=300)


def test_a_step_that_fails_on_a_node_shows_its_own_error(cluster, bike_slice, tmp_path):
    config, known, _ = cluster
    env = client_environment(known, tmp_path)
    broken = yaml.safe_load((PROJECT_ROOT / "configs" / "training.yaml").read_text())
    broken["training"]["estimator"]["params"]["learning_rate"] = -1.0  # sklearn refuses it when fitting
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    failed = run_as(
        env, "train", "--stack", "remote", "--config", str(tmp_path / "broken.yaml"), "--data", str(bike_slice),
        "--target", "cnt", "--model-name", "remote_broken", "--no-redeploy",
    )  # fmt: skip
    assert failed.returncode != 0
    shown = failed.stdout + failed.stderr
    assert "learning_rate" in shown and "Got -1.0" in shown, shown[-3000:]
    assert "train_model" in shown
    assert "docker compose up" not in shown  # not Docker Compose's output: the step's own error


def test_down_leaves_nothing(cluster):
    import psutil

    from workflows import remote_cluster

    config, known, _ = cluster
    family = set()
    for pid in known.pids().values():
        family |= {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    team = json.loads((Path(known.root) / "team" / "servers.json").read_text())
    family |= {team["zenml_pid"], team["mlflow_pid"]}
    remote_cluster.down(config)
    time.sleep(1)
    alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not alive, [psutil.Process(pid).cmdline() for pid in alive]
    mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines() if str(TEST_FOLDER) in line]
    assert not mounts
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{known.cgroup_parent}"))
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{known.cgroup_parent}-node-*"))  # the nodes' engines' too
    # The nodes' own engines and sshd (their processes are the engine's containers, not its children).
    named = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if known.cgroup_parent in " ".join(p.info["cmdline"] or [])
    ]
    assert not named, named
    ports = set(remote_cluster.planned_ports(config))
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    assert not listening, listening
    assert remote_cluster.running(config) is None
    assert run_cli("cluster", "status", "--remote-config", str(known.config_path)).stdout.startswith(
        "the remote set-up is not running"
    )
