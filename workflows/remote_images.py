"""The images the remote set-up runs, made from the project itself and Debian, without any public registry.

- The base image: `debootstrap --variant=minbase` from the Debian mirror apt already uses (python3 of the suite,
  venv, ca-certificates), imported into the project's engine; then a small layer with a virtual environment at
  /opt/venv and the host's CA bundle at /opt/host-ca-bundle.crt (PIP_CERT, SSL_CERT_FILE and REQUESTS_CA_BUNDLE
  point at it, so pip behind a proxy that re-signs TLS works). The root file system is cached as a tarball:
  debootstrap runs once per machine.
- The step image: ZenML builds it on that base (configs/containers.yaml: parent image, host network for the build
  and the steps) with the exact pins of the project's runtime requirements (this environment's versions, which
  constraints.txt pins), and reuses it until they change; the code travels through the artifact store.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from lifecycle.config import PROJECT_ROOT, RemoteConfig
from lifecycle.errors import LifecycleError
from workflows.remote_engine import INSTALL_HINT, Cluster, ClusterFailed, docker

CONTAINER_SETTINGS = PROJECT_ROOT / "configs" / "containers.yaml"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROJECT = "mlops-lifecycle"
REMOTE_EXTRA = "remote"
# Helpers of a developer's checkout that a step never imports.
NOT_IN_IMAGE = {"pyspark", "py4j", "h2o"}


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses (the first `URIs:` of a deb822 file, or the first `deb URL` line)."""
    files = sorted(sources.glob("sources.list.d/*")) + [sources / "sources.list"]
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            found = re.match(r"^URIs:\s*(\S+)", line) or re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if found and "security" not in found.group(1):
                return found.group(1)
    raise ClusterFailed(f"no Debian mirror in {sources}/sources.list*. Fix: configure apt (`apt-get update` works).")


def base_reference(cluster: Cluster, config: RemoteConfig) -> str:
    return f"{cluster.registry}/{config.image.repository}-base:{config.image.suite}"


def _image_exists(cluster: Cluster, reference: str) -> bool:
    return docker(cluster.docker_host, "image", "inspect", reference, timeout=30, check=False).returncode == 0


def _rootfs_tarball(cluster: Cluster, config: RemoteConfig) -> Path:
    """The suite's minimal root file system as a tarball, made once (debootstrap takes a minute or more)."""
    image = config.image
    key = hashlib.sha256(" ".join([image.suite, *image.packages]).encode()).hexdigest()[:10]
    # Beside the set-up's folder, shared by every set-up of this checkout (debootstrap once).
    tarball = Path(cluster.root).parent / "remote-cache" / f"{image.suite}-minbase-{key}.tar"
    if tarball.is_file():
        return tarball
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).is_file():
        raise ClusterFailed(f"debootstrap is not installed. Fix: {INSTALL_HINT} (`make remote-up` does it).")
    rootfs = tarball.parent / f"rootfs-{key}"
    if rootfs.exists():
        shutil.rmtree(rootfs)  # what an interrupted run left
    rootfs.mkdir(parents=True)
    command = [debootstrap, "--variant=minbase", f"--include={','.join(image.packages)}", image.suite]
    command += [str(rootfs), debian_mirror()]
    log = Path(cluster.root) / "logs" / "debootstrap.log"
    with open(log, "w") as output:
        result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=image.debootstrap_timeout)
    if result.returncode != 0:
        shutil.rmtree(rootfs, ignore_errors=True)
        tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-6:])
        raise ClusterFailed(f"debootstrap of {image.suite} failed (log {log}):\n{tail}")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (rootfs / cache).glob("*"):
            if item.is_file():
                item.unlink()
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
    partial.rename(tarball)
    shutil.rmtree(rootfs)
    return tarball


BASE_DOCKERFILE = """FROM {imported}
COPY host-ca-bundle.crt /opt/host-ca-bundle.crt
ENV PIP_CERT=/opt/host-ca-bundle.crt SSL_CERT_FILE=/opt/host-ca-bundle.crt \\
    REQUESTS_CA_BUNDLE=/opt/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \\
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LANG=C.UTF-8 PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/venv
"""


