"""Release commands: promote a staging (or named) version, roll production back, and the production timeline.

Stages live on the Model Control Plane (`staging`, `production`, `archived`); each change is appended to the
version's `releases` metadata (who, when, which command, why) and production is mirrored to MLflow's alias on
MLflow stacks. When the model is served on the active stack, its server follows production without downtime.

Each command reads production and changes it under the model's promotion lock (one store-wide lock), then
redeploys after releasing it. The redeploy need not run under that lock: whichever order the redeploys of racing
commands (and plain deploys) take the model's deploy lock in, each one serves the version that is production when
it switches the front door (`serving.rollout.rollout`), so the last one leaves the current production serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zenml.client import Client

from lifecycle.config import DeploymentConfig, PromotionConfig
from lifecycle.hints import run_hint
from lifecycle.model_versions import loaded_artifact, metadata_list
from lifecycle.names import EVALUATION, FEATURE_SCHEMA, TEST_SET
from lifecycle.promotion import PromotionDecision, release_order, rollback_target
from steps.training.releases import RELEASES, judge_candidate, promotion_lock, set_release_stage
from workflows.runner import redeploy_if_serving, serves_here
from workflows.versions import ReleaseError, in_stage, version_named, version_numbers


@dataclass
class ReleaseOutcome:
    model_name: str
    version: int  # the version now in production
    previous: int | None  # the version that was in production before
    decision: PromotionDecision | None = None  # promote: the rule's verdict (None for a rollback)
    forced: bool = False
    changed: bool = True
    redeployed: dict[str, Any] | None = None
    answering_version: str | None = None  # what the live server answered with after the change
    seconds_to_answer: float | None = None  # from the command's start to that answer
    notes: list[str] = field(default_factory=list)


def timeline(model_name: str) -> list[dict[str, Any]]:
    """Every recorded stage change of every version, oldest first (one request for all versions: a rollback
    reads it before it switches production)."""
    try:
        versions = Client().list_model_versions(model_name, size=1000, hydrate=True).items
    except KeyError:
        return []
    events = []
    for version in versions:
        for event in metadata_list(version.run_metadata, RELEASES):
            events.append({"version": version.number, **event})
    return sorted(events, key=release_order)


def _answering(model_name: str, deployment: DeploymentConfig) -> str | None:
    """The version the model's live server on the active stack answers with (one example request)."""
    from lifecycle.environment import state_dir
    from serving.client import read_request_rows
    from serving.served import served_on_active_stack

    example = state_dir() / "requests" / f"{model_name}.json"
    served = served_on_active_stack()
    endpoint = served.live(model_name)
    if endpoint is None or not example.is_file():
        return None
    answer = served.backend.predict_all(endpoint, read_request_rows(str(example)), deployment.max_rows_per_request)
    return str(answer.model_version)


def _to_standby(
    outcome: ReleaseOutcome, deployment: DeploymentConfig, started: float, backend: Any
) -> dict[str, Any] | None:
    """The new production version's warm standby, when one waits behind the front door, answers again (no new
    server): the switch is timed, then recorded on the version as a deploy's is. None: no standby of it."""
    from serving.rollout import switch_to_standby

    switched = switch_to_standby(backend, outcome.model_name, str(outcome.version), deployment)
    if switched is None:
        return None
    outcome.seconds_to_answer = (switched.switched_at or time.perf_counter()) - started
    return _standby_record(outcome, switched, deployment)


def _standby_record(outcome: ReleaseOutcome, switched: Any, deployment: DeploymentConfig) -> dict[str, Any]:
    """What a switch to a warm standby did, said and recorded on the version as a deploy's record is."""
    from zenml import log_metadata

    outcome.answering_version = _answering(outcome.model_name, deployment)
    record = switched.metadata()
    record["standby"] = True
    outcome.notes.append(
        f"version {outcome.version} answers again from its warm standby ({switched.endpoint.url}): no new server "
        "was started" + (f"; version {outcome.previous} waits as the standby now" if switched.replaced else "")
    )
    log_metadata(metadata={"deployment": record}, model_name=outcome.model_name, model_version=str(outcome.version))
    return record


