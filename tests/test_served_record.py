"""The record a real server keeps of what it answered, whatever clients send and whatever goes wrong: ZenML's
`/invoke` logs under the client's request id like `/predict`; a client id that looks like a smoke test's stays
traffic; a rejection logs the kind of problem, never the value; a log that cannot be written gets 503 (no answer
goes out unrecorded), leaves no torn line, and the server keeps serving; `trace` describes the version that
answered, not a shadow's; a server being stopped finishes the request it is reading first."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
from conftest import DEMO_CONFIG, activate_stack, free_port_block, needs_stacks, note

from lifecycle.config import DeploymentConfig, apply_overrides, load_config
from lifecycle.names import FEATURE_SCHEMA, TEST_SET
from serving.contract import json_records
from serving.prediction_log import LogSettings, PredictionLog
from serving.prediction_log_reader import find_request, read_predictions, smoke_test_ids

pytestmark = pytest.mark.integration
MODEL = "recorded_bikes"


BACKEND_STACKS = {"zenml": "default", "bentoml": "bentoml", "mlflow": "mlflow"}


@pytest.fixture(scope="module")
def trained(zenml_client, bike_slice) -> None:
    """One version of MODEL, trained on the default stack and in production."""
    from workflows.runner import run_training

    zenml_client.activate_stack("default")
    config = apply_overrides(load_config(DEMO_CONFIG), model_name=MODEL, enable_cache=False)
    dataset = config.dataset.model_copy(update={"path": str(bike_slice)})
    outcome = run_training(config.model_copy(update={"dataset": dataset}))
    assert outcome.decision.promoted, outcome.decision.reason


@pytest.fixture(
    scope="module",
    params=[
        "zenml",
        pytest.param("bentoml", marks=needs_stacks("bentoml")),
        pytest.param("mlflow", marks=needs_stacks("mlflow")),
    ],
)
def served(request, trained, zenml_client, tmp_path_factory):
    """MODEL served by one backend, logging to its own folder; stopped afterwards."""
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import backend_for
    from stacks.manage import select, stack_specs, stacks_up
    from workflows.runner import run_deployment

    if request.param != "zenml":
        stacks_up(select([BACKEND_STACKS[request.param]], stack_specs(), for_registration=True))
    backend = backend_for(activate_stack(BACKEND_STACKS[request.param]))
    assert backend.name == request.param
    root = tmp_path_factory.mktemp(f"record-{request.param}") / "log"
    deployment = DeploymentConfig(
        port=free_port_block(), drain_seconds=0, smoke_rows=20, front_door={"enabled": "off"}, log={"folder": str(root)}
    )
    try:
        run_deployment(MODEL, deployment)
        version = zenml_client.get_model_version(MODEL, "1")
        schema = version.get_artifact(FEATURE_SCHEMA).load()
        records = json_records(version.get_artifact(TEST_SET).load().tail(5), schema)
        endpoint = live_endpoint(backend, MODEL)
        yield {"backend": backend, "endpoint": endpoint, "root": root, "records": records, "schema": schema}
    finally:
        activate_stack(BACKEND_STACKS[request.param])
        undeploy(backend, MODEL)
        zenml_client.activate_stack("default")


def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """(status, headers (case-insensitive), JSON body) of a POST, error statuses included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def ask(served: dict, records: list[dict], request_id: str | None = None) -> tuple[int, Any, Any]:
    """A prediction request in the backend's own shape (MLflow's carries the id as a parameter)."""
    backend = served["backend"]
    body, headers = backend.request_body(records, request_id), backend.request_headers(request_id)
    return post(served["endpoint"].predict_url, body, headers)


def answered_id(served: dict, body: Any) -> str:
    return body["request_id"] if served["backend"].serves_our_contract else body["predictions"][0]["request_id"]


def logged(root: Path, request_id: str) -> pd.DataFrame:
    return find_request(root, request_id, MODEL)


