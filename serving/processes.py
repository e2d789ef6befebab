"""Process control for model servers: is a recorded pid still our server, stop a whole process tree, free ports."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Set
from pathlib import Path
from typing import Any

from lifecycle.errors import LifecycleError

# Command-line markers of the server processes this project starts (ZenML's service daemon, ZenML's deployment
# app, the dashboard's and the team's ZenML server, the team's MLflow server, the Spark master and workers of
# `python run.py spark up`, the engine, registry and object store of `python run.py cluster up`): a recorded pid that
# no longer shows one of them is a recycled pid, not our server.
SERVER_MARKERS = (
    b"zenml.services.local.local_daemon_entrypoint",
    b"zenml.deployers.server",
    b"zenml.zen_server.zen_server_api:app",
    b"-m\x00mlflow\x00server\x00",
    b"org.apache.spark.deploy.",
    b"dockerd\x00",
    b"docker-registry\x00serve\x00",
    b"weed\x00server\x00",
)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def still_running(pid: int) -> bool:
    """Alive and not a zombie (a killed process whose parent has not collected it yet holds no port, no memory)."""
    if not pid_alive(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def server_alive(pid: int | None) -> bool:
    """True when `pid` runs and is still one of our servers (records outlive reboots; pids are reused)."""
    if not pid_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(marker in command for marker in SERVER_MARKERS)


def process_tree(pid: int | None) -> list[int]:
    """`pid` and all its descendants (BentoML's workers start sessions of their own, so a process group is
    not enough to find them); empty when `pid` is not running."""
    if not pid or not Path(f"/proc/{pid}").exists():
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


STOP_GRACE_SECONDS = 30.0  # a stopped server's processes get this long to finish the requests they answer


def _family(processes: list[Any]) -> list[Any]:
    """These processes and every descendant of theirs still there (psutil.Process objects)."""
    import psutil

    found: dict[int, Any] = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            for member in (process, *process.children(recursive=True)):
                found.setdefault(member.pid, member)
    return list(found.values())


def _running(process: Any) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_process(pid: int | None, grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop a server and every process it started. SIGTERM first, to each of them: a server stops taking
    connections and finishes the requests it is answering (a client still talking to the old server after the
    drain gets its answer); what is still there after `grace` seconds is frozen and SIGKILLed. Processes are
    followed as psutil objects, so a pid reused meanwhile is never signalled. A pid that is not our server is
    left alone."""
    import psutil

    if not server_alive(pid):
        return
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    known: dict[int, Any] = {}
    deadline = time.monotonic() + grace
    while True:
        for member in _family([root, *known.values()]):  # a worker started meanwhile is asked to stop too
            if member.pid not in known:
                known[member.pid] = member
                with contextlib.suppress(psutil.Error):
                    member.terminate()
                    member.resume()  # a stopped process acts on SIGTERM once it runs again
        alive = [process for process in known.values() if _running(process)]
        if not alive:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for process in alive:  # frozen first: a stopped process starts nothing more
        with contextlib.suppress(psutil.Error):
            process.suspend()
    for process in _family(alive):
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def listening_pids(port: int) -> set[int]:
    """The processes (that this user may see) listening on this TCP port, on any address."""
    import psutil

    return {
        connection.pid
        for connection in psutil.net_connections("tcp")
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port
        if connection.pid
    }


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on the port now. Like the servers themselves (uvicorn, nginx), the probe
    allows address reuse: a server that just stopped leaves its closed connections in TIME_WAIT for a minute,
    which must not make its own port look taken when it starts again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, preferred: int, search: int, taken: Set[int] = frozenset()) -> int:
    """`preferred` when free, else the next free port among the following `search` ones (0: no search)."""
    for port in range(preferred, preferred + search + 1):
        if port not in taken and port_is_free(host, port):
            return port
    raise LifecycleError(
        f"port {preferred} on {host} is busy"
        + (f", and so are the next {search}" if search else "")
        + ". Fix: stop what uses it, or set `port` (or `port_search`) in configs/deployment.yaml / pass --port."
    )
