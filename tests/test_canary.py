"""Canaries judged on live traffic, on every backend (`make test-canary`): with version 1 in production behind the
front door and the test's own clients sending it one-row requests, a canary that answers wrongly (trained on
shuffled labels), one that is slow (the same answers as version 2, computed 100 times over) and one whose server
dies are each ended by `deploy --canary N --judge` without a person, having answered at most their weight plus
its tolerance of the requests; version 2 as a canary is then promoted through the promotion rule."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
from conftest import DEMO_CONFIG, activate_stack, needs_stacks, note
from deployment_fixtures import BACKEND_STACKS, MODEL_NAME, served, two_versions
from zenml.client import Client

from lifecycle.canary import share_ceiling
from lifecycle.config import CanaryConfig, load_config
from lifecycle.names import FEATURE_SCHEMA, MODEL, TEST_SET
from serving import front_door
from serving.contract import json_records
from serving.rollout import live_endpoint

pytestmark = [pytest.mark.integration, pytest.mark.canary, needs_stacks("mlflow", "bentoml", "full")]
__all__ = ["served", "two_versions"]  # the shared fixtures, used by name

WEIGHT = 20.0
JUDGING = CanaryConfig(
    window_requests=40,
    window_minutes=5,
    min_requests=25,
    give_up_minutes=4,
    poll_seconds=0.5,
    latency_margin_ms=100,  # two shared CPUs: production's own latency jumps; the slow canary is far beyond it
    min_labelled_rows=20,
    require_labels=True,  # the clients attach labels every second: a verdict waits for them
)
SLOW_COPIES = 100  # the slow canary's estimator: version 2's, this many times over (the same answers, slowly)


def _register(model: Any, schema: Any, test_set: Any) -> str:
    """A new version of MODEL_NAME holding `model` (with version 2's schema and test rows), as a trained one."""
    from zenml import Model, link_artifact_to_model, save_artifact
    from zenml.enums import ArtifactType

    number = str(Client().create_model_version(MODEL_NAME).number)
    target = Model(name=MODEL_NAME, version=number)
    for name, value, kind in (
        (MODEL, model, ArtifactType.MODEL),
        (FEATURE_SCHEMA, schema, ArtifactType.DATA),
        (TEST_SET, test_set, ArtifactType.DATA),
    ):
        link_artifact_to_model(save_artifact(value, name=name, artifact_type=kind), model=target)
    return number


@pytest.fixture(scope="module")
def bad_versions(two_versions) -> dict[str, str]:
    """Two more versions: `wrong` (fitted on half of version 2's test rows, their targets shuffled) and `slow`
    (version 2's model whose estimator is a VotingRegressor of SLOW_COPIES copies of version 2's)."""
    import copy

    from sklearn.ensemble import VotingRegressor
    from sklearn.utils import Bunch

    from lifecycle.modeling import fit_model

    schema, test_set = two_versions["schema"], two_versions["test_set"]
    rows = test_set.iloc[::2]  # the traffic is the other half (`Traffic`): rows it never saw
    shuffled = rows.assign(**{schema.target: rows[schema.target].sample(frac=1, random_state=7).to_numpy()})
    wrong, _ = fit_model(shuffled, schema, load_config(DEMO_CONFIG).training)
    slow = copy.deepcopy(two_versions["models"][2])
    fitted = slow.steps[-1][1]
    copies = [(f"copy{n}", fitted) for n in range(SLOW_COPIES)]
    voting = VotingRegressor(copies)
    voting.estimators_, voting.named_estimators_ = [fitted] * SLOW_COPIES, Bunch(**dict(copies))
    slow.steps[-1] = (slow.steps[-1][0], voting)
    return {"wrong": _register(wrong, schema, test_set), "slow": _register(slow, schema, test_set)}


class Traffic:
    """Clients sending the front door one-row requests (`rows`, in turn) until stopped, each answer's version
    (None: failed) kept by request id; and the rows' true targets attached as labels to the answered requests
    every second (labels arriving while the canary runs, as `run.py labels` attaches them)."""

    def __init__(self, backend: Any, door: Any, rows: Any, schema: Any, prefix: str, log_root: Any, clients: int = 4):
        self.backend, self.door, self.prefix, self.log_root = backend, door, prefix, log_root
        self.records = json_records(rows, schema)
        self.targets = list(rows[schema.target])
        self.answers: dict[str, str | None] = {}
        self.errors: dict[str, str] = {}  # a failed request's error, by request id
        self.answers_lock = threading.Lock()  # the labelling thread reads what the clients write
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(n, clients)) for n in range(clients)]
        self.threads.append(threading.Thread(target=self._label))

    def _send(self, start: int, step: int) -> None:
        n = start
        while not self.stop.is_set() and n < 20_000:  # bounded, whatever happens
            request_id = f"{self.prefix}-{n}"
            try:
                record = self.records[n % len(self.records)]
                _, body = self.backend.predict(self.door, [record], timeout=30, request_id=request_id)
                answer: str | None = str(body.get("model_version"))
            except Exception as exc:  # noqa: BLE001 - a failed request: counted, as the judge counts it
                answer = None
                self.errors[request_id] = f"{type(exc).__name__}: {str(exc)[:300]}"
            with self.answers_lock:
                self.answers[request_id] = answer
            n += step
            time.sleep(0.01)

    def _label(self) -> None:
        import pandas as pd

        from serving.prediction_log_labels import attach_labels

        labelled: set[str] = set()
        while not self.stop.wait(1.0):
            with self.answers_lock:
                answered = list(self.answers.items())
            new = [r for r, v in answered if v is not None and r not in labelled]
            if new:
                targets = [self.targets[int(r.rsplit("-", 1)[1]) % len(self.targets)] for r in new]
                truth = pd.DataFrame({"request_id": new, "label": targets})
                attach_labels(self.log_root, MODEL_NAME, truth, "label", source="test")
                labelled.update(new)

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def _judge_one(served: dict, version: str, scenario: str, kill: bool = False) -> tuple[Any, Traffic, float]:
    """Version `version` as a WEIGHT % canary under traffic, judged (`kill`: its server killed first, then the
    judge resumed on it, as `deploy --judge` does); returns the outcome, the traffic and the seconds judged."""
    from workflows.canary import judge, remember_start
    from workflows.deploying import deploy_and_judge
    from workflows.runner import run_deployment

    backend = served["backend"]
    config = served["config"].model_copy(update={"canary": JUDGING})
    promotion = load_config(DEMO_CONFIG).promotion
    activate_stack(BACKEND_STACKS[backend.name])
    door = dataclasses.replace(live_endpoint(backend, MODEL_NAME), url=served["record"]["front_door_url"])
    rows = served["test_set"].iloc[1::2].sample(200, random_state=3)  # rows the `wrong` version was not fit on
    with Traffic(backend, door, rows, served["schema"], f"{scenario}-{backend.name}", config.log.root()) as traffic:
        started = time.monotonic()
        if not kill:
            outcome = deploy_and_judge(MODEL_NAME, config, promotion, canary=version, weight=WEIGHT, say=print)
        else:
            record = run_deployment(MODEL_NAME, config, role="canary", version=version, weight=WEIGHT)
            remember_start(MODEL_NAME, version, record["url"], WEIGHT)
            (canary,) = [e for e in backend.endpoints(MODEL_NAME) if e.role == "canary"]
            from serving.processes import process_tree

            for pid in process_tree(canary.pid):  # the server this test started, and its children
                os.kill(pid, signal.SIGKILL)
            outcome = judge(MODEL_NAME, config, promotion, say=print)
        seconds = time.monotonic() - started
    return outcome, traffic, seconds


