"""What the project remembers between commands, in its state folder, readable without starting ZenML.

- The model most recently trained here, and the run configuration each model was last trained with, so that
  `deploy`, `predict`, `status`, `undeploy` and `monitor` follow the user's own model (and `monitor` retrains it
  on its own data) without `--model-name`.

The Model Control Plane stays the source of truth for versions and stages; this is a convenience record.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lifecycle.config import RunConfig
from lifecycle.environment import state_dir


def _folder() -> Path:
    return state_dir() / "models"


def write_json(path: Path, content: Any) -> None:
    """Write a whole file or nothing (a reader never sees half of it): a temporary file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(content, handle, indent=2, default=str)
    os.replace(handle.name, path)


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
