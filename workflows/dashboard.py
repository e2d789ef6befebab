"""The ZenML dashboard on this project's runs, in one step: ZenML's local server (`zenml login --local`), its
first-run account form answered for the local default user, and the addresses of what to look at."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from lifecycle.errors import LifecycleError
from lifecycle.names import MONITORING_PIPELINE

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse

DEFAULT_PORT = 8237  # ZenML's own default for `zenml login --local`


class DashboardFailed(LifecycleError):
    """The local ZenML server could not be started or stopped."""


@dataclass
class Look:
    """One thing to look at: where, and how to get to it from there."""

    what: str
    url: str
    how: str = ""
    same_page: str = ""  # the same content as a file, when the project writes one


@dataclass
class Dashboard:
    url: str
    looks: list[Look] = field(default_factory=list)
    onboarding: str = ""


def _zenml(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZENML_AUTO_OPEN_DASHBOARD": "false", "NO_COLOR": "1"}
    command = [str(Path(sys.executable).parent / "zenml"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def server_installed() -> bool:
    try:
        import fastapi  # noqa: F401
        import jwt  # noqa: F401  (PyJWT: the server's tokens)
    except ImportError:
        return False
    return True


def finish_onboarding(url: str) -> str:
    """Answer the dashboard's first-run account form for the local user (no name, no e-mail, no newsletter), so
    the browser opens on the project instead of the form. The local server runs without authentication; ZenML's
    own `update_user` call cannot do this (the server ignores the opt-in field there), `/current-user` can."""
    current = requests.get(f"{url}/api/v1/current-user", timeout=10)
    if current.status_code in (401, 403):
        return "the server asks for a login, so its first-run form was left for you to fill in"
    current.raise_for_status()
    metadata = dict((current.json().get("metadata") or {}).get("user_metadata") or {})
    metadata["finished_onboarding_survey"] = True
    answer = requests.put(
        f"{url}/api/v1/current-user",
        json={"email_opted_in": False, "user_metadata": metadata},
        timeout=10,
    )
    answer.raise_for_status()
    return "first-run account form answered for the local user"


def _latest_runs(model_name: str) -> tuple[PipelineRunResponse | None, PipelineRunResponse | None, int | None]:
    """(training run of the version the card shows, latest monitoring run, that version's number)."""
    from zenml.client import Client

    from lifecycle.names import EVALUATION
    from workflows.model_card import card_version

    client = Client()
    training: PipelineRunResponse | None = None
    version_number: int | None = None
    version = card_version(model_name)
    if version is not None:
        version_number = version.number
        evaluation = version.get_artifact(EVALUATION)
        if evaluation is not None and evaluation.producer_pipeline_run_id:
            training = client.get_pipeline_run(evaluation.producer_pipeline_run_id)
    monitoring = client.list_pipeline_runs(
        pipeline_name=MONITORING_PIPELINE, model=model_name, sort_by="desc:created", size=1
    ).items
    return training, (monitoring[0] if monitoring else None), version_number


def _newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def looks_for(url: str, model_name: str, reports: Path) -> list[Look]:
    """What to open for `model_name`: its training run with the model card and data-quality report, and its
    latest monitoring run with the drift report. The dashboard shows an artifact in a side panel that has no
    address of its own, so each says which node to click; the card and the drift report are also files."""
    from lifecycle.model_card import cards_folder

    training, monitoring, number = _latest_runs(model_name)

    def runs(project: str) -> str:
        return f"{url}/projects/{project}/runs"

    looks = [Look("this project's runs", runs("default"))]
    if training is not None:
        looks[0].url = runs(training.project.name)
        run_url = f"{runs(training.project.name)}/{training.id}"
        card = cards_folder(model_name) / f"v{number}.html"
        looks += [
            Look(f"training run of `{model_name}` version {number}", run_url, f"run {training.name}"),
            Look(
                "its model card",
                run_url,
                "click the `model_card` node, then Visualization, then Load Preview",
                card.resolve().as_uri() if card.is_file() else "",
            ),
            Look("its data-quality report", run_url, "click the `data_quality_report` node, then Visualization"),
        ]
    if monitoring is not None:
        run_url = f"{runs(monitoring.project.name)}/{monitoring.id}"
        report = _newest(reports / "monitoring" / model_name, "*.html")
        looks += [
            Look(f"latest monitoring run of `{model_name}`", run_url, f"run {monitoring.name}"),
            Look(
                "its drift report",
                report.resolve().as_uri() if report else run_url,
                # The dashboard's preview frame runs no scripts, and Evidently's report is drawn by scripts.
                "Evidently's report needs scripts, which the dashboard's preview does not run (it stays blank "
                "there): open this file; the run's `drift_report` node is the same page",
            ),
        ]
    return looks


def start(model_name: str, reports: Path, port: int = DEFAULT_PORT) -> Dashboard:
    """Start (or reuse) ZenML's local server on 127.0.0.1:`port`, connect this project's client to it, answer
    its first-run form, and say where this model's runs, card and reports are."""
    if not server_installed():
        raise DashboardFailed(
            "the ZenML server is not installed in this environment. Fix: `make dashboard` installs it, or "
            "`pip install -c constraints.txt -e '.[server]'`."
        )
    placeholder = "http://dashboard"
    note = ""
    try:  # read before the client moves to the server: the same records, either way
        looks_before = looks_for(placeholder, model_name, reports)
    except Exception as exc:  # an empty store still gets its dashboard
        looks_before = []
        note = f"(could not list this model's runs: {exc})"
    done = _zenml("login", "--local", "--port", str(port), "--ip-address", "127.0.0.1")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise DashboardFailed(
            f"`zenml login --local --port {port}` failed:\n{tail}\nFix: free port {port} or pass --port, "
            "and see `zenml logs` (the local server's log)."
        )
    url = f"http://127.0.0.1:{port}"
    onboarding = finish_onboarding(url)
    looks = [Look(look.what, look.url.replace(placeholder, url), look.how, look.same_page) for look in looks_before]
    return Dashboard(url=url, looks=looks, onboarding=onboarding + (f" {note}" if note else ""))


def local_server_pids(config_dir: Path) -> list[int]:
    """The daemon processes of the local ZenML server kept in `config_dir` (ZenML's configuration folder)."""
    import psutil

    marker = str(config_dir / "zen_server" / "daemon")
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in process.info["cmdline"] or []):
                found.append(process.info["pid"])
    return found


