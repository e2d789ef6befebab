"""A ZenML server process of the project's own, with sign-in on: the dashboard (`python run.py dashboard`) and the
team's server (`python run.py team up`) both run one. ZenML's `zenml login --local` always starts its server
without authentication and with cross-origin requests open to every site, so any program or web page that reaches
127.0.0.1 could read and change the store; this one asks for a password (generated once, kept in a 0600 file)
and answers cross-origin requests from its own address only."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from lifecycle.errors import LifecycleError
from lifecycle.project_state import atomic_write_text

USER = "default"  # ZenML's own first user: the one the project's commands act as on a local store


class ServerFailed(LifecycleError):
    """A server could not be started, reached or signed in to."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    token_key: str  # signs the server's session tokens: sessions outlive a restart of the server

    @classmethod
    def kept_in(cls, path: Path) -> tuple[Credentials, bool]:
        """The credentials kept in `path`, generated (and written, 0600) on first use: (credentials, new?)."""
        if path.is_file():
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)  # a copy that others could read: close it before use
            return cls(**json.loads(path.read_text())), False
        made = cls(username=USER, password=secrets.token_urlsafe(18), token_key=secrets.token_hex(32))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(made)), mode=0o600)
        return made, True


def server_environment(config_dir: Path, store_url: str, url: str, credentials: Credentials) -> dict[str, str]:
    """The environment a ZenML server runs in: its own configuration folder, the store it serves, password
    sign-in with the first user's password, and cross-origin requests from its own address only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZENML_STORE_", "ZENML_SERVER_")) and key not in ("ZENML_REPOSITORY_PATH",)
    }
    env.update(
        {
            "ZENML_CONFIG_PATH": str(config_dir),
            "ZENML_STORE_URL": store_url,
            "ZENML_SERVER": "true",
            "ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS": "true",  # the dashboard shows artifacts of local stores
            "ZENML_SERVER_AUTH_SCHEME": "OAUTH2_PASSWORD_BEARER",
            "ZENML_SERVER_JWT_SECRET_KEY": credentials.token_key,
            "ZENML_DEFAULT_USER_NAME": credentials.username,
            "ZENML_DEFAULT_USER_PASSWORD": credentials.password,
            "ZENML_SERVER_AUTO_ACTIVATE": "true",
            "ZENML_SERVER_DEPLOYMENT_TYPE": "other",
            "ZENML_SERVER_CORS_ALLOW_ORIGINS": url,
            "ZENML_AUTO_OPEN_DASHBOARD": "false",
            "NO_COLOR": "1",
        }
    )
    return env


def start(
    config_dir: Path,
    store_url: str,
    port: int,
    credentials: Credentials,
    log: Path,
    python: str = "",
    client_stores: str = "",
) -> tuple[subprocess.Popen, str]:
    """Start the server on 127.0.0.1:`port` in a session of its own and wait until it answers: (process, url).
    `client_stores`: serving a client's own store (the dashboard), that client's local stores folder, where its
    default artifact store keeps the artifacts the dashboard shows; the client also keeps the store's schema."""
    url = f"http://127.0.0.1:{port}"
    env = server_environment(config_dir, store_url, url, credentials)
    if client_stores:
        env["ZENML_LOCAL_STORES_PATH"] = client_stores
        env["ZENML_DISABLE_DATABASE_MIGRATION"] = "true"
    config_dir.mkdir(parents=True, exist_ok=True)
    command = [python or sys.executable, "-m", "uvicorn", "zenml.zen_server.zen_server_api:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-server-header"]
    with open(log, "a") as output:
        process = subprocess.Popen(
            command, env=env, cwd=config_dir, stdout=output, stderr=output, start_new_session=True
        )
    wait_answering(f"{url}/health", process, log)
    return process, url


def wait_answering(url: str, process: subprocess.Popen | None, log: Path, timeout: float = 180) -> None:
    """Until `url` answers; a server that exits first, or stays silent `timeout` s, fails with its log's end."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as exc:
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                tail = log.read_text()[-1500:] if log.is_file() else ""
                raise ServerFailed(f"{url} did not answer:\n{tail}") from exc
            time.sleep(0.5)


def signed_in(url: str, credentials: Credentials) -> requests.Session:
    """A session of the server's REST API signed in as `credentials` (a bearer token)."""
    session = requests.Session()
    answer = session.post(
        f"{url}/api/v1/login",
        data={"username": credentials.username, "password": credentials.password},
        timeout=30,
    )
    if answer.status_code != 200:
        raise ServerFailed(f"signing in to {url} as `{credentials.username}` failed: {answer.text[:300]}")
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return session


def set_local_password(credentials: Credentials) -> None:
    """Give the local store's first user the dashboard's password (a local store's user has none: the project's
    commands reach the store directly, the browser through the server)."""
    from zenml.client import Client
    from zenml.models import UserUpdate

    store = Client().zen_store
    user = store.get_user(credentials.username)
    store.update_user(user.id, UserUpdate(password=credentials.password))
