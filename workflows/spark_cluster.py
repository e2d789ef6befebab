"""The project's own Spark standalone cluster: a master and N workers started with `spark-class` (from the pyspark
package, on this machine's Java) on loopback addresses, recorded by process id and stopped by process id.

No port is left open beyond what the cluster needs: the master's REST submission server (6066) is off, the master's
and workers' web UIs listen on loopback only, on ports the system picks, and the drivers this project starts run
without a UI (lifecycle/spark_engine.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lifecycle.config import SparkClusterConfig, SparkConfig
from lifecycle.environment import state_dir
from lifecycle.errors import LifecycleError
from serving.processes import process_tree, server_alive, stop_process

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkClusterFailed(LifecycleError):
    """The cluster could not be started, reached or stopped."""


@dataclass
class SparkCluster:
    master_url: str
    master_pid: int
    worker_pids: list[int] = field(default_factory=list)
    worker_hosts: list[str] = field(default_factory=list)
    root: str = ""

    def pids(self) -> list[int]:
        return [self.master_pid, *self.worker_pids]


def spark_root() -> Path:
    return state_dir() / "spark"


def _record(root: Path) -> Path:
    return root / "cluster.json"


def spark_class() -> Path:
    """`spark-class` of the installed pyspark; a clear error when pyspark (the `spark` extra) is missing."""
    try:
        import pyspark
    except ImportError as exc:
        raise SparkClusterFailed(
            "pyspark is not installed. Fix: pip install -c constraints.txt -e '.[spark]' (make test installs it)."
        ) from exc
    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _environment(host: str, extra: dict[str, str]) -> dict[str, str]:
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": host,  # every socket of the daemon, web UIs included, on this address
        "SPARK_NO_DAEMONIZE": "1",
        "PYSPARK_PYTHON": sys.executable,  # executors' Python workers: this environment (the project, sklearn)
        **extra,
    }
    env.pop("SPARK_HOME", None)  # the pyspark package's own
    return env


def _start(root: Path, name: str, args: list[str], host: str, extra: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log = root / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as output:
        process = subprocess.Popen(
            [str(spark_class()), *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment(host, extra),
            cwd=root,
            start_new_session=True,
        )
    return process, log


def _wait_for(log: Path, process: subprocess.Popen, needle: str, deadline: float, what: str) -> None:
    while True:
        text = log.read_text(errors="replace") if log.is_file() else ""
        if needle in text:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(text.strip().splitlines()[-8:])
            raise SparkClusterFailed(f"the Spark {what} did not start (log {log}):\n{tail}")
        time.sleep(0.3)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def running(root: Path | None = None) -> SparkCluster | None:
    """The recorded cluster when its master still runs (a record outlives a reboot; pids are reused)."""
    record = _record(root or spark_root())
    if not record.is_file():
        return None
    known = SparkCluster(**json.loads(record.read_text()))
    return known if server_alive(known.master_pid) else None


def up(config: SparkClusterConfig, root: Path | None = None) -> SparkCluster:
    """Start the master and the workers (or return the cluster already running), each worker registered."""
    root = root or spark_root()
    known = running(root)
    if known is not None:
        return known
    if _record(root).is_file():
        down(root)  # what a crashed cluster left
    if not port_free(config.host, config.port):
        raise SparkClusterFailed(
            f"port {config.port} on {config.host} is taken. Fix: set cluster.port in configs/spark.yaml to a free one."
        )
    deadline = time.monotonic() + config.startup_timeout
    master, master_log = _start(
        root,
        "master",
        [MASTER_CLASS, "--host", config.host, "--port", str(config.port), "--webui-port", "0"],
        config.host,
        {"SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"},
    )
    master_url = f"spark://{config.host}:{config.port}"
    cluster = SparkCluster(master_url=master_url, master_pid=master.pid, root=str(root))
    _record(root).write_text(json.dumps(asdict(cluster)))
    try:
        _wait_for(master_log, master, "I have been elected leader", deadline, "master")
        started = []
        for index in range(config.workers):
            host = _worker_host(config.host, index)
            work = root / "work" / f"worker-{index}"
            work.mkdir(parents=True, exist_ok=True)
            worker, log = _start(
                root,
                f"worker-{index}",
                [WORKER_CLASS, "--host", host, "--cores", str(config.cores), "--memory", config.memory]
                + ["--webui-port", "0", "--work-dir", str(work), master_url],
                host,
                {"SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true"},
            )
            cluster.worker_pids.append(worker.pid)
            cluster.worker_hosts.append(host)
            _record(root).write_text(json.dumps(asdict(cluster)))
            started.append((worker, log))
        for worker, log in started:
            _wait_for(log, worker, "Successfully registered with master", deadline, "worker")
    except SparkClusterFailed:
        down(root)
        raise
    return cluster


def _worker_host(master_host: str, index: int) -> str:
    prefix, _, last = master_host.rpartition(".")
    return f"{prefix}.{int(last) + 1 + index}"


def down(root: Path | None = None) -> list[str]:
    """Stop the workers (and the executors they started), then the master, by their recorded process ids."""
    root = root or spark_root()
    record = _record(root)
    if not record.is_file():
        return []
    known = SparkCluster(**json.loads(record.read_text()))
    stopped = []
    for pid, host in zip(known.worker_pids, known.worker_hosts, strict=False):
        if server_alive(pid):
            stop_process(pid, grace=10)
            stopped.append(f"Spark worker on {host} (pid {pid})")
    if server_alive(known.master_pid):
        stop_process(known.master_pid, grace=10)
        stopped.append(f"Spark master {known.master_url} (pid {known.master_pid})")
    leftover = [pid for pid in known.pids() if process_tree(pid) and server_alive(pid)]
    if leftover:
        raise SparkClusterFailed(f"Spark processes {leftover} did not stop. Fix: kill them by pid and run again.")
    record.unlink()
    return stopped


def master_url(config: SparkConfig) -> str:
    """Where the Spark jobs go: the configured cluster, else the project's own (which must be up)."""
    if config.master_url:
        return config.master_url
    cluster = running()
    if cluster is None:
        raise SparkClusterFailed(
            "no Spark cluster is running. Fix: `python run.py spark up` (or set master_url in configs/spark.yaml)."
        )
    return cluster.master_url


def describe(cluster: SparkCluster) -> str:
    pairs = zip(cluster.worker_hosts, cluster.worker_pids, strict=True)
    workers = ", ".join(f"{host} (pid {pid})" for host, pid in pairs)
    return (
        f"Spark master {cluster.master_url} (pid {cluster.master_pid}); workers: {workers or 'none'}\n"
        f"Logs: {Path(cluster.root) / 'logs'}\n"
        "Score on it: python run.py score --engine spark --input FILE_OR_FOLDER --output FOLDER\n"
        "Stop it: python run.py spark down"
    )
