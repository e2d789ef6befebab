"""The ZenML dashboard on this project's runs, in one step: a ZenML server of the project's own on this project's
store, with sign-in on (workflows/zenml_server.py), its first-run account form answered, and the addresses of what
to look at. A project whose store is already a ZenML server (a team's) is shown that server's dashboard."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from lifecycle.environment import state_dir
from lifecycle.errors import LifecycleError
from lifecycle.names import MONITORING_PIPELINE
from lifecycle.project_state import private_folder, write_json
from serving.processes import port_is_free, server_alive, stop_process
from workflows import zenml_server

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
    sign_in: str = ""  # how to sign in, said on the first line


def dashboard_folder() -> Path:
    """The dashboard server's configuration, log, record and credentials (0700)."""
    return state_dir() / "dashboard"


def _record() -> Path:
    return dashboard_folder() / "server.json"


def server_installed() -> bool:
    try:
        import fastapi  # noqa: F401
        import jwt  # noqa: F401  (PyJWT: the server's tokens)
    except ImportError:
        return False
    return True


def finish_onboarding(api: requests.Session, url: str) -> str:
    """Answer the dashboard's first-run account form for the signed-in user (no name, no e-mail, no newsletter),
    so the browser opens on the project instead of the form. ZenML's own `update_user` call cannot do this (the
    server ignores the opt-in field there), `/current-user` can."""
    current = api.get(f"{url}/api/v1/current-user", timeout=10)
    current.raise_for_status()
    metadata = dict((current.json().get("metadata") or {}).get("user_metadata") or {})
    metadata["finished_onboarding_survey"] = True
    answer = api.put(
        f"{url}/api/v1/current-user",
        json={"email_opted_in": False, "user_metadata": metadata},
        timeout=10,
    )
    answer.raise_for_status()
    return "first-run account form answered"


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
    """Start (or reuse) the project's ZenML server on 127.0.0.1:`port` over this project's store, with sign-in
    on, answer its first-run form, and say where this model's runs, card and reports are."""
    from zenml.config.global_config import GlobalConfiguration
    from zenml.enums import StoreType

    if not server_installed():
        raise DashboardFailed(
            "the ZenML server is not installed in this environment. Fix: `make dashboard` installs it, or "
            "`pip install -c constraints.txt -e '.[server]'`."
        )
    store = GlobalConfiguration().store_configuration
    if store.type == StoreType.REST:  # a team's server: its own dashboard has the runs
        team_url = store.url.rstrip("/")
        return Dashboard(
            url=team_url,
            looks=_looks_or_note(team_url, model_name, reports)[0],
            onboarding="this project's store is this ZenML server: its dashboard is the one with the runs; "
            "no local server was started",
            sign_in="sign in with your account on that server",
        )
    dashboard_folder().parent.mkdir(parents=True, exist_ok=True)
    folder = private_folder(dashboard_folder())
    credentials, new = zenml_server.Credentials.kept_in(folder / "credentials.json")
    running = _running_url()
    if running is not None:
        url = running
    else:
        if not port_is_free("127.0.0.1", port):
            raise DashboardFailed(
                f"port {port} on 127.0.0.1 is taken by another program. Fix: pass --port with a free one."
            )
        zenml_server.set_local_password(credentials)
        process, url = zenml_server.start(
            folder / "zenml-server",
            str(store.url),
            port,
            credentials,
            folder / "server.log",
            client_stores=GlobalConfiguration().local_stores_path,
        )
        write_json(_record(), {"pid": process.pid, "url": url})
    onboarding = finish_onboarding(zenml_server.signed_in(url, credentials), url)
    looks, note = _looks_or_note(url, model_name, reports)
    kept = f"{folder / 'credentials.json'} (0600)"
    sign_in = f"sign in as `{credentials.username}`; " + (
        f"password {credentials.password}, generated now and shown this once; kept in {kept}"
        if new
        else f"the password is in {kept}"
    )
    return Dashboard(url=url, looks=looks, onboarding=onboarding + (f" {note}" if note else ""), sign_in=sign_in)


def _looks_or_note(url: str, model_name: str, reports: Path) -> tuple[list[Look], str]:
    try:
        return looks_for(url, model_name, reports), ""
    except Exception as exc:  # an empty store still gets its dashboard
        return [], f"(could not list this model's runs: {exc})"


def _running_url() -> str | None:
    """The address of the project's dashboard server when it runs and answers."""
    if not _record().is_file():
        return None
    known = json.loads(_record().read_text())
    if not server_alive(known["pid"]):
        return None
    try:
        requests.get(f"{known['url']}/health", timeout=5).raise_for_status()
    except requests.RequestException:
        return None
    return str(known["url"])


def stop() -> str:
    """Stop the project's dashboard server, by its process id."""
    if not _record().is_file():
        return "no dashboard server of this project is running"
    known = json.loads(_record().read_text())
    stop_process(known["pid"])
    _record().unlink()
    return f"the dashboard server ({known['url']}) is stopped"


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
    lines = [f"ZenML dashboard: {dashboard.url}  ({dashboard.sign_in})", f"  ({dashboard.onboarding})"]
    for look in dashboard.looks:
        lines.append(f"  {look.what}: {look.url}")
        if look.how:
            lines.append(f"      {look.how}")
        if look.same_page:
            lines.append(f"      the same page as a file: {look.same_page}")
    if len(dashboard.looks) <= 1:
        lines.append("  (no training run of this model yet: `make run` trains one)")
    lines.append("Stop it with `make dashboard-stop`.")
    return "\n".join(lines)
