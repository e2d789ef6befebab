"""A front door's nginx process (serving/front_door.py): run nginx on a door's folder, find its master and
workers, wait until it answers through the servers of its new configuration, and stop it gracefully."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from lifecycle.errors import LifecycleError
from serving.front_door_config import UPSTREAM_HEADER
from serving.processes import pid_alive, still_running

INSTALL_HINT = "for one stable address per model, install nginx (Debian/Ubuntu: `apt-get install nginx`)"


class FrontDoorFailed(LifecycleError):
    """The front door could not be started or switched; what it pointed at before still serves."""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def running_pid(folder: Path) -> int | None:
    """The pid of the nginx master running on the door's folder; None when none runs."""
    try:
        pid = int((folder / "nginx.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if pid_alive(pid) and b"nginx" in command else None


def run_nginx(folder: Path, *args: str) -> subprocess.CompletedProcess:
    binary = nginx_binary()
    if binary is None:
        raise FrontDoorFailed(f"nginx is not installed. Fix: {INSTALL_HINT}")
    return subprocess.run(
        [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), *args], capture_output=True, text=True
    )


def _answering_upstream(url: str, health_path: str) -> str | None:
    """The server that answered a health check through the front door healthily (nginx names the one it tried
    even when that one failed, with a 502)."""
    request = urllib.request.Request(url.rstrip("/") + health_path, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers.get(UPSTREAM_HEADER)
    except OSError:  # HTTPError included: not a healthy answer
        return None


def worker_pids(folder: Path) -> set[int]:
    """The worker processes of the folder's running nginx."""
    import psutil

    master = running_pid(folder)
    try:
        return {worker.pid for worker in psutil.Process(master).children()} if master else set()
    except psutil.Error:
        return set()


def wait_for_upstreams(
    folder: Path, url: str, health_path: str, upstreams: set[str], timeout: float, old_workers: set[int]
) -> None:
    """Until a health check through the front door is answered by one of `upstreams` (the servers the new
    configuration sends requests to), and nginx's workers from before the reload have finished the requests they
    were answering and exited (so that the server they sent to can be stopped without cutting a request)."""
    deadline = time.monotonic() + timeout
    while _answering_upstream(url, health_path) not in upstreams:
        if time.monotonic() > deadline:
            raise FrontDoorFailed(f"{url} was not answered by {' or '.join(sorted(upstreams))} within {timeout:.0f} s")
        time.sleep(0.05)
    while old_workers & worker_pids(folder):
        if time.monotonic() > deadline:
            raise FrontDoorFailed(f"nginx's workers from before the switch did not finish within {timeout:.0f} s")
        time.sleep(0.05)


def current_port(folder: Path) -> int:
    """The port the running nginx of this folder listens on (from its configuration)."""
    found = re.search(r"listen [^:;]+:(\d+);", (folder / "nginx.conf").read_text())
    if not found:
        raise FrontDoorFailed(f"{folder / 'nginx.conf'} names no port; stop its nginx and deploy again")
    return int(found.group(1))


def quit_nginx(folder: Path) -> None:
    pid = running_pid(folder)
    if pid:
        os.kill(pid, signal.SIGQUIT)  # graceful: the requests in flight are answered first
        deadline = time.monotonic() + 10
        while still_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
