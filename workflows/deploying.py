"""`python run.py deploy`: serve production, or a canary or shadow beside it, or end a canary or shadow."""

from __future__ import annotations

from collections.abc import Callable

from lifecycle.config import DeploymentConfig, PromotionConfig
from workflows.canary import CanaryOutcome, judge, remember_start, verdict_summary
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


def deploy_and_judge(
    model_name: str,
    settings: DeploymentConfig,
    promotion: PromotionConfig,
    port: int | None = None,
    timeout: int | None = None,
    canary: str | None = None,
    weight: float = 10.0,
    say: Callable[[str], None] = print,
    verbose: bool = False,
) -> CanaryOutcome:
    """`deploy --canary VERSION --judge`: start the canary (when `canary` names one; else the running canary is
    judged), judge it on live traffic until a verdict, act on it (promote or end) and say what was decided."""
    if canary is not None:
        record = run_deployment(
            model_name,
            settings,
            port=port,
            timeout=timeout,
            role="canary",
            version=canary,
            weight=weight,
            verbose=verbose,
        )
        remember_start(model_name, str(record["model_version"]), str(record["url"]), weight)
        say(deployment_summary(model_name, record))
    outcome = judge(model_name, settings, promotion, say=say, verbose=verbose)
    say(verdict_summary(outcome))
    report_cards(say, model_name, outcome.version, outcome.production_version)
    return outcome
