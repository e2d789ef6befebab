"""The request contract, request limits and port choice, without a server (the servers: test_deployment.py)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from lifecycle.errors import LifecycleError
from lifecycle.validation import FeatureSchema
from serving.contract import BodyLimit, RequestError, json_records, parse_body, prediction_difference, records_frame
from serving.processes import choose_port

SCHEMA = FeatureSchema(
    target="cnt",
    task="regression",
    numeric_features=["temp"],
    categorical_features=["season"],
    time_columns=["hr"],
    time_formats={"hr": "%I%p"},
)
GOOD = {"hr": "6am", "temp": 12.5, "season": "spring"}


def test_good_records_become_a_typed_table():
    frame = records_frame({"records": [GOOD, {**GOOD, "temp": None, "season": 3, "extra": "ignored"}]}, SCHEMA)
    assert list(frame.columns) == ["hr", "temp", "season"]
    assert frame["temp"].dtype == float and frame["temp"].isna().tolist() == [False, True]
    assert frame["season"].tolist() == ["spring", 3]  # the model reads 3 and "3" as one category


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ([GOOD], 400, '{"records"'),
        ({"rows": [GOOD]}, 400, '{"records"'),
        ({"records": []}, 400, "empty"),
        ({"records": [1]}, 422, "record 0 is int"),
        ({"records": [{"hr": "6am", "season": "x"}]}, 422, "temp"),
        ({"records": [{**GOOD, "temp": "warm"}]}, 422, "`temp` is 'warm'"),
        ({"records": [{**GOOD, "temp": True}]}, 422, "finite number"),
        ({"records": [{**GOOD, "temp": float("inf")}]}, 422, "finite number"),
        ({"records": [{**GOOD, "temp": 10**400}]}, 422, "finite number"),
        ({"records": [{**GOOD, "season": {"a": 1}}]}, 422, "`season`"),
        ({"records": [{**GOOD, "hr": "25 o'clock"}]}, 422, "format '%I%p'"),
    ],
)
def test_bad_records_name_the_problem(payload, status, words):
    with pytest.raises(RequestError) as error:
        records_frame(payload, SCHEMA)
    assert error.value.status == status and words in str(error.value)


def test_row_and_byte_limits():
    with pytest.raises(RequestError) as rows:
        records_frame({"records": [GOOD] * 11}, SCHEMA, max_rows=10)
    assert rows.value.status == 413
    with pytest.raises(RequestError) as size:
        parse_body(b"x" * 2048, max_bytes=1024)
    assert size.value.status == 413
    for raw in (b"", b"  ", b"{bad", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(RequestError) as bad:
            parse_body(raw)
        assert bad.value.status == 400


def test_json_records_round_trip(bike_slice):
    import pandas as pd

    table = pd.read_csv(bike_slice).head(5)
    schema = FeatureSchema(
        target="cnt", task="regression", numeric_features=["temp", "hum"], categorical_features=["weathersit"]
    )
    records = json_records(table, schema)
    assert json.loads(json.dumps(records)) == records
    assert set(records[0]) == {"temp", "hum", "weathersit"}


def test_busy_port_moves_to_the_next_free_one_or_fails_clearly():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        chosen = choose_port("127.0.0.1", port, 20)
        assert chosen != port and port < chosen <= port + 20
        with pytest.raises(LifecycleError, match="busy.*configs/deployment.yaml"):
            choose_port("127.0.0.1", port, 0)


def _call(app, body: bytes, chunks: int = 1, declare_length: bool = True):
    """Drive an ASGI app with one request; return (status, body, how many bytes the app read)."""
    sent: list[dict] = []
    size = max(1, len(body) // chunks)
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1}
        for index, piece in enumerate(pieces)
    ]
    headers = [(b"content-length", str(len(body)).encode())] if declare_length else []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "headers": headers}, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def _echo(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def test_body_limit_answers_413_for_declared_and_streamed_bodies():
    app = BodyLimit(_echo, max_bytes=1024)
    assert _call(app, b"x" * 1000) == (200, b"1000")
    status, body = _call(app, b"x" * 5000)
    assert status == 413 and "1024" in json.loads(body)["error"]
    status, body = _call(app, b"x" * 5000, chunks=10, declare_length=False)
    assert status == 413


def test_prediction_difference():
    assert prediction_difference("regression", [1.0, 2.5], [1.0, 2.0]) == 0.5
    assert prediction_difference("classification", ["yes", "no"], ["yes", "yes"]) == 0.5
    assert prediction_difference("regression", [1.0], [1.0, 2.0]) == float("inf")
    assert prediction_difference("regression", [], []) == 0.0


@pytest.mark.integration  # starts processes that listen on a port
def test_a_port_answered_by_another_process_is_not_taken_for_the_new_server():
    """A deploy checks that the process listening on its server's port is that server (or one of its children):
    a port another program took between the choice and the bind would otherwise pass the health check and the
    smoke test for it."""
    import subprocess
    import sys

    from conftest import free_port_block

    from serving.backends.base import Endpoint
    from serving.rollout import PortTaken, check_answers_itself

    port = free_port_block()
    listener = subprocess.Popen(
        [sys.executable, "-c", f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); "
         "print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert listener.stdout.readline().strip() == "up"

        def endpoint(pid: int) -> Endpoint:
            return Endpoint("zenml", "s", "m", "1", f"http://127.0.0.1:{port}", "/predict", "/health", True, pid=pid)

        with pytest.raises(PortTaken, match=rf"port {port} is answered by another process \(pid {listener.pid}\)"):
            check_answers_itself(endpoint(bystander.pid))
        check_answers_itself(endpoint(listener.pid))  # the server itself: accepted
    finally:
        listener.kill()
        bystander.kill()
