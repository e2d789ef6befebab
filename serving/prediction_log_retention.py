"""How long the prediction log (serving/prediction_log.py) keeps a model's rows: whole day folders, removed once
older than the retention."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from serving.prediction_log_format import model_folder_name

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def prune(root: Path, model_name: str, retention_days: int) -> list[Path]:
    """Remove the model's day folders older than `retention_days` (0: keep everything); returns what went."""
    if retention_days <= 0:
        return []
    oldest = (datetime.now(timezone.utc) - timedelta(days=retention_days)).strftime("%Y-%m-%d")
    removed = []
    folder = Path(root) / model_folder_name(model_name)
    for day in folder.iterdir() if folder.is_dir() else []:
        if _DAY.fullmatch(day.name) and day.name < oldest:
            shutil.rmtree(day, ignore_errors=True)
            removed.append(day)
    return removed
