"""One stable address per model: nginx on a fixed port in front of whichever server serves the model now.

Each model gets its own nginx (its own prefix, configuration, pid and logs under `<state>/front_door/<model>/`),
listening on the port assigned to the model (`front_door.port` in configs/deployment.yaml for the first model,
the next free one for each further model, remembered). A deploy switches it to the new server only after that
server's health check and smoke test: the configuration is rewritten, checked with `nginx -t`, and applied with
`nginx -s reload`, which lets the old workers finish the requests they are answering. The switch counts as done
when a request through the front door is answered by the new server (nginx names the server that answered in the
`X-Upstream` header).

Beside production, the door can hold two trials of another version: a canary, which answers a share of the
requests (nginx's `split_clients` on the request id), and a shadow, which gets a copy of every request (nginx's
`mirror`) whose answer is logged by the shadow's server and never returned. The copy goes through a second,
internal nginx server that answers the mirror at once and sends the copy on, so a slow or dead shadow cannot hold
up production's answers, even on a kept-alive connection.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lifecycle.config import DeploymentConfig
from lifecycle.environment import file_lock, state_dir
from lifecycle.errors import LifecycleError
from lifecycle.project_state import atomic_write_text, private_folder, read_json, write_json
from serving.prediction_log import REQUEST_ID_PATTERN
from serving.processes import pid_alive, port_is_free, still_running

UPSTREAM_HEADER = "X-Upstream"
INSTALL_HINT = "for one stable address per model, install nginx (Debian/Ubuntu: `apt-get install nginx`)"


class FrontDoorFailed(LifecycleError):
    """The front door could not be started or switched; what it pointed at before still serves."""


@dataclass
class Route:
    """A trial server behind the front door."""

    upstream: str  # the server's base URL
    model_version: str
    weight: float = 0.0  # a canary's share of the requests, in percent


@dataclass
class FrontDoor:
    model_name: str
    url: str
    upstream: str  # production's server (base URL)
    model_version: str
    backend: str
    pid: int | None = None
    health_path: str = "/"
    canary: dict[str, Any] | None = None  # a Route, as stored
    shadow: dict[str, Any] | None = None

    def route(self, role: str) -> Route | None:
        stored = self.canary if role == "canary" else self.shadow if role == "shadow" else None
        return Route(**stored) if stored else None

    def upstreams(self) -> dict[str, str]:
        """role -> server base URL, for every server behind the door."""
        found = {"production": self.upstream}
        for role in ("canary", "shadow"):
            route = self.route(role)
            if route:
                found[role] = route.upstream
        return found


SHADOW_COPIES_IN_FLIGHT = 128  # more copies waiting for a slow shadow are dropped (the log shows them unpaired)
KEEP: Literal["keep"] = "keep"  # switch(): leave the door's canary or shadow as it is


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def enabled(config: DeploymentConfig) -> bool:
    """Whether deploys put the front door in front of their servers (`auto`: when nginx is installed)."""
    mode = config.front_door.enabled
    if mode == "off":
        return False
    if nginx_binary() is None:
        if mode == "on":
            raise FrontDoorFailed(f"front_door.enabled is `on` but nginx is not installed. Fix: {INSTALL_HINT}")
        return False
    return True


def _folder(model_name: str) -> Path:
    return state_dir() / "front_door" / re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)


def assigned_port(model_name: str, config: DeploymentConfig, give_up: int | None = None) -> int:
    """The model's front-door port: remembered once given; the first model gets `front_door.port`, each further
    model the next port that no other model has and that is free. `give_up`: a port the model could not bind
    (another program took it), exchanged for the next free one."""
    registry = state_dir() / "front_door" / "ports.json"
    with file_lock(registry.with_suffix(".lock")):
        ports = read_json(registry) or {}
        if model_name in ports and int(ports[model_name]) != give_up:
            return int(ports[model_name])
        taken = {int(p) for p in ports.values()} | ({give_up} if give_up else set())
        port = config.front_door.port
        while port in taken or not port_is_free(config.host, port):
            port += 1
            if port > config.front_door.port + config.port_search:
                raise FrontDoorFailed(
                    f"no free front-door port from {config.front_door.port} to {port - 1}. "
                    "Fix: set `front_door.port` in configs/deployment.yaml"
                )
        ports[model_name] = port
        write_json(registry, ports)
        return port


def _weight(percent: float) -> str:
    return f"{percent:.2f}".rstrip("0").rstrip(".") + "%"


def render(
    listen: str,
    upstream: str,
    folder: Path,
    max_body_bytes: int,
    canary: Route | None = None,
    shadow: Route | None = None,
) -> str:
    """nginx's configuration: `listen` proxied to `upstream` (host:port), with the request id passed on (the
    client's X-Request-ID when the servers' rule accepts it, else one nginx makes: production, canary and shadow
    all log the same id) and the answering server named in the response; a canary gets its share of the
    requests, picked by the request id; a shadow gets a copy of each through the internal hop. Paths are quoted:
    a project folder may hold spaces, quotes, `;`, `{`, `}`, `#`, `$` or non-ASCII letters."""
    temp = _runtime(folder)
    socket = temp / "shadow.sock"
    body_limit = max_body_bytes + 65536
    pool = "$mlops_pool" if canary else "production"
    trials = ""
    if canary:
        trials += f"""    upstream canary {{
        server {_address(canary.upstream)};
        keepalive 16;
    }}
    split_clients "${{mlops_request_id}}" $mlops_pool {{
        {_weight(canary.weight)} canary;
        * production;
    }}
