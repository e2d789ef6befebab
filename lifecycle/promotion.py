"""The promotion rule: pass the validation gates (the strongest naive baseline first), then beat production
re-scored on the same test set. And the rollback rule: where `rollback` goes by default (`rollback_target`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from lifecycle.config import MinimumMetricGate, NaiveBaselineGate, PromotionGates, SegmentGate
from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint
from lifecycle.metrics import LOWER_IS_BETTER, EvaluationReport, SegmentMetrics, is_better, relative_gap


class GateOutcome(BaseModel):
    """One validation gate's verdict on a candidate; only an `enabled` gate that did not pass blocks promotion."""

    name: str
    mode: str
    passed: bool | None  # None: not checked (disabled, or nothing to compare with)
    detail: str

    @property
    def blocks(self) -> bool:
        return self.mode == "enabled" and self.passed is False

    def describe(self) -> str:
        verdict = {True: "passed", False: "FAILED", None: "not checked"}[self.passed]
        enforced = " (dry run: reported, not enforced)" if self.mode == "dry_run" else ""
        return f"gate {self.name}: {verdict}{enforced}: {self.detail}"


class PromotionDecision(BaseModel):
    promoted: bool
    reason: str
    metric: str
    candidate_score: float
    baseline_score: float
    production_version: str | None = None
    # The current production model re-scored on the candidate's test set (None: no production yet).
    production_score: float | None = None
    min_improvement: float = 0.0
    # Warnings a reviewer should see beside the decision (they do not change it), e.g. a small training set.
    flags: list[str] = []
    # Every validation gate with its figures, in the order they were checked.
    gates: list[GateOutcome] = []
    # The stage a promoted version goes to: production, or staging (a candidate that waits for `promote`).
    stage: str = "production"
    # The production model's metrics on the candidate's test rows, overall and per segment (for the model card).
    production_metrics: dict[str, float] = {}
    production_segments: list[SegmentMetrics] = []


def training_size_flag(rows: int | None, production_rows: int | None, production_version: str | None, share: float):
    """A flag when the candidate learned from fewer rows than `share` of what the production version learned from:
    its test metrics come from a small sample too, so its promotion deserves a second look."""
    if not rows or not production_rows or not production_version or share <= 0 or rows >= share * production_rows:
        return None
    return (
        f"trained on {rows} rows, {rows / production_rows:.0%} of the {production_rows} that production version "
        f"{production_version} was trained on (below promotion.min_training_share {share:.0%})"
    )


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def naive_baseline_gate(report: EvaluationReport, gate: NaiveBaselineGate) -> GateOutcome:
    """Beat the strongest naive predictor on the primary metric beyond the test set's noise, and trail it on no
    other metric by more than the margin."""
    metric, naive = report.primary_metric, report.naive_baseline
    outcome = GateOutcome(name="naive_baseline", mode=gate.mode, passed=None, detail="disabled")
    if gate.mode == "disabled":
        return outcome
    if naive is None:  # a report from before the naive predictors were compared: the old single baseline
        beaten = is_better(metric, report.metrics[metric], report.baseline_metrics[metric])
        outcome.passed = beaten
        outcome.detail = (
            f"{metric} {_fmt(report.metrics[metric])} {'beats' if beaten else 'does not beat'} the naive "
            f"baseline's {_fmt(report.baseline_metrics[metric])}"
        )
        return outcome
    strongest = naive.strongest[metric]
    value, reference = report.metrics[metric], naive.metrics[metric]
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    problems = []
    wins = naive.model_wins
    if not is_better(metric, value, reference):
        problems.append(f"{metric} {_fmt(value)} does not beat {strongest}'s {_fmt(reference)} ({direction} is better)")
    elif wins is not None and wins < gate.confidence:
        problems.append(
            f"{metric} {_fmt(value)} beats {strongest}'s {_fmt(reference)} in only {wins:.0%} of bootstrap "
            f"resamples of the test rows (needs {gate.confidence:.0%}): within the test set's noise"
        )
    for other, other_value in report.metrics.items():
        if other == metric or other not in naive.metrics:
            continue
        gap = relative_gap(other, other_value, naive.metrics[other])
        if gap > gate.margin:
            problems.append(
                f"{other} {_fmt(other_value)} trails {naive.strongest[other]}'s {_fmt(naive.metrics[other])} by "
                f"{gap:.0%} (margin {gate.margin:.0%})"
            )
    outcome.passed = not problems
    won = f" in {wins:.0%} of bootstrap resamples" if wins is not None else ""
    outcome.detail = (
        "; ".join(problems)
        if problems
        else f"{metric} {_fmt(value)} beats the strongest naive predictor ({strongest}, {_fmt(reference)}){won}, "
        f"and no other metric trails a naive predictor by more than {gate.margin:.0%}"
    )
    return outcome