def build_base_image(cluster: Cluster, config: RemoteConfig) -> dict[str, Any]:
    """The base image in the engine and the registry (made only when missing): its reference and timings."""
    reference = base_reference(cluster, config)
    if _image_exists(cluster, reference):
        return {"image": reference, "built": False}
    started = time.monotonic()
    tarball = _rootfs_tarball(cluster, config)
    bootstrapped = time.monotonic()
    imported = f"{config.image.base_name}:{config.image.suite}"
    with open(tarball, "rb") as stream:
        result = subprocess.run(
            ["docker", "import", "-", imported],
            stdin=stream,
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_HOST": cluster.docker_host},
            timeout=600,
        )
    if result.returncode != 0:
        raise ClusterFailed(f"`docker import` of {tarball} failed: {result.stderr.strip()[-500:]}")
    context = Path(cluster.root) / "image" / "base"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(BASE_DOCKERFILE.format(imported=imported))
    ca_bundle = Path(os.environ.get("SSL_CERT_FILE") or HOST_CA_BUNDLE)
    shutil.copyfile(ca_bundle if ca_bundle.is_file() else HOST_CA_BUNDLE, context / "host-ca-bundle.crt")
    legacy = {**os.environ, "DOCKER_HOST": cluster.docker_host, "DOCKER_BUILDKIT": "0"}  # the CLI has no buildx
    result = subprocess.run(
        ["docker", "build", "--network", "host", "-t", reference, str(context)],
        capture_output=True,
        text=True,
        env=legacy,
        timeout=900,
    )
    if result.returncode != 0:
        raise ClusterFailed(f"building {reference} failed: {(result.stderr or result.stdout).strip()[-800:]}")
    docker(cluster.docker_host, "push", reference, timeout=600)
    return {
        "image": reference,
        "built": True,
        "debootstrap_seconds": round(bootstrapped - started, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def prepare(cluster: Cluster, config: RemoteConfig) -> dict[str, Any]:
    """What `cluster up` makes once the services run: the base image, and the step image's pins file."""
    from workflows.remote_nodes import start_nodes

    made = build_base_image(cluster, config)
    write_requirements(cluster)
    cluster.nodes = start_nodes(cluster, config, base_reference(cluster, config))
    return made


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins(project: str = PROJECT, extras: tuple[str, ...] = (REMOTE_EXTRA,)) -> list[str]:
    """`name==version` for every package the project needs at run time (its dependencies and the `remote` extra,
    followed through their own requirements and extras), at the versions installed here: constraints.txt's."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    wanted: list[tuple[str, tuple[str, ...]]] = [(project, extras)]
    seen: set[tuple[str, str]] = set()
    while wanted:
        name, with_extras = wanted.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise LifecycleError(
                f"`{name}` is not installed here, so its version for the step image is unknown. Fix: "
                "pip install -c constraints.txt -e '.[remote]' (`make remote-env`)."
            ) from exc
        key = _canonical(dist.metadata["Name"])
        if key != _canonical(project):
            pins[key] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in with_extras] or [{"extra": ""}]
            if requirement.marker is not None and not any(requirement.marker.evaluate(e) for e in environments):
                continue
            child = _canonical(requirement.name)
            if child in NOT_IN_IMAGE:
                continue
            for extra in ("", *sorted(requirement.extras)):
                if (child, extra) not in seen:
                    seen.add((child, extra))
                    wanted.append((child, tuple(sorted(requirement.extras))))
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def write_requirements(cluster: Cluster) -> Path:
    """The step image's requirements file (rewritten only when the pins change: ZenML's build reuse compares it)."""
    path = Path(cluster.root) / "image" / "requirements.txt"
    text = "".join(f"{line}\n" for line in runtime_pins())
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def container_settings(
    cluster: Cluster, config: RemoteConfig, flavor: str = "local_docker", path: Path = CONTAINER_SETTINGS
) -> dict[str, Any]:
    """configs/containers.yaml with the set-up's registry and files filled in, for an orchestrator of `flavor`:
    ZenML `settings` for a run."""
    text = path.read_text()
    text = text.replace("{base_image}", base_reference(cluster, config))
    text = text.replace("{requirements}", str(Path(cluster.root) / "image" / "requirements.txt"))
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LifecycleError(f"{path} is not valid YAML: {exc}. Fix the file.") from exc
    unknown = set(raw) - {"docker", "orchestrator", "step_operator"}
    if unknown:
        raise LifecycleError(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}; known: docker, orchestrator, step_operator."
        )
    by_flavor = raw.get("orchestrator") or {}
    if flavor not in by_flavor:
        raise LifecycleError(
            f"{path} has no `orchestrator.{flavor}` section for this stack's orchestrator. Fix: add one "
            f"(known: {', '.join(sorted(by_flavor))})."
        )
    raw.pop("step_operator", None)  # which steps it runs: `step_operator_options`
    return {**raw, "orchestrator": dict(by_flavor[flavor] or {})}


def step_operator_options(step_operator: str, path: Path = CONTAINER_SETTINGS) -> dict[str, dict[str, Any]]:
    """Per-step options that send configs/containers.yaml's `step_operator.steps` to the stack's step operator
    (the `remote` stack's node 2), with its settings."""
    raw = yaml.safe_load(path.read_text()) or {}
    section = raw.get("step_operator") or {}
    settings = {"step_operator": dict(section.get("settings") or {})}
    return {step: {"step_operator": step_operator, "settings": settings} for step in section.get("steps") or []}


def with_data_mounts(
    settings: dict[str, Any],
    data_files: list[str],
    flavor: str = "local_docker",
    config: RemoteConfig | None = None,
    also: list[str] | None = None,
) -> dict[str, Any]:
    """The folders of the run's input files mounted read-only, at the same paths, in every step's container (the
    steps read the same files as on the default stack: same fingerprint, same rows). On a node (`ssh`), the files
    must be in a folder the nodes share (configs/remote.yaml `nodes.shared_folders`)."""
    folders = sorted({str(Path(file).resolve().parent) for file in data_files if file} | set(also or []))
    if not folders:
        return settings
    orchestrator = dict(settings.get("orchestrator") or {})
    if flavor == "ssh":
        from workflows.remote_nodes import shared_folders, unshared

        shared = shared_folders(config) if config is not None else []
        outside = unshared([file for file in data_files if file] + list(also or []), shared)
        if outside:
            raise ClusterFailed(
                f"{', '.join(outside)} is not in a folder the nodes share ({', '.join(shared) or 'none'}), so no "
                "step on a node can read it. Fix: move it under one of them, or add its folder to "
                "`nodes.shared_folders` in configs/remote.yaml and restart the set-up (`python run.py cluster "
                "down && python run.py cluster up`)."
            )
        orchestrator["mounts"] = {**dict(orchestrator.get("mounts") or {}), **{folder: folder for folder in folders}}
        return {**settings, "orchestrator": orchestrator}
    run_args = dict(orchestrator.get("run_args") or {})
    volumes = dict(run_args.get("volumes") or {})
    volumes.update({folder: {"bind": folder, "mode": "ro"} for folder in folders})
    run_args["volumes"] = volumes
    orchestrator["run_args"] = run_args
    return {**settings, "orchestrator": orchestrator}


def running_settings(
    data_files: list[str] | None = None,
    remote_path: str | Path | None = None,
    flavor: str = "local_docker",
    step_operator: bool = False,
) -> dict[str, Any]:
    """The container settings of the running remote set-up (with the input files' folders mounted), or one line
    saying to start it. With a `step_operator` (SSH onto another node), the steps on the first node also see the
    set-up's SSH key and known-hosts file: the step operator signs in to the other node from there."""
    from lifecycle.config import DEFAULT_REMOTE_CONFIG, load_remote_config
    from workflows.remote_cluster import running

    config = load_remote_config(remote_path or os.environ.get("MLOPS_REMOTE_CONFIG") or DEFAULT_REMOTE_CONFIG)
    cluster = running(config)
    if cluster is None:
        raise ClusterFailed(
            "this stack runs steps in containers on the remote set-up, which is not running. Fix: "
            "`python run.py cluster up`, then `source .state/remote/remote.env` and run again."
        )
    if os.environ.get("DOCKER_HOST") != cluster.docker_host:
        raise ClusterFailed(
            f"DOCKER_HOST is not the remote set-up's engine ({cluster.docker_host}). Fix: "
            f"`source {Path(cluster.root) / 'remote.env'}` and run again."
        )
    write_requirements(cluster)
    if flavor == "ssh" and config.nodes.count == 0:
        raise ClusterFailed(
            "this stack runs steps on the remote set-up's nodes, and it has none (configs/remote.yaml "
            "`nodes.count: 0`). Fix: set a count, then `python run.py cluster up`."
        )
    if step_operator and config.nodes.count < 2:
        raise ClusterFailed(
            "this stack sends steps to a second node (its step operator), and the remote set-up has "
            f"{config.nodes.count}. Fix: `nodes.count: 2` in configs/remote.yaml, then `python run.py cluster up`."
        )
    keys = [str(Path(cluster.root) / "ssh")] if step_operator else []
    return with_data_mounts(container_settings(cluster, config, flavor), data_files or [], flavor, config, keys)