@pytest.mark.parametrize("served", ["zenml"], indirect=True)
def test_invoke_logs_under_the_clients_request_id_like_predict(served):
    endpoint, records = served["endpoint"], served["records"]
    invoke = endpoint.url + "/invoke"
    status, headers, body = post(invoke, {"parameters": {"records": records[:2]}}, {"X-Request-ID": "client-invoke-7"})
    assert status == 200 and body["success"], body
    assert headers["X-Request-ID"] == "client-invoke-7"
    assert next(iter(body["outputs"].values()))["request_id"] == "client-invoke-7"
    assert list(logged(served["root"], "client-invoke-7")["row"]) == [0, 1]
    # an id the rule refuses is replaced, once: the header, the answer and the log agree
    status, headers, body = post(invoke, {"parameters": {"records": records[:1]}}, {"X-Request-ID": "not usable"})
    made = headers["X-Request-ID"]
    assert made != "not usable" and next(iter(body["outputs"].values()))["request_id"] == made
    assert len(logged(served["root"], made)) == 1
    status, headers, body = ask(served, records[:1], "not usable")
    assert headers["X-Request-ID"] == body["request_id"] != "not usable"
    assert len(logged(served["root"], body["request_id"])) == 1


def test_a_client_id_that_looks_like_a_smoke_tests_stays_traffic(served):
    root = served["root"]
    status, _, body = ask(served, served["records"][:3], "smoke-my-order-1")
    assert status == 200 and answered_id(served, body) == "smoke-my-order-1"
    traffic = read_predictions(root, MODEL).frame
    assert (traffic["request_id"] == "smoke-my-order-1").sum() == 3
    (smoke_id,) = smoke_test_ids(root, MODEL)  # the deploy's own smoke test, registered before it was sent
    assert smoke_id not in set(traffic["request_id"])
    with_smoke = read_predictions(root, MODEL, smoke_tests=True).frame
    assert (with_smoke["request_id"] == smoke_id).sum() == 20


def test_a_rejected_value_is_never_logged(served):
    record = {**served["records"][0], served["schema"].numeric_features[0]: "Jane Doe 4111-1111"}
    status, _, _ = ask(served, [record])
    assert status in (400, 422)
    text = "".join(path.read_text() for path in served["root"].rglob("rejected-*.jsonl"))
    rejected = [json.loads(line) for line in text.splitlines()]
    assert "Jane" not in text and rejected[-1]["problem"] == "wrong type" and rejected[-1]["status"] == 422


def writing_process(endpoint, root: Path) -> tuple[psutil.Process, Path]:
    """The server's process that holds its predictions file open, and the file."""
    server = psutil.Process(endpoint.pid)
    for process in [server, *server.children(recursive=True)]:
        for file in process.open_files():
            if Path(file.path).is_relative_to(root) and Path(file.path).name.startswith("predictions-"):
                return process, Path(file.path)
    raise AssertionError(f"no process of {endpoint.pid} has a predictions file open under {root}")


def test_a_log_that_cannot_be_written_gets_503_no_torn_line_and_the_server_keeps_serving(served):
    """A file-size limit on the writing process (a full disk: part of a write lands, then nothing): the server
    answers 503 with a JSON error (ZenML's `/invoke` too), the requests it refused are not in the log, nothing
    torn is left, and once there is room it answers and logs again."""
    endpoint, root, records = served["endpoint"], served["root"], served["records"]
    assert ask(served, records[:1], "before-the-fault")[0] == 200
    process, path = writing_process(endpoint, root)
    size = path.stat().st_size
    process.rlimit(psutil.RLIMIT_FSIZE, (size + 100, psutil.RLIM_INFINITY))
    try:
        status, _, body = ask(served, records, "refused-predict")
        assert status == 503 and isinstance(body, dict) and body, body
        if served["backend"].name == "zenml":
            status, _, body = post(
                endpoint.url + "/invoke", {"parameters": {"records": records}}, {"X-Request-ID": "refused-invoke"}
            )
            assert status == 503 and "could not record" in body["detail"], body
        assert path.stat().st_size == size
    finally:
        process.rlimit(psutil.RLIMIT_FSIZE, (psutil.RLIM_INFINITY, psutil.RLIM_INFINITY))
    status, _, body = ask(served, records, "after-the-fault")
    assert status == 200 and len(body["predictions"]) == len(records)
    table = read_predictions(root, MODEL)
    assert table.broken_lines == 0
    ids = set(table.frame["request_id"])
    assert {"before-the-fault", "after-the-fault"} <= ids and not {"refused-predict", "refused-invoke"} & ids
    assert (table.frame["request_id"] == "after-the-fault").sum() == len(records)