"""
    mirror, shadow_locations, shadow_hop = "", "", ""
    if shadow:
        trials += f"""    upstream shadow {{
        server {_address(shadow.upstream)};
        keepalive 4;
    }}
"""
        mirror = """            mirror /_mlops_shadow;
            mirror_request_body on;
"""
        shadow_locations = f"""        location = /_mlops_shadow {{
            internal;
            proxy_pass http://unix:{socket}:$request_uri;
            proxy_http_version 1.0;
            proxy_set_header Connection close;
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $mlops_request_id;
        }}
"""
        shadow_hop = f"""    # Copies in flight to the shadow are limited (one key for all: a constant);
    # beyond, a copy is dropped: a lagging shadow never ties up production's connections.
    limit_conn_zone $nginx_version zone=mlops_shadow_copies:1m;
    server {{
        # The shadow's hop: answers the mirror at once (empty_gif), then sends the copy on to the shadow.
        listen {_quoted(f"unix:{socket}")};
        client_max_body_size {body_limit};
        limit_conn mlops_shadow_copies {SHADOW_COPIES_IN_FLIGHT};
        location / {{
            mirror /_mlops_copy;
            mirror_request_body on;
            empty_gif;
        }}
        location = /_mlops_copy {{
            internal;
            proxy_pass http://shadow$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ignore_client_abort on;
            proxy_connect_timeout 5s;
            proxy_read_timeout 30s;
        }}
    }}
