"""Automatic canary analysis: a canary compared with production on the same window of live traffic, and the
verdict (promote, keep watching, or end it).

Plain functions on plain figures, no ZenML and no servers: `judge_canary` takes each arm's statistics (what the
front door saw of its requests: how many, how many failed, their latencies; and what the prediction log holds of
its answers: predictions, and labels where they arrived) and the settings of `canary` in configs/deployment.yaml.
The front door splits requests by a hash of the request id, so the two arms see the same kind of traffic and a
difference between them is the versions', not the traffic's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from lifecycle.config import CanaryConfig

Action = Literal["promote", "watch", "end"]


@dataclass
class ArmStats:
    """One arm of the front door (production or canary) over the judged window."""

    requests: int = 0  # requests the front door sent this arm
    errors: int = 0  # of them, answered with a status other than 2xx (a server error, a dead server's 502, ...)
    latencies_ms: list[float] = field(default_factory=list)  # the answered requests' times at the front door
    predictions: list[Any] = field(default_factory=list)  # the rows this arm answered (prediction log)
    labels: list[Any] = field(default_factory=list)  # ground truth of the labelled rows ...
    labelled_predictions: list[Any] = field(default_factory=list)  # ... and their predictions, in the same order

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def latency_ms(self, quantile: float) -> float | None:
        return float(np.quantile(self.latencies_ms, quantile)) if self.latencies_ms else None


@dataclass
class Check:
    """One comparison of the canary with production."""

    name: str
    canary: float | None
    production: float | None
    limit: float | None  # the canary's largest allowed value (or, for a test, the smallest allowed p-value)
    passed: bool
    note: str = ""
    tested: bool = True  # False: too few rows to compare (it passes, but is no evidence for a promotion)
    waiting: bool = False  # it would fail, but the evidence that could clear it is arriving (held, then ended)

    def text(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.name}: {self.note} ({verdict})"


@dataclass
class CanaryVerdict:
    action: Action
    reason: str
    canary_requests: int
    production_requests: int
    canary_share: float  # of the window's requests, in percent
    elapsed_minutes: float
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def figures(self) -> dict[str, Any]:
        """The verdict as plain values (recorded on the version, printed as JSON for CI)."""
        return {
            "action": self.action,
            "reason": self.reason,
            "canary_requests": self.canary_requests,
            "production_requests": self.production_requests,
            "canary_share_percent": round(self.canary_share, 2),
            "elapsed_minutes": round(self.elapsed_minutes, 2),
            "checks": [{k: _rounded(v) for k, v in asdict(c).items()} for c in self.checks],
        }


def _rounded(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _latency_check(
    name: str, quantile: float, ratio: float, canary: ArmStats, production: ArmStats, settings: CanaryConfig
) -> Check:
    """The canary's latency quantile against production's. It fails only when, besides, at least
    `latency_min_slow_requests` of the canary's requests took longer than the limit: on a few dozen requests the
    p99 is the slowest one, and one request stalled by a busy machine is not a slow canary."""
    warm = canary.latencies_ms[settings.latency_warmup_requests :]  # a new server's first answers are slower
    ours = float(np.quantile(warm, quantile)) if warm else None
    theirs = production.latency_ms(quantile)
    if ours is None or theirs is None:
        return Check(name, ours, theirs, None, True, "no answered requests in one arm yet (after the warm-up)")
    margin = settings.latency_margin_ms
    limit = ratio * theirs + margin
    note = f"canary {_ms(ours)}, production {_ms(theirs)}, limit {ratio:g} x production + {margin:g} ms = {_ms(limit)}"
    if ours <= limit:
        return Check(name, ours, theirs, limit, True, note)
    slow, least = sum(latency > limit for latency in warm), settings.latency_min_slow_requests
    note += f"; {slow} of the canary's {len(warm)} answers slower than the limit"
    note += f" (its first {settings.latency_warmup_requests} left out)" if settings.latency_warmup_requests else ""
    if slow < least:
        return Check(name, ours, theirs, limit, True, f"{note}, {least} needed to fail it")
    return Check(name, ours, theirs, limit, False, note)


def distribution_test(task: str, canary: Sequence[Any], production: Sequence[Any]) -> tuple[str, float, float]:
    """The test that the two arms' predictions come from one distribution: (its name, the distance between the
    arms, the p-value). A regression: two-sample Kolmogorov-Smirnov (the distance is its statistic, the largest
    gap between the two cumulative distributions). Classes: chi-squared on the classes' counts (the distance is
    the total variation between the arms' class shares)."""
    from scipy import stats

    if task == "regression":
        result = stats.ks_2samp(np.asarray(canary, dtype=float), np.asarray(production, dtype=float))
        return "Kolmogorov-Smirnov", float(result.statistic), float(result.pvalue)
    classes = sorted({str(v) for v in canary} | {str(v) for v in production})
    table = np.array([[sum(str(v) == c for v in arm) for c in classes] for arm in (canary, production)])
    distance = float(0.5 * np.abs(table[0] / table[0].sum() - table[1] / table[1].sum()).sum())
    if len(classes) < 2:
        return "chi-squared", distance, 1.0
    return "chi-squared", distance, float(stats.chi2_contingency(table)[1])


