"""The remote set-up on one machine (`python run.py cluster up | status | down`): a Docker engine of the project's
own (Debian's docker.io, with its own data-root, exec-root, pidfile and socket, started with no bridge, no iptables
and no forwarding: the host's network and firewall are never touched), a registry (docker-registry), an S3 object
store (SeaweedFS's `weed server`, every port explicit) with a bucket for the artifacts, and the team's ZenML and
MLflow servers (workflows/team.py; MLflow's artifacts in the bucket). Everything listens on loopback.

Each process is recorded by its id (cluster.json) and stopped by it; `down` also unmounts what the engine mounted
under its exec-root and removes the engine's empty cgroup folders, so nothing is left behind. The data (images,
objects, the servers' databases, passwords) stays in the folder for the next `up`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from lifecycle.config import DEFAULT_REMOTE_CONFIG, RemoteConfig
from lifecycle.environment import state_dir
from lifecycle.project_state import atomic_write_text, private_folder, write_json
from serving.processes import process_tree, server_alive, stop_process
from workflows import object_store
from workflows.remote_engine import ENGINE_FLAGS, INSTALL_HINT, Cluster, ClusterFailed, docker
from workflows.spark_cluster import port_free

__all__ = ["ENGINE_FLAGS", "INSTALL_HINT", "Cluster", "ClusterFailed", "docker"]  # with the functions below


def cluster_root(config: RemoteConfig) -> Path:
    return state_dir() / config.folder


def _record(root: Path) -> Path:
    return root / "cluster.json"


def environment_file(root: Path) -> Path:
    """What a client exports to use the set-up (0600: it holds the passwords)."""
    return root / "remote.env"


def _tool(name: str, what: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").is_file() else "")
    if not found:
        raise ClusterFailed(f"{what} is not installed (no `{name}`). Fix: {INSTALL_HINT} (`make remote-up` does it).")
    return found


def check_tools() -> dict[str, str]:
    """Every program `up` needs, or one line naming what is missing and how to install it."""
    return {
        "dockerd": _tool("dockerd", "Debian's docker.io (the engine)"),
        "docker": _tool("docker", "the Docker CLI"),
        "docker-registry": _tool("docker-registry", "Debian's docker-registry"),
        "weed": object_store.weed_binary(),
    }


def _cgroup_parent(root: Path) -> str:
    """The engine's own cgroup folder name (one per set-up folder), so `down` removes only what it made."""
    return "mlops-remote-" + hashlib.sha256(str(root).encode()).hexdigest()[:8]


def planned_ports(config: RemoteConfig) -> list[int]:
    from workflows.remote_nodes import node_ports

    ports = [config.registry.port, *object_store.ports(config.object_store)]
    return ports + [config.servers.zenml_port, config.servers.mlflow_port] + node_ports(config)


def running(config: RemoteConfig) -> Cluster | None:
    """The recorded set-up when all its processes still run."""
    record = _record(cluster_root(config))
    if not record.is_file():
        return None
    known = Cluster(**json.loads(record.read_text()))
    from workflows import team
    from workflows.remote_nodes import nodes_running

    servers_up = team.running(Path(known.root) / "team") is not None
    processes_up = servers_up and all(server_alive(pid) for pid in known.pids().values())
    return known if processes_up and nodes_running(known, config) else None


def _spawn(command: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env or dict(os.environ),
            start_new_session=True,
        )


def _wait(check, process: subprocess.Popen, log: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-8:]) if log.is_file() else ""
            raise ClusterFailed(f"the {what} did not start (log {log}):\n{tail}")
        time.sleep(0.3)


def _start_engine(root: Path, config: RemoteConfig, tools: dict[str, str], cluster: Cluster) -> None:
    engine = private_folder(root / "engine")
    daemon_json = engine / "daemon.json"
    atomic_write_text(daemon_json, "{}\n", mode=0o600)  # not the machine's /etc/docker/daemon.json
    command = [tools["dockerd"], *ENGINE_FLAGS, f"--cgroup-parent=/{cluster.cgroup_parent}"]
    command += ["--data-root", str(engine / "data"), "--exec-root", str(engine / "exec")]
    command += ["--pidfile", str(engine / "docker.pid"), "-H", cluster.docker_host]
    command += ["--config-file", str(daemon_json)]
    process = _spawn(command, root / "logs" / "engine.log", root)
    cluster.engine_pid = process.pid
    write_json(_record(root), asdict(cluster))

    def answers() -> bool:
        return (
            docker(
                cluster.docker_host, "version", "--format", "{{.Server.Version}}", timeout=10, check=False
            ).returncode
            == 0
        )

    _wait(answers, process, root / "logs" / "engine.log", config.engine.startup_timeout, "Docker engine (dockerd)")