def test_trace_describes_the_version_that_answered_and_lists_the_shadows_apart(tmp_path, zenml_client):
    """Production (version 1) and a shadow (version 2) logged the same request; the shadow's file sorts first."""
    from workflows.served import trace

    name = "traced_with_shadow"
    zenml_client.create_model(name)
    for _ in range(2):
        zenml_client.create_model_version(name)  # versions 1 and 2
    root = tmp_path / "log"
    shadow = PredictionLog(LogSettings(root=str(root), role="shadow"), name, "2", "bentoml", "s-v2")
    production = PredictionLog(LogSettings(root=str(root)), name, "1", "zenml", "p-v1")
    production.record("req-9", [{"x": 1}, {"x": 2}], ["x"], [10.0, 11.0], None, 3.0)
    shadow.record("req-9", [{"x": 1}, {"x": 2}], ["x"], [20.0, 21.0], None, 5.0)
    steps = dict(trace("req-9", name, DeploymentConfig(log={"folder": str(root)})).steps)
    assert steps["request"].startswith("req-9: 2 row(s)")
    assert steps["answered by"] == "zenml server p-v1 (production), version 1"
    assert steps["prediction(s)"] == "10.0, 11.0"
    assert steps["model version"].startswith(f"`{name}` version 1 ")
    shadow_answer = "bentoml server s-v2 (shadow), version 2 (never sent to the client): 20.0, 21.0"
    assert steps["shadow's answer"] == shadow_answer


def read_answer(client: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, whole; fails if the server closes the connection first."""
    answer = b""
    while True:
        head, ended, body = answer.partition(b"\r\n\r\n")
        lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
        if ended and lengths and len(body) >= int(lengths[0]):
            return answer
        chunk = client.recv(65536)
        assert chunk, f"the connection was cut off: {answer!r}"
        answer += chunk


def test_a_server_being_stopped_finishes_the_request_it_is_reading(served):
    """A client still sending its request to the server when the server is stopped (after a drain shorter than
    that request) gets its answer, and the answer is logged; new requests go unanswered meanwhile."""
    from serving.client import is_healthy
    from serving.processes import still_running, stop_process

    backend, endpoint, records = served["backend"], served["endpoint"], served["records"]
    body = json.dumps(backend.request_body(records, "slow-client-1")).encode()
    host, port = endpoint.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)), timeout=60)
    head = (
        f"POST {endpoint.predict_path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: slow-client-1\r\n\r\n"
    )
    client.sendall(head.encode() + body[:10])
    stopping = threading.Thread(target=stop_process, args=(endpoint.pid,))
    started = time.monotonic()
    stopping.start()
    while is_healthy(endpoint.health_url, timeout=2):  # refused or unanswered: the server is shutting down
        assert time.monotonic() - started < 25, "the server never began to stop"
        time.sleep(0.05)
    client.sendall(body[10:])
    answer = read_answer(client)
    client.close()
    stopping.join(timeout=60)
    stopped = time.monotonic() - started
    assert not stopping.is_alive() and not still_running(endpoint.pid)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert answered_id(served, json.loads(answer.split(b"\r\n\r\n", 1)[1])) == "slow-client-1"
    assert len(logged(served["root"], "slow-client-1")) == len(records)
    note(f"stop of a {backend.name} server that was reading a request: answered, then gone in {stopped:.1f} s")
