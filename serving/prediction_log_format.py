"""The prediction log on disk (serving/prediction_log.py), shared by its writer, reader and label join: the
folders and files, a row's columns, and how times and values are written."""

from __future__ import annotations

import contextlib
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

META_COLUMNS = (
    "request_id",
    "row",
    "timestamp",
    "model_name",
    "model_version",
    "role",
    "backend",
    "server",
    "latency_ms",
    "prediction",
    "probability",
)
LABEL_COLUMN = "label"
SMOKE_TESTS = "smoke-tests"  # the kind of file a deploy registers its smoke-test request ids in
FILE_MODE, FOLDER_MODE = 0o600, 0o700  # the log holds client data: this user's only


def model_folder_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name) or "model"


def private_folders(root: Path, *parts: str) -> Path:
    """`root/part/...`, each folder this creates 0700 (an existing one is left as its owner set it)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    folder = root
    for folder in (root, *(root.joinpath(*parts[: n + 1]) for n in range(len(parts)))):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, FOLDER_MODE)
    return folder


def open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


def utc_stamp(moment: datetime) -> str:
    """A UTC time as the log writes it: ISO 8601 with microseconds and `Z`."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def plain_value(value: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, non-finite floats as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
