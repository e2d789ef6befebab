"""Promote, rollback and deploy started together, round after round, on the default stack (ZenML's local
deployer behind the model's nginx front door): every round must end with the version that answers through the
front door equal to the production version on the Model Control Plane, whatever order the three took the locks in.

Three versions take turns. Each round, with version P in production, a promote of Q, a rollback to R and a plain
deploy start within a few seconds of each other (P, Q, R all different), so both stage changes always happen, in
either order, and the three deploys (the two that follow the changes, and the plain one) queue for the model's
deploy lock. The start offsets cycle through the orders that matter (all at once; the deploy first and the two
changes seconds later, in either order, so that it reads production before them and their redeploys queue behind
it; one change before the deploy and one after; both before it), with a seeded jitter.
Each command runs in a long-lived worker process of its own (tests/race_worker.py), as separate `run.py`
invocations would, without paying ZenML's import on every round.
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO_CONFIG, free_port_block, note

from lifecycle.config import DeploymentConfig, apply_overrides, load_config
from serving import front_door

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODEL = "raced_bike"
ROUNDS = int(os.environ.get("MLOPS_RACE_ROUNDS", "3"))  # `make test-race`: 20
ANSWER_TIMEOUT = 600  # seconds for one command (three deploys queue for the lock, each ~15 s on 2 busy CPUs)
# Seconds after the round begins at which its promote, rollback and deploy start. A deploy reads production about
# 2-3 s after it starts (ZenML compiles and starts its pipeline run), and a stage change takes 1-2 s.
SCHEDULE = [
    (0.0, 0.0, 0.0),  # all at once
    (3.0, 5.0, 0.0),  # the deploy reads production first; the promote, then the rollback, change it after
    (5.0, 3.0, 0.0),  # the same, the rollback first
    (0.0, 5.0, 2.0),  # the promote before the deploy's read, the rollback after it
    (5.0, 0.0, 2.0),  # the rollback before the deploy's read, the promote after it
    (0.0, 0.0, 2.5),  # both changes before the deploy starts
]


def offsets(round_number: int) -> list[float]:
    """The round's start offsets: SCHEDULE in turn, each moved by up to 0.75 s (seeded: the same on every run)."""
    rng = random.Random(round_number)
    return [offset + rng.randrange(4) / 4 for offset in SCHEDULE[(round_number - 1) % len(SCHEDULE)]]


class Worker:
    """tests/race_worker.py in a process of its own: a command in on stdin, its answer back on a pipe."""

    def __init__(self, name: str, log_folder: Path):
        self.name = name
        self.log = log_folder / f"worker-{name}.log"
        read_end, write_end = os.pipe()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(PROJECT_ROOT / "tests" / "race_worker.py"), str(write_end)],
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                pass_fds=(write_end,),
                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "NO_COLOR": "1"},
            )
        os.close(write_end)
        self.answers = os.fdopen(read_end)

    def send(self, command: dict) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float = ANSWER_TIMEOUT) -> dict:
        ready, _, _ = select.select([self.answers], [], [], timeout)
        line = self.answers.readline() if ready else ""
        if not line:
            tail = self.log.read_text()[-3000:]
            raise AssertionError(f"worker {self.name} gave no answer within {timeout} s (log {self.log}):\n{tail}")
        return json.loads(line)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the worker's log (ZenML's and the step's messages): why a command failed."""
        return "\n".join(self.log.read_text().splitlines()[-lines:])

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()


@pytest.fixture(scope="module")
def three_versions(zenml_client, bike_slice, tmp_path_factory) -> Path:
    """Versions 1, 2 and 3 of MODEL (May; May-August; June-August of the slice), trained on the default stack;
    returns the training config (for the promotion rule)."""
    from workflows.runner import run_training

    folder = tmp_path_factory.mktemp("race")
    table = pd.read_csv(bike_slice)
    days = pd.to_datetime(table["dteday"])
    config = apply_overrides(load_config(DEMO_CONFIG), model_name=MODEL, enable_cache=False)
    for index, rows in enumerate((days < "2011-06-01", days >= "2011-05-01", days >= "2011-06-01")):
        path = folder / f"v{index + 1}.csv"
        table[rows].to_csv(path, index=False)
        run_training(config.model_copy(update={"dataset": config.dataset.model_copy(update={"path": str(path)})}))
    assert sorted(v.number for v in zenml_client.list_model_versions(MODEL, size=10).items) == [1, 2, 3]
    config_path = folder / "training.yaml"
    config_path.write_text(DEMO_CONFIG.read_text())
    return config_path


