"""Process control for model servers: is a recorded pid still our server, stop a whole process tree, free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from lifecycle.errors import LifecycleError

# Command-line markers of the server processes this project starts (ZenML's service daemon, ZenML's deployment
# app): a recorded pid that no longer shows one of them is a recycled pid, not our server.
SERVER_MARKERS = (b"zenml.services.local.local_daemon_entrypoint", b"zenml.deployers.server")


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


def freeze_tree(pid: int | None) -> list[int]:
    """SIGSTOP `pid` and its descendants until no new one appears: a stopped process spawns nothing more, so the
    list is complete (a server still starting up would otherwise start a worker that outlives it)."""
    frozen: list[int] = []
    while True:
        new = [p for p in process_tree(pid) if p not in frozen]
        if not new:
            return frozen
        for p in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGSTOP)
        frozen += new
        time.sleep(0.05)


def stop_process(pid: int | None) -> None:
    """Stop a server and every process it started, at once (SIGKILL of the frozen tree). Model servers hold no
    state to flush, and traffic was drained before this is called. A pid that is not our server is left alone."""
    if not server_alive(pid):
        return
    frozen = freeze_tree(pid)
    for p in frozen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(still_running(p) for p in frozen):
        time.sleep(0.02)


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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, preferred: int, search: int, taken: set[int] = frozenset()) -> int:
    """`preferred` when free, else the next free port among the following `search` ones (0: no search)."""
    for port in range(preferred, preferred + search + 1):
        if port not in taken and port_is_free(host, port):
            return port
    raise LifecycleError(
        f"port {preferred} on {host} is busy"
        + (f", and so are the next {search}" if search else "")
        + ". Fix: stop what uses it, or set `port` (or `port_search`) in configs/deployment.yaml / pass --port."
    )
