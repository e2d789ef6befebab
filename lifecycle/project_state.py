"""What the project remembers between commands, in its state folder, readable without starting ZenML.

- The model most recently trained here, and the run configuration each model was last trained with, so that
  `deploy`, `predict`, `status`, `undeploy` and `monitor` follow the user's own model (and `monitor` retrains it
  on its own data) without `--model-name`.
- How state files are written: whole or not at all (`atomic_write_text`), and folders at guessable names that
  only this user can own (`private_folder`).

The Model Control Plane stays the source of truth for versions and stages; this is a convenience record.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lifecycle.atomic_files import atomic_write_text
from lifecycle.config import RunConfig
from lifecycle.environment import state_dir
from lifecycle.errors import LifecycleError


def _folder() -> Path:
    return state_dir() / "models"


def write_json(path: Path, content: Any) -> None:
    """Write a whole file or nothing (a reader never sees half of it): see `atomic_write_text`."""
    atomic_write_text(path, json.dumps(content, indent=2, default=str))


def private_folder(path: Path, mode: int = 0o700) -> Path:
    """A folder of this user's only, at a name others could guess (in the system's temp folder): created with
    `mode`; an existing one is kept only when it is a real folder (not a link) owned by this user, and its
    permissions are set to `mode`. Raises LifecycleError, naming the fix, for one another user made."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
        kind = "a link" if stat.S_ISLNK(found.st_mode) else "not a folder" if not stat.S_ISDIR(found.st_mode) else ""
        owner = f"owned by uid {found.st_uid}, not by this user (uid {os.geteuid()})"
        raise LifecycleError(
            f"{path} is {kind or owner}: another user may have made it to read or replace this project's files. "
            f"Fix: remove it (`rm -rf '{path}'`) and run the command again."
        )
    if stat.S_IMODE(found.st_mode) != mode:
        os.chmod(path, mode)
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def remember_training(config: RunConfig) -> None:
    """After a training run: this model is the one the next commands act on, with this configuration."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(_folder() / f"{config.model.name}.json", {"trained_at": now, "config": config.model_dump(mode="json")})
    write_json(_folder() / "current.json", {"model_name": config.model.name, "trained_at": now})


def current_model() -> str | None:
    """The model most recently trained in this project (None before the first training)."""
    record = read_json(_folder() / "current.json")
    return record.get("model_name") if isinstance(record, dict) else None


def remembered_config(model_name: str) -> RunConfig | None:
    """The configuration `model_name` was last trained with here (None when it never was)."""
    record = read_json(_folder() / f"{model_name}.json")
    if not isinstance(record, dict) or "config" not in record:
        return None
    try:
        return RunConfig.model_validate(record["config"])
    except ValueError:
        return None
