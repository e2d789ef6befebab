"""The workspace of `python run.py compare` (measurement/comparison.py): the data split once for every stack, and
for each stack a fresh place of its own (`stacks/<name>/`: ZenML store, MLflow database, BentoML home, state
folder), so that every stack starts from the same empty state and serves the version it trained itself."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifecycle.config import ComparisonSize, RunConfig
from lifecycle.environment import isolated_environment
from lifecycle.errors import LifecycleError

WORKSPACE_MARKER = ".mlops-comparison"
ISOLATED_ENV = ("ZENML_STORE_URL", "ZENML_STORE_API_KEY", "ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD")


@dataclass(frozen=True)
class Workspace:
    """Where one comparison keeps its data, per-stack stores and per-stack results."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data" / "train.csv"

    @property
    def batch(self) -> Path:
        return self.root / "data" / "batch.csv"

    @property
    def served_model(self) -> Path:
        return self.root / "served_model.pkl"  # the production version, for the parent's baselines

    @property
    def parity(self) -> Path:
        return self.root / "parity.json"

    def result(self, stack: str) -> Path:
        return self.root / "results" / f"{stack}.json"

    def stack_root(self, stack: str) -> Path:
        """One stack's own ZenML store, state folder (MLflow database, served models) and BentoML home."""
        return self.root / "stacks" / stack

    def environment(self, stack: str) -> dict[str, str]:
        """A stack's measuring process's environment: that stack's own, fresh ZenML store, state and BentoML home."""
        env = {key: value for key, value in os.environ.items() if key not in ISOLATED_ENV}
        env.update(isolated_environment(self.stack_root(stack)), PYTHONUNBUFFERED="1")
        return env

    def inspect_prefix(self, stack: str) -> str:
        """Shell prefix that points ZenML, MLflow paths and BentoML at one stack's store (for the report)."""
        root = self.stack_root(stack)
        return (
            f"ZENML_CONFIG_PATH={root / 'zenml'} ZENML_REPOSITORY_PATH={root / 'repo'} "
            f"MLOPS_STATE_DIR={root / 'state'} BENTOML_HOME={root / 'state' / 'bentoml'}"
        )


def prepare_workspace(root: Path, config: RunConfig, size: ComparisonSize) -> tuple[Workspace, dict[str, Any]]:
    """A fresh workspace with the data split once for every stack: the newest `batch_fraction` of the rows
    (in time order when the dataset has time columns) is the monitoring batch, the rest is training data."""
    from lifecycle.data import read_table
    from lifecycle.windows import time_index

    if root.exists():
        if not (root / WORKSPACE_MARKER).exists():
            raise LifecycleError(
                f"{root} exists and is not a comparison workspace; it is left alone. "
                "Fix: pass another --workspace (it is deleted and recreated on each comparison)."
            )
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / WORKSPACE_MARKER).write_text("made by `python run.py compare`; replaced by the next comparison\n")
    workspace = Workspace(root)
    for folder in (workspace.data.parent, workspace.result("x").parent):
        folder.mkdir(parents=True, exist_ok=True)

    table = read_table(config.dataset.path)
    if config.dataset.time_columns:
        order = time_index(table, config.dataset).argsort(kind="stable")
        table = table.iloc[order.to_numpy()].reset_index(drop=True)
    if size.rows and len(table) > size.rows:
        table = table.tail(size.rows).reset_index(drop=True)
    batch_rows = max(1, int(round(len(table) * size.batch_fraction)))
    table.iloc[: len(table) - batch_rows].to_csv(workspace.data, index=False)
    table.iloc[len(table) - batch_rows :].to_csv(workspace.batch, index=False)
    data = {
        "source": str(config.dataset.path),
        "rows": len(table),
        "training_rows": len(table) - batch_rows,
        "batch_rows": batch_rows,
        "target": config.dataset.target,
        "seed": config.training.seed,
        "model_name": config.model.name,
    }
    return workspace, data