def _http_ok(url: str, expect: tuple[int, ...] = (200,)) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status in expect
    except urllib.error.HTTPError as error:
        return error.code in expect
    except OSError:
        return False


def _start_registry(root: Path, config: RemoteConfig, tools: dict[str, str], cluster: Cluster) -> None:
    folder = private_folder(root / "registry")
    settings = folder / "config.yml"
    atomic_write_text(
        settings,
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: '{cluster.registry}'}}\n",
        mode=0o600,
    )
    process = _spawn([tools["docker-registry"], "serve", str(settings)], root / "logs" / "registry.log", folder)
    cluster.registry_pid = process.pid
    write_json(_record(root), asdict(cluster))
    _wait(lambda: _http_ok(f"http://{cluster.registry}/v2/"), process, root / "logs" / "registry.log", 30, "registry")


def store_credentials(root: Path) -> object_store.StoreCredentials:
    return object_store.credentials_in(root)


def _start_store(root: Path, config: RemoteConfig, cluster: Cluster) -> None:
    process, _ = object_store.start(
        root / "objects", config.host, config.object_store, root / "logs" / "object-store.log"
    )
    cluster.store_pid = process.pid
    write_json(_record(root), asdict(cluster))


def s3_client(cluster: Cluster):
    """A boto3 S3 client of the set-up's object store."""
    return object_store.s3_client(cluster.s3_endpoint, store_credentials(Path(cluster.root)))


def store_environment(cluster: Cluster) -> dict[str, str]:
    """What a program that reads or writes the bucket (MLflow's server, s3fs, boto3) exports."""
    return object_store.environment(cluster.s3_endpoint, store_credentials(Path(cluster.root)))


def environment(cluster: Cluster) -> dict[str, str]:
    """What a client exports to use the set-up: the engine, the servers (with credentials), the bucket."""
    from workflows import team

    servers = team.running(Path(cluster.root) / "team")
    exports = servers.environment() if servers else {}
    # The serving machine's stack (stacks/team_s3.yaml: this machine's orchestrator and deployer) on the same
    # store, bucket and MLflow: where a model trained on the nodes is served.
    exports["TEAM_ARTIFACT_STORE"] = f"s3://{cluster.bucket}"
    exports["TEAM_S3_ENDPOINT"] = cluster.s3_endpoint
    from lifecycle.config import load_remote_config
    from workflows.remote_nodes import environment as node_environment

    config = load_remote_config(cluster.config_path or DEFAULT_REMOTE_CONFIG)
    return {
        **node_environment(cluster, config),
        **exports,
        **store_environment(cluster),
        "DOCKER_HOST": cluster.docker_host,
        "REMOTE_REGISTRY": cluster.registry,
        "REMOTE_S3_ENDPOINT": cluster.s3_endpoint,
        "REMOTE_ARTIFACT_BUCKET": f"s3://{cluster.bucket}",
        "MLOPS_REMOTE_CONFIG": cluster.config_path,
    }


def _check_ports(config: RemoteConfig) -> None:
    taken = [port for port in planned_ports(config) if not port_free(config.host, port)]  # TIME_WAIT is free
    if taken:
        raise ClusterFailed(
            f"port{'s' if len(taken) > 1 else ''} {', '.join(map(str, taken))} on {config.host} "
            f"{'are' if len(taken) > 1 else 'is'} taken by another program. Fix: stop it, or set other ports in "
            "configs/remote.yaml."
        )


def up(
    config: RemoteConfig,
    python: str = "",
    config_path: str | Path = "",
    prepare: Callable[[Cluster, RemoteConfig], dict] | None = None,
) -> Cluster:
    """Start the whole set-up (or return it when it already runs); a part that fails stops what was started.
    `prepare` runs last, on the running set-up (the images: workflows/remote_images.py), and returns what it made."""
    from workflows import team

    root = cluster_root(config)
    known = running(config)
    if known is not None:
        return known
    if _record(root).is_file():
        down(config)  # what a crashed or half-stopped set-up left
    tools = check_tools()
    _check_ports(config)
    root.parent.mkdir(parents=True, exist_ok=True)
    root = private_folder(root)
    cluster = Cluster(
        root=str(root),
        docker_host=f"unix://{root / 'engine' / 'docker.sock'}",
        registry=f"{config.host}:{config.registry.port}",
        s3_endpoint=f"http://{config.host}:{config.object_store.s3_port}",
        bucket=config.object_store.bucket,
        zenml_url=f"http://127.0.0.1:{config.servers.zenml_port}",
        mlflow_url=f"http://127.0.0.1:{config.servers.mlflow_port}",
        cgroup_parent=_cgroup_parent(root),
        ports=planned_ports(config),
        config_path=str(Path(config_path).resolve()) if config_path else str(DEFAULT_REMOTE_CONFIG),
    )
    write_json(_record(root), asdict(cluster))
    try:
        _start_engine(root, config, tools, cluster)
        _start_registry(root, config, tools, cluster)
        _start_store(root, config, cluster)
        team.up(
            root / "team",
            zenml_port=config.servers.zenml_port,
            mlflow_port=config.servers.mlflow_port,
            python=python,
            mlflow_artifacts=f"s3://{cluster.bucket}/mlflow",
            mlflow_environment=store_environment(cluster),
        )
        if prepare is not None:
            cluster.base_image = prepare(cluster, config)
            write_json(_record(root), asdict(cluster))
    except BaseException:
        down(config)
        raise
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment(cluster).items())
    atomic_write_text(environment_file(root), exports, mode=0o600)
    return cluster


