"""What the benchmarks share: a throw-away workspace, the bike model trained in it, progress lines, the machine."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

BACKEND_STACKS = {"zenml": "local", "mlflow": "mlflow", "bentoml": "bentoml"}


def isolate(state: Path) -> None:
    """A throw-away ZenML store and state folder (before ZenML is imported)."""
    from lifecycle.environment import configure_environment, isolated_environment

    os.environ.update(isolated_environment(state))
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as in every server: the in-process rows compare like with like
    configure_environment()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def train_bench_model(model_name: str) -> tuple[Any, Any, Any]:
    """Registers every stack, trains the bike model on `full` (so MLflow has it too); (model, schema, test set)."""
    from zenml.client import Client

    from lifecycle.config import load_config
    from lifecycle.model_versions import loaded_artifact, loaded_model
    from lifecycle.names import FEATURE_SCHEMA, MODEL, TEST_SET
    from stacks.manage import select, stack_specs, stacks_up
    from workflows.runner import run_training

    client = Client()
    stacks_up(select([], stack_specs(), for_registration=True))
    client.activate_stack("full")
    log("training the bike model on the `full` stack ...")
    config = load_config()
    run_training(config.model_copy(update={"model": config.model.model_copy(update={"name": model_name})}))
    version = client.get_model_version(model_name, "production")
    return (
        loaded_model(version, MODEL),
        loaded_artifact(version, FEATURE_SCHEMA),
        loaded_artifact(version, TEST_SET),
    )


def machine() -> str:
    import bentoml
    import mlflow
    import zenml

    return (
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"zenml {zenml.__version__}, mlflow {mlflow.__version__}, bentoml {bentoml.__version__}"
    )
