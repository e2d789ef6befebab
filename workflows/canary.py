"""`python run.py deploy --canary N --weight W --judge` (and `deploy --judge`, which resumes judging the running
canary): watch the canary against production on live traffic until a verdict, then act on it.

Each poll reads what came in since the last one: the front door's access log (every client request: which arm,
which status, how fast; serving/front_door_log.py) and the prediction log (each arm's answered rows, with labels
where they arrived). `lifecycle.canary.judge_canary` gives the verdict; this module acts on it:
- promote: through `workflows.release.promote`, the same promotion rule, gates and lock as `run.py promote`
  (production's server follows and the canary ends); when the rule refuses the version, the canary is ended;
- end: the canary leaves the front door and its server stops (production answers every request);
- watch: poll again after `canary.poll_seconds`.
Every verdict that acts is recorded on the canary's version: a `canary` line in its release history (what
`run.py history` and the model card show), and the figures under `canary_judgements`.

The window starts when the canary started (a record under the state folder, written by `deploy --canary`), so a
judge that is stopped and started again loses nothing it had seen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lifecycle.canary import ArmStats, CanaryVerdict, judge_canary
from lifecycle.config import DeploymentConfig, PromotionConfig
from lifecycle.environment import state_dir
from lifecycle.hints import run_hint
from lifecycle.project_state import read_json, write_json
from workflows.versions import ReleaseError

CANARY_JUDGEMENTS = "canary_judgements"  # the version's metadata: every acting verdict's figures
JUDGE_COMMAND = "canary judge"  # the `command` of its release-history lines


@dataclass
class CanaryOutcome:
    model_name: str
    version: str  # the canary's
    production_version: str  # production's when the judge started
    verdict: CanaryVerdict
    promoted: bool = False
    notes: list[str] | None = None

    def record(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "canary_version": self.version,
            "production_version": self.production_version,
            "promoted": self.promoted,
            **self.verdict.figures(),
            "notes": self.notes or [],
        }


def _record_path(model_name: str) -> Path:
    return state_dir() / "canary" / (re.sub(r"[^A-Za-z0-9_.-]", "_", model_name) + ".json")


def remember_start(model_name: str, version: str, upstream: str, weight: float) -> None:
    """When the canary began taking requests (`deploy --canary`): the judge's window starts there."""
    record = {"version": version, "upstream": upstream, "weight": weight, "started": time.time()}
    path = _record_path(model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def window_start(model_name: str, version: str, upstream: str, say: Callable[[str], None]) -> float:
    """The recorded start of this canary (same version and server), else now (and recorded)."""
    record = read_json(_record_path(model_name))
    if isinstance(record, dict) and record.get("version") == version and record.get("upstream") == upstream:
        return float(record["started"])
    say(f"no record of when the canary (version {version}) started: judging the traffic from now on")
    remember_start(model_name, version, upstream, 0.0)
    return time.time()


def _arm(requests: list[Any], rows: Any) -> ArmStats:
    from serving.prediction_log_format import LABEL_COLUMN

    labelled = rows[rows[LABEL_COLUMN].notna()] if LABEL_COLUMN in rows else rows.iloc[0:0]
    return ArmStats(
        requests=len(requests),
        errors=sum(not r.ok for r in requests),
        latencies_ms=[1000.0 * r.seconds for r in requests if r.ok],
        predictions=list(rows["prediction"]),
        labels=list(labelled[LABEL_COLUMN]) if len(labelled) else [],
        labelled_predictions=list(labelled["prediction"]) if len(labelled) else [],
    )


def _arms(tail: Any, model_name: str, version: str, upstream: str, since: float, log_root: Path):
    """(canary, production) statistics of the window so far."""
    from serving.front_door_log import arm_requests
    from serving.prediction_log_reader import read_predictions

    requests = tail.read()
    canary_requests = arm_requests(requests, "canary", upstream)
    production_requests = arm_requests(requests, "production")
    start = datetime.fromtimestamp(since, timezone.utc)
    frame = read_predictions(log_root, model_name, since=start).frame
    canary_rows = frame[(frame["role"] == "canary") & (frame["model_version"].astype(str) == version)]
    production_rows = frame[frame["role"] == "production"]
    return _arm(canary_requests, canary_rows), _arm(production_requests, production_rows)


def record_verdict(model_name: str, outcome: CanaryOutcome) -> None:
    """The verdict on the canary's version: a release-history line (`history`, the model card) and its figures."""
    from zenml import log_metadata
    from zenml.client import Client

    from lifecycle.model_versions import metadata_list
    from steps.training.releases import promotion_lock, record_release

    verdict = outcome.verdict
    action = "promoted" if outcome.promoted else "ended"
    reason = (
        f"{action} by the canary judge against production version {outcome.production_version}: "
        f"{verdict.canary_requests} canary requests ({verdict.canary_share:.1f} % of "
        f"{verdict.canary_requests + verdict.production_requests}) in {verdict.elapsed_minutes:.1f} min; "
        f"{verdict.reason}" + "".join(f"; {note}" for note in outcome.notes or [])
    )
    with promotion_lock(model_name):
        record_release(model_name, int(outcome.version), "canary", JUDGE_COMMAND, reason)
        version = Client().get_model_version(model_name, int(outcome.version))
        judgements = [*metadata_list(version.run_metadata, CANARY_JUDGEMENTS), outcome.record()]
        log_metadata(metadata={CANARY_JUDGEMENTS: judgements}, model_name=model_name, model_version=outcome.version)


def _canary_route(model_name: str) -> Any:
    from serving import front_door

    door = front_door.current(model_name)
    route = door.route("canary") if door else None
    if door is None or route is None:
        raise ReleaseError(
            f"`{model_name}` has no canary behind its front door, so there is nothing to judge. Fix: "
            f"`{run_hint()} deploy --canary VERSION --weight 10 --judge --model-name {model_name}`"
        )
    return door, route


def judge(
    model_name: str,
    deployment: DeploymentConfig,
    promotion: PromotionConfig,
    say: Callable[[str], None] = print,
    verbose: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> CanaryOutcome:
    """Watch the model's running canary until the verdict is promote or end, act on it, and record it."""
    from lifecycle.model_versions import loaded_artifact
    from lifecycle.names import FEATURE_SCHEMA
    from serving.front_door_log import DoorLogTail
    from serving.rollout import end_trial
    from serving.stack_backend import active_backend
    from workflows.release import promote
    from workflows.served import log_root
    from workflows.versions import version_named

    settings = deployment.canary
    door, route = _canary_route(model_name)
    version = str(route.model_version)
    task = loaded_artifact(version_named(model_name, version), FEATURE_SCHEMA).task
    since = window_start(model_name, version, route.upstream, say)
    tail = DoorLogTail.of(model_name, since)
    root = log_root(deployment)
    say(
        f"judging the canary: version {version} with {route.weight:g} % of the requests, against production "
        f"version {door.model_version} (window: {settings.window_requests} canary requests or "
        f"{settings.window_minutes:g} min; give up after {settings.give_up_minutes:g} min without "
        f"{settings.min_requests})"
    )
    last_said = 0.0
    while True:
        canary, production = _arms(tail, model_name, version, route.upstream, since, root)
        verdict = judge_canary(task, canary, production, route.weight, (time.time() - since) / 60, settings)
        if verdict.action != "watch":
            break
        if verbose or time.monotonic() - last_said >= 10:
            say(f"  watching: {verdict.reason}")
            last_said = time.monotonic()
        sleep(settings.poll_seconds)
        _, now = _canary_route(model_name)  # a canary replaced or ended by another command stops the judge
        if now.upstream != route.upstream or str(now.model_version) != version:
            raise ReleaseError(
                f"the canary of `{model_name}` changed while it was judged (now version {now.model_version} at "
                f"{now.upstream}); nothing was decided. Fix: judge the new one with `{run_hint()} deploy --judge`"
            )
    outcome = CanaryOutcome(model_name, version, str(door.model_version), verdict, notes=[])
    if verdict.action == "promote":
        why = f"canary judged on live traffic: {verdict.reason}"
        try:
            released = promote(model_name, version, promotion, deployment, reason=why, verbose=verbose)
        except ReleaseError as refused:  # e.g. a version without the evaluation the rule needs
            outcome.notes = [f"not promoted: {refused}"]
        else:
            outcome.promoted = released.changed
            decision = released.decision.reason if released.decision else "refused"
            outcome.notes = (
                list(released.notes) if released.changed else [f"the promotion rule kept it out: {decision}"]
            )
    if not outcome.promoted:
        end_trial(active_backend(), model_name, "canary", deployment, progress=say if verbose else lambda _: None)
    record_verdict(model_name, outcome)
    return outcome


def verdict_summary(outcome: CanaryOutcome) -> str:
    """What the judge decided, with every check's figures."""
    verdict = outcome.verdict
    head = (
        f"canary version {outcome.version} of `{outcome.model_name}` promoted to production"
        if outcome.promoted
        else f"canary version {outcome.version} of `{outcome.model_name}` ended: production "
        f"(version {outcome.production_version}) answers every request"
    )
    lines = [
        "",
        head,
        f"  after {verdict.elapsed_minutes:.1f} min: {verdict.canary_requests} canary requests "
        f"({verdict.canary_share:.1f} % of {verdict.canary_requests + verdict.production_requests}), "
        f"verdict: {verdict.reason}",
        *[f"  {check.text()}" for check in verdict.checks],
        *[f"  {note}" for note in outcome.notes or []],
        f"  recorded: `{run_hint()} history --model-name {outcome.model_name}`",
    ]
    return "\n".join(lines)