def segment_gate(
    metric: str,
    candidate: list[SegmentMetrics],
    production: list[SegmentMetrics] | None,
    production_version: str | None,
    gate: SegmentGate,
) -> GateOutcome:
    """No segment of the test set may be worse than production's on the same rows by more than the margin."""
    outcome = GateOutcome(name="segments", mode=gate.mode, passed=None, detail="disabled")
    if gate.mode == "disabled":
        return outcome
    if production is None or production_version is None:
        outcome.detail = "no production version to compare segments with"
        return outcome
    theirs = {(s.column, s.value): s.metrics.get(metric) for s in production}
    compared, worse = 0, []
    for segment in candidate:
        reference = theirs.get((segment.column, segment.value))
        if metric not in segment.metrics or reference is None:
            continue
        compared += 1
        gap = relative_gap(metric, segment.metrics[metric], reference)
        if gap > gate.margin:
            value = _fmt(segment.metrics[metric])
            worse.append((gap, f"{segment.column}={segment.value} {value} vs {_fmt(reference)}"))
    if not compared:
        outcome.detail = "no segment scored on both models (configure dataset.segment_columns)"
        return outcome
    outcome.passed = not worse
    outcome.detail = (
        f"{len(worse)} of {compared} segments worse than production version {production_version} by more than "
        f"{gate.margin:.0%} on {metric}: " + ", ".join(text for _, text in sorted(worse, reverse=True)[:5])
        if worse
        else f"all {compared} segments within {gate.margin:.0%} of production version {production_version} on {metric}"
    )
    return outcome


def minimum_metric_gate(metric: str, value: float, gate: MinimumMetricGate) -> GateOutcome:
    outcome = GateOutcome(name="minimum_metric", mode=gate.mode, passed=None, detail="disabled")
    if gate.mode == "disabled" or gate.value is None:
        return outcome
    lower = metric in LOWER_IS_BETTER
    outcome.passed = value <= gate.value if lower else value >= gate.value
    outcome.detail = f"{metric} {_fmt(value)} {'at most' if lower else 'at least'} {_fmt(gate.value)} required"
    return outcome


def check_gates(
    report: EvaluationReport,
    gates: PromotionGates,
    production_segments: list[SegmentMetrics] | None = None,
    production_version: str | None = None,
) -> list[GateOutcome]:
    """Every configured gate's verdict on the candidate (disabled gates included, so the decision lists them)."""
    metric = report.primary_metric
    return [
        naive_baseline_gate(report, gates.naive_baseline),
        segment_gate(metric, report.segments, production_segments, production_version, gates.segments),
        minimum_metric_gate(metric, report.metrics[metric], gates.minimum_metric),
    ]


def decide_promotion(
    metric: str,
    candidate_score: float,
    baseline_score: float,
    *,
    production_version: str | None = None,
    production_score: float | None = None,
    production_problem: str | None = None,
    min_improvement: float = 0.0,
    gates: list[GateOutcome] | None = None,
) -> PromotionDecision:
    """Whether the candidate replaces production, with the reason in words.

    `gates` are the validation gates' verdicts (`check_gates`); without them the candidate only has to beat
    `baseline_score`. `production_problem` says why the production model could not be re-scored (e.g. it expects
    columns this data lacks); the candidate is then not promoted, since it cannot be shown to be better.
    """
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    decision = dict(
        metric=metric,
        candidate_score=candidate_score,
        baseline_score=baseline_score,
        production_version=production_version,
        production_score=production_score,
        min_improvement=min_improvement,
        gates=gates or [],
    )
    if gates is None and not is_better(metric, candidate_score, baseline_score):
        return PromotionDecision(
            promoted=False,
            reason=(
                f"{metric} {_fmt(candidate_score)} does not beat the naive baseline's {_fmt(baseline_score)} "
                f"({direction} is better)"
            ),
            **decision,
        )
    blocking = [gate for gate in gates or [] if gate.blocks]
    if blocking:
        return PromotionDecision(
            promoted=False,
            reason="; ".join(f"stopped by gate {gate.name}: {gate.detail}" for gate in blocking),
            **decision,
        )
    if production_version is None:
        return PromotionDecision(
            promoted=True,
            reason=(
                f"first production model: {metric} {_fmt(candidate_score)} beats the naive baseline's "
                f"{_fmt(baseline_score)}"
            ),
            **decision,
        )
    if production_problem is not None:
        return PromotionDecision(
            promoted=False,
            reason=(
                f"production version {production_version} could not be re-scored on this test set "
                f"({production_problem}); use another model name (--model-name) for a different dataset"
            ),
            **decision,
        )
    assert production_score is not None
    margin = f" by at least {min_improvement:.1%}" if min_improvement else ""
    if is_better(metric, candidate_score, production_score, min_improvement):
        return PromotionDecision(
            promoted=True,
            reason=(
                f"{metric} {_fmt(candidate_score)} beats production version {production_version}'s "
                f"{_fmt(production_score)} on the same test set{margin}"
            ),
            **decision,
        )
    return PromotionDecision(
        promoted=False,
        reason=(
            f"{metric} {_fmt(candidate_score)} does not beat production version {production_version}'s "
            f"{_fmt(production_score)} on the same test set{margin} ({direction} is better); production kept"
        ),
        **decision,
    )


