"""A team's servers on one machine, to try the shared set-up: ZenML's own server (`zenml login --local`, run
from a configuration folder of its own, so it has its own database) and an MLflow tracking server, both on
127.0.0.1, and a folder for the artifact store (`stacks/team.yaml`; a team shares one through a mount or object
storage). Clients reach them as they would reach a team's real servers: `ZENML_STORE_URL` (with
`ZENML_STORE_API_KEY`, or a user name and password, from the environment) and `MLFLOW_TRACKING_URI`."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from lifecycle.environment import state_dir
from lifecycle.errors import LifecycleError

ZENML_PORT = 8238  # beside the dashboard's 8237
MLFLOW_PORT = 5000


class TeamServersFailed(LifecycleError):
    """The team's servers could not be started or stopped."""


@dataclass
class TeamServers:
    zenml_url: str
    mlflow_url: str
    mlflow_pid: int
    root: str
    python: str = ""  # the environment both servers run in ("" = the one running this code)

    def environment(self) -> dict[str, str]:
        """What a client exports to use these servers (no credentials: the local server needs none)."""
        return {
            "ZENML_STORE_URL": self.zenml_url,
            "ZENML_STORE_USERNAME": "default",
            "ZENML_STORE_PASSWORD": "",
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "TEAM_ARTIFACT_STORE": str(Path(self.root) / "artifacts"),
        }


def team_root() -> Path:
    return state_dir() / "team"


def _record(root: Path) -> Path:
    return root / "servers.json"


def _zenml_server(root: Path, *args: str, timeout: float = 300, python: str = "") -> subprocess.CompletedProcess:
    """ZenML's CLI with the server's own configuration folder (its database lives there), from the environment
    of `python` (default: this one)."""
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(root / "zenml-server"),
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "NO_COLOR": "1",
    }
    for client_only in ("ZENML_STORE_URL", "ZENML_STORE_API_KEY", "ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD"):
        env.pop(client_only, None)
    env.pop("ZENML_REPOSITORY_PATH", None)
    command = [str(Path(python or sys.executable).parent / "zenml"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=root)


def _wait_answering(url: str, process: subprocess.Popen | None, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as exc:
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                tail = log.read_text()[-1500:] if log.is_file() else ""
                raise TeamServersFailed(f"{url} did not answer: {tail}") from exc
            time.sleep(0.5)


def up(
    root: Path | None = None, zenml_port: int = ZENML_PORT, mlflow_port: int = MLFLOW_PORT, python: str = ""
) -> TeamServers:
    """Start both servers (or say where they already run). `python` picks the environment they run in: a ZenML
    server checks each registered component with its flavor's integration, so registering the cluster stacks
    needs one started from the cluster environment (.venv-cluster/bin/python)."""
    from workflows.dashboard import finish_onboarding

    root = root or team_root()
    python = os.path.abspath(python) if python else ""  # the servers start in another folder
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    if _record(root).is_file():
        known = TeamServers(**json.loads(_record(root).read_text()))
        from serving.processes import pid_alive

        if pid_alive(known.mlflow_pid):
            return known
    started = _zenml_server(
        root, "login", "--local", "--port", str(zenml_port), "--ip-address", "127.0.0.1", python=python
    )
    if started.returncode != 0:
        tail = "\n".join((started.stdout + started.stderr).strip().splitlines()[-8:])
        raise TeamServersFailed(f"ZenML's server did not start on port {zenml_port}:\n{tail}")
    zenml_url = f"http://127.0.0.1:{zenml_port}"
    finish_onboarding(zenml_url)
    (root / "mlflow").mkdir(exist_ok=True)
    log = root / "mlflow" / "server.log"
    with open(log, "a") as output:
        mlflow = subprocess.Popen(
            [python or sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port)]
            + ["--backend-store-uri", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"]
            + ["--artifacts-destination", str(root / "mlflow" / "artifacts"), "--workers", "1"],
            stdout=subprocess.DEVNULL,
            stderr=output,
            start_new_session=True,
        )
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    _wait_answering(f"{mlflow_url}/health", mlflow, log)
    servers = TeamServers(
        zenml_url=zenml_url, mlflow_url=mlflow_url, mlflow_pid=mlflow.pid, root=str(root), python=python
    )
    _record(root).write_text(json.dumps(asdict(servers)))
    return servers


def down(root: Path | None = None) -> list[str]:
    """Stop both servers; their data stays in the team folder for the next `up`."""
    root = root or team_root()
    stopped = []
    python = ""
    if _record(root).is_file():
        known = TeamServers(**json.loads(_record(root).read_text()))
        python = known.python
        _stop_group(known.mlflow_pid)
        stopped.append(f"MLflow server ({known.mlflow_url})")
        _record(root).unlink()
    if (root / "zenml-server").is_dir():
        from workflows.dashboard import local_server_pids, wait_stopped

        daemons = local_server_pids(root / "zenml-server")
        done = _zenml_server(root, "logout", "--local", timeout=120, python=python)
        if done.returncode != 0:
            raise TeamServersFailed(f"ZenML's server did not stop: {(done.stdout + done.stderr).strip()[-800:]}")
        wait_stopped(daemons)
        stopped.append("ZenML server")
    return stopped


def _stop_group(pid: int) -> None:
    """MLflow's server and the workers it started (its own session): SIGTERM, then SIGKILL after 20 s."""
    import signal

    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sent)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reaped, when this process started it (`team up` in the same one)
            try:
                os.killpg(pid, 0)  # anyone of the group left?
            except ProcessLookupError:
                return
            time.sleep(0.1)


def describe(servers: TeamServers) -> str:
    exports = "\n".join(f"  export {name}={value!r}" for name, value in servers.environment().items())
    return (
        f"ZenML server: {servers.zenml_url} (dashboard too)\nMLflow server: {servers.mlflow_url}\n"
        f"Point this project (or a copy on another machine that reaches them) at them:\n{exports}\n"
        "  python run.py stacks up team && zenml stack set team\n"
        "Stop them with `make team-down` (their data stays in .state/team/)."
    )
