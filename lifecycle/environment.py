"""Process environment for offline, quiet runs: set before ZenML, MLflow or BentoML are imported."""

import fcntl
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

QUIET_OFFLINE = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "ZENML_DISABLE_INTERACTIVE_INPUT": "true",
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
}


def isolated_environment(root: Path, log_level: str = "ERROR") -> dict[str, str]:
    """Variables that put a whole workspace under `root`: a fresh ZenML store and repository marker (created
    here), the project's state and reports folders, BentoML's home. For tests, the comparison and benchmarks:
    nothing they do reads or changes the user's own ZenML configuration, active stack or state."""
    (root / "repo" / ".zen").mkdir(parents=True, exist_ok=True)
    return {
        "ZENML_CONFIG_PATH": str(root / "zenml"),
        "ZENML_REPOSITORY_PATH": str(root / "repo"),
        "ZENML_CUSTOM_SOURCE_ROOT": str(PROJECT_ROOT),
        "ZENML_LOGGING_VERBOSITY": log_level,
        "MLOPS_STATE_DIR": str(root / "state"),
        "MLOPS_REPORTS_DIR": str(root / "reports"),
        "BENTOML_HOME": str(root / "state" / "bentoml"),
    }


def state_dir() -> Path:
    """Project-local state (MLflow database and artifacts, served models, what the project remembers between
    commands); MLOPS_STATE_DIR overrides."""
    return Path(os.environ.get("MLOPS_STATE_DIR", PROJECT_ROOT / ".state")).resolve()


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One process at a time on this machine inside the block (an exclusive lock on `path`, created if needed);
    `on_wait` is called once when another process holds it (before waiting for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


@contextmanager
def try_file_lock(path: Path) -> Iterator[bool]:
    """`file_lock` when no other process holds it (True inside), else nothing is waited for (False inside)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def model_lock_path(action: str, model_name: str) -> Path:
    return state_dir() / "locks" / f"{action}-{re.sub(r'[^A-Za-z0-9_.-]', '_', model_name)}.lock"


def model_lock(action: str, model_name: str, on_wait: Callable[[], None] | None = None) -> Any:
    """`file_lock` for one action (promote, deploy) on one model, under the state folder."""
    return file_lock(model_lock_path(action, model_name), on_wait)


def configure_environment() -> None:
    """Apply the quiet, offline defaults without overriding what the user exported."""
    for name, value in QUIET_OFFLINE.items():
        os.environ.setdefault(name, value)
    # Colour codes only on a terminal (a CI log or a captured output gets plain text), and never with NO_COLOR.
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        os.environ.setdefault("ZENML_LOGGING_COLORS_DISABLED", "true")
    # BentoML keeps models and bentos in the project's state folder, like MLflow's database.
    if "BENTOML_HOME" not in os.environ:
        os.environ["BENTOML_HOME"] = str(state_dir() / "bentoml")
        os.environ[BENTOML_HOME_IS_DEFAULT] = "1"  # so `stacks list` can say whose setting applies


BENTOML_HOME_IS_DEFAULT = "MLOPS_BENTOML_HOME_IS_DEFAULT"


def bentoml_home() -> tuple[str, str]:
    """(BentoML's home, whose setting it is): a user's own BENTOML_HOME wins over the project's default."""
    home = os.environ.get("BENTOML_HOME") or str(Path.home() / "bentoml")
    if os.environ.get(BENTOML_HOME_IS_DEFAULT) == "1" and home == str(state_dir() / "bentoml"):
        return home, "the project's default; export BENTOML_HOME to use another"
    return home, "your BENTOML_HOME"
