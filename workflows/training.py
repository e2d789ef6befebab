"""`python run.py train`: the training config from the command's overrides, the run, and what follows a promotion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lifecycle.config import RunConfig, apply_overrides, load_config, load_deployment_config
from lifecycle.project_state import remember_training
from lifecycle.validation import validate_file
from workflows.model_card import replaced_versions, report_cards
from workflows.reporting import redeploy_note, training_markdown, training_record, training_summary
from workflows.runner import TrainingOutcome, redeploy_if_serving, run_training


def training_config(config_path: str, stage: str | None = None, **overrides: Any) -> RunConfig:
    """The config file with the command's overrides (`lifecycle.config.apply_overrides`) and release stage."""
    config = apply_overrides(load_config(config_path), **overrides)
    if stage:
        config = config.model_copy(update={"promotion": config.promotion.model_copy(update={"release_stage": stage})})
    return config


def train(config: RunConfig, say: Callable[[str], None], verbose: bool = False) -> TrainingOutcome:
    """Check the data, run the training pipeline, and make this model the one the next commands act on."""
    if config.training.challengers:
        from lifecycle.automl import require_automl

        require_automl()  # a missing `h2o` package or JDK is named here, before any pipeline run is recorded
    validate_file(config.dataset)  # bad data fails here, before any pipeline run is recorded
    outcome = run_training(config, verbose=verbose)
    remember_training(config)
    say(training_summary(outcome))
    return outcome


def training_result(outcome: TrainingOutcome) -> tuple[dict[str, Any], str]:
    """The run's result for CI: a JSON record and Markdown (`--summary-json`, `--summary-md`)."""
    record = training_record(outcome)
    return record, training_markdown(record)


def redeploy_promoted(
    config: RunConfig,
    outcome: TrainingOutcome,
    deployment_path: str,
    say: Callable[[str], None],
    verbose: bool = False,
) -> dict[str, Any] | None:
    """After a promotion to production: replace the model's server on the active stack (serving settings from
    `deployment_path`), when one serves it."""
    if not (outcome.decision.promoted and config.promotion.release_stage == "production"):
        return None
    redeployed = redeploy_if_serving(config.model.name, load_deployment_config(deployment_path), verbose=verbose)
    if redeployed is not None:
        say(redeploy_note(True, redeployed))
        report_cards(say, config.model.name, outcome.model_version, *replaced_versions(redeployed))
    return redeployed
