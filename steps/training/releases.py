"""Release helpers shared by the promote step and the release commands: the promotion rule applied to one version
(`judge_candidate`), the store-wide promotion lock, and stage changes recorded on the Model Control Plane and
mirrored to MLflow's alias."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pandas as pd
from zenml import log_metadata
from zenml.client import Client
from zenml.logger import get_logger

from lifecycle.config import PromotionConfig
from lifecycle.metrics import EvaluationReport, SegmentMetrics, score_model, score_segments
from lifecycle.model_versions import loaded_model, metadata_dict, metadata_int, metadata_list, metadata_str
from lifecycle.mojo_model import TrainedModel
from lifecycle.names import MODEL
from lifecycle.promotion import (
    PromotionDecision,
    check_gates,
    decide_promotion,
    promotion_lock_name,
    training_size_flag,
)
from lifecycle.tracking import CHAMPION_ALIAS
from lifecycle.validation import FeatureSchema
from stacks.capabilities import mlflow_registry
from stacks.store_lock import store_lock

logger = get_logger(__name__)
TRAIN_ROWS = "train_rows_after_validation"  # recorded on each version by the register step
RELEASES = "releases"  # each version's stage changes: who, when, which command, why


def rescore_production(
    production_model: TrainedModel, production_task: str | None, test_set: pd.DataFrame, feature_schema: FeatureSchema
) -> tuple[dict[str, float], list[SegmentMetrics], str | None]:
    """Score the production model on the candidate's test set, overall and per segment: (metrics, segments,
    problem that prevented it)."""
    if production_task and production_task != feature_schema.task:
        return {}, [], f"it is a {production_task} model and this is a {feature_schema.task} task"
    expected = list(getattr(production_model, "feature_names_in_", []))
    missing = [column for column in expected if column not in test_set.columns]
    if missing:
        return {}, [], f"it needs columns this data lacks: {', '.join(missing[:10])}"
    try:
        metrics = score_model(production_model, test_set, feature_schema)
        segments = score_segments(production_model, test_set, feature_schema, min_rows=1)
    except Exception as exc:  # any failure to predict means it cannot be compared
        return {}, [], f"it failed to predict: {exc}"
    return metrics, segments, None


def mirror_promotion_to_mlflow(model_name: str, number: int) -> str | None:
    """Point the MLflow alias `champion` at this version's registered twin (the MCP stage leads, MLflow follows)."""
    registry = mlflow_registry()
    if registry is None:
        return None
    links = metadata_dict(Client().get_model_version(model_name, number).run_metadata, "mlflow")
    registered = links.get("mlflow_registered_version")
    if not registered:
        logger.warning("Model version %s has no MLflow registry version; alias `%s` not moved.", number, CHAMPION_ALIAS)
        return None
    registry.mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, registered)
    return f"{model_name}@{CHAMPION_ALIAS} -> version {registered}"


@contextlib.contextmanager
def promotion_lock(model_name: str) -> Iterator[None]:
    """One promotion of a model at a time, across every machine that shares the ZenML store (a lock in the store
    itself: `stacks.store_lock`). Two runs finishing together would otherwise each compare with the production
    version they read before the other promoted (both "first production model"), and the last to write would
    win, better or not, with the MLflow alias possibly following the other one. A deploy holds the same lock while
    it re-reads production and switches the model's front door (`serving.rollout`)."""
    with store_lock(promotion_lock_name(model_name), on_wait=logger.info):
        yield


def judge_candidate(
    model_name: str,
    candidate_number: int,
    test_set: pd.DataFrame,
    feature_schema: FeatureSchema,
    evaluation_report: EvaluationReport,
    promotion: PromotionConfig,
) -> PromotionDecision:
    """The promotion rule for one version: its gates, then the current production model re-scored on the
    candidate's own test rows. Call it under `promotion_lock`: production may not move while it is read."""
    metric = evaluation_report.primary_metric
    production_version = production_score = problem = production_segments = None
    production_metrics: dict[str, float] = {}
    try:
        production = Client().get_model_version(model_name, promotion.stage)
    except KeyError:
        production = None
    candidate = Client().get_model_version(model_name, candidate_number)
    if production is not None and production.id != candidate.id:
        production_version = str(production.number)
        try:
            production_model = loaded_model(production, MODEL)
            task = metadata_str(production.run_metadata, "task")
            production_metrics, production_segments, problem = rescore_production(
                production_model, task, test_set, feature_schema
            )
            production_score = production_metrics.get(metric)
        except Exception as exc:  # a missing or unloadable artifact
            problem = f"its model could not be loaded: {exc}"
    decision = decide_promotion(
        metric,
        evaluation_report.metrics[metric],
        evaluation_report.baseline_metrics[metric],
        production_version=production_version,
        production_score=production_score,
        production_problem=problem,
        min_improvement=promotion.min_improvement,
        gates=check_gates(evaluation_report, promotion.gates, production_segments, production_version),
    )
    if production is not None and production_version:
        flag = training_size_flag(
            metadata_int(candidate.run_metadata, TRAIN_ROWS),
            metadata_int(production.run_metadata, TRAIN_ROWS),
            production_version,
            promotion.min_training_share,
        )
        decision.flags += [flag] if flag else []
    decision.production_metrics = production_metrics
    decision.production_segments = production_segments or []
    return decision


def release_actor() -> str:
    """Who changed a stage: the CI's actor when a workflow runs it, else user@host."""
    return os.environ.get("GITHUB_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def record_release(model_name: str, number: int, stage: str, command: str, reason: str) -> dict:
    """Append a stage change (who, when, which command, why) to the version's release history on the Model
    Control Plane; `python run.py history` reads these. Call it under `promotion_lock`. `at` is for people; `at_ns`
    orders the changes that fall in one second (`lifecycle.promotion.release_order`)."""
    at_ns = time.time_ns()
    event = {
        "stage": stage,
        "at": datetime.fromtimestamp(at_ns / 1e9, timezone.utc).isoformat(timespec="seconds"),
        "at_ns": at_ns,
        "by": release_actor(),
        "command": command,
        "reason": reason,
    }
    version = Client().get_model_version(model_name, number)
    events = [*metadata_list(version.run_metadata, RELEASES), event]
    log_metadata(metadata={RELEASES: events}, model_name=model_name, model_version=str(number))
    return event


def set_release_stage(
    model_name: str, number: int, stage: str, command: str, reason: str, then: Callable[[], None] | None = None
) -> str | None:
    """Move a version to `stage` (the version there before is archived, and its history says so); mirrors
    production to MLflow's alias. Returns the alias line, if MLflow has one. Call it under `promotion_lock`.
    `then`: called as soon as the stage changed, before the history and MLflow are written (a rollback's switch
    to a warm standby)."""
    try:
        before = Client().get_model_version(model_name, stage)
    except KeyError:
        before = None
    Client().get_model_version(model_name, number).set_stage(stage, force=True)
    if then is not None:
        then()
    record_release(model_name, number, stage, command, reason)
    if before is not None and before.number != number:
        record_release(model_name, before.number, "archived", command, f"replaced in {stage} by version {number}")
    return mirror_promotion_to_mlflow(model_name, number) if stage == "production" else None
