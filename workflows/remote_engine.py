"""What every part of the remote set-up shares: its record (`Cluster`, kept in cluster.json), its error, and the
Docker CLI against the set-up's own engine (workflows/remote_cluster.py starts it; remote_images.py and
remote_nodes.py use it)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from lifecycle.errors import LifecycleError

INSTALL_HINT = "apt-get install docker.io docker-registry debootstrap"
ENGINE_FLAGS = [
    # No bridge, no NAT, no forwarding, no iptables rules: containers use the host's (loopback) network.
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    "--ip-forward=false",
    "--ip-masq=false",
    "--userland-proxy=false",
    "--host-gateway-ip=127.0.0.1",
]


class ClusterFailed(LifecycleError):
    """The remote set-up could not be started, reached or stopped."""


@dataclass
class Cluster:
    root: str
    docker_host: str
    registry: str  # host:port, what image names start with
    s3_endpoint: str
    bucket: str
    zenml_url: str
    mlflow_url: str
    engine_pid: int = 0
    registry_pid: int = 0
    store_pid: int = 0
    cgroup_parent: str = ""
    ports: list[int] = field(default_factory=list)
    config_path: str = ""  # the configs/remote.yaml it was started from (the runs read the same)
    base_image: dict = field(default_factory=dict)  # the step image's base: reference, built now?, seconds
    nodes: dict = field(default_factory=dict)  # the `remote` stack's nodes: count, image, seconds

    def pids(self) -> dict[str, int]:
        return {"engine": self.engine_pid, "registry": self.registry_pid, "object store": self.store_pid}


def docker(docker_host: str, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """The Docker CLI against the project's engine."""
    env = {**os.environ, "DOCKER_HOST": docker_host}
    result = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise ClusterFailed(f"`docker {' '.join(args)}` failed: {(result.stderr or result.stdout).strip()[-800:]}")
    return result