def _follow(
    outcome: ReleaseOutcome, deployment: DeploymentConfig, started: float, verbose: bool = False
) -> ReleaseOutcome:
    """Replace the model's server with the new production version, if one serves it here, and time the switch;
    then end the trials the change settles: a canary always (production takes all traffic), a shadow when it
    serves the version now in production."""
    from serving import front_door
    from serving.rollout import end_trial
    from serving.stack_backend import active_backend
    from stacks.capabilities import active_capabilities

    capabilities = active_capabilities()
    if not serves_here(capabilities):
        outcome.notes.append(
            f"stack `{capabilities.stack}` serves nothing on this machine; a serving machine's follower "
            f"(`{run_hint()} serve --follow`) serves the new production version"
        )
        return outcome
    backend = active_backend()
    redeployed = outcome.redeployed or _to_standby(outcome, deployment, started, backend)
    if redeployed is None:
        redeployed = redeploy_if_serving(outcome.model_name, deployment, verbose=verbose)
    outcome.redeployed = redeployed
    if redeployed is not None and outcome.seconds_to_answer is None:
        outcome.answering_version = _answering(outcome.model_name, deployment)
        outcome.seconds_to_answer = time.perf_counter() - started
        if str(redeployed["model_version"]) != str(outcome.version):
            outcome.notes.append(
                f"production moved on to version {redeployed['model_version']} (another release command) before "
                "the redeploy switched: that version serves"
            )
        if redeployed.get("already_serving"):
            outcome.notes.append(
                f"version {redeployed['model_version']} was serving already (deployed by another command that "
                "followed production): no server was replaced"
            )
    door = front_door.current(outcome.model_name)
    shadow = door.route("shadow") if door else None
    settled = ["canary"] + (["shadow"] if shadow and shadow.model_version == str(outcome.version) else [])
    for role in settled:
        ended = end_trial(backend, outcome.model_name, role, deployment)
        if ended:
            versions = ", ".join(sorted({e.model_version for e in ended}))
            outcome.notes.append(f"the {role} (version {versions}) ended: production answers every request")
    return outcome


def promote(
    model_name: str,
    version: str | None,
    promotion: PromotionConfig,
    deployment: DeploymentConfig,
    force: bool = False,
    reason: str | None = None,
    verbose: bool = False,
) -> ReleaseOutcome:
    """Promote the staging version (or `version`) to production if it still passes the promotion rule against
    the current production, re-scored on the candidate's test rows; `force` overrides the rule, with a reason."""
    started = time.perf_counter()
    if force and not reason:
        raise ReleaseError("--force needs --reason: say why the promotion rule is overridden (it is recorded).")
    if version is None:  # read again under the lock below
        candidate = in_stage(model_name, "staging")
        if candidate is None:
            raise ReleaseError(
                f"no version of `{model_name}` is in staging. Fix: `{run_hint()} train --stage staging` trains a "
                "candidate, or name one with `--version N`."
            )
    else:
        candidate = version_named(model_name, version)
    try:
        test_set = loaded_artifact(candidate, TEST_SET)
        schema = loaded_artifact(candidate, FEATURE_SCHEMA)
        report = loaded_artifact(candidate, EVALUATION)
    except Exception as exc:  # noqa: BLE001 - a version without its evaluation cannot be judged
        raise ReleaseError(
            f"version {candidate.number} of `{model_name}` lacks its test set or evaluation ({exc}); it cannot be "
            f"judged. Fix: promote a version trained by `{run_hint()} train`."
        ) from None
    with promotion_lock(model_name):  # production as it is now, not as it was before the wait
        production = in_stage(model_name, promotion.stage)
        if production is not None and production.number == candidate.number:
            raise ReleaseError(f"version {candidate.number} of `{model_name}` is already in production; nothing to do.")
        decision = judge_candidate(model_name, candidate.number, test_set, schema, report, promotion)
        outcome = ReleaseOutcome(
            model_name, candidate.number, production.number if production else None, decision, changed=False
        )
        if not decision.promoted and not force:
            return outcome
        why = decision.reason if decision.promoted else f"forced: {reason} (the rule said: {decision.reason})"
        if reason and decision.promoted:
            why = f"{reason} ({decision.reason})"
        alias = set_release_stage(model_name, candidate.number, "production", "promote", why)
        outcome.changed, outcome.forced = True, not decision.promoted
        if alias:
            outcome.notes.append(f"MLflow: {alias}")
    return _follow(outcome, deployment, started, verbose)


