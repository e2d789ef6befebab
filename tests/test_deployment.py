"""Serving on every backend: real BentoML, MLflow and ZenML servers on 127.0.0.1, queried over HTTP.

One model line is trained twice on the `full` stack (so both versions have an MLflow registry twin); each
backend then deploys version 1, answers good and bad requests, is replaced by version 2 while a client polls,
survives a deploy that fails, and is undeployed. Nothing may be left running (checked at the end).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
import urllib.request
from collections import Counter

import pytest
from bad_request_cases import BadRequest, allowed, bad_requests
from conftest import (
    activate_stack,
    free_port_block,
    needs_stacks,
    note,
    start_cli,
    wait_until,
)
from deployment_fixtures import (
    BACKEND_STACKS,
    MODEL_NAME,
    logged_rows,
    served,
    set_production,
    two_versions,
)
from hypothesis import given
from hypothesis import settings as fuzz_settings

from lifecycle.config import DeploymentConfig, StandbyConfig
from lifecycle.errors import LifecycleError
from lifecycle.modeling import predict_scores
from serving import front_door, standby
from serving.client import error_text, http_json, is_healthy
from serving.contract import json_records
from serving.prediction_log_reader import count_rejected
from serving.rollout import live_endpoint, retire_standbys
from workflows.runner import run_deployment

pytestmark = [pytest.mark.integration, needs_stacks("mlflow", "bentoml", "full")]
__all__ = ["served", "two_versions"]  # the shared fixtures, used by name


def test_deploy_records_endpoint_and_parity(served, zenml_client):
    record, backend = served["record"], served["backend"]
    assert record["backend"] == backend.name and record["model_version"] == "1"
    assert record["url"].startswith("http://127.0.0.1:")
    assert record["parity_max_abs_difference"] == 0.0 and record["smoke_test_rows"] == 20
    metadata = zenml_client.get_model_version(MODEL_NAME, "1").run_metadata["deployment"]
    assert metadata["predict_url"] == record["predict_url"]
    endpoint = live_endpoint(backend, MODEL_NAME)
    assert endpoint is not None, backend.endpoints(MODEL_NAME)
    assert endpoint.predict_url == record["predict_url"]
    rows = served["test_set"].tail(64)
    predictions, body = backend.predict(endpoint, json_records(rows, served["schema"]))
    expected, _ = predict_scores(served["models"][1], rows[served["schema"].model_inputs])
    assert predictions == pytest.approx(list(expected), abs=1e-9, rel=0)
    if backend.serves_our_contract:
        assert body["model_version"] == "1" and body["model_name"] == MODEL_NAME


def test_every_answered_row_is_logged_with_its_request_id_version_and_keys(served):
    """N requests in (1 to 5 rows each, with an order id that is not a model input) -> every row in the log,
    under the request id the client sent or the one the server returned, with the version that answered."""
    backend = served["backend"]
    endpoint = live_endpoint(backend, MODEL_NAME)
    records = json_records(served["test_set"].tail(15), served["schema"])
    sent: dict[str, list] = {}
    for size in range(1, 6):
        batch = [{**r, "order_id": f"o{size}-{i}"} for i, r in enumerate(records[:size])]
        own_id = f"client-{backend.name}-{size}" if size % 2 else None
        predictions, body = backend.predict(endpoint, batch, request_id=own_id)
        assert body["request_id"] == (own_id or body["request_id"]) and body["request_id"]
        sent[body["request_id"]] = predictions
    if backend.serves_our_contract:  # the id is a response header too
        request = urllib.request.Request(
            endpoint.predict_url, data=json.dumps({"records": records[:1]}).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            header, body = response.headers["X-Request-ID"], json.loads(response.read())
        assert header == body["request_id"]
        sent[header] = body["predictions"]
    logged = logged_rows(set(sent))
    assert len(logged) == sum(len(p) for p in sent.values()) == 15 + backend.serves_our_contract
    assert set(logged["model_version"]) == {"1"} and set(logged["backend"]) == {backend.name}
    for request_id, predictions in sent.items():
        rows = logged[logged["request_id"] == request_id].sort_values("row")
        assert list(rows["prediction"]) == pytest.approx(predictions, abs=1e-9)
    with_keys = logged[logged["order_id"].notna()]
    assert len(with_keys) == 15 and set(served["schema"].model_inputs) <= set(logged.columns)


def test_the_request_id_header_alone_names_the_logged_rows_on_every_backend(served):
    """The front door sends a request's id as the X-Request-ID header to every backend (MLflow's scoring server
    included, which hands its model only the body): a request with the header and nothing in its body is logged
    under the header's id."""
    backend = served["backend"]
    endpoint = live_endpoint(backend, MODEL_NAME)
    records = json_records(served["test_set"].tail(3), served["schema"])
    request = urllib.request.Request(
        endpoint.predict_url, data=json.dumps(backend.request_body(records)).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Request-ID", f"header-only-{backend.name}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    logged = logged_rows({f"header-only-{backend.name}"})
    assert len(logged) == 3 and set(logged["backend"]) == {backend.name}


def _post_raw(url: str, raw: bytes) -> tuple[int, object]:
    return http_json(url, raw, timeout=30)


def test_bad_requests_get_4xx_and_the_server_keeps_serving(served):
    backend = served["backend"]
    endpoint = live_endpoint(backend, MODEL_NAME)
    good = json_records(served["test_set"].head(2), served["schema"])
    missing = [{k: v for k, v in good[0].items() if k != "temp"}]
    wrong_type = [{**good[0], "temp": "warm"}]
    cases = {
        "malformed JSON": b'{"records": [',
        "empty body": b"",
        "missing column": json.dumps(backend.request_body(missing)).encode(),
        "wrong type": json.dumps(backend.request_body(wrong_type)).encode(),
        "not an object": b"[1, 2, 3]",
    }
    if backend.serves_our_contract:  # limits this project enforces; MLflow's server has its own behaviour
        cases["empty records"] = b'{"records": []}'
        cases["oversized"] = b'{"records": "' + b"x" * (served["config"].max_body_bytes + 10) + b'"}'
        cases["deeply nested"] = b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    root = DeploymentConfig().log.root()
    rejected_before = count_rejected(root, MODEL_NAME)
    for case, raw in cases.items():
        status, body = _post_raw(endpoint.predict_url, raw)
        assert 400 <= status < 500, (case, status, body)
        assert error_text(body), (case, body)
    # Counted where the project's code sees the request: every case on ZenML's deployer; on BentoML and MLflow,
    # what their own request parsing lets through (BentoML: the contract's checks and the body limit).
    reaching_our_code = {"zenml": len(cases), "bentoml": 4, "mlflow": 2}[backend.name]
    assert count_rejected(root, MODEL_NAME) - rejected_before == reaching_our_code
    if backend.serves_our_contract:
        status, body = _post_raw(endpoint.predict_url, json.dumps({"records": missing}).encode())
        assert status == 422 and "temp" in error_text(body)
        status, body = _post_raw(endpoint.predict_url, json.dumps({"records": wrong_type}).encode())
        assert status == 422 and "`temp`" in error_text(body) and "'warm'" in error_text(body)
    assert is_healthy(endpoint.health_url)
    predictions, _ = backend.predict(endpoint, good)
    assert len(predictions) == 2


def test_generated_bad_requests_get_4xx_and_the_server_keeps_serving(served):
    """The generated complement of the fixed cases above: every answer is what the contract says, never a server
    error of ours, and the server predicts exactly as before once the fuzz is over."""
    backend = served["backend"]
    endpoint = live_endpoint(backend, MODEL_NAME)
    good = json_records(served["test_set"].head(2), served["schema"])
    before, _ = backend.predict(endpoint, good)
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def check(case: BadRequest) -> None:
        expected = case.ours if backend.serves_our_contract else case.mlflow
        status, body = _post_raw(endpoint.predict_url, case.raw)
        tried[case.kind] += 1
        statuses[status] += 1
        assert allowed(status, expected), (
            case.kind,
            status,
            str(body)[:300],
            case.raw[:200],
        )
        if status == 200 and expected == "200":
            assert backend.parse_predictions(body) == before, case.kind
        if status == 200 and expected == "4xx|200":
            assert len(backend.parse_predictions(body)) == len(good)  # MLflow converted the value and predicted
        if status != 200:
            assert error_text(body), (case.kind, body)

    # Each kind on its own, so that every kind is tried: 4 cases of each of 12 kinds.
    for kind in bad_requests(backend, good, served["schema"], served["config"].max_body_bytes):
        fuzz_settings(max_examples=4, deadline=None, derandomize=True, database=None)(given(kind)(check))()
    answered = dict(sorted(statuses.items()))
    print(f"\n{backend.name}: {sum(tried.values())} generated requests of {len(tried)} kinds; statuses {answered}")
    assert len(tried) == 12 and sum(tried.values()) >= 36
    assert is_healthy(endpoint.health_url)
    assert backend.predict(endpoint, good)[0] == before
    assert live_endpoint(backend, MODEL_NAME).name == endpoint.name


def test_redeploy_of_a_new_version_loses_no_request(served):
    """A client polls (looking the endpoint up each time, as `run.py predict` does) while version 2 replaces 1."""
    backend = served["backend"]
    records = json_records(served["test_set"].head(3), served["schema"])
    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                endpoint = live_endpoint(backend, MODEL_NAME)
                _, body = backend.predict(endpoint, records, timeout=30)
                answers.append(
                    str(body.get("model_version")) if backend.serves_our_contract else endpoint.model_version
                )
            except Exception as exc:  # a lost request
                failures.append(repr(exc))
            time.sleep(0.05)

    # A second client holds the model's front door, one address for the whole time (where nginx is installed).
    door_url = served["record"]["front_door_url"]
    door_answers: list[str] = []
    door_failures: list[str] = []

    def hold_the_front_door() -> None:
        door = dataclasses.replace(live_endpoint(backend, MODEL_NAME), url=door_url)
        while not stop.is_set():
            try:
                _, body = backend.predict(door, records, timeout=30)
                door_answers.append(str(body.get("model_version")) if backend.serves_our_contract else "answered")
            except Exception as exc:  # a lost request
                door_failures.append(repr(exc))
            time.sleep(0.02)

    set_production(2)
    clients = [threading.Thread(target=poll)] + ([threading.Thread(target=hold_the_front_door)] if door_url else [])
    for client in clients:
        client.start()
    try:
        wait_until(lambda: len(answers) >= 3, 60, "answers from the first version")
        # the default drain (2 s) and more: a lookup on a busy machine can take over a second before its request;
        # version 1 stays up as a warm standby (the next test rolls back to it)
        record = run_deployment(MODEL_NAME, with_standby(served["config"], drain_seconds=3.0))
        switched_at = len(answers)
        wait_until(lambda: len(answers) >= switched_at + 3, 60, "answers after the switch")
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)
    assert failures == []
    assert record["model_version"] == "2" and record["replaced"]
    assert answers[0] == "1" and answers[-1] == "2" and len(answers) > 10
    assert record["front_door_url"] == door_url  # the same address after the redeploy
    if door_url:
        assert door_failures == [] and len(door_answers) > 20
        if backend.serves_our_contract:
            assert door_answers[0] == "1" and door_answers[-1] == "2"
        note(f"{backend.name}: {len(door_answers)} requests through the front door during the redeploy, 0 failed")
    elif front_door.nginx_binary() is not None:
        pytest.fail("nginx is installed but the deploy did not start a front door")
    endpoints = backend.endpoints(MODEL_NAME)
    waiting = standby.standbys(MODEL_NAME)
    if door_url:  # version 1 waits behind the front door as a warm standby, with no traffic
        assert sorted(e.model_version for e in endpoints if e.running) == ["1", "2"]
        assert [s.model_version for s in waiting] == ["1"] and is_healthy(waiting[0].endpoint.health_url)
        assert live_endpoint(backend, MODEL_NAME).model_version == "2"
    else:
        assert [e.model_version for e in endpoints if e.running] == ["2"] and waiting == []