def _ended(outcome: Any, traffic: Traffic, version: str, checks: set[str], backend: str, seconds: float) -> None:
    verdict = outcome.verdict
    assert not outcome.promoted and verdict.action == "end", (verdict.reason, outcome.notes)
    failed = {c.name for c in verdict.failed}
    assert failed & checks, verdict.reason
    total = verdict.canary_requests + verdict.production_requests
    assert verdict.canary_share <= share_ceiling(WEIGHT, total, JUDGING.share_tolerance)
    assert front_door.current(MODEL_NAME).route("canary") is None  # production answers every request again
    answered = Counter(traffic.answers.values())
    ceiling = share_ceiling(WEIGHT, len(traffic.answers), JUDGING.share_tolerance)
    assert 100 * answered[version] / len(traffic.answers) <= ceiling
    history = Client().get_model_version(MODEL_NAME, int(version)).run_metadata["releases"]
    assert history[-1]["stage"] == "canary" and history[-1]["reason"].startswith("ended by the canary judge")
    note(
        f"canary judge ({backend}, {', '.join(sorted(failed))}): ended after "
        f"{verdict.elapsed_minutes * 60:.0f} s of traffic "
        f"({seconds:.0f} s with the deploy), {verdict.canary_requests} canary requests "
        f"({verdict.canary_share:.1f} % of {verdict.canary_requests + verdict.production_requests})"
    )


def test_a_canary_trained_on_shuffled_labels_is_ended(served, bad_versions):
    version = bad_versions["wrong"]
    outcome, traffic, seconds = _judge_one(served, version, "wrong")
    # its answers are wrong: the labels show it, or (before enough labels arrive) its predictions' spread
    _ended(outcome, traffic, version, {"labelled error", "prediction distribution"}, served["backend"].name, seconds)


def test_a_slow_canary_is_ended(served, bad_versions):
    version = bad_versions["slow"]
    outcome, traffic, seconds = _judge_one(served, version, "slow")
    _ended(outcome, traffic, version, {"p50 latency"}, served["backend"].name, seconds)
    production = next(c for c in outcome.verdict.checks if c.name == "prediction distribution")
    assert production.passed  # the same answers as version 2: only its speed ended it


def test_a_canary_whose_server_dies_is_ended(served):
    outcome, traffic, seconds = _judge_one(served, "2", "errors", kill=True)
    _ended(outcome, traffic, "2", {"error share"}, served["backend"].name, seconds)


def test_a_good_canary_is_promoted_through_the_promotion_rule(served):
    outcome, traffic, seconds = _judge_one(served, "2", "good")
    verdict = outcome.verdict
    assert outcome.promoted and verdict.action == "promote", (verdict.reason, outcome.notes)
    assert all(check.passed for check in verdict.checks)
    assert str(Client().get_model_version(MODEL_NAME, "production").number) == "2"
    door = front_door.current(MODEL_NAME)
    assert door.model_version == "2" and door.route("canary") is None, door
    failed = [r for r, v in traffic.answers.items() if v is None]
    errors = [traffic.errors.get(r) for r in failed[:5]]
    assert failed == [], (len(failed), len(traffic.answers), failed[:5], errors)  # canary, promotion, switch: none lost
    history = Client().get_model_version(MODEL_NAME, 2).run_metadata["releases"]
    assert [e["stage"] for e in history[-2:]] == ["production", "canary"], history
    assert history[-2]["command"] == "promote" and "canary judged on live traffic" in history[-2]["reason"]
    note(
        f"canary judge ({served['backend'].name}, good): promoted after {verdict.elapsed_minutes * 60:.0f} s of "
        f"traffic ({seconds:.0f} s with the deploy and the promotion), {verdict.canary_requests} canary requests "
        f"({verdict.canary_share:.1f} %)"
    )