def row_losses(task: str, labels: Sequence[Any], predictions: Sequence[Any]) -> np.ndarray:
    """Each labelled row's loss: its squared error for a regression, 1 when misclassified otherwise."""
    if task == "regression":
        return (np.asarray(labels, dtype=float) - np.asarray(predictions, dtype=float)) ** 2
    return np.array([float(str(t) != str(p)) for t, p in zip(labels, predictions, strict=True)])


def labelled_error(task: str, labels: Sequence[Any], predictions: Sequence[Any]) -> float:
    """The error on labelled rows, lower is better: rmse for a regression, the share misclassified otherwise."""
    losses = row_losses(task, labels, predictions)
    return float(np.sqrt(losses.mean()) if task == "regression" else losses.mean())


def worse_p_value(canary_losses: np.ndarray, production_losses: np.ndarray) -> float:
    """One-sided Mann-Whitney U: the p-value of the canary's row losses being no larger than production's."""
    from scipy import stats

    if np.all(canary_losses == canary_losses[0]) and np.array_equal(
        np.unique(canary_losses), np.unique(production_losses)
    ):
        return 1.0  # every loss the same in both arms (e.g. a classifier right on every row)
    return float(stats.mannwhitneyu(canary_losses, production_losses, alternative="greater").pvalue)


def share_ceiling(weight: float, requests: int, tolerance: float) -> float:
    """The largest share (in percent) a canary of `weight` % may get of `requests`: its weight plus the configured
    tolerance plus three standard deviations of the split's chance (each request goes to the canary with
    probability weight / 100): on a few dozen requests the share cannot be pinned closer."""
    p = weight / 100
    spread = 300 * math.sqrt(p * (1 - p) / requests) if requests else 100.0
    return min(100.0, weight + tolerance + spread)


def _distribution_check(
    task: str, canary: ArmStats, production: ArmStats, labelled: Check, settings: CanaryConfig
) -> Check:
    """The arms' predictions compared. They may differ surely and by much when labels show the canary's error no
    higher than production's (a better model answers differently); while labels are arriving but too few, such a
    canary is held (`waiting`, see judge_canary); with no label at all, the difference ends it."""
    test, distance, p_value = distribution_test(task, canary.predictions, production.predictions)
    largest = settings.max_distribution_distance
    note = (
        f"{test} distance {distance:.3f} (limit {largest:g}), p = {p_value:.3g} (alpha "
        f"{settings.distribution_alpha:g}) on {len(canary.predictions)} canary and "
        f"{len(production.predictions)} production rows"
    )
    if p_value >= settings.distribution_alpha or distance <= largest:
        return Check("prediction distribution", distance, None, largest, True, note)
    if labelled.tested:
        if labelled.canary is not None and labelled.production is not None and labelled.canary <= labelled.production:
            note += "; they differ, but the canary's labelled error is no higher than production's"
            return Check("prediction distribution", distance, None, largest, True, note)
        return Check("prediction distribution", distance, None, largest, False, note)
    if canary.labels or production.labels:
        note += (
            f"; they differ: held for labels ({len(canary.labels)} canary and {len(production.labels)} production "
            f"rows labelled, {settings.min_labelled_rows} needed in each)"
        )
        return Check("prediction distribution", distance, None, largest, True, note, tested=False, waiting=True)
    return Check("prediction distribution", distance, None, largest, False, note)


def compare_arms(
    task: str, canary: ArmStats, production: ArmStats, weight: float, settings: CanaryConfig
) -> list[Check]:
    """Every check of the canary against production on the window (see configs/deployment.yaml, `canary`)."""
    checks = []
    allowed = production.error_share + settings.max_error_share_increase
    checks.append(
        Check(
            "error share",
            canary.error_share,
            production.error_share,
            allowed,
            canary.error_share <= allowed,
            f"canary {canary.errors}/{canary.requests} = {canary.error_share:.1%}, production "
            f"{production.errors}/{production.requests} = {production.error_share:.1%}, limit {allowed:.1%}",
        )
    )
    checks.append(_latency_check("p50 latency", 0.5, settings.max_p50_ratio, canary, production, settings))
    checks.append(_latency_check("p99 latency", 0.99, settings.max_p99_ratio, canary, production, settings))
    total = canary.requests + production.requests
    share = 100.0 * canary.requests / total if total else 0.0
    ceiling = share_ceiling(weight, total, settings.share_tolerance)
    checks.append(
        Check(
            "canary share",
            share,
            weight,
            ceiling,
            share <= ceiling,
            f"{share:.1f} % of {total} requests, limit {ceiling:.1f} % (weight {weight:g} % + tolerance "
            f"{settings.share_tolerance:g} + three binomial standard deviations)",
        )
    )
    least = settings.min_labelled_rows
    if len(canary.labels) >= least and len(production.labels) >= least:
        ours = labelled_error(task, canary.labels, canary.labelled_predictions)
        theirs = labelled_error(task, production.labels, production.labelled_predictions)
        p_value = worse_p_value(
            row_losses(task, canary.labels, canary.labelled_predictions),
            row_losses(task, production.labels, production.labelled_predictions),
        )
        limit = settings.max_labelled_error_ratio * theirs
        worse = ours > limit and p_value < settings.labelled_alpha
        kind = "rmse" if task == "regression" else "error rate"
        labelled = Check(
            "labelled error",
            ours,
            theirs,
            limit,
            not worse,
            f"{kind} canary {ours:.4g} on {len(canary.labels)} rows, production {theirs:.4g} on "
            f"{len(production.labels)}, limit {settings.max_labelled_error_ratio:g} x production = {limit:.4g}; "
            f"canary's row losses larger: Mann-Whitney p = {p_value:.3g} (alpha {settings.labelled_alpha:g})",
        )
    else:
        labelled = Check(
            "labelled error",
            None,
            None,
            None,
            True,
            f"not compared: {len(canary.labels)} canary and {len(production.labels)} production rows labelled, "
            f"{least} needed in each",
            tested=False,
        )
    rows = settings.min_requests
    if len(canary.predictions) >= rows and len(production.predictions) >= rows:
        checks.append(_distribution_check(task, canary, production, labelled, settings))
    else:
        checks.append(
            Check(
                "prediction distribution",
                None,
                None,
                settings.distribution_alpha,
                True,
                f"not tested: {len(canary.predictions)} canary and {len(production.predictions)} production rows "
                f"logged, {rows} needed in each",
                tested=False,
            )
        )
    checks.append(labelled)
    return checks


