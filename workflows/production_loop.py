"""The production loop: monitor a batch against the production model, retrain when the policy says so, redeploy a
promoted model, refresh the cards of the versions that changed. `python run.py monitor` runs it once; the replay
(`workflows.replay`) runs it period by period."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.config import DeploymentConfig, MonitoringConfig, RunConfig, SparkConfig
from lifecycle.data import read_table
from lifecycle.environment import state_dir
from lifecycle.windows import RetrainingSet, retraining_set
from workflows.model_card import replaced_versions, report_cards
from workflows.reporting import (
    monitoring_markdown,
    monitoring_summary,
    redeploy_note,
    training_markdown,
    training_record,
    training_summary,
)
from workflows.runner import (
    MonitoringOutcome,
    TrainingOutcome,
    on_spark,
    redeploy_if_serving,
    run_monitoring,
    run_training,
)
from workflows.served import served_batch

Say = Callable[[str], None]
RETRAIN_CHOICES = ("auto", "always", "never")  # auto: when the policy triggers; always: on demand; never: report


@dataclass
class LoopOutcome:
    monitoring: MonitoringOutcome
    retrained: TrainingOutcome | None = None
    redeployed: dict[str, Any] | None = None


def _silent(line: str) -> None:
    """Say nothing (the replay reports one line per period instead)."""


def monitor_retrain_redeploy(
    model_name: str,
    batch_path: str,
    monitoring: MonitoringConfig,
    retraining: Callable[[], tuple[RunConfig, str]],
    redeploy: Callable[[], dict[str, Any] | None],
    retrain: str = "auto",
    say: Say = _silent,
    cards: bool = True,
    verbose: bool = False,
) -> LoopOutcome:
    """One turn of the loop. `retraining` gives the config to retrain with and what its data is made of (called
    only when the policy, or `retrain="always"`, asks for it); `redeploy` serves the new production version after
    a promotion (None: nothing serves it). `say` reports each stage as it ends; `cards` refreshes the model cards
    of the versions that changed."""
    monitored = run_monitoring(
        model_name, batch_path, monitoring, retrain_on_demand=retrain == "always", verbose=verbose
    )
    outcome = LoopOutcome(monitored)
    say(monitoring_summary(monitored))
    if cards:
        report_cards(say, model_name, monitored.summary.model_version)
    if not monitored.summary.decision.retrain or retrain == "never":
        return outcome
    config, made_of = retraining()
    say(f"\nRetraining on {made_of} ...")
    outcome.retrained = retrained = run_training(config, verbose=verbose)
    say(training_summary(retrained))
    promoted = retrained.decision.promoted
    outcome.redeployed = redeploy() if promoted else None
    say(redeploy_note(promoted, outcome.redeployed))
    if cards and outcome.redeployed is not None:
        report_cards(say, model_name, retrained.model_version, *replaced_versions(outcome.redeployed))
    return outcome


def retraining_data(
    config: RunConfig,
    batch_path: str,
    window_days: int,
    end: pd.Timestamp | None = None,
    spark: SparkConfig | None = None,
) -> tuple[Path, RetrainingSet]:
    """The newest labelled data for retraining (`lifecycle.windows.retraining_set`), written to the state folder
    as a CSV; returns its path and what it is made of. With `spark` (a batch monitored on Spark), the batch is not
    read whole: a seeded sample of `spark.retrain_sample_rows` of its rows is drawn on the cluster."""
    if spark is None:
        batch, sampled = read_table(batch_path, allow_empty=True), None
    else:
        batch, rows = sampled_batch(config.model.name, batch_path, spark)
        sampled = (len(batch), rows)
    table, made_of = retraining_set(read_table(config.dataset.path), batch, config.dataset, window_days, end)
    made_of.batch_sample = sampled
    folder = state_dir() / "retraining"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.model.name}-{pd.Timestamp.now():%Y%m%d-%H%M%S-%f}.csv"
    table.to_csv(path, index=False)
    return path, made_of


def sampled_batch(model_name: str, batch_path: str, spark: SparkConfig) -> tuple[pd.DataFrame, int]:
    """A seeded sample of a large batch, drawn on the Spark cluster (read with the production model's CSV format),
    and the batch's row count."""
    from zenml.client import Client

    from lifecycle.batch_statistics import batch_sample
    from lifecycle.model_versions import loaded_artifact
    from lifecycle.names import FEATURE_SCHEMA
    from lifecycle.spark_engine import spark_session, stop_session
    from workflows.spark_cluster import master_url

    schema = loaded_artifact(Client().get_model_version(model_name, "production"), FEATURE_SCHEMA)
    session = spark_session(master_url(spark), spark, app_name="retraining-sample")
    try:
        return batch_sample(session, batch_path, schema, spark.retrain_sample_rows, spark.monitor_sample_seed)
    finally:
        stop_session(session)


def served_batch_path(
    config: RunConfig, since: str | None, until: str | None, deployment: DeploymentConfig, say: Say
) -> str:
    """What the model's servers answered, written as a monitoring batch; says what it holds, per version."""
    batch = served_batch(config, since, until, deployment)
    say(
        f"served rows of `{config.model.name}` ({since or 'all'} .. {until or 'now'}): {batch.rows}, of which "
        f"{batch.labelled} labelled; batch written to {batch.path}\n{batch.table()}\n"
    )
    return str(batch.path)


def monitor_production(
    config: RunConfig,
    batch_path: str,
    monitoring: MonitoringConfig,
    deployment: DeploymentConfig,
    retrain: str = "auto",
    say: Say = _silent,
    verbose: bool = False,
) -> LoopOutcome:
    """`python run.py monitor`: the loop on one batch; a retraining uses the newest labelled window of the
    training data and the batch, and a promoted model replaces the model's server when one serves it here."""

    def retraining() -> tuple[RunConfig, str]:
        window = monitoring.policy.retrain_window_days
        data, made_of = retraining_data(config, batch_path, window, spark=on_spark(batch_path))
        dataset = config.dataset.model_copy(update={"path": str(data)})
        return config.model_copy(update={"dataset": dataset}), f"{made_of.describe()} ({data})"

    name = config.model.name
    return monitor_retrain_redeploy(
        name,
        batch_path,
        monitoring,
        retraining,
        lambda: redeploy_if_serving(name, deployment, verbose=verbose),
        retrain=retrain,
        say=say,
        verbose=verbose,
    )


def monitoring_result(outcome: LoopOutcome) -> tuple[dict[str, Any], str]:
    """The loop's result for CI: a JSON record and Markdown (`--summary-json`, `--summary-md`)."""
    summary = outcome.monitoring.summary
    record: dict[str, Any] = {"command": "monitor", **summary.model_dump(mode="json"), "retraining": None}
    markdown = monitoring_markdown(outcome.monitoring)
    if outcome.retrained is not None:
        record["retraining"] = training_record(outcome.retrained)
        markdown += "\n" + training_markdown(record["retraining"])
    return record, markdown
