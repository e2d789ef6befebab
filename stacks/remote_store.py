"""Is the ZenML store this project is pointed at a server, and does it answer? A server that went away (a team's
server stopped, a wrong address) would otherwise cost every command ZenML's own retries, about half a minute,
and end in a long traceback: the command line asks first, in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import requests
import yaml

from lifecycle.errors import StackError

ANSWER_SECONDS = 5.0


class StoreUnavailable(StackError):
    """The ZenML server the project is pointed at does not answer."""


def zenml_config_dir() -> Path:
    """ZenML's configuration folder (ZENML_CONFIG_PATH, else its default), read without importing ZenML."""
    configured = os.environ.get("ZENML_CONFIG_PATH")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "zenml"


def server_url() -> str | None:
    """The ZenML server's address when the store is one (ZENML_STORE_URL, or `zenml login`'s configuration),
    else None (a local store)."""
    url = os.environ.get("ZENML_STORE_URL", "")
    if not url:
        config = zenml_config_dir() / "config.yaml"
        try:
            url = str(((yaml.safe_load(config.read_text()) or {}).get("store") or {}).get("url") or "")
        except (OSError, yaml.YAMLError, AttributeError):
            return None
    return url.rstrip("/") if url.startswith(("http://", "https://")) else None


def check_server_answers(url: str | None = None, timeout: float = ANSWER_SECONDS) -> None:
    """Raise StoreUnavailable, naming the address and the fix, when the store is a ZenML server that does not
    answer its health check within `timeout` seconds."""
    url = url if url is not None else server_url()
    if url is None:
        return
    try:
        answer = requests.get(f"{url}/health", timeout=timeout)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise StoreUnavailable(
            f"the ZenML server at {url} does not answer ({reason}). Fix: start it (a team's servers on this "
            "machine: `make team-up`), or point this project elsewhere (`unset ZENML_STORE_URL` for the local "
            "store; `zenml logout` after a `zenml login`)."
        ) from None
    if answer.status_code != 200:
        raise StoreUnavailable(
            f"{url} answers a ZenML server's health check (/health) with HTTP {answer.status_code}: it is not a "
            "ZenML server that is up. Fix: check the address (ZENML_STORE_URL, or `zenml login`), or start the server."
        )
