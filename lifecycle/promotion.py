"""The promotion rule: beat the naive baseline, then beat production re-scored on the same test set."""

from __future__ import annotations

from pydantic import BaseModel

from lifecycle.metrics import LOWER_IS_BETTER, is_better


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


def decide_promotion(
    metric: str,
    candidate_score: float,
    baseline_score: float,
    *,
    production_version: str | None = None,
    production_score: float | None = None,
    production_problem: str | None = None,
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Whether the candidate replaces production, with the reason in words.

    `production_problem` says why the production model could not be re-scored (e.g. it expects columns this
    data lacks); the candidate is then not promoted, since it cannot be shown to be better.
    """
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    decision = dict(
        metric=metric,
        candidate_score=candidate_score,
        baseline_score=baseline_score,
        production_version=production_version,
        production_score=production_score,
        min_improvement=min_improvement,
    )
    if not is_better(metric, candidate_score, baseline_score):
        return PromotionDecision(
            promoted=False,
            reason=(
                f"{metric} {_fmt(candidate_score)} does not beat the naive baseline's {_fmt(baseline_score)} "
                f"({direction} is better)"
            ),
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