def judge_canary(
    task: str,
    canary: ArmStats,
    production: ArmStats,
    weight: float,
    elapsed_minutes: float,
    settings: CanaryConfig,
) -> CanaryVerdict:
    """The verdict on a canary after `elapsed_minutes` of judging:
    - fewer than `min_requests` canary requests: keep watching, or end it once `give_up_minutes` have passed
      (too little traffic to judge: production keeps it all);
    - any check failed: end it; a prediction distribution that differs while labels are arriving is held for
      them (`waiting`) up to `wait_for_labels_minutes`, then fails (see _distribution_check);
    - every check passed and the window is complete (`window_requests` canary requests, or `window_minutes`):
      promote (the promotion rule and its gates still have their say) — provided the evidence is there: the
      arms' predictions were compared (the prediction log holds enough of their rows) and, with
      `require_labels`, their labelled errors too; else keep watching for it, and end the canary once
      `give_up_minutes` have passed (it could not be judged: production keeps the traffic);
    - otherwise keep watching."""
    total = canary.requests + production.requests
    share = 100.0 * canary.requests / total if total else 0.0

    def verdict(action: Action, reason: str, checks: list[Check]) -> CanaryVerdict:
        return CanaryVerdict(action, reason, canary.requests, production.requests, share, elapsed_minutes, checks)

    if canary.requests < settings.min_requests:
        seen = f"{canary.requests} canary requests in {elapsed_minutes:.1f} min, {settings.min_requests} needed"
        if elapsed_minutes >= settings.give_up_minutes:
            return verdict(
                "end", f"too little traffic to judge: {seen} (give up after {settings.give_up_minutes:g})", []
            )
        return verdict("watch", f"waiting for traffic: {seen}", [])
    checks = compare_arms(task, canary, production, weight, settings)
    held = [c for c in checks if c.waiting]
    if held and elapsed_minutes >= settings.wait_for_labels_minutes:
        for check in held:  # the labels that could have cleared it did not come in time
            check.passed, check.waiting = False, False
            check.note += f", not there after {elapsed_minutes:.1f} min (wait {settings.wait_for_labels_minutes:g})"
    failed = [c for c in checks if not c.passed]
    if failed:
        return verdict("end", "; ".join(c.text() for c in failed), checks)
    if canary.requests >= settings.window_requests or elapsed_minutes >= settings.window_minutes:
        window = (
            f"{canary.requests} canary requests"
            if canary.requests >= settings.window_requests
            else f"{elapsed_minutes:.1f} min"
        )
        needed = {"prediction distribution"} | ({"labelled error"} if settings.require_labels else set())
        missing = [c for c in checks if c.name in needed and not c.tested]
        if missing:
            lacking = "; ".join(f"{c.name} {c.note}" for c in missing)
            if elapsed_minutes >= settings.give_up_minutes:
                return verdict(
                    "end",
                    f"could not be judged: every check passed over the window ({window}), but {lacking} "
                    f"after {elapsed_minutes:.1f} min (give up after {settings.give_up_minutes:g})",
                    checks,
                )
            return verdict("watch", f"window complete ({window}); waiting for the evidence: {lacking}", checks)
        return verdict("promote", f"every check passed over the window ({window})", checks)
    left = f"{canary.requests}/{settings.window_requests} canary requests"
    left += f", {elapsed_minutes:.1f}/{settings.window_minutes:g} min"
    if held:
        return verdict("watch", "; ".join(f"{c.name}: {c.note}" for c in held) + f"; window {left}", checks)
    return verdict("watch", f"every check passes so far; window not complete ({left})", checks)
