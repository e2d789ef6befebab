"""The front door (serving/front_door.py) with a real nginx in front of small HTTP servers: a switch under
traffic loses no request, a switch to a server that does not answer leaves the old one in place, request ids
pass through, a port another program holds is exchanged for the next, a canary gets its share of the requests,
and a shadow gets a copy of each without holding production up when it is slow or down. Seconds; skipped without
nginx (`.ci/run` installs it)."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from conftest import free_port_block, wait_until

from lifecycle.config import DeploymentConfig
from lifecycle.errors import LifecycleError
from serving import front_door
from serving.front_door_log import DoorLogTail, arm_requests
from serving.front_door_nginx import run_nginx

PROJECT_ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.integration,  # starts nginx and small servers
    pytest.mark.skipif(front_door.nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)"),
]

SERVER = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
name, port = sys.argv[1], int(sys.argv[2])
delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0  # seconds before each POST is answered
received = open(sys.argv[4], "a", buffering=1) if len(sys.argv) > 4 else None  # one request id per line
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
        time.sleep(delay)
        if received:
            received.write(self.headers.get("X-Request-ID", "") + "\\n")
        self._send()
    def log_message(self, *args):
        return None  # no access log on stderr
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def start_server(name: str, *extra: str, script: str = SERVER) -> tuple[str, subprocess.Popen]:
    port = free_port_block()
    process = subprocess.Popen([sys.executable, "-c", script, name, str(port), *extra])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()
            return url, process
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


@pytest.fixture
def servers():
    started = {name: start_server(name) for name in ("a", "b")}
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
        wait_until(lambda: answers.count("a") > 10)  # traffic flows to the old server
        switched = front_door.switch("door_model", config, servers["b"], "/health", "2", "test")
        wait_until(lambda: answers.count("b") > 10)  # ... and after the switch to the new one
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
        assert re.fullmatch(r"[0-9a-f]{32}", made), made  # nginx's $request_id: 32 hex digits
        assert ask(door.url)["request_id"] != made  # a new one per request
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


def test_a_canary_gets_its_share_of_requests_and_ends_without_a_lost_one(servers, config):
    """10 % of 2,000 requests (ids made by nginx) go to the canary, within 3 points; a client that holds the door
    while the canary is added and removed loses nothing."""
    door = front_door.switch("door_canary", config, servers["a"], "/health", "1", "test")
    held, failures, stop = [], [], threading.Event()

    def hold() -> None:
        while not stop.is_set():
            try:
                held.append(ask(door.url)["server"])
            except Exception as exc:  # a lost request
                failures.append(repr(exc))

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        with_canary = front_door.set_trial("door_canary", config, "canary", front_door.Route(servers["b"], "2", 10))
        assert with_canary.url == door.url and with_canary.route("canary").weight == 10
        counts = {"a": 0, "b": 0}
        lock = threading.Lock()

        def send(requests: int) -> None:
            for _ in range(requests):
                server = ask(door.url)["server"]
                with lock:
                    counts[server] += 1

        senders = [threading.Thread(target=send, args=(500,)) for _ in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=120)
        assert sum(counts.values()) == 2000
        share = counts["b"] / 2000
        assert 0.07 <= share <= 0.13, counts
        # The door's access log says which arm answered each request, as the servers do (what a canary judge reads)
        logged = DoorLogTail.of("door_canary", since=0.0).read()
        arms = Counter(r.arm for r in logged)
        assert sum(arms.values()) >= 1990 and all(r.status == 200 and r.seconds >= 0 for r in logged)
        assert len(arm_requests(logged, "canary", servers["b"])) == arms["canary"] >= counts["b"] - 5
        assert len(arm_requests(logged, "production", servers["a"])) == arms["production"] >= counts["a"] - 5
        front_door.set_trial("door_canary", config, "canary", None)
        assert front_door.current("door_canary").route("canary") is None
        assert {ask(door.url)["server"] for _ in range(50)} == {"a"}
    finally:
        stop.set()
        holder.join(timeout=30)
        front_door.close("door_canary")
    assert failures == [] and len(held) > 20


def test_a_shadow_gets_a_copy_of_every_request_and_the_client_only_production(servers, config, tmp_path):
    received = tmp_path / "shadow-ids.txt"
    shadow_url, shadow = start_server("shadow", "0", str(received))
    door = front_door.switch("door_shadow", config, servers["a"], "/health", "1", "test")
    try:
        front_door.set_trial("door_shadow", config, "shadow", front_door.Route(shadow_url, "2"))
        sent = [f"req-{n}" for n in range(100)] + [None] * 100  # ids from the client, then ids nginx makes
        answered = [ask(door.url, request_id) for request_id in sent]
        assert {answer["server"] for answer in answered} == {"a"}
        deadline = time.monotonic() + 10
        while len(received.read_text().split()) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(received.read_text().split()) == sorted(answer["request_id"] for answer in answered)
    finally:
        front_door.close("door_shadow")
        shadow.kill()


def test_a_slow_or_dead_shadow_does_not_hold_up_production(servers, config):
    """Production's answers on one kept-alive connection stay immediate while the shadow takes 2 s per request,
    and keep coming when the shadow is gone."""
    slow_url, slow = start_server("slow", "2")
    door = front_door.switch("door_slow", config, servers["a"], "/health", "1", "test")
    try:
        front_door.set_trial("door_slow", config, "shadow", front_door.Route(slow_url, "2"))
        port = int(door.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for phase in ("slow shadow", "dead shadow"):
            took = []
            for _ in range(10):
                started = time.perf_counter()
                connection.request("POST", "/predict", body=b'{"records": []}')
                response = connection.getresponse()
                assert response.status == 200 and json.loads(response.read())["server"] == "a", phase
                took.append(time.perf_counter() - started)
            assert max(took) < 1.0, (phase, took)  # not waiting for the shadow's 2 s
            slow.kill()
            slow.wait()
        connection.close()
    finally:
        front_door.close("door_slow")
        slow.kill()


LOGGING_SERVER = """
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.path.insert(0, sys.argv[4])
from serving.prediction_log import REQUEST_ID_HEADER, LogSettings, PredictionLog, new_request_id
name, port, role, _, root = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
log = PredictionLog(LogSettings(root=root, role=role), "door_model", "2" if role == "shadow" else "1", "test")
class Handler(BaseHTTPRequestHandler):
    def _send(self, request_id):
        body = json.dumps({"server": name, "request_id": request_id}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._send(None)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request_id = new_request_id(self.headers.get(REQUEST_ID_HEADER))  # the rule of this project's servers
        log.record(request_id, [{"x": 1}], ["x"], [1.0 if role == "production" else 2.0], None, 0.1)
        self._send(request_id)
    def log_message(self, *args):
        return None
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def start_logging_server(role: str, root: Path) -> tuple[str, subprocess.Popen]:
    return start_server(role, role, str(PROJECT_ROOT), str(root), script=LOGGING_SERVER)


def test_an_id_the_servers_would_replace_is_replaced_once_at_the_door_so_production_and_shadow_pair(config, tmp_path):
    """Ids the servers' rule refuses (spaces, too long, other characters) are replaced by nginx's own id before
    they reach production and the shadow: both log the id the client got back, and every row pairs."""
    from serving.prediction_log_reader import read_predictions
    from workflows.served import shadow_comparison

    root = tmp_path / "log"
    production_url, production = start_logging_server("production", root)
    shadow_url, shadow = start_logging_server("shadow", root)
    door = front_door.switch("door_ids_rule", config, production_url, "/health", "1", "test")
    try:
        front_door.set_trial("door_ids_rule", config, "shadow", front_door.Route(shadow_url, "2"))
        sent = ["bad id with spaces", "x" * 129, "semi;colon", "quote'd", "ok-id:7.a_b", None]
        answered = [ask(door.url, request_id)["request_id"] for request_id in sent]
        assert answered[4] == "ok-id:7.a_b"
        assert all(re.fullmatch(r"[0-9a-f]{32}", made) for made in answered[:4] + answered[5:]), answered  # nginx's
        deadline = time.monotonic() + 10
        while (frame := read_predictions(root, "door_model").frame)["role"].eq("shadow").sum() < len(sent):
            assert time.monotonic() < deadline, frame
            time.sleep(0.05)
        assert sorted(frame.loc[frame["role"] == "production", "request_id"]) == sorted(answered)
        compared = shadow_comparison(frame, "regression")
        assert compared["paired_rows"] == len(sent) and compared["unpaired_shadow_rows"] == 0
    finally:
        front_door.close("door_ids_rule")
        production.kill()
        shadow.kill()


def test_a_front_door_serves_from_a_state_folder_whose_path_nginx_treats_specially(servers, config, tmp_path):
    """Spaces, quotes, `;`, `{`, `}`, `$`, `#` and non-ASCII letters in the project's path: the configuration
    quotes them, nginx starts, and requests go through."""
    state = tmp_path / "my projects; {x} $HOME #1 'quoted' \"double\" \\ Zürich 東京"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(state))
        door = front_door.switch("door_odd_path", config, servers["a"], "/health", "1", "test")
        try:
            assert front_door.current("door_odd_path").url == door.url
            assert ask(door.url)["server"] == "a"
            assert front_door.switch("door_odd_path", config, servers["b"], "/health", "2", "test").url == door.url
            assert ask(door.url)["server"] == "b"
            assert (state / "front_door" / "door_odd_path" / "nginx.pid").is_file()
        finally:
            front_door.close("door_odd_path")
    assert front_door.current("door_odd_path") is None