def with_standby(config: DeploymentConfig, **changes) -> DeploymentConfig:
    return config.model_copy(update={"standby": StandbyConfig(count=1, seconds=600), **changes})


def test_a_rollback_to_the_warm_standby_answers_within_a_second_and_loses_nothing(served):
    """Version 1 waits as a warm standby (left by the redeploy above): `rollback` to it switches the front door
    back after a health check, and a client holding the front door gets version 1's answers less than a second
    after the command started, losing no request; version 2 then waits as the standby, and rolling forward to
    it is as quick. Costs no server start (the redeploy's servers are reused): about 5 s per backend."""
    from workflows.release import rollback

    backend = served["backend"]
    door_url = served["record"]["front_door_url"]
    if not door_url:
        pytest.skip("a warm standby needs the front door (nginx)")
    config = with_standby(served["config"])
    records = json_records(served["test_set"].head(3), served["schema"])
    rows = served["test_set"].head(3)[served["schema"].model_inputs]
    by_version = {str(n): list(predict_scores(served["models"][n], rows)[0]) for n in (1, 2)}
    door = dataclasses.replace(live_endpoint(backend, MODEL_NAME), url=door_url)
    answers: list[tuple[float, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def hold_the_front_door() -> None:
        while not stop.is_set():
            try:
                predictions, _ = backend.predict(door, records, timeout=30)
                answered = [v for v, expected in by_version.items() if predictions == pytest.approx(expected)]
                answers.append((time.perf_counter(), answered[0] if len(answered) == 1 else "?"))
            except Exception as exc:  # a lost request
                failures.append(repr(exc))
            time.sleep(0.01)

    client = threading.Thread(target=hold_the_front_door)
    client.start()
    delays, said, switches = [], [], []
    try:
        for target in ("1", "2"):  # back to version 1, then forward to version 2 again
            wait_until(lambda: len(answers) >= 3, 60, "answers through the front door")
            started = time.perf_counter()
            outcome = rollback(MODEL_NAME, target, config, reason="standby drill")
            answered = lambda s=started, g=target: any(t > s and v == g for t, v in answers)  # noqa: E731
            wait_until(answered, 10, f"version {target}")
            delays.append(next(t for t, v in answers if t > started and v == target) - started)
            said.append(outcome.seconds_to_answer)
            switches.append(outcome.redeployed["seconds_to_ready"])  # the front door's switch alone
            assert outcome.answering_version in (target, None) and outcome.redeployed["standby"], outcome
            assert any("from its warm standby" in n for n in outcome.notes), outcome.notes
            assert [s.model_version for s in standby.standbys(MODEL_NAME)] == ["2" if target == "1" else "1"]
            assert live_endpoint(backend, MODEL_NAME).model_version == target
            after = len(answers)
            wait_until(lambda n=after: len(answers) >= n + 3, 60, "answers after the switch")
            assert {v for t, v in answers[after:]} == {target}
    finally:
        stop.set()
        client.join(timeout=60)
    assert failures == [] and len(answers) > 20
    # what the client sees; the command's own figure ends when nginx's old workers are gone, a little later
    assert max(delays) < 1.0, (delays, said, switches)
    note(
        f"{backend.name}: rollback to the warm standby: version 1 answered through the front door "
        f"{delays[0]:.2f} s after the command (the command says {said[0]:.2f} s, of which the front door's switch "
        f"{switches[0]:.2f} s), forward again in {delays[1]:.2f} s; "
        f"{len(answers)} requests, 0 failed"
    )
    retired = retire_standbys(backend, MODEL_NAME, served["config"])  # standbys off: the one waiting is stopped
    assert [e.model_version for e in retired] == ["1"] and standby.standbys(MODEL_NAME) == []
    assert [e.model_version for e in backend.endpoints(MODEL_NAME) if e.running] == ["2"]


def test_failed_deploy_leaves_the_old_server_serving(served):
    """A deploy whose new server cannot start: the port it must use is held by another program (no other port
    allowed); MLflow's service picks its own port, so there the start is given one second, less than MLflow's
    server takes to load."""
    import socket

    backend = served["backend"]
    before = live_endpoint(backend, MODEL_NAME)
    config, timeout, holder = served["config"], None, None
    if not backend.chooses_own_port:
        holder = socket.socket()
        holder.bind((config.host, free_port_block()))
        holder.listen()
        config = config.model_copy(update={"port": holder.getsockname()[1], "port_search": 0})
    else:
        timeout = 1
    set_production(1)
    try:
        with pytest.raises(LifecycleError, match="still serving: " + before.url):
            run_deployment(MODEL_NAME, config, timeout=timeout)
    finally:
        set_production(2)
        if holder is not None:
            holder.close()
    running = [e for e in backend.endpoints(MODEL_NAME) if e.running]
    assert [e.name for e in running] == [before.name]
    assert is_healthy(before.health_url)
    predictions, _ = backend.predict(before, json_records(served["test_set"].head(2), served["schema"]))
    assert len(predictions) == 2


def test_two_deploys_started_together_leave_one_server_that_answers_as_recorded(served, tmp_path):
    """Two `run.py deploy` of one model at the same moment (a CI job and a person): the second waits for the
    first, then replaces its server; in the end one server runs, on its recorded port, answering itself."""
    from serving.rollout import check_answers_itself

    backend = served["backend"]
    if backend.name != "zenml":
        pytest.skip("the lock and the port check are the rollout's, the same for every backend: run on one")
    stack = BACKEND_STACKS[backend.name]
    port = str(free_port_block())
    logs = [tmp_path / f"deploy-{n}.log" for n in (1, 2)]
    processes = [start_cli(log, "deploy", "--stack", stack, "--model-name", MODEL_NAME, "--port", port) for log in logs]
    codes = [process.wait(timeout=600) for process in processes]
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs
    assert any("is in progress; waiting for it to end" in output for output in outputs), outputs
    running = [e for e in backend.endpoints(MODEL_NAME) if e.running]
    assert len(running) == 1, running
    check_answers_itself(running[0])
    assert is_healthy(running[0].health_url)
    predictions, _ = backend.predict(running[0], json_records(served["test_set"].head(2), served["schema"]))
    assert len(predictions) == 2
    activate_stack(stack)


def test_a_canary_and_a_shadow_of_version_1_beside_production_behind_the_front_door(served):
    """Version 1 as a 25 % canary, then as a shadow, beside production's version 2: the log says which version
    and role answered each request; the shadow's answers are logged under the same request ids and never reach
    the client; a client holding the front door the whole time loses nothing."""
    from serving.rollout import end_trial
    from workflows.served import shadow_comparison

    backend, config = served["backend"], served["config"]
    door_url = served["record"]["front_door_url"]
    if not door_url:
        pytest.skip("nginx is not installed: no front door, so no canary or shadow")
    rows = served["test_set"].head(2)
    records = json_records(rows, served["schema"])
    door = dataclasses.replace(live_endpoint(backend, MODEL_NAME), url=door_url)
    held, failures, stop = [], [], threading.Event()

    def hold() -> None:
        for n in range(100_000):
            if stop.is_set():
                return
            try:
                backend.predict(door, records, timeout=30, request_id=f"hold-{backend.name}-{n}")
                held.append(n)
            except Exception as exc:  # a lost request
                failures.append(repr(exc))
            time.sleep(0.02)

    def send(prefix: str, count: int) -> list[list]:
        answers: list[list] = []
        lock = threading.Lock()

        def worker(start: int) -> None:
            for n in range(start, count, 4):
                predictions, _ = backend.predict(door, records, timeout=30, request_id=f"{prefix}-{n}")
                with lock:
                    answers.append(predictions)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        return answers

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        canary = run_deployment(MODEL_NAME, config, role="canary", version="1", weight=25)
        assert (canary["role"], canary["model_version"], canary["weight"]) == ("canary", "1", 25)
        assert canary["front_door_url"] == door_url
        assert live_endpoint(backend, MODEL_NAME).model_version == "2"  # production stays the live server
        prefix = f"canary-{backend.name}"
        assert len(send(prefix, 400)) == 400
        logged = logged_rows({f"{prefix}-{n}" for n in range(400)})
        per_request = logged.drop_duplicates("request_id")
        assert len(per_request) == 400 and len(logged) == 800  # every request answered once, by one server
        assert set(zip(per_request["role"], per_request["model_version"], strict=True)) == {
            ("canary", "1"),
            ("production", "2"),
        }
        share = (per_request["role"] == "canary").mean()
        assert 0.17 <= share <= 0.33, share  # 25 % of 400, within three standard deviations
        assert [e.role for e in end_trial(backend, MODEL_NAME, "canary", config)] == ["canary"]

        shadow = run_deployment(MODEL_NAME, config, role="shadow", version="1")
        assert shadow["role"] == "shadow" and front_door.current(MODEL_NAME).route("shadow").model_version == "1"
        prefix = f"shadow-{backend.name}"
        answers = send(prefix, 100)
        expected, _ = predict_scores(served["models"][2], rows[served["schema"].model_inputs])
        assert all(a == pytest.approx(list(expected), abs=1e-9, rel=0) for a in answers)  # production's only
        ids = {f"{prefix}-{n}" for n in range(100)}
        deadline = time.monotonic() + 30
        while len(logged_rows(ids)) < 400 and time.monotonic() < deadline:  # the copies arrive on their own time
            time.sleep(0.2)
        logged = logged_rows(ids)
        assert Counter(zip(logged["role"], logged["model_version"], strict=True)) == {
            ("production", "2"): 200,
            ("shadow", "1"): 200,
        }
        compared = shadow_comparison(logged, "regression")
        assert compared["paired_rows"] == 200 and compared["unpaired_shadow_rows"] == 0
        assert compared["mean_abs_difference"] > 0  # two different versions, judged on the same requests
        assert [e.role for e in end_trial(backend, MODEL_NAME, "shadow", config)] == ["shadow"]
    finally:
        stop.set()
        holder.join(timeout=60)
        for role in ("canary", "shadow"):
            end_trial(backend, MODEL_NAME, role, config)
    assert failures == [] and len(held) > 20
    assert front_door.current(MODEL_NAME).route("shadow") is None
    assert [e.role for e in backend.endpoints(MODEL_NAME) if e.running] == ["production"]
    note(
        f"{backend.name}: canary share {share:.1%} of 400; "
        f"{len(held)} front-door requests through canary and shadow, 0 failed"
    )


def test_a_killed_server_loses_no_answered_row(served):
    """Clients send requests while the server's whole process tree is SIGKILLed: every request that got its
    2xx is in the prediction log (runs last of the module's tests on this server)."""
    import os
    import signal

    from serving.processes import process_tree

    backend = served["backend"]
    endpoint = live_endpoint(backend, MODEL_NAME)
    records = json_records(served["test_set"].head(2), served["schema"])
    answered: list[str] = []
    stop = threading.Event()

    def client(worker: int) -> None:
        for n in range(100_000):
            if stop.is_set():
                return
            try:
                _, body = backend.predict(endpoint, records, timeout=10, request_id=f"kill-{backend.name}-{worker}-{n}")
            except Exception:  # the server is gone
                return
            answered.append(body["request_id"])

    clients = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in clients:
        thread.start()
    wait_until(lambda: len(answered) >= 20, 60, "answers before the kill")
    for pid in process_tree(endpoint.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    stop.set()
    for thread in clients:
        thread.join(timeout=30)
    logged = logged_rows(set(answered))
    assert len(answered) > 10
    assert set(logged["request_id"]) == set(answered) and len(logged) == 2 * len(answered)
    note(f"kill test ({backend.name}): {len(answered)} requests answered before SIGKILL, {len(logged) // 2} logged")
