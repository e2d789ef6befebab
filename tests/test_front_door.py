"""The front door (serving/front_door.py) with a real nginx in front of two small HTTP servers: a switch under
traffic loses no request, a switch to a server that does not answer leaves the old one in place, request ids
pass through, and a port another program holds is exchanged for the next. A few seconds; skipped without nginx
(`.ci/run` installs it)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from conftest import free_port_block

from lifecycle.config import DeploymentConfig
from serving import front_door

pytestmark = pytest.mark.skipif(
    front_door.nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)"
)

SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
name, port = sys.argv[1], int(sys.argv[2])
class Handler(BaseHTTPRequestHandler):
    def _send(self):
        body = json.dumps({"server": name, "request_id": self.headers.get("X-Request-ID")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._send()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send()
    def log_message(self, *args):
        return None  # no access log on stderr
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture
def servers():
    started = {}
    for name in ("a", "b"):
        port = free_port_block()
        process = subprocess.Popen([sys.executable, "-c", SERVER, name, str(port)])
        started[name] = (f"http://127.0.0.1:{port}", process)
    for url, _ in started.values():
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    yield {name: url for name, (url, _) in started.items()}
    for _, process in started.values():
        process.kill()


@pytest.fixture
def config():
    return DeploymentConfig(front_door={"port": free_port_block()})


def ask(url: str, request_id: str | None = None) -> dict:
    request = urllib.request.Request(url + "/predict", data=b'{"records": []}', method="POST")
    if request_id:
        request.add_header("X-Request-ID", request_id)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_switch_under_traffic_loses_no_request(servers, config):
    door = front_door.switch("door_model", config, servers["a"], "/health", "1", "test")
    try:
        assert door.url == f"http://127.0.0.1:{config.front_door.port}"
        assert front_door.current("door_model").upstream == servers["a"]
        answers, failures, stop = [], [], threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    answers.append(ask(door.url)["server"])
                except Exception as exc:  # a lost request
                    failures.append(repr(exc))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        switched = front_door.switch("door_model", config, servers["b"], "/health", "2", "test")
        time.sleep(0.5)
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
        assert switched.url == door.url  # the same address
        assert failures == []
        assert answers.count("a") > 10 and answers.count("b") > 10 and answers[-1] == "b"
        assert ask(door.url)["server"] == "b" and front_door.current("door_model").model_version == "2"
    finally:
        front_door.close("door_model")
    assert front_door.current("door_model") is None
    with pytest.raises(OSError):
        urllib.request.urlopen(door.url + "/health", timeout=2)


def test_request_ids_pass_through_and_are_made_when_missing(servers, config):
    door = front_door.switch("door_ids", config, servers["a"], "/health", "1", "test")
    try:
        assert ask(door.url, request_id="client-chosen-7")["request_id"] == "client-chosen-7"
        made = ask(door.url)["request_id"]
        assert made and len(made) == 32 and int(made, 16) >= 0  # nginx's $request_id
    finally:
        front_door.close("door_ids")


def test_a_switch_to_a_server_that_does_not_answer_keeps_the_old_one(servers, config):
    door = front_door.switch("door_keep", config, servers["a"], "/health", "1", "test")
    try:
        dead = f"http://127.0.0.1:{free_port_block()}"
        with pytest.raises(front_door.FrontDoorFailed, match="was not answered by"):
            front_door.switch("door_keep", config, dead, "/health", "2", "test", timeout=2)
        assert ask(door.url)["server"] == "a"
        assert front_door.current("door_keep").model_version == "1"
    finally:
        front_door.close("door_keep")


def test_a_port_held_by_another_program_is_exchanged_for_the_next(servers, config):
    holder = socket.socket()
    holder.bind(("127.0.0.1", config.front_door.port))
    holder.listen()
    try:
        door = front_door.switch("door_busy", config, servers["a"], "/health", "1", "test")
        try:
            assert door.url != f"http://127.0.0.1:{config.front_door.port}"
            assert ask(door.url)["server"] == "a"
            # remembered: the model keeps its address through later switches
            assert front_door.switch("door_busy", config, servers["b"], "/health", "2", "test").url == door.url
        finally:
            front_door.close("door_busy")
    finally:
        holder.close()