def production(client) -> int:
    return client.get_model_version(MODEL, "production").number


def answered_through_door(door_url: str, records: list[dict]) -> set[str]:
    """The model versions that answer three requests through the front door."""
    from serving.client import post_records

    return {str(post_records(f"{door_url}/predict", {"records": records})["model_version"]) for _ in range(3)}


@pytest.fixture(scope="module")
def served(zenml_client, three_versions):
    """The production version served on the default stack behind its front door (a port block of its own);
    everything of MODEL stopped afterwards."""
    from serving.contract import json_records
    from serving.rollout import undeploy
    from serving.stack_backend import active_backend
    from workflows.runner import run_deployment

    if front_door.nginx_binary() is None:
        pytest.skip(f"the front door needs nginx: {front_door.INSTALL_HINT}")
    deployment = DeploymentConfig(  # no warm standby: the races count the servers a rollout leaves
        port=free_port_block(),
        drain_seconds=0,
        smoke_rows=20,
        front_door={"port": free_port_block()},
        standby={"count": 0},
    )
    first = run_deployment(MODEL, deployment)
    door = front_door.current(MODEL)
    assert door is not None and first["front_door_url"] == door.url
    version = zenml_client.get_model_version(MODEL, 1)
    schema = version.get_artifact("feature_schema").load()
    records = json_records(version.get_artifact("test_set").load().head(2), schema)
    try:
        yield {"deployment": deployment, "door": door, "records": records, "backend": active_backend()}
    finally:
        undeploy(active_backend(), MODEL)


def production_servers(backend) -> list:
    return [e for e in backend.endpoints(MODEL) if e.running and e.role == "production"]


def test_a_deploy_started_for_an_old_version_serves_production_instead(zenml_client, served):
    """The deploy lock is free, but the release handed to the rollout is not production (production moved after
    the pipeline resolved it): production's version is deployed, and the deploy says so."""
    from serving.rollout import registry_release, rollout

    now = production(zenml_client)
    old = now % 3 + 1
    release, holdout = registry_release(MODEL, str(old))
    notices: list[str] = []
    done = rollout(served["backend"], release, holdout, served["deployment"], notice=notices.append)
    assert done.endpoint.model_version == str(now) and done.requested_version == str(old)
    assert done.metadata()["requested_version"] == str(old) and not done.already_serving
    assert any(f"is version {now} now, not version {old} as when this deploy started" in n for n in notices)
    assert answered_through_door(served["door"].url, served["records"]) == {str(now)}
    assert [e.model_version for e in production_servers(served["backend"])] == [str(now)]


def test_a_redeploy_that_finds_production_serving_starts_nothing(zenml_client, served):
    from serving.rollout import registry_release, rollout

    before = production_servers(served["backend"])
    release, holdout = registry_release(MODEL, str(production(zenml_client)))
    done = rollout(served["backend"], release, holdout, served["deployment"], only_if_stale=True)
    assert done.already_serving and done.smoke is None and done.replaced == []
    assert done.metadata()["already_serving"] and done.endpoint.name == before[0].name
    assert [e.name for e in production_servers(served["backend"])] == [e.name for e in before]


def test_production_moving_while_the_new_server_starts_is_what_gets_switched_to(zenml_client, served):
    """Production moves after the rollout chose its version and started that server, before the switch (the
    test holds the promotion lock from the moment the new server appears until production moved, so the switch
    comes after the move): that server is stopped and production's new version is started and switched to."""
    from serving.rollout import registry_release, rollout
    from steps.training.releases import promotion_lock, set_release_stage

    backend, chosen = served["backend"], production(zenml_client)
    moved_to = chosen % 3 + 1
    running_before = {e.name for e in production_servers(backend)}
    release, holdout = registry_release(MODEL, str(chosen))
    notices: list[str] = []
    outcome: dict = {}

    def deploy() -> None:
        try:
            outcome["done"] = rollout(backend, release, holdout, served["deployment"], notice=notices.append)
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc

    thread = threading.Thread(target=deploy)
    thread.start()
    deadline = time.monotonic() + 300
    while not (started := {e.name for e in backend.endpoints(MODEL)} - running_before) and thread.is_alive():
        assert time.monotonic() < deadline, "the rollout started no server within 300 s"
        time.sleep(0.05)
    with promotion_lock(MODEL):
        assert front_door.current(MODEL).model_version == str(chosen)  # not switched yet (nor can it be now)
        set_release_stage(MODEL, moved_to, "production", "promote", "a test moves production during a deploy")
    thread.join(timeout=600)
    assert "error" not in outcome, outcome
    done = outcome["done"]
    assert started and done.endpoint.name not in started | running_before
    assert done.endpoint.model_version == str(moved_to) == str(production(zenml_client))
    assert any(f"became version {moved_to} while the server of version {chosen} started" in n for n in notices)
    assert answered_through_door(served["door"].url, served["records"]) == {str(moved_to)}
    assert [e.name for e in production_servers(backend)] == [done.endpoint.name]  # the first new one was stopped


