"""`python run.py deploy`: serve production, or a canary or shadow beside it, or end a canary or shadow."""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.config import DeploymentConfig
from workflows.model_card import replaced_versions, report_cards
from workflows.reporting import deployment_summary, trial_ended_summary
from workflows.runner import end_serving_trial, run_deployment


def deploy(
    model_name: str,
    settings: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    canary: str | None = None,
    shadow: str | None = None,
    weight: float = 10.0,
    say: Callable[[str], None] = print,
    verbose: bool = False,
) -> None:
    """Serve the production version (zero-downtime replacement); with `canary` or `shadow` VERSION, that version
    beside it behind the model's front door ("none": end it). `say` tells the user what changed."""
    role, version = ("canary", canary) if canary else ("shadow", shadow) if shadow else ("production", None)
    if version is not None and version.lower() == "none":
        stopped = end_serving_trial(model_name, role, settings, verbose=verbose)
        say(trial_ended_summary(model_name, role, stopped))
        report_cards(say, model_name, *(e.model_version for e in stopped))
        return
    record = run_deployment(
        model_name,
        settings,
        port=port,
        timeout=timeout,
        role=role,
        version=version,
        weight=weight if canary else None,
        verbose=verbose,
    )
    say(deployment_summary(model_name, record))
    report_cards(say, model_name, record.get("model_version"), *replaced_versions(record))