def rollback(
    model_name: str,
    to: str | None,
    deployment: DeploymentConfig,
    reason: str | None = None,
    stage: str = "production",
    verbose: bool = False,
) -> ReleaseOutcome:
    """Production goes back to an earlier version (`lifecycle.promotion.rollback_target`): by default the most
    recent version that was in production before the current one and that no rollback took out of production
    (none left: refused, asking for `to`); or `to`, which may name a rolled-back version (the outcome's notes
    and the recorded reason say so). The current version is archived with the reason, and a server of the model
    on the active stack is replaced without downtime."""
    from serving.rollout import standby_waits, switch_to_standby_now
    from serving.stack_backend import active_backend

    started = time.perf_counter()
    named = version_named(model_name, to).number if to is not None else None
    quick: dict[str, Any] = {}  # the switch to a warm standby: its Rollout, or what went wrong

    def to_standby(version: int) -> None:
        try:
            quick["rollout"] = switch_to_standby_now(active_backend, model_name, str(version), deployment)
        except Exception as exc:  # noqa: BLE001 - production changed already: the redeploy below serves it
            quick["note"] = f"the warm standby could not take over ({exc}); a new server serves instead"

    with promotion_lock(model_name):  # production and its history as they are now, not before the wait
        current = in_stage(model_name, stage)
        if current is None:
            raise ReleaseError(
                f"no version of `{model_name}` is in production: there is nothing to roll back. "
                f"Fix: `{run_hint()} train` (or `promote`) puts one there."
            )
        target = rollback_target(model_name, timeline(model_name), current.number, named)
        why = f"rollback from version {current.number}" + (f": {reason}" if reason else "")
        why += f" ({target.note})" if target.note else ""
        waits = standby_waits(model_name, deployment) and stage == "production"  # a warm standby may take over
        switch = (lambda: to_standby(target.version)) if waits else None
        alias = set_release_stage(model_name, target.version, stage, "rollback", why, then=switch)
    outcome = ReleaseOutcome(model_name, target.version, current.number)
    outcome.notes += [target.note] if target.note else []
    outcome.notes += [quick["note"]] if "note" in quick else []
    if quick.get("rollout") is not None:  # the door answered with the standby when the switch returned
        outcome.redeployed = _standby_record(outcome, quick["rollout"], deployment)
        outcome.seconds_to_answer = quick["rollout"].switched_at - started
    if alias:
        outcome.notes.append(f"MLflow: {alias}")
    return _follow(outcome, deployment, started, verbose)


def history(model_name: str) -> list[dict[str, Any]]:
    """The production timeline: every time a version entered or left production (and staging), oldest first."""
    if not version_numbers(model_name):
        raise ReleaseError(
            f"model `{model_name}` has no versions. Fix: `{run_hint()} train --model-name {model_name}`."
        )
    return timeline(model_name)


def report_release(outcome: ReleaseOutcome, say: Callable[[str], None]) -> None:
    """What a promote or rollback did, and the cards of the versions it changed (rebuilt)."""
    from workflows.model_card import replaced_versions, report_cards
    from workflows.reporting import release_summary

    say(release_summary(outcome))
    report_cards(say, outcome.model_name, outcome.version, outcome.previous, *replaced_versions(outcome.redeployed))


def release_result(outcome: ReleaseOutcome, command: str) -> tuple[dict[str, Any], str]:
    """The change for CI: a JSON record and Markdown (`--summary-json`, `--summary-md`)."""
    from workflows.reporting import release_markdown, release_record

    record = release_record(outcome, command)
    return record, release_markdown(record)