def promotion_lock_name(model_name: str) -> str:
    """The store lock (`stacks.store_lock`) that orders every change of the model's stages, on every machine: the
    promotion rule reading production, `rollback` choosing its target, and a deploy switching its front door."""
    return f"promote-{model_name}"


class RollbackRefused(LifecycleError):
    """`rollback` has no version it may go back to on its own, or was named the version already in production."""


@dataclass(frozen=True)
class RollbackTarget:
    version: int
    note: str = ""  # said to the user and recorded: set when --to names a version that was itself rolled back


def release_order(event: Mapping[str, Any]) -> tuple[int, bool]:
    """Sort key of a release-history event, oldest first: its time in nanoseconds (`at_ns`; an event recorded
    before it was kept: the start of its second, `at`), then, within one instant, a version's entry before the
    other's exit."""
    at_ns = event.get("at_ns")
    if at_ns is None:
        at_ns = int(datetime.fromisoformat(str(event["at"])).timestamp()) * 1_000_000_000
    return int(at_ns), event.get("stage") == "archived"


def rolled_back_versions(events: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """The versions a `rollback` took out of production, with when it last did (the event's `at`)."""
    taken_out = [e for e in events if e["stage"] == "archived" and e["command"] == "rollback"]
    return {int(e["version"]): str(e.get("at", "")) for e in taken_out}


def rollback_target(
    model_name: str, events: Sequence[Mapping[str, Any]], current: int, to: int | None = None
) -> RollbackTarget:
    """Where `rollback` takes production, from the model's release history (`events`, every version's stage
    changes, oldest first) and the version in production now (`current`).

    Default (`to` None): the most recent version that was in production before `current` entered it, skipping any
    version that a rollback ever took out of production. A rollback never returns on its own to a version that was
    itself rolled back, even one promoted again since: rolling back twice goes further back, and where nothing
    earlier is left, it refuses and asks for `--to VERSION`.

    `to`: that version, whatever its history (naming it is the explicit choice); a version that was rolled back is
    allowed, and the returned note says so. `to` naming the current version is refused: nothing to do.
    """
    rolled_back = rolled_back_versions(events)
    if to is not None:
        if to == current:
            raise RollbackRefused(f"version {to} of `{model_name}` is already in production; nothing to do.")
        note = ""
        if to in rolled_back:
            note = (
                f"version {to} was itself rolled back (taken out of production by `rollback` at {rolled_back[to]}); "
                "it goes back to production because --to names it"
            )
        return RollbackTarget(to, note)
    entered = [e for e in events if e["stage"] == "production"]
    since = max((i for i, e in enumerate(entered) if int(e["version"]) == current), default=len(entered))
    earlier = [int(e["version"]) for e in reversed(entered[:since]) if int(e["version"]) != current]
    for version in earlier:
        if version not in rolled_back:
            return RollbackTarget(version)
    if not earlier:
        raise RollbackRefused(
            f"version {current} of `{model_name}` is the first production version on record: there is no earlier one "
            f"to roll back to. Fix: name one with `--to VERSION` (`{run_hint()} history` lists them)."
        )
    skipped = ", ".join(f"{v} (at {rolled_back[v]})" for v in dict.fromkeys(earlier))
    raise RollbackRefused(
        f"every version of `{model_name}` that was in production before version {current} was itself rolled back: "
        f"{skipped}; `rollback` does not return to a rolled-back version on its own. Fix: name the version with "
        f"`--to VERSION` (`{run_hint()} history --model-name {model_name}` lists them)."
    )
