"""How the replay's promotion rule judged its retrained models, on the replay's own windows of the bike data: the
gate that stops a model (the naive baseline, beyond the test set's noise) and the record of what every model kept
out of production would have scored on the period it would have served."""

from pathlib import Path

import pandas as pd
import pytest
from conftest import BIKE_DATA, DEMO_CONFIG

from lifecycle.config import MonitoringConfig, load_config
from lifecycle.metrics import evaluate_model
from lifecycle.modeling import fit_model
from lifecycle.promotion import check_gates, decide_promotion
from lifecycle.splitting import split_table
from lifecycle.validation import validate_table
from lifecycle.windows import newest_window, time_index
from workflows.replay import Candidate, PeriodResult, ReplayResult, candidates_table, kept_out_summary


def judged_window(end: str):
    """The replay's retraining on the newest `retrain_window_days` before `end`, judged by the configured gates
    (no production version: only the gates decide)."""
    config = load_config(DEMO_CONFIG)
    table = pd.read_csv(BIKE_DATA)
    days = MonitoringConfig().policy.retrain_window_days
    window = newest_window(table, time_index(table, config.dataset), pd.Timestamp(end), days)
    clean, schema, _ = validate_table(window, config.dataset)
    train, test = split_table(clean, schema, config.split, config.training.seed)
    model, _ = fit_model(train, schema, config.training)
    report = evaluate_model(model, train, test, schema, config.evaluation, config.promotion.metric)
    gates = check_gates(report, config.promotion.gates)
    decision = decide_promotion("rmse", report.metrics["rmse"], report.baseline_metrics["rmse"], gates=gates)
    return report, decision


def test_the_replays_windows_pass_the_naive_gate_except_the_one_tested_on_christmas_week():
    # The window that ended 2012-12-15 (the replay's 24th retraining): 261 test rows, a clear win over the median.
    report, decision = judged_window("2012-12-15")
    assert report.test_rows == 261 and report.naive_baseline.model_wins == 1.0
    assert decision.promoted, decision.reason
    # The last window (its test rows: 22-31 December 2012, when rentals collapse) learnt November's demand and
    # predicts it: worse than the training median, the one model the gate stopped in the whole replay.
    report, decision = judged_window("2013-01-12")
    assert report.metrics["rmse"] > report.naive_baseline.metrics["rmse"]
    assert report.naive_baseline.strongest["rmse"] == "median"
    assert not decision.promoted and decision.reason.startswith("stopped by gate naive_baseline: rmse ")


def _period(name: str, candidate: Candidate | None, error: float, every: float) -> PeriodResult:
    return PeriodResult(
        period=name,
        rows=100,
        drift_share=None,
        error_in_production=error,
        error_never_retrained=2 * error,
        retrained=candidate is not None,
        promoted=bool(candidate and candidate.promoted),
        version_in_production="2",
        reasons=[],
        report=Path("report.html"),
        candidate=candidate,
        error_every_retrain_promoted=every,
    )


def test_the_replay_says_which_rule_kept_each_model_out_and_what_it_would_have_scored():
    def judged(version: str, kept_out_by: str, next_error: float | None, production_next: float | None):
        return Candidate(
            version=version,
            promoted=not kept_out_by,
            score=50.0,
            production_score=48.0,
            kept_out_by=kept_out_by,
            reason="",
            test_rows=269,
            next_period_error=next_error,
            production_next_period_error=production_next,
        )

    result = ReplayResult(metric="rmse", model_name="m")
    result.periods = [
        _period("a", judged("2", "", 40.0, 60.0), error=60.0, every=60.0),
        _period("b", judged("3", "production", 55.6, 59.7), error=40.0, every=40.0),  # a wrong call
        _period("c", judged("4", "production", 57.6, 52.3), error=59.7, every=55.6),  # a right one
        _period("d", judged("5", "naive_baseline", None, None), error=52.3, every=57.6),  # nothing came next
        _period("e", None, error=50.0, every=50.0),
    ]
    assert [c.version for _, c in result.kept_out()] == ["3", "4", "5"]
    kept, every = kept_out_summary(result)
    assert kept == (
        "kept out of production: 3 retrained models (1 by naive_baseline, 2 by production); "
        "on the next period 1 of the 2 scored would have beaten the model kept"
    )
    assert every == f"had every retrained model been promoted: rmse {(60 + 40 + 55.6 + 57.6 + 50) / 5:.2f} " + (
        "over the replay (row-weighted)"
    )
    assert result.mean_error("error_every_retrain_promoted") == pytest.approx(52.64)
    table = candidates_table(result).splitlines()
    assert len(table) == 2 + 4  # header, rule, one row per retrained model
    assert table[3] == "| b | v3 | 269 | 50.0 | 48.0 | no | production | 55.6 | 59.7 |"
    assert table[5].endswith("| no | naive_baseline | — | — |")
