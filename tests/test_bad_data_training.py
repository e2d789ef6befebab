"""Broken files through the real training pipeline: each fails the up-front check with a clear error naming the
file, fails the pipeline itself (as if that check had been skipped), and leaves the production version as it was.
The model is trained once for the module. The number of cases tried is printed at the end of the module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bad_data_cases import (
    WORDS,
    attempt,
    cases_tried,
    clear,
    examples,
    new_path,
    tried,
    with_cells,
    workdir,
)
from conftest import DEMO_CONFIG
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.config import EstimatorConfig, apply_overrides, load_config
from lifecycle.validation import validate_file

__all__ = ["cases_tried", "workdir"]  # the shared fixtures, used by name


# --- the real training pipeline: broken files never reach production ----------------------------------------

GUARD_MODEL = "bad_data_guard"


def guard_config(path: Path):
    config = apply_overrides(load_config(DEMO_CONFIG), model_name=GUARD_MODEL, enable_cache=False)
    dataset = config.dataset.model_copy(update={"path": str(path)})
    tree = EstimatorConfig(name="decision_tree", params={"max_depth": 8})
    training = config.training.model_copy(update={"estimator": tree})
    return config.model_copy(update={"dataset": dataset, "training": training})


@pytest.fixture(scope="module")
def guard_data(bike_slice, workdir) -> pd.DataFrame:
    table = pd.read_csv(bike_slice).head(1200)
    table.to_csv(workdir / "guard.csv", index=False)
    return table


@pytest.fixture(scope="module")
def guard_production(zenml_client, guard_data, workdir):
    from workflows.runner import run_training

    outcome = run_training(guard_config(workdir / "guard.csv"))
    assert outcome.decision.promoted and outcome.production_version == outcome.model_version
    return outcome.model_version


def _break(table: pd.DataFrame, kind: str, row: int, word: str) -> bytes:
    if kind == "target dropped":
        return table.drop(columns="cnt").to_csv(index=False).encode()
    if kind == "text in a declared numeric column":
        return with_cells(table, "temp", [row], [word]).to_csv(index=False).encode()
    if kind == "target all missing":
        return table.assign(cnt=np.nan).to_csv(index=False).encode()
    if kind == "target repeated (would leak)":
        return pd.concat([table, table[["cnt"]]], axis=1).to_csv(index=False).encode()
    if kind == "mixed UTC offsets":
        return with_cells(table, "dteday", [row], ["2011-05-01 00:00+05:00"]).to_csv(index=False).encode()
    if kind == "header only":
        return (",".join(table.columns) + "\n").encode()
    return word.encode("utf-16")


@pytest.mark.integration
@examples(4, shrink=False)
@given(
    kind=st.sampled_from(
        [
            "target dropped",
            "text in a declared numeric column",
            "target all missing",
            "target repeated (would leak)",
            "mixed UTC offsets",
            "header only",
            "utf-16 bytes",
        ]
    ),
    row=st.integers(0, 1199),
    word=WORDS,
)
def test_broken_files_fail_the_training_pipeline_and_leave_production_alone(
    guard_production, guard_data, workdir, kind, row, word
):
    from workflows.runner import production_version, run_training

    path = new_path(workdir, ".csv")
    path.write_bytes(_break(guard_data, kind, row, word))
    tried("training_pipeline_on_broken_files")
    clear(attempt(lambda: validate_file(guard_config(path).dataset))[1], str(path))
    # The pipeline itself, as if the up-front check had been skipped.
    _, error = attempt(lambda: run_training(guard_config(path)))
    assert error is not None, f"{kind}: the training pipeline accepted a broken file"
    assert production_version(GUARD_MODEL) == guard_production