def test_a_configuration_that_cannot_be_written_whole_leaves_the_old_one(servers, config):
    """A file-size limit makes the write of nginx.conf fail part-way (as a full disk would): the switch fails,
    the file on disk is still the configuration nginx runs, and the door still answers from it."""
    import resource

    door = front_door.switch("door_atomic", config, servers["a"], "/health", "1", "test")
    conf = front_door._folder("door_atomic") / "nginx.conf"
    try:
        before = conf.read_text()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))
        try:
            with pytest.raises(OSError):
                front_door.switch("door_atomic", config, servers["b"], "/health", "2", "test")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert conf.read_text() == before
        assert [p.name for p in conf.parent.iterdir() if p.suffix == ".tmp"] == []
        assert run_nginx(conf.parent, "-t", "-q").returncode == 0
        assert ask(door.url)["server"] == "a"
        assert oct(conf.stat().st_mode & 0o777) == "0o600"
    finally:
        front_door.close("door_atomic")


@pytest.mark.parametrize("planted", ["link", "other user", "loose"])
def test_the_temp_folder_at_a_guessable_name_must_be_this_users_own(servers, config, tmp_path, planted):
    """Another user who made `mlops-front-door-<uid>` first (or a link there) could read request bodies or
    replace the shadow's socket: the door refuses to start and says how to fix it. A folder of this user's
    with loose permissions is narrowed instead."""
    import tempfile

    temp = tmp_path / "tmp"
    temp.mkdir()
    guessable = temp / f"mlops-front-door-{os.geteuid()}"
    if planted == "link":
        (tmp_path / "elsewhere").mkdir()
        guessable.symlink_to(tmp_path / "elsewhere")
    elif planted == "other user":
        if os.geteuid() != 0:
            pytest.skip("only root can make a folder another user owns")
        guessable.mkdir()
        os.chown(guessable, 65534, 65534)
    else:
        guessable.mkdir(mode=0o777)
        guessable.chmod(0o777)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(temp))
        if planted == "loose":
            door = front_door.switch("door_temp", config, servers["a"], "/health", "1", "test")
            try:
                assert ask(door.url)["server"] == "a"
                assert guessable.stat().st_mode & 0o777 == (0o711 if os.geteuid() == 0 else 0o700)
            finally:
                front_door.close("door_temp")
        else:
            with pytest.raises(LifecycleError, match="another user may have made it.*Fix: remove it"):
                front_door.switch("door_temp", config, servers["a"], "/health", "1", "test")
            assert front_door.current("door_temp") is None
            assert list((tmp_path / "elsewhere").iterdir() if planted == "link" else []) == []
