"""The remote set-up for real (`make test-remote`): `cluster up` starts the project's own Docker engine, registry,
object store and ZenML and MLflow servers; the training pipeline runs on the `docker` stack with each step in a
container built from the project, artifacts in the bucket, the MLflow run and model version on the MLflow server;
its result is the default stack's for the same seed; a step that fails in a container shows its own error; `down`
leaves no process, mount, cgroup folder or listening port.

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
from conftest import PROJECT_ROOT, run_cli

pytestmark = [pytest.mark.remote, pytest.mark.integration]

TEST_FOLDER = PROJECT_ROOT / ".state" / "remote-test"
# Ports of their own, beside configs/remote.yaml's (a developer's own set-up may be running).
TEST_PORTS = {
    "registry": {"port": 5250},
    "object_store": {"master_port": 9533, "volume_port": 9534, "filer_port": 9535, "s3_port": 9536},
    "servers": {"zenml_port": 8348, "mlflow_port": 5260},
}


def _missing_programs() -> list[str]:
    return [name for name in ("dockerd", "docker-registry", "debootstrap") if not shutil.which(name)]


if _missing_programs():
    pytest.skip(f"{', '.join(_missing_programs())} missing: `make test-remote` installs them", allow_module_level=True)


@pytest.fixture(scope="module")
def remote_config(tmp_path_factory) -> Path:
    raw = yaml.safe_load((PROJECT_ROOT / "configs" / "remote.yaml").read_text())
    for section, values in TEST_PORTS.items():
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


def test_train_on_the_docker_stack_runs_in_containers_and_matches_the_default_stack(
    cluster, bike_slice, tmp_path, monkeypatch
):
    from workflows import remote_cluster

    config, known, _ = cluster
    env = client_environment(known, tmp_path)
    registered = run_as(env, "stacks", "up", "docker", timeout=300)
    assert registered.returncode == 0, registered.stdout + registered.stderr
    common = ["--data", str(bike_slice), "--target", "cnt", "--seed", "7", "--no-redeploy"]
    started = time.monotonic()
    remote = run_as(
        env,
        "train",
        "--stack",
        "docker",
        "--model-name",
        "remote_bikes",
        *common,
        "--summary-json",
        str(tmp_path / "docker.json"),
    )
    docker_seconds = time.monotonic() - started
    assert remote.returncode == 0, remote.stdout[-3000:] + remote.stderr[-3000:]
    started = time.monotonic()
    local = run_cli(
        "train", "--model-name", "remote_bikes", *common, "--summary-json", str(tmp_path / "local.json"), timeout=1800
    )
    local_seconds = time.monotonic() - started
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    print(f"train on docker: {docker_seconds:.0f} s; on default: {local_seconds:.0f} s")

    on_docker, on_default = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("docker", "local"))
    assert on_docker["stack"] == "docker"
    assert on_docker["data"] == on_default["data"]  # same file, fingerprint, rows
    assert on_docker["metrics"] == on_default["metrics"]  # same seed, same model
    assert on_docker["promoted"] and on_default["promoted"]

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
    versions = tracker.search_model_versions("name='remote_bikes'")
    assert versions, "no registered version of remote_bikes on the MLflow server"
    assert tracker.get_run(versions[0].run_id).info.status == "FINISHED"


def test_a_step_that_fails_in_a_container_shows_its_own_error(cluster, bike_slice, tmp_path):
    config, known, _ = cluster
    env = client_environment(known, tmp_path)
    broken = yaml.safe_load((PROJECT_ROOT / "configs" / "training.yaml").read_text())
    broken["training"]["estimator"]["params"]["learning_rate"] = -1.0  # sklearn refuses it when fitting
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    failed = run_as(
        env,
        "train",
        "--stack",
        "docker",
        "--config",
        str(tmp_path / "broken.yaml"),
        "--data",
        str(bike_slice),
        "--target",
        "cnt",
        "--model-name",
        "remote_broken",
        "--no-redeploy",
    )
    assert failed.returncode != 0
    shown = failed.stdout + failed.stderr
    assert "learning_rate" in shown, shown[-3000:]
    assert "train_model" in shown


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
    ports = set(remote_cluster.planned_ports(config))
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port in ports]
    assert not listening, listening
    assert remote_cluster.running(config) is None
    assert run_cli("cluster", "status", "--remote-config", str(known.config_path)).stdout.startswith(
        "the remote set-up is not running"
    )