def wait_stopped(pids: list[int], timeout: float = 30) -> None:
    """`zenml logout --local` asks the daemon to stop and returns: wait for it, and kill what outlives `timeout`."""
    import psutil

    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            processes.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def zenml_config_dir() -> Path:
    from zenml.utils.io_utils import get_global_config_directory

    return Path(get_global_config_directory())


def stop() -> str:
    """Stop the local server; the client goes back to the local store it used before."""
    daemons = local_server_pids(zenml_config_dir())
    done = _zenml("logout", "--local", timeout=120)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise DashboardFailed(f"`zenml logout --local` failed:\n{tail}")
    wait_stopped(daemons)
    return "the local ZenML server is stopped; the commands use the local store again"


def open_runs_page(dashboard: Dashboard) -> bool:
    """Open the project's runs in the desktop's browser, where there is a desktop (ZenML's own switch,
    ZENML_AUTO_OPEN_DASHBOARD=false, turns it off); True when a browser was asked to."""
    import webbrowser

    desktop = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform == "darwin"
    wanted = os.environ.get("ZENML_AUTO_OPEN_DASHBOARD", "true").lower() not in ("false", "0", "no")
    if not (desktop and wanted and dashboard.looks):
        return False
    return webbrowser.open(dashboard.looks[0].url)


def describe(dashboard: Dashboard) -> str:
    lines = [f"ZenML dashboard: {dashboard.url}  ({dashboard.onboarding})"]
    for look in dashboard.looks:
        lines.append(f"  {look.what}: {look.url}")
        if look.how:
            lines.append(f"      {look.how}")
        if look.same_page:
            lines.append(f"      the same page as a file: {look.same_page}")
    if len(dashboard.looks) <= 1:
        lines.append("  (no training run of this model yet: `make run` trains one)")
    lines.append("Stop it with `make dashboard-stop` (`zenml logout --local`).")
    return "\n".join(lines)
