"""The canary verdict (lifecycle/canary.py) on synthetic arm statistics, and the front door's access-log lines
the judge reads (serving/front_door_log.py): fast, no server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lifecycle.canary import ArmStats, distribution_test, judge_canary, labelled_error, share_ceiling
from lifecycle.config import CanaryConfig, DeploymentConfig
from lifecycle.errors import ConfigError
from serving.front_door_log import DoorLogTail, arm_requests, parse_line

SETTINGS = CanaryConfig(window_requests=100, window_minutes=10, min_requests=30, give_up_minutes=20)


def arm(requests: int, errors: int = 0, latency: float = 10.0, predictions=None, seed: int = 0) -> ArmStats:
    rng = np.random.default_rng(seed)
    answered = requests - errors
    return ArmStats(
        requests=requests,
        errors=errors,
        latencies_ms=list(rng.normal(latency, latency / 10, answered).clip(0.1)),
        predictions=list(rng.normal(100, 30, answered) if predictions is None else predictions),
    )


def verdict(canary: ArmStats, production: ArmStats, minutes: float = 1.0, weight: float = 10.0, **changes):
    return judge_canary("regression", canary, production, weight, minutes, SETTINGS.model_copy(update=changes))


def test_a_canary_like_production_is_watched_until_its_window_ends_then_promoted():
    early = verdict(arm(50, seed=1), arm(450, seed=2))
    assert early.action == "watch" and "window not complete (50/100" in early.reason
    assert all(check.passed for check in early.checks)
    done = verdict(arm(120, seed=1), arm(1080, seed=2))
    assert done.action == "promote" and "120 canary requests" in done.reason
    by_time = verdict(arm(40, seed=1), arm(360, seed=2), minutes=10.5)
    assert by_time.action == "promote" and "10.5 min" in by_time.reason


def test_a_complete_window_without_the_evidence_waits_for_it_then_ends_the_canary():
    """A window's worth of requests is no promotion while the prediction log lacks the canary's rows (they have
    not been written, or the server logs elsewhere), nor, with `require_labels`, while labels are missing: the
    judge waits, and ends the canary once `give_up_minutes` pass (production keeps the traffic)."""
    unlogged = arm(120, seed=1)
    unlogged.predictions = unlogged.predictions[:10]  # 120 answered, 10 in the log
    waiting = verdict(unlogged, arm(1080, seed=2))
    assert (
        waiting.action == "watch" and "waiting for the evidence: prediction distribution not tested" in waiting.reason
    )
    ended = verdict(unlogged, arm(1080, seed=2), minutes=20.0)
    assert ended.action == "end" and ended.reason.startswith("could not be judged")
    unlabelled = verdict(arm(120, seed=1), arm(1080, seed=2), require_labels=True)
    assert unlabelled.action == "watch" and "labelled error not compared: 0 canary" in unlabelled.reason
    truth = list(np.random.default_rng(4).normal(100, 30, 40))
    canary, production = arm(120, seed=1), arm(1080, seed=2)
    for side in (canary, production):
        side.labels, side.labelled_predictions = truth, [t + 5 for t in truth]
    assert verdict(canary, production, require_labels=True).action == "promote"


def test_no_verdict_before_min_requests_and_the_canary_ends_when_traffic_never_comes():
    assert verdict(arm(29, errors=29), arm(300), minutes=5).action == "watch"  # even all failed: too few yet
    ended = verdict(arm(12), arm(100), minutes=20.0)
    assert ended.action == "end" and "too little traffic" in ended.reason and ended.checks == []


@pytest.mark.parametrize(
    ("canary", "failed"),
    [
        (arm(40, errors=4, seed=1), ["error share"]),  # 10 % failed against 0 %
        (arm(40, latency=60.0, seed=1), ["p50 latency", "p99 latency"]),  # 60 ms against 1.5 x 10 + 25 = 40 ms
        (arm(40, predictions=[100.0] * 40), ["prediction distribution"]),  # one value for every row: broken
    ],
)
def test_a_canary_worse_than_production_is_ended_naming_the_failed_checks(canary, failed):
    judged = verdict(canary, arm(360, seed=2))
    assert judged.action == "end"
    assert [check.name for check in judged.failed] == failed
    assert judged.reason.startswith(f"{failed[0]}: ") and "(FAILED)" in judged.reason


def test_error_share_counts_against_production_s_own():
    production = arm(400, errors=20, seed=2)  # 5 % of production's requests fail too
    assert verdict(arm(40, errors=2, seed=1), production).action == "watch"  # 5 %: no worse
    assert verdict(arm(40, errors=3, seed=1), production).failed[0].name == "error share"  # 7.5 % > 6 %


def test_a_slow_tail_alone_ends_the_canary():
    canary = arm(100, seed=1)
    canary.latencies_ms[-5:] = [900.0] * 5  # 5 % of its requests take 0.9 s: p50 as production's, p99 not
    judged = verdict(canary, arm(900, seed=2))
    assert [check.name for check in judged.failed] == ["p99 latency"]


def test_one_or_two_stalled_requests_do_not_end_a_canary_three_do():
    """On 40 requests the p99 is the slowest answer: one request stalled by a busy machine sets it alone."""
    production = arm(360, seed=2)
    for stalled, action in ((1, "watch"), (2, "watch"), (3, "end")):
        canary = arm(40, seed=1)
        canary.latencies_ms[-stalled:] = [600.0] * stalled
        judged = verdict(canary, production)
        p99 = next(check for check in judged.checks if check.name == "p99 latency")
        assert judged.action == action and p99.canary > p99.limit, (stalled, judged.reason)
        assert f"{stalled} of the canary's 35 answers slower than the limit (its first 5 left out)" in p99.note
    assert [check.name for check in judged.failed] == ["p99 latency"]
    lenient = verdict(canary, production, latency_min_slow_requests=4)
    assert lenient.action == "watch" and "4 needed to fail it" in lenient.reason + str(lenient.checks)


def test_a_canary_answering_more_than_its_weight_plus_tolerance_is_ended():
    judged = verdict(arm(60, seed=1), arm(140, seed=2), weight=10.0)  # 30 % of the requests
    assert [check.name for check in judged.failed] == ["canary share"]
    # on 80 requests, 31 % at a 20 % weight is within chance (20 + 5 + 3 sigma = 38 %); on 800 it is not
    assert share_ceiling(20.0, 80, 5.0) == pytest.approx(38.4, abs=0.1)
    assert share_ceiling(20.0, 800, 5.0) == pytest.approx(29.2, abs=0.1)


def test_labelled_error_is_compared_once_both_arms_have_enough_labels():
    rng = np.random.default_rng(4)
    truth = list(rng.normal(100, 30, 40))
    production, canary = arm(360, seed=2), arm(40, seed=1)
    production.labels, production.labelled_predictions = truth, [t + 5 for t in truth]
    canary.labels, canary.labelled_predictions = truth[:20], [t + 50 for t in truth[:20]]
    assert verdict(canary, production).action == "watch"  # 20 labelled canary rows: not compared yet
    canary.labels, canary.labelled_predictions = truth, [t + 50 for t in truth]
    judged = verdict(canary, production)
    assert [check.name for check in judged.failed] == ["labelled error"]
    assert labelled_error("classification", ["a", "b", "a", "a"], ["a", "a", "a", "b"]) == 0.5
    # worse on 30 rows by chance (both arms' errors drawn alike): above the ratio, not surely worse: not ended
    noise = np.random.default_rng(2)
    production.labelled_predictions = [t + e for t, e in zip(truth, noise.normal(0, 30, 40), strict=True)]
    canary.labels = truth[:30]
    canary.labelled_predictions = [t + e for t, e in zip(truth[:30], noise.normal(0, 30, 30), strict=True)]
    unlucky = next(c for c in verdict(canary, production).checks if c.name == "labelled error")
    assert unlucky.canary > unlucky.limit and unlucky.passed and "Mann-Whitney p = " in unlucky.note


def test_the_distribution_tests_tell_different_arms_from_alike_ones():
    rng = np.random.default_rng(5)
    name, distance, p_value = distribution_test("regression", rng.normal(0, 1, 200), rng.normal(0, 1, 200))
    assert name == "Kolmogorov-Smirnov" and distance < 0.2 and p_value > 0.01
    _, distance, p_value = distribution_test("regression", rng.normal(0, 1, 200), rng.normal(1, 1, 200))
    assert distance > 0.3 and p_value < 1e-6
    name, distance, p_value = distribution_test("classification", ["a"] * 50 + ["b"] * 50, ["a"] * 48 + ["b"] * 52)
    assert name == "chi-squared" and distance == pytest.approx(0.02) and p_value > 0.5
    _, distance, p_value = distribution_test("classification", ["a"] * 90 + ["b"] * 10, ["a"] * 30 + ["b"] * 70)
    assert distance == pytest.approx(0.6) and p_value < 1e-6


def test_a_small_sure_shift_of_the_predictions_is_allowed_a_large_one_is_not():
    rng = np.random.default_rng(6)
    production = arm(2000, predictions=list(rng.normal(100, 30, 2000)), seed=2)
    nudged = arm(200, predictions=list(rng.normal(110, 30, 200)), seed=1)  # a better model: a little higher
    judged = verdict(nudged, production, weight=10.0)
    check = next(c for c in judged.checks if c.name == "prediction distribution")
    assert check.passed and 0.05 < check.canary < 0.25 and "p = " in check.note
    assert judged.action == "promote"
    broken = arm(200, predictions=list(rng.normal(100, 5, 200)), seed=1)  # every answer near the mean
    assert [c.name for c in verdict(broken, production).failed] == ["prediction distribution"]


def test_the_canary_s_first_answers_are_left_out_of_its_latency():
    """A server just started answers its first requests slower; production has long been warm."""
    production = arm(360, seed=2)
    canary = arm(40, seed=1)
    canary.latencies_ms[:4] = [900.0] * 4  # cold start
    assert verdict(canary, production).action == "watch"
    assert [c.name for c in verdict(canary, production, latency_warmup_requests=0).failed] == ["p99 latency"]


def test_labels_clear_a_better_model_whose_predictions_differ_and_hold_it_while_they_arrive():
    """A better model answers differently: a distribution difference ends a canary only where the labels do not
    show it at least as accurate. While labels arrive (too few yet), it is held for them, then ended."""
    rng = np.random.default_rng(7)
    truth = rng.normal(100, 30, 400)
    production = arm(400, predictions=list(truth * 0.3 + 70), seed=2)  # shrunk towards the mean: a weak model
    canary = arm(60, predictions=list(truth[:60]), seed=1)  # right on every row: a different spread
    assert [c.name for c in verdict(canary, production).failed] == ["prediction distribution"]  # no labels: ended
    production.labels, production.labelled_predictions = list(truth[:40]), list(truth[:40] * 0.3 + 70)
    canary.labels, canary.labelled_predictions = list(truth[:10]), list(truth[:10])
    held = verdict(canary, production, minutes=2.0)
    check = next(c for c in held.checks if c.name == "prediction distribution")
    assert held.action == "watch" and check.waiting and not check.tested and "held for labels" in held.reason
    late = verdict(canary, production, minutes=5.5)
    assert [c.name for c in late.failed] == ["prediction distribution"] and "not there after 5.5 min" in late.reason
    assert verdict(canary, production, minutes=2.0, wait_for_labels_minutes=0).action == "end"
    canary.labels, canary.labelled_predictions = list(truth[:40]), list(truth[:40])
    cleared = verdict(canary, production, minutes=2.0)
    check = next(c for c in cleared.checks if c.name == "prediction distribution")
    assert cleared.action == "watch" and check.passed and check.tested and "labelled error is no higher" in check.note
    assert verdict(canary, production, minutes=10.5).action == "promote"
    worse = arm(60, predictions=list(truth[:60] * 0.3 + 110), seed=1)  # differs, and its labelled rows are worse
    worse.labels, worse.labelled_predictions = list(truth[:40]), list(truth[:40] * 0.3 + 110)
    assert "prediction distribution" in {c.name for c in verdict(worse, production, minutes=2.0).failed}


def test_the_verdict_s_figures_are_plain_values():
    figures = verdict(arm(120, seed=1), arm(1080, seed=2)).figures()
    assert json.loads(json.dumps(figures)) == figures
    assert figures["action"] == "promote" and figures["canary_share_percent"] == 10.0
    assert {c["name"] for c in figures["checks"]} == {
        "error share",
        "p50 latency",
        "p99 latency",
        "canary share",
        "prediction distribution",
        "labelled error",
    }


def test_canary_settings_are_validated_and_unknown_keys_are_errors(tmp_path):
    from lifecycle.config import load_deployment_config

    assert DeploymentConfig().canary == CanaryConfig()
    path = tmp_path / "deployment.yaml"
    path.write_text("canary:\n  window_request: 100\n")
    with pytest.raises(ConfigError, match="window_request"):
        load_deployment_config(path)
    path.write_text("canary:\n  distribution_alpha: 1.5\n")
    with pytest.raises(ConfigError, match="distribution_alpha"):
        load_deployment_config(path)


def door_line(time: float, arm: str, status: int = 200, upstream: str = "127.0.0.1:8101", method: str = "POST"):
    fields = {"time": time, "request_id": f"r{time}", "arm": arm, "upstream": upstream}
    return json.dumps({**fields, "method": method, "status": status, "request_time": 0.012}) + "\n"


def test_the_door_log_is_read_once_per_line_and_split_by_arm_and_server(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(
        door_line(1.0, "canary")  # before the window
        + door_line(2.0, "canary", upstream="127.0.0.1:8102")  # an earlier canary's server
        + door_line(3.0, "canary", status=502)
        + door_line(3.5, "production", method="GET")  # a health check through the door
        + door_line(4.0, "production")
        + door_line(4.5, "canary", status=502, upstream="canary")  # nginx had no live canary server to try
    )
    tail = DoorLogTail(log, since=2.0)
    requests = tail.read()
    assert [(r.arm, r.status) for r in requests] == [
        ("canary", 200),
        ("canary", 502),
        ("production", 200),
        ("canary", 502),
    ]
    canary = arm_requests(requests, "canary", "http://localhost:8101")
    assert [r.time for r in canary] == [3.0, 4.5] and not canary[0].ok and canary[0].seconds == 0.012
    with log.open("a") as more:
        more.write(door_line(5.0, "canary") + '{"time": 6.0, "arm": "can')  # nginx still writing the last line
    assert len(tail.read()) == 5  # the whole new line only
    with log.open("a") as more:
        more.write('ary", "method": "POST", "status": 200, "request_time": 0.5}\n')
    assert [r.time for r in tail.read()] == [2.0, 3.0, 4.0, 4.5, 5.0, 6.0]
    assert parse_line("not json") is None


@pytest.mark.parametrize("words", [["--judge", "--shadow", "3"], ["--judge", "--canary", "none"]])
def test_judge_is_for_a_canary_only(words):
    from click.testing import CliRunner

    from cli import cli

    result = CliRunner().invoke(cli, ["deploy", *words])
    assert result.exit_code == 2 and "--judge alone or with --canary VERSION" in result.output
