"""The replay's continuous training under several promotion policies, in minutes and without ZenML.

`python run.py lifecycle` judges each retrained model with the promotion rule once, through the pipelines. This
script trains the same models (the replay's windows of `configs/monitoring.yaml`, the model of
`configs/training.yaml`, with the project's own split, fit, evaluation and rule) once, then replays them under
each policy and prints the row-weighted error of the model in production over the replay:

- the promotion rule as configured: the gates, then beat production on the candidate's own test rows;
- the same without the gates (only the comparison with production);
- every retrained model promoted; the first model never retrained;

each with labels known at the end of their period (`lifecycle --no-serve`) and with labels a period late (served,
the default: a model retrained after period k learnt labels up to the start of period k). It then lists every
model the rule kept out, with the gate or rule that did, and what it and production scored on the next period.
It retrains every period (the replay retrains when the monitoring policy says so: 24 of 25 periods on the demo).

    python benchmarks/replay_policies.py            # the demo's bike data, about 2 minutes on 2 CPUs
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per fit: 2 shared CPUs are slower with more
PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import pandas as pd  # noqa: E402

from lifecycle.config import RunConfig, load_config, load_monitoring_config  # noqa: E402
from lifecycle.data import read_table  # noqa: E402
from lifecycle.metrics import EvaluationReport, evaluate_model, score, score_model, score_segments  # noqa: E402
from lifecycle.modeling import fit_model  # noqa: E402
from lifecycle.promotion import PromotionDecision, check_gates, decide_promotion  # noqa: E402
from lifecycle.splitting import split_table  # noqa: E402
from lifecycle.validation import FeatureSchema, validate_table  # noqa: E402
from lifecycle.windows import newest_window, rows_between, time_index  # noqa: E402


@dataclass
class Retrained:
    """The model retrained on the window that ends with a period (labels known at once)."""

    period: str
    batch: pd.DataFrame  # the period's rows
    model: Any
    report: EvaluationReport
    test: pd.DataFrame
    schema: FeatureSchema


def trained(config: RunConfig, window: pd.DataFrame) -> tuple[Any, EvaluationReport, pd.DataFrame, FeatureSchema]:
    clean, schema, _ = validate_table(window, config.dataset)
    train, test = split_table(clean, schema, config.split, config.training.seed)
    model, _ = fit_model(train, schema, config.training)
    report = evaluate_model(model, train, test, schema, config.evaluation, config.promotion.metric)
    return model, report, test, schema


def judge(config: RunConfig, candidate: Retrained, production: Any, gates: bool) -> PromotionDecision:
    """The promotion rule of `steps/training/releases.py` on one candidate against the production model."""
    metric = candidate.report.primary_metric
    rescored = score_model(production, candidate.test, candidate.schema)
    segments = score_segments(production, candidate.test, candidate.schema, min_rows=1)
    return decide_promotion(
        metric,
        candidate.report.metrics[metric],
        candidate.report.baseline_metrics[metric],
        production_version="production",
        production_score=rescored[metric],
        min_improvement=config.promotion.min_improvement,
        gates=check_gates(candidate.report, config.promotion.gates, segments, "production") if gates else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(PROJECT_ROOT / "configs" / "training.yaml"))
    parser.add_argument("--monitoring-config", default=str(PROJECT_ROOT / "configs" / "monitoring.yaml"))
    args = parser.parse_args()
    config, monitoring = load_config(args.config), load_monitoring_config(args.monitoring_config)
    path = Path(config.dataset.path)
    table = read_table(path if path.is_absolute() else PROJECT_ROOT / path)
    times = time_index(table, config.dataset)
    settings = monitoring.replay

    start = times.min().normalize()
    cursor = start + pd.Timedelta(days=settings.initial_training_days)
    first, first_report, *_ = trained(config, rows_between(table, times, start, cursor))
    task, metric = first_report.task, first_report.primary_metric
    period = pd.Timedelta(days=settings.period_days)
    models: list[Retrained] = []
    while cursor <= times.max() and (settings.max_periods is None or len(models) < settings.max_periods):
        end = cursor + period
        window = newest_window(table, times, end, monitoring.policy.retrain_window_days)
        model, report, test, schema = trained(config, window)
        models.append(
            Retrained(f"{cursor:%Y-%m-%d}", rows_between(table, times, cursor, end), model, report, test, schema)
        )
        print(f"trained {len(models)}: window ending {end:%Y-%m-%d}, {report.test_rows} test rows", flush=True)
        cursor = end

    def error(model: Any, batch: pd.DataFrame) -> float:
        return score(task, batch[config.dataset.target], model.predict(batch))[metric]

    def replay(policy: str, late_labels: bool, kept: list[str] | None = None) -> tuple[float, int]:
        production, weighted, rows, promoted = first, 0.0, 0, 0
        for index, retrained in enumerate(models):
            batch = retrained.batch
            weighted, rows = weighted + error(production, batch) * len(batch), rows + len(batch)
            # With labels a period late, the model retrained after this period learnt the window that ended with
            # the period before.
            judged = index - 1 if late_labels else index
            if judged < 0 or policy == "never":
                continue
            candidate = models[judged]
            if policy == "always":
                production, promoted = candidate.model, promoted + 1
                continue
            decision = judge(config, candidate, production, gates=policy == "rule")
            nxt = models[index + 1].batch if index + 1 < len(models) else None
            if not decision.promoted and kept is not None:
                by = [gate.name for gate in decision.gates if gate.blocks] or ["production"]
                scores = "no next period"
                if nxt is not None:
                    ours, theirs = error(candidate.model, nxt), error(production, nxt)
                    scores = f"next period: {metric} {ours:.1f}, production's {theirs:.1f}"
                why = decision.reason
                if by == ["production"]:
                    why = (
                        f"on its {candidate.report.test_rows} test rows: {metric} {decision.candidate_score:.2f}, "
                        f"production's {decision.production_score:.2f}"
                    )
                kept.append(f"  after {retrained.period}: kept out by {', '.join(by)}: {scores}\n    {why}")
            if decision.promoted:
                production, promoted = candidate.model, promoted + 1
        return weighted / rows, promoted

    policies = {
        "the promotion rule (gates, then beat production)": "rule",
        "without the gates (beat production)": "compare",
        "every retrained model promoted": "always",
        "never retrained": "never",
    }
    for late, title in (
        (False, "labels at the end of their period (--no-serve)"),
        (True, "labels a period late (served)"),
    ):
        kept: list[str] = []
        print(f"\n{metric} over the replay (row-weighted), {title}:")
        for name, policy in policies.items():
            value, promoted = replay(policy, late, kept if policy == "rule" else None)
            print(f"  {name:<50} {value:7.2f}   promoted {promoted}")
        print("kept out by the promotion rule:\n" + "\n".join(kept))


if __name__ == "__main__":
    main()