def test_a_canary_of_another_version_is_not_swapped_for_production(zenml_client, served):
    from serving.rollout import end_trial, registry_release, rollout

    now = production(zenml_client)
    trial = now % 3 + 1
    release, holdout = registry_release(MODEL, str(trial), role="canary")
    door_before = front_door.current(MODEL)
    try:
        done = rollout(served["backend"], release, holdout, served["deployment"], weight=10)
        door = front_door.current(MODEL)
        assert done.endpoint.model_version == str(trial) and door.route("canary").model_version == str(trial)
        assert (door.upstream, door.model_version) == (door_before.upstream, door_before.model_version)
    finally:
        end_trial(served["backend"], MODEL, "canary", served["deployment"])
    assert front_door.current(MODEL).route("canary") is None


def test_served_version_is_production_after_every_raced_round(zenml_client, three_versions, served, tmp_path):
    backend, door, records, deployment = served["backend"], served["door"], served["records"], served["deployment"]
    workers = [Worker(name, tmp_path) for name in ("promote", "rollback", "deploy")]
    rounds: list[dict] = []
    try:
        assert all(worker.answer(timeout=300).get("ready") for worker in workers)
        common = {"model": MODEL, "deployment": deployment.model_dump(mode="json"), "config": str(three_versions)}
        started_all = time.monotonic()
        for number in range(1, ROUNDS + 1):
            before = production(zenml_client)
            promoted, rolled_to = before % 3 + 1, (before + 1) % 3 + 1  # the two versions not in production
            started, now = time.monotonic(), time.time() + 0.2
            commands = [
                {"action": "promote", "version": str(promoted)},
                {"action": "rollback", "version": str(rolled_to)},
                {"action": "deploy"},
            ]
            for worker, command, offset in zip(workers, commands, offsets(number), strict=True):
                worker.send({**common, **command, "start_at": now + offset})
            answers = {worker.name: worker.answer() for worker in workers}
            after = production(zenml_client)
            served_versions = answered_through_door(door.url, records)
            running = production_servers(backend)
            rounds.append({"seconds": time.monotonic() - started, "answers": answers})
            context = (
                f"round {number} (offsets {offsets(number)}): production {before} -> {after}; "
                f"answers {json.dumps(answers, default=str)}"
            )
            failed = [worker for worker in workers if "error" in answers[worker.name]]
            logs = "".join(f"\n--- {worker.name} log:\n{worker.log_tail()}" for worker in failed)
            assert not failed, context + logs
            assert {answers["promote"]["production"], answers["rollback"]["production"]} == {promoted, rolled_to}
            assert after in (promoted, rolled_to), context
            assert served_versions == {str(after)}, f"served {served_versions} != production {after}; {context}"
            assert [e.model_version for e in running] == [str(after)], f"servers {running}; {context}"
        total = time.monotonic() - started_all
    finally:
        for worker in workers:
            worker.close()
    deploys = [a["redeployed"] for r in rounds for a in r["answers"].values() if a.get("redeployed")]
    followed = sum(1 for d in deploys if d.get("requested_version") not in (None, d["model_version"]))
    unchanged = sum(1 for d in deploys if d.get("already_serving"))
    slowest = max(r["seconds"] for r in rounds)
    note(
        f"release race: {ROUNDS} rounds of promote + rollback + deploy started together in {total:.0f} s "
        f"({total / ROUNDS:.1f} s a round, slowest {slowest:.1f} s); served == production after every round; "
        f"of {len(deploys)} deploys, {followed} served a newer production than they were started for and "
        f"{unchanged} found it already serving"
    )