"""
    return f"""# Written by serving/front_door.py for each switch; edits are overwritten.
{_worker_user()}worker_processes 1;
pid {_quoted(folder / "nginx.pid")};
error_log {_quoted(folder / "error.log")} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_buffer_size 1m;
    client_body_temp_path {_quoted(temp / "body")};
    proxy_temp_path {_quoted(temp / "proxy")};
    fastcgi_temp_path {_quoted(temp / "fastcgi")};
    uwsgi_temp_path {_quoted(temp / "uwsgi")};
    scgi_temp_path {_quoted(temp / "scgi")};
    # The servers' request-id rule (serving/prediction_log.py): an id they would replace is replaced here,
    # once, so that production, canary and shadow all log the id the client gets back.
    map $http_x_request_id $mlops_request_id {{
        "~^{REQUEST_ID_PATTERN}$" $http_x_request_id;
        default $request_id;
    }}
    upstream production {{
        server {upstream};
        keepalive 16;
    }}
{trials}    server {{
        listen {listen};
        client_max_body_size {body_limit};
        location / {{
{mirror}            proxy_pass http://{pool};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Request-ID $mlops_request_id;
            proxy_read_timeout 300s;
            add_header {UPSTREAM_HEADER} $upstream_addr always;
        }}
{shadow_locations}    }}
{shadow_hop}}}
"""


def _quoted(value: Path | str) -> str:
    """A path as one nginx string, whatever it holds (in these directives nginx expands no variables)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nobody() -> tuple[int, int, str] | None:
    """(uid, gid, group) of `nobody`, to whom nginx run as root hands its workers; None when not run as root."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid, grp.getgrgid(nobody.pw_gid).gr_name


def _worker_user() -> str:
    """Run as root, nginx's master hands its workers to `nobody` (named here, with its group, so that the temp
    folders can be given to it); run as anyone else, nginx keeps that user."""
    nobody = _nobody()
    return f"user nobody {nobody[2]};\n" if nobody else ""


# A folder name nginx can take in a URL (the shadow hop's socket, `http://unix:PATH:`) and in every directive.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._-]+")


def _runtime(folder: Path) -> Path:
    """The door's temp folders and the shadow hop's socket, under the system's temp folder: nginx's workers (run
    as `nobody` when nginx runs as root) must reach them, and a project under a private folder is out of reach.
    (A temp folder whose path nginx cannot take in a URL is passed over for /tmp.)"""
    import hashlib

    temp = tempfile.gettempdir()
    base = Path(temp if _PLAIN_PATH.fullmatch(temp) else "/tmp")
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return base / f"mlops-front-door-{os.geteuid()}" / digest


def _prepare(folder: Path) -> None:
    """The door's folder and its temp folders. The temp folders' parent has a name anyone can guess, so it must
    be this user's own (see `private_folder`); nginx's workers, when they run as `nobody`, may pass through it
    but not list it, and own the folders they write request bodies to."""
    nobody = _nobody()
    folder.mkdir(parents=True, exist_ok=True)
    runtime = _runtime(folder)
    passable = 0o711 if nobody else 0o700
    private_folder(runtime.parent, passable)
    private_folder(runtime, passable)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):  # inside a folder only this user writes to
        (runtime / sub).mkdir(mode=0o700, exist_ok=True)
        if nobody:
            os.chown(runtime / sub, nobody[0], nobody[1])
        (runtime / sub).chmod(0o700)


def _state(model_name: str) -> dict[str, Any] | None:
    record = read_json(_folder(model_name) / "front_door.json")
    return record if isinstance(record, dict) else None


def _running_pid(folder: Path) -> int | None:
    try:
        pid = int((folder / "nginx.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if pid_alive(pid) and b"nginx" in command else None


def _nginx(folder: Path, *args: str) -> subprocess.CompletedProcess:
    binary = nginx_binary()
    if binary is None:
        raise FrontDoorFailed(f"nginx is not installed. Fix: {INSTALL_HINT}")
    return subprocess.run(
        [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), *args], capture_output=True, text=True
    )


def _answering_upstream(url: str, health_path: str) -> str | None:
    """The server that answered a health check through the front door healthily (nginx names the one it tried
    even when that one failed, with a 502)."""
    request = urllib.request.Request(url.rstrip("/") + health_path, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers.get(UPSTREAM_HEADER)
    except OSError:  # HTTPError included: not a healthy answer
        return None


def _address(url: str) -> str:
    """host:port as nginx names the server it reached ($upstream_addr): localhost (MLflow's server) is 127.0.0.1."""
    return url.split("://", 1)[-1].rstrip("/").replace("localhost", "127.0.0.1")


def _workers(folder: Path) -> set[int]:
    """The worker processes of the folder's running nginx."""
    import psutil

    master = _running_pid(folder)
    try:
        return {worker.pid for worker in psutil.Process(master).children()} if master else set()
    except psutil.Error:
        return set()


def _wait_for(
    folder: Path, url: str, health_path: str, upstreams: set[str], timeout: float, old_workers: set[int]
) -> None:
    """Until a health check through the front door is answered by one of `upstreams` (the servers the new
    configuration sends requests to), and nginx's workers from before the reload have finished the requests they
    were answering and exited (so that the server they sent to can be stopped without cutting a request)."""
    deadline = time.monotonic() + timeout
    while _answering_upstream(url, health_path) not in upstreams:
        if time.monotonic() > deadline:
            raise FrontDoorFailed(f"{url} was not answered by {' or '.join(sorted(upstreams))} within {timeout:.0f} s")
        time.sleep(0.05)
    while old_workers & _workers(folder):
        if time.monotonic() > deadline:
            raise FrontDoorFailed(f"nginx's workers from before the switch did not finish within {timeout:.0f} s")
        time.sleep(0.05)


def switch(
    model_name: str,
    config: DeploymentConfig,
    upstream_url: str,
    health_path: str,
    model_version: str,
    backend: str,
    timeout: float = 30.0,
    canary: Route | None | Literal["keep"] = KEEP,
    shadow: Route | None | Literal["keep"] = KEEP,
) -> FrontDoor:
    """Point the model's front door at `upstream_url` (starting it when it is not running), with the canary and
    shadow given (KEEP: the ones it has), and return once a request through it is answered by a server of the
    new configuration and the workers of the old one are gone. On failure the previous configuration is put
    back."""
    folder = _folder(model_name)
    _prepare(folder)
    before = current(model_name)
    canary = (before.route("canary") if before else None) if canary == KEEP else canary
    shadow = (before.route("shadow") if before else None) if shadow == KEEP else shadow
    upstream = _address(upstream_url)
    answering = {upstream} | ({_address(canary.upstream)} if canary else set())
    conf = folder / "nginx.conf"
    previous = conf.read_text() if conf.exists() else None
    pid = _running_pid(folder)
    if not pid:
        (_runtime(folder) / "shadow.sock").unlink(missing_ok=True)  # left by an nginx that did not end cleanly
    port = assigned_port(model_name, config) if not pid else int(current_port(folder))
    url = f"http://{config.host}:{port}"
    try:
        for attempt in range(3):  # a port another program took since it was assigned: the next free one
            text = render(f"{config.host}:{port}", upstream, folder, config.max_body_bytes, canary, shadow)
            atomic_write_text(conf, text)
            checked = _nginx(folder, "-t", "-q")
            if checked.returncode != 0:
                raise FrontDoorFailed(f"nginx refused the front door's configuration: {checked.stderr.strip()}")
            old_workers = _workers(folder)
            applied = _nginx(folder, "-s", "reload") if pid else _nginx(folder)
            if applied.returncode == 0:
                break
            if pid or "Address already in use" not in applied.stderr or attempt == 2:
                raise FrontDoorFailed(f"nginx did not {'reload' if pid else 'start'}: {applied.stderr.strip()}")
            port = assigned_port(model_name, config, give_up=port)
        url = f"http://{config.host}:{port}"
        _wait_for(folder, url, health_path, answering, timeout, old_workers)
    except BaseException:
        if not pid:  # started for this switch: stopped again (nothing stood behind it before)
            _quit(folder)
        if previous is not None:
            atomic_write_text(conf, previous)
            if _running_pid(folder) and before is not None:
                old_workers = _workers(folder)
                _nginx(folder, "-s", "reload")
                served_before = {_address(u) for role, u in before.upstreams().items() if role != "shadow"}
                with contextlib.suppress(FrontDoorFailed):
                    _wait_for(folder, url, before.health_path, served_before, timeout, old_workers)
        raise
    door = FrontDoor(
        model_name,
        url,
        upstream_url,
        model_version,
        backend,
        _running_pid(folder),
        health_path,
        asdict(canary) if canary else None,
        asdict(shadow) if shadow else None,
    )
    write_json(folder / "front_door.json", asdict(door))
    return door


def door_for_trial(model_name: str, config: DeploymentConfig, role: str) -> FrontDoor:
    """The model's front door, which a canary or shadow needs in front of production; FrontDoorFailed (with
    how to get one) when there is none."""
    door = current(model_name)
    if door is None:
        raise FrontDoorFailed(
            f"`{model_name}` has no front door, and a {role} needs one in front of production. Fix: "
            + ("deploy production first (`python run.py deploy`)" if enabled(config) else INSTALL_HINT)
        )
    return door


def set_trial(model_name: str, config: DeploymentConfig, role: str, route: Route | None) -> FrontDoor:
    """Give the model's front door a canary or shadow (None: take it away), production staying as it is."""
    door = door_for_trial(model_name, config, role)
    return switch(
        model_name,
        config,
        door.upstream,
        door.health_path,
        door.model_version,
        door.backend,
        canary=route if role == "canary" else KEEP,
        shadow=route if role == "shadow" else KEEP,
    )


def current_port(folder: Path) -> int:
    """The port the running nginx of this folder listens on (from its configuration)."""
    found = re.search(r"listen [^:;]+:(\d+);", (folder / "nginx.conf").read_text())
    if not found:
        raise FrontDoorFailed(f"{folder / 'nginx.conf'} names no port; stop its nginx and deploy again")
    return int(found.group(1))


def current(model_name: str) -> FrontDoor | None:
    """The model's front door when its nginx runs (as last switched), else None."""
    record = _state(model_name)
    if not record or not _running_pid(_folder(model_name)):
        return None
    return FrontDoor(**{k: v for k, v in record.items() if k in FrontDoor.__dataclass_fields__})


def close(model_name: str) -> FrontDoor | None:
    """Stop the model's front door (nginx finishes the requests in flight); the port stays the model's."""
    folder = _folder(model_name)
    door = current(model_name)
    _quit(folder)
    (folder / "front_door.json").unlink(missing_ok=True)
    return door


def close_behind(stopped: list[Any]) -> list[FrontDoor]:
    """Stop the front doors that stood in front of these stopped servers (Endpoints); the others stay."""
    closed = []
    for name in {endpoint.model_name for endpoint in stopped}:
        door = current(name)
        if door is not None and door.upstream in {endpoint.url for endpoint in stopped}:
            closed.append(close(name) or door)
    return closed


def _quit(folder: Path) -> None:
    pid = _running_pid(folder)
    if pid:
        os.kill(pid, signal.SIGQUIT)  # graceful: the requests in flight are answered first
        deadline = time.monotonic() + 10
        while still_running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
