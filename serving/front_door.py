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

This module switches and closes doors; nginx's configuration is written by serving/front_door_config.py, and
nginx is run and watched by serving/front_door_nginx.py.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from lifecycle.config import DeploymentConfig
from lifecycle.environment import file_lock, state_dir
from lifecycle.hints import run_hint
from lifecycle.project_state import atomic_write_text, read_json, write_json
from serving.front_door_config import ACCESS_LOG, Route, prepare_folders, render, runtime_folder, upstream_address
from serving.front_door_nginx import (
    INSTALL_HINT,
    FrontDoorFailed,
    current_port,
    nginx_binary,
    quit_nginx,
    run_nginx,
    running_pid,
    wait_for_upstreams,
    worker_pids,
)
from serving.processes import port_is_free


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


KEEP: Literal["keep"] = "keep"  # switch(): leave the door's canary or shadow as it is


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


def access_log_path(model_name: str) -> Path:
    """The door's access log: one JSON line per client request (arm, status, time); serving/front_door_log.py."""
    return runtime_folder(_folder(model_name)) / ACCESS_LOG


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


def _state(model_name: str) -> dict[str, Any] | None:
    record = read_json(_folder(model_name) / "front_door.json")
    return record if isinstance(record, dict) else None


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
    prepare_folders(folder)
    before = current(model_name)
    canary = (before.route("canary") if before else None) if canary == KEEP else canary
    shadow = (before.route("shadow") if before else None) if shadow == KEEP else shadow
    upstream = upstream_address(upstream_url)
    answering = {upstream} | ({upstream_address(canary.upstream)} if canary else set())
    conf = folder / "nginx.conf"
    previous = conf.read_text() if conf.exists() else None
    pid = running_pid(folder)
    if not pid:
        (runtime_folder(folder) / "shadow.sock").unlink(missing_ok=True)  # left by an nginx that did not end cleanly
    port = assigned_port(model_name, config) if not pid else int(current_port(folder))
    url = f"http://{config.host}:{port}"
    try:
        for attempt in range(3):  # a port another program took since it was assigned: the next free one
            text = render(f"{config.host}:{port}", upstream, folder, config.max_body_bytes, canary, shadow)
            atomic_write_text(conf, text)
            checked = run_nginx(folder, "-t", "-q")
            if checked.returncode != 0:
                raise FrontDoorFailed(f"nginx refused the front door's configuration: {checked.stderr.strip()}")
            old_workers = worker_pids(folder)
            applied = run_nginx(folder, "-s", "reload") if pid else run_nginx(folder)
            if applied.returncode == 0:
                break
            if pid or "Address already in use" not in applied.stderr or attempt == 2:
                raise FrontDoorFailed(f"nginx did not {'reload' if pid else 'start'}: {applied.stderr.strip()}")
            port = assigned_port(model_name, config, give_up=port)
        url = f"http://{config.host}:{port}"
        wait_for_upstreams(folder, url, health_path, answering, timeout, old_workers)
    except BaseException:
        if not pid:  # started for this switch: stopped again (nothing stood behind it before)
            quit_nginx(folder)
        if previous is not None:
            atomic_write_text(conf, previous)
            if running_pid(folder) and before is not None:
                old_workers = worker_pids(folder)
                run_nginx(folder, "-s", "reload")
                served_before = {upstream_address(u) for role, u in before.upstreams().items() if role != "shadow"}
                with contextlib.suppress(FrontDoorFailed):
                    wait_for_upstreams(folder, url, before.health_path, served_before, timeout, old_workers)
        raise
    door = FrontDoor(
        model_name,
        url,
        upstream_url,
        model_version,
        backend,
        running_pid(folder),
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
            + (f"deploy production first (`{run_hint()} deploy`)" if enabled(config) else INSTALL_HINT)
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


def current(model_name: str) -> FrontDoor | None:
    """The model's front door when its nginx runs (as last switched), else None."""
    record = _state(model_name)
    if not record or not running_pid(_folder(model_name)):
        return None
    return FrontDoor(**{k: v for k, v in record.items() if k in FrontDoor.__dataclass_fields__})


def close(model_name: str) -> FrontDoor | None:
    """Stop the model's front door (nginx finishes the requests in flight); the port stays the model's."""
    folder = _folder(model_name)
    door = current(model_name)
    quit_nginx(folder)
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
