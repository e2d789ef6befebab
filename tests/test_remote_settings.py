"""The remote stacks' settings, without a set-up: which orchestrator section of configs/containers.yaml a run gets,
which input files a node can read, which steps go to the step operator, and the stack file's environment values
compared with what a server stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifecycle.config import PROJECT_ROOT, RemoteConfig
from lifecycle.errors import LifecycleError
from stacks.manage import _same
from workflows.remote_engine import Cluster, ClusterFailed
from workflows.remote_images import container_settings, step_operator_options, with_data_mounts


def cluster(tmp_path: Path) -> Cluster:
    return Cluster(
        root=str(tmp_path / "remote"),
        docker_host=f"unix://{tmp_path}/docker.sock",
        registry="127.0.0.1:5150",
        s3_endpoint="http://127.0.0.1:9436",
        bucket="zenml-artifacts",
        zenml_url="http://127.0.0.1:8248",
        mlflow_url="http://127.0.0.1:5160",
    )


def test_each_orchestrator_gets_its_own_section(tmp_path):
    docker = container_settings(cluster(tmp_path), RemoteConfig(), "local_docker")
    ssh = container_settings(cluster(tmp_path), RemoteConfig(), "ssh")
    assert docker["orchestrator"]["run_args"]["network_mode"] == "host"
    assert "run_args" not in ssh["orchestrator"]  # the SSH orchestrator's settings have no such field
    assert (
        docker["docker"]["parent_image"]
        == ssh["docker"]["parent_image"]
        == "127.0.0.1:5150/mlops-lifecycle-base:bookworm"
    )
    assert "step_operator" not in ssh
    with pytest.raises(LifecycleError, match="no `orchestrator.kubernetes` section"):
        container_settings(cluster(tmp_path), RemoteConfig(), "kubernetes")


def test_a_node_reads_only_files_in_the_shared_folders(tmp_path):
    config = RemoteConfig.model_validate({"nodes": {"count": 2, "shared_folders": ["."]}})
    inside = PROJECT_ROOT / "data" / "bike_sharing_hourly.csv.gz"
    mounted = with_data_mounts({"orchestrator": {}}, [str(inside)], "ssh", config)
    assert mounted["orchestrator"]["mounts"] == {str(inside.parent): str(inside.parent)}
    outside = tmp_path / "mine.csv"
    with pytest.raises(ClusterFailed, match="not in a folder the nodes share") as refused:
        with_data_mounts({"orchestrator": {}}, [str(outside)], "ssh", config)
    assert "nodes.shared_folders" in str(refused.value)


def test_the_docker_stack_mounts_the_input_folder_read_only(tmp_path):
    data = tmp_path / "mine.csv"
    mounted = with_data_mounts({"orchestrator": {"run_args": {"network_mode": "host"}}}, [str(data)])
    assert mounted["orchestrator"]["run_args"]["volumes"] == {str(tmp_path): {"bind": str(tmp_path), "mode": "ro"}}


def test_the_training_step_goes_to_the_step_operator_on_the_hosts_network():
    options = step_operator_options("remote_node_2")
    assert set(options) == {"train_model"}
    assert options["train_model"]["step_operator"] == "remote_node_2"
    assert options["train_model"]["settings"]["step_operator"]["docker_run_args"] == ["--network", "host"]


def test_nodes_ports_must_not_collide_with_the_set_ups():
    with pytest.raises(ValueError, match="share a port"):
        RemoteConfig.model_validate({"registry": {"port": 2233}, "nodes": {"count": 2, "ssh_port": 2232}})
    RemoteConfig.model_validate({"registry": {"port": 2234}, "nodes": {"count": 2, "ssh_port": 2232}})


@pytest.mark.parametrize(
    ("registered", "wanted", "same"),
    [(2232, "2232", True), (True, "true", True), (2232, "2233", False), ("2232", 2232, False), (None, "None", False)],
)
def test_a_value_from_the_environment_matches_the_number_a_server_stores(registered, wanted, same):
    assert _same(registered, wanted) is same