def _stop_engine(cluster: Cluster, stopped: list[str]) -> None:
    pid = cluster.engine_pid
    if not server_alive(pid):
        return
    containers = docker(cluster.docker_host, "ps", "-aq", timeout=30, check=False).stdout.split()
    if containers:
        docker(cluster.docker_host, "rm", "-f", *containers, timeout=120, check=False)
        stopped.append(f"{len(containers)} container(s)")
    os.kill(pid, signal.SIGTERM)  # dockerd alone first: it stops its containerd itself
    deadline = time.monotonic() + 30
    while server_alive(pid) and process_tree(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    stop_process(pid, grace=5)  # what is still there
    stopped.append(f"Docker engine (pid {pid})")


def _engine_mounts(root: Path) -> list[str]:
    """Mount points under the set-up's folder (the engine's netns and overlay mounts), deepest first."""
    prefix = str(root) + "/"
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def _cgroup_folders(parent: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if not parent or not base.is_dir():
        return []
    return [controller / parent for controller in base.iterdir() if (controller / parent).is_dir()]


def _clean_engine_leftovers(root: Path, cluster: Cluster) -> list[str]:
    from workflows.remote_nodes import node_cgroup_folders

    problems = []
    for point in _engine_mounts(root):
        unmounted = subprocess.run(["umount", point], capture_output=True).returncode == 0
        if not unmounted and subprocess.run(["umount", "-l", point], capture_output=True).returncode != 0:
            problems.append(f"mount {point}")
    for folder in node_cgroup_folders(cluster) + _cgroup_folders(cluster.cgroup_parent):
        for child in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):  # a cgroup folder holds only its control files
                    child.rmdir()
        try:
            folder.rmdir()
        except OSError:
            problems.append(f"cgroup {folder}")
    return problems


def down(config: RemoteConfig) -> list[str]:
    """Stop everything by its recorded process id (containers first, then the engine), unmount the engine's
    mounts and remove its cgroup folders. The data stays for the next `up`."""
    from workflows import team

    root = cluster_root(config)
    record = _record(root)
    stopped = [f"team server: {what}" for what in team.down(root / "team")]
    if not record.is_file():
        return stopped
    known = Cluster(**json.loads(record.read_text()))
    if server_alive(known.engine_pid):
        from workflows.remote_nodes import stop_nodes

        stop_nodes(known, stopped)  # their engines stop their own containers first
    _stop_engine(known, stopped)
    for what, pid in (("object store", known.store_pid), ("registry", known.registry_pid)):
        if server_alive(pid):
            stop_process(pid, grace=10)
            stopped.append(f"{what} (pid {pid})")
    leftover = [f"{what} (pid {pid})" for what, pid in known.pids().items() if server_alive(pid)]
    problems = leftover + _clean_engine_leftovers(root, known)
    if problems:
        raise ClusterFailed(f"still there after `down`: {', '.join(problems)}. Fix: stop them by hand and run again.")
    record.unlink()
    return stopped


def describe(cluster: Cluster) -> str:
    env_file = environment_file(Path(cluster.root))
    return "\n".join(
        [
            f"Docker engine: {cluster.docker_host} (pid {cluster.engine_pid})",
            f"Registry: {cluster.registry} (pid {cluster.registry_pid})",
            f"Object store (S3): {cluster.s3_endpoint}, bucket s3://{cluster.bucket} (pid {cluster.store_pid})",
            f"ZenML server: {cluster.zenml_url}; MLflow server: {cluster.mlflow_url} (artifacts in the bucket)",
            f"Steps' base image: {cluster.base_image.get('image', '?')}"
            + (f" (built in {cluster.base_image['seconds']} s)" if cluster.base_image.get("built") else ""),
            *(
                [f"Nodes (the `remote` stack): {cluster.nodes['nodes']}, SSH on 127.0.0.1:{cluster.nodes['ports']}"]
                if cluster.nodes.get("nodes")
                else []
            ),
            "Addresses and passwords (0600), for a shell to source:",
            f"  source {shlex.quote(str(env_file))}",
            f"Logs: {Path(cluster.root) / 'logs'}",
            "Stop it all: python run.py cluster down",
        ]
    )
