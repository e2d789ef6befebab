"""The rollout: start the new server beside the running ones, health-check and smoke-test it, drain, and only
then stop the old ones (a failed deploy leaves the old server serving). A production rollout serves the version
the Model Control Plane names production when it switches, whichever version it was started for (`rollout`).
Also: the model's live server, undeploy."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from lifecycle.config import DeploymentConfig
from lifecycle.environment import model_lock, model_lock_path, try_file_lock
from lifecycle.errors import LifecycleError
from lifecycle.hints import run_hint
from lifecycle.promotion import promotion_lock_name
from serving import front_door, standby
from serving.backends.base import DeploymentFailed, Endpoint, Release, ServingBackend
from serving.client import is_healthy
from serving.contract import json_records, prediction_difference
from serving.prediction_log import SMOKE_TEST_PREFIX
from serving.processes import choose_port, listening_pids, process_tree
from serving.registry import record_change
from stacks.store_lock import store_lock

PRODUCTION = "production"  # the Model Control Plane stage a production rollout serves


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url):
            return
        time.sleep(0.5)
    raise DeploymentFailed(f"{url} did not answer healthy within {timeout:.0f} s")


def _one_line(error: BaseException) -> str:
    return " | ".join(line.strip() for line in str(error).splitlines() if line.strip())


class PortTaken(DeploymentFailed):
    """Another process answers on the port the new server was given."""


# A deploy whose port is taken by another process between its choice and the bind tries this many ports in all.
PORT_ATTEMPTS = 3


def check_answers_itself(endpoint: Endpoint) -> None:
    """The server on the endpoint's port is the one this deploy started, not another process that took the port
    between the choice and the bind (another deploy, another program): else its health and smoke test would be
    somebody else's."""
    if not endpoint.pid or not endpoint.url:
        return
    port = int(endpoint.url.rsplit(":", 1)[1])
    holders = listening_pids(port)
    if not holders & set(process_tree(endpoint.pid)):
        other = f"pid {', '.join(map(str, sorted(holders)))}" if holders else "a process this user cannot see"
        raise PortTaken(
            f"port {port} is answered by another process ({other}), not by the server this deploy started "
            f"(pid {endpoint.pid}). Fix: deploy again (a free port is chosen), or pass --port"
        )


@dataclass
class SmokeTest:
    rows: int
    max_abs_difference: float
    healthy: bool
    seconds_to_ready: float


def smoke_test(
    backend: ServingBackend, endpoint: Endpoint, release: Release, holdout: pd.DataFrame, config: DeploymentConfig
) -> SmokeTest:
    """Health endpoint up, then HTTP predictions on held-out rows equal the same artifact's in-process ones."""
    from lifecycle.modeling import predict_scores
    from serving.prediction_log import new_request_id, register_smoke_test

    if not is_healthy(endpoint.health_url, timeout=10):
        raise DeploymentFailed(f"{endpoint.health_url} is not healthy")
    rows = holdout.head(config.smoke_rows)
    records = json_records(rows, release.schema)
    # A random id, registered before it is sent: readers leave its rows out of traffic, and no client can mark
    # its own rows that way (the prefix only helps a person reading the files).
    request_id = f"{SMOKE_TEST_PREFIX}{new_request_id()}"
    if config.log.enabled:
        register_smoke_test(config.log.root(), release.model_name, request_id)
    served, body = backend.predict(endpoint, records, request_id=request_id)
    expected, _ = predict_scores(release.model, rows[release.schema.model_inputs])
    if len(served) != len(expected):
        raise DeploymentFailed(f"smoke test: {len(served)} predictions for {len(expected)} rows")
    if backend.serves_our_contract and str(body.get("model_version")) != release.model_version:
        raise DeploymentFailed(
            f"smoke test: the server says model version {body.get('model_version')}, expected {release.model_version}"
        )
    difference = prediction_difference(release.schema.task, served, list(expected))
    if difference > config.parity_tolerance:
        raise DeploymentFailed(
            f"smoke test: HTTP predictions differ from in-process ones by up to {difference:g} "
            f"(tolerance {config.parity_tolerance:g})"
        )
    return SmokeTest(rows=len(rows), max_abs_difference=difference, healthy=True, seconds_to_ready=0.0)


@dataclass
class Rollout:
    endpoint: Endpoint
    smoke: SmokeTest | None  # None: nothing was started (`already_serving`)
    replaced: list[Endpoint]
    seconds_to_ready: float
    front_door: front_door.FrontDoor | None = None
    release: Release | None = None  # what now serves (production: the version production named at the switch)
    holdout: pd.DataFrame | None = None  # that version's held-out rows
    requested_version: str | None = None  # the version the deploy was started for, when production moved since
    already_serving: bool = False  # `only_if_stale`: production's version was serving already; nothing changed
    switched_at: float | None = None  # a switch to a warm standby: time.perf_counter() when the door answered with it

    def metadata(self) -> dict[str, Any]:
        trial = self.front_door.route(self.endpoint.role) if self.front_door else None
        return {
            "role": self.endpoint.role,
            "weight": trial.weight if trial and self.endpoint.role == "canary" else None,
            "backend": self.endpoint.backend,
            "url": self.endpoint.url,
            "predict_url": self.endpoint.predict_url,
            "health_url": self.endpoint.health_url,
            "name": self.endpoint.name,
            "model_version": self.endpoint.model_version,
            "requested_version": self.requested_version or self.endpoint.model_version,
            "already_serving": self.already_serving,
            "deployed_at": self.endpoint.created if self.already_serving else _now(),
            "seconds_to_ready": round(self.seconds_to_ready, 2),
            "smoke_test_rows": self.smoke.rows if self.smoke else 0,
            "parity_max_abs_difference": self.smoke.max_abs_difference if self.smoke else None,
            "replaced": [e.name for e in self.replaced],
            "front_door_url": self.front_door.url if self.front_door else "",
        }


def _raise_stopped(exc: BaseException, serving: str) -> None:
    if not isinstance(exc, Exception):  # an interrupt goes on as it is
        raise exc
    raise DeploymentFailed(f"{_one_line(exc)}. The new server was stopped; still serving: {serving}") from exc


def _start_answering(
    backend: ServingBackend,
    release: Release,
    config: DeploymentConfig,
    preferred: int,
    running: list[Endpoint],
    taken: set[int],
    timeout: int | None,
    serving: str,
    progress: Callable[[str], None],
) -> Endpoint:
    """Start the new server and wait until it answers its health check itself; a port that another process took
    between the choice and the bind is given up for the next free one."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            chosen = 0 if backend.chooses_own_port else choose_port(config.host, preferred, config.port_search, taken)
        except LifecycleError as exc:  # no port to start on: say what keeps serving
            raise DeploymentFailed(f"{_one_line(exc)}. The new server did not start; still serving: {serving}") from exc
        if chosen and chosen != preferred:
            progress(f"port {preferred} is busy; using {chosen}")
        try:
            endpoint = backend.start(release, config.host, chosen, timeout or config.startup_timeout, config)
        except Exception as exc:
            raise DeploymentFailed(f"{_one_line(exc)}. The new server did not start; still serving: {serving}") from exc
        if endpoint.name in {e.name for e in running} or (endpoint.pid and endpoint.pid in {e.pid for e in running}):
            raise DeploymentFailed(f"the deployer handed back the running server {endpoint.name} instead of a new one")
        try:
            wait_healthy(endpoint.health_url, timeout or config.startup_timeout)
            check_answers_itself(endpoint)
            return endpoint
        except BaseException as exc:
            backend.stop(endpoint)
            if not isinstance(exc, PortTaken) or attempt == PORT_ATTEMPTS:
                _raise_stopped(exc, serving)
            progress(f"{_one_line(exc)}; trying another port")
            taken.add(int(endpoint.url.rsplit(":", 1)[1]))
    raise AssertionError("unreachable")


class ProductionMoved(DeploymentFailed):
    """Production changed between the choice of the version to start and the front door's switch."""


# A production rollout whose version stops being production before its switch starts again with the new one, at
# most this many times (each is a real change of production by another command) before it gives up.
PRODUCTION_MOVES = 3


def rollout(
    backend: ServingBackend,
    release: Release,
    holdout: pd.DataFrame,
    config: DeploymentConfig,
    port: int | None = None,
    timeout: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
    notice: Callable[[str], None] | None = None,
    weight: float | None = None,
    only_if_stale: bool = False,
) -> Rollout:
    """Start the release beside what serves now, smoke-test it, then retire the old servers (after a drain).
    One rollout of a model at a time on this machine: a second one (a CI job and a person, a promotion and a
    monitor's redeploy) waits, then replaces what the first one left serving (and says so through `notice`).

    A production rollout serves the version production is when it switches, not the one it was started for:
    - once it holds the deploy lock, it reads production from the Model Control Plane; when production moved
      while it waited (a promote and a rollback queued behind another deploy), it deploys the version production
      is now, with that version's model and held-out rows, and says so through `notice`;
    - it switches the front door holding the promotion lock (which every stage change takes), after reading
      production again: when production moved while its server started, that server is stopped and it starts
      over with the new production version (at most PRODUCTION_MOVES times), so no switch serves a version that
      is not production at that moment.
    Why this order guarantees served == production after any interleaving: every change of production is
    followed by a deploy (the command's redeploy), which takes the deploy lock after the change; whatever it was
    started for, it serves production as read under that lock, and so does every deploy after it. So the last
    deploy to take the lock serves the current production. Stopping instead ("production moved, not deploying")
    would leave the old version serving whenever no redeploy follows the change (a change made on another
    machine sharing the store, or with `train --no-redeploy`) until someone deploys again.

    `only_if_stale` (the redeploy that follows a stage change): when production's version already serves, healthy
    (behind the front door, when the config has one), nothing is started and the Rollout says `already_serving`.

    A release whose role is `canary` or `shadow` is an explicit version and never replaces production: it joins
    production behind the front door (`weight`: a canary's share of requests, in percent) and replaces only the
    previous server of its role."""
    with _deploy_lock(release.model_name, progress, notice):
        if release.role == PRODUCTION:
            return _serve_production(backend, release, holdout, config, port, timeout, progress, notice, only_if_stale)
        return _start_trial(backend, release, holdout, config, weight, port, timeout, progress)


def production_now(model_name: str) -> str | None:
    """The version the Model Control Plane names production now (None: no version is)."""
    from zenml.client import Client

    try:
        return str(Client().get_model_version(model_name, PRODUCTION).number)
    except KeyError:
        return None


def registry_release(model_name: str, number: str, role: str = PRODUCTION) -> tuple[Release, pd.DataFrame]:
    """Version `number` of the model as the Model Control Plane holds it, as a Release in `role` (its model,
    feature schema and MLflow registry twin), and its held-out rows (the smoke test's)."""
    from zenml.client import Client

    from lifecycle.model_versions import loaded_artifact, loaded_model, metadata_dict
    from lifecycle.names import FEATURE_SCHEMA, MODEL, TEST_SET

    version = Client().get_model_version(model_name, int(number))
    test_set = loaded_artifact(version, TEST_SET)
    registered = metadata_dict(version.run_metadata, "mlflow").get("mlflow_registered_version")
    release = Release(
        model_name=model_name,
        model_version=str(version.number),
        model_version_id=str(version.id),
        model=loaded_model(version, MODEL),
        schema=loaded_artifact(version, FEATURE_SCHEMA),
        mlflow_registered_version=str(registered) if registered else None,
        example=test_set.head(5),
        role=role,
    )
    return release, test_set


def serving_version(backend: ServingBackend, model_name: str, version: str, config: DeploymentConfig):
    """The backend's healthy production server of the model when it serves `version` and answers the model's
    requests (through the front door, when the config has one: the door must stand in front of it); else None."""
    waiting = standby.names([model_name])
    production = [
        e for e in backend.endpoints(model_name) if e.running and e.role == PRODUCTION and e.name not in waiting
    ]
    if front_door.enabled(config):
        door = front_door.current(model_name)
        if door is None or door.backend != backend.name or door.model_version != version:
            return None
        production = [e for e in production if e.url == door.upstream]
    live = newest_healthy(production)
    return live if live is not None and live.model_version == version else None


@contextlib.contextmanager
def _production_held(model_name: str, version: str, progress: Callable[[str], None]) -> Iterator[None]:
    """Inside: `version` is production and stays so (the promotion lock, which every stage change holds); else
    ProductionMoved."""
    with store_lock(promotion_lock_name(model_name), on_wait=progress):
        now = production_now(model_name)
        if now != version:
            became = f"version {now}" if now else "no version"
            raise ProductionMoved(
                f"production of `{model_name}` became {became} while the server of version {version} started"
            )
        yield


def _serve_production(
    backend: ServingBackend,
    release: Release,
    holdout: pd.DataFrame,
    config: DeploymentConfig,
    port: int | None,
    timeout: int | None,
    progress: Callable[[str], None],
    notice: Callable[[str], None] | None,
    only_if_stale: bool,
) -> Rollout:
    """`rollout` of production, under the deploy lock: see there."""
    name, requested, tell = release.model_name, release.model_version, notice or progress
    for _ in range(PRODUCTION_MOVES + 1):
        now = production_now(name)
        if now is None:
            raise DeploymentFailed(
                f"no version of `{name}` is in production now (version {requested} was when this deploy started); "
                f"nothing was deployed. Fix: put one in production (`{run_hint()} promote` or "
                f"`{run_hint()} rollback --to VERSION`), then deploy"
            )
        if now != release.model_version:
            tell(
                f"production of `{name}` is version {now} now, not version {release.model_version} as when this "
                f"deploy started: deploying version {now}"
            )
            release, holdout = registry_release(name, now)
        if only_if_stale:
            serving = serving_version(backend, name, now, config)
            if serving is not None:
                progress(f"version {now} of `{name}` already serves ({serving.url}): nothing to replace")
                door = front_door.current(name) if front_door.enabled(config) else None
                return Rollout(
                    serving, None, [], 0.0, door, release, holdout, requested_version=requested, already_serving=True
                )
        try:
            done = _to_standby(lambda: backend, name, now, config, progress) or _rollout(
                backend, release, holdout, config, port, timeout, progress
            )
        except ProductionMoved as moved:
            tell(f"{moved}; that server was stopped, starting again")
            continue
        done.release, done.holdout, done.requested_version = release, holdout, requested
        return done
    raise DeploymentFailed(
        f"production of `{name}` changed {PRODUCTION_MOVES + 1} times while this deploy ran, so it switched nothing "
        f"(what served before still serves). Fix: deploy again once the release commands on `{name}` are done"
    )


def _deploy_lock(model_name: str, progress: Callable[[str], None], notice: Callable[[str], None] | None):
    waiting = f"another deploy of `{model_name}` is in progress; waiting for it to end"
    return model_lock("deploy", model_name, on_wait=lambda: (notice or progress)(waiting))


def _retire(
    backend: ServingBackend, old: list[Endpoint], progress: Callable[[str], None], role: str | None = None
) -> None:
    """Stop these servers. A standby (`role`) that cannot be stopped through its deployer (its record is gone)
    is stopped by its process id, and the rollout goes on: it served no traffic."""
    from serving.processes import stop_process

    for endpoint in old:
        try:
            backend.stop(endpoint)
        except Exception as exc:  # noqa: BLE001 - only a standby's stop is forgiven
            if role != "standby":
                raise
            stop_process(endpoint.pid)
            progress(f"the standby {endpoint.name} could not be stopped through its deployer ({exc}): stopped by pid")
        record_change(backend.stack_id, backend.stack_name, backend.name, removed=[endpoint])
        progress(f"stopped the previous {role or endpoint.role} server {endpoint.name} ({endpoint.url})")


def _start_trial(
    backend: ServingBackend,
    release: Release,
    holdout: pd.DataFrame,
    config: DeploymentConfig,
    weight: float | None,
    port: int | None,
    timeout: int | None,
    progress: Callable[[str], None],
) -> Rollout:
    """A canary or shadow beside production: started, health-checked and smoke-tested like production, then
    given its share (or its copy) of the front door's requests; the previous server of that role goes after."""
    role = release.role
    if role == "canary" and not (weight is not None and 0 < weight < 100):
        raise DeploymentFailed(f"a canary's weight is a share of requests above 0 and below 100 %, not {weight}")
    door = front_door.door_for_trial(release.model_name, config, role)
    running = [e for e in backend.endpoints(release.model_name) if e.running]
    previous = [e for e in running if e.role == role]
    taken = {int(e.url.rsplit(":", 1)[1]) for e in running if e.url}
    serving = f"{door.url} (version {door.model_version})"
    started = time.monotonic()
    endpoint = _start_answering(
        backend, release, config, port or config.port, running, taken, timeout, serving, progress
    )
    try:
        ready = time.monotonic() - started
        smoke = smoke_test(backend, endpoint, release, holdout, config)
        route = front_door.Route(endpoint.url, release.model_version, weight or 0.0)
        door = front_door.set_trial(release.model_name, config, role, route)
        share = f"{route.weight:g} % of the requests" if role == "canary" else "a copy of every request"
        progress(f"front door {door.url}: version {release.model_version} as {role}, with {share} ({endpoint.url})")
        if previous and role == "canary" and config.drain_seconds:
            time.sleep(config.drain_seconds)  # requests the old canary is answering finish
    except BaseException as exc:
        backend.stop(endpoint)
        _raise_stopped(exc, serving)
    record_change(backend.stack_id, backend.stack_name, backend.name, added=[endpoint])
    _retire(backend, previous, progress)
    smoke.seconds_to_ready = ready
    return Rollout(endpoint=endpoint, smoke=smoke, replaced=previous, seconds_to_ready=ready, front_door=door)


def end_trial(
    backend: ServingBackend,
    model_name: str,
    role: str,
    config: DeploymentConfig,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Endpoint]:
    """Take the model's canary or shadow out of the front door (all traffic to production), then stop its
    server(s); returns them (empty when there was none)."""
    with _deploy_lock(model_name, progress, None):
        trial = [e for e in backend.endpoints(model_name) if e.role == role]
        door = front_door.current(model_name)
        if door is not None and door.route(role) is not None:
            front_door.set_trial(model_name, config, role, None)
            progress(f"front door {door.url}: no {role} any more; production answers every request")
            if role == "canary" and trial and config.drain_seconds:
                time.sleep(config.drain_seconds)
        _retire(backend, trial, progress)
        return trial


def _rollout(
    backend: ServingBackend,
    release: Release,
    holdout: pd.DataFrame,
    config: DeploymentConfig,
    port: int | None,
    timeout: int | None,
    progress: Callable[[str], None],
) -> Rollout:
    known = backend.endpoints(release.model_name)
    for dead in [e for e in known if not e.running]:  # a crashed or undeployed server's record: cleared here
        backend.stop(dead)
    everything = [e for e in known if e.running]
    waiting = standby.names([release.model_name])
    # a canary, a shadow and the standbys stay
    running = [e for e in everything if e.role == "production" and e.name not in waiting]
    taken = {int(e.url.rsplit(":", 1)[1]) for e in everything if e.url}
    serving = ", ".join(e.url for e in running) or "nothing (no server was running)"
    started = time.monotonic()
    endpoint = _start_answering(
        backend, release, config, port or config.port, everything, taken, timeout, serving, progress
    )
    door, door_before = None, front_door.current(release.model_name)
    try:
        ready = time.monotonic() - started
        smoke = smoke_test(backend, endpoint, release, holdout, config)
        # production cannot move between this read and the switch
        with _production_held(release.model_name, release.model_version, progress):
            if front_door.enabled(config):
                door = front_door.switch(
                    release.model_name, config, endpoint.url, endpoint.health_path, release.model_version, backend.name
                )
                progress(f"front door {door.url} now answered by version {release.model_version} ({endpoint.url})")
        if running and config.drain_seconds:
            time.sleep(config.drain_seconds)  # clients that looked up the old address finish against it
            if not is_healthy(endpoint.health_url, timeout=10):
                raise DeploymentFailed(f"{endpoint.health_url} stopped answering during the drain")
    except BaseException as exc:  # an interrupted deploy must not leave an untested server to be picked up
        if door is not None and door_before is not None:  # the front door goes back to what served before
            with contextlib.suppress(Exception):
                front_door.switch(
                    release.model_name, config, door_before.upstream, door_before.health_path,
                    door_before.model_version, door_before.backend,
                )  # fmt: skip
        backend.stop(endpoint)
        if isinstance(exc, ProductionMoved):  # `_serve_production` starts again with the new production version
            raise
        _raise_stopped(exc, serving)
    progress(f"{backend.name} server for version {release.model_version} healthy at {endpoint.url} in {ready:.1f} s")
    record_change(backend.stack_id, backend.stack_name, backend.name, added=[endpoint])
    before = door_before if door else None
    _set_aside(backend, release.model_name, running, before, release.model_version, config, progress)
    smoke.seconds_to_ready = ready
    return Rollout(endpoint=endpoint, smoke=smoke, replaced=running, seconds_to_ready=ready, front_door=door)


def _set_aside(
    backend: ServingBackend,
    model_name: str,
    replaced: list[Endpoint],
    door_before: front_door.FrontDoor | None,
    serving: str,
    config: DeploymentConfig,
    progress: Callable[[str], None],
) -> None:
    """After a switch of production: the server the front door sent production's traffic to until now becomes
    a warm standby (when standbys are on and it answers its health check); the other replaced servers, and the
    standbys no longer wanted (expired, of the version now serving, beyond `count`), are stopped."""
    previous = None
    if door_before is not None and config.standby.enabled:
        previous = next((e for e in replaced if e.url == door_before.upstream and is_healthy(e.health_url)), None)
    _retire(backend, [e for e in replaced if e is not previous], progress)
    if previous is not None:
        until = time.time() + config.standby.seconds
        progress(
            f"version {previous.model_version} ({previous.url}) waits as a warm standby, without traffic, until "
            f"{datetime.fromtimestamp(until, timezone.utc).isoformat(timespec='seconds')}"
        )
        _retire(backend, standby.keep(model_name, previous, config.standby, serving), progress, "standby")
    else:
        _retire(backend, standby.due(model_name, config.standby, serving), progress, "standby")


def retire_standbys(
    backend: ServingBackend, model_name: str, config: DeploymentConfig, progress: Callable[[str], None] = lambda _: None
) -> list[Endpoint]:
    """Stop the model's standbys that are due (expired, beyond `count`, of the version serving): what a deploy,
    promote, rollback and `serve --follow` do on their way."""
    door = front_door.current(model_name)
    gone = standby.due(model_name, config.standby, door.model_version if door else None)
    _retire(backend, gone, progress, "standby")
    return gone


def _usable(endpoint: Endpoint) -> bool:
    from serving.processes import server_alive

    return (endpoint.pid is None or server_alive(endpoint.pid)) and is_healthy(endpoint.health_url)


def _to_standby(
    backend_of: Callable[[], ServingBackend],
    model_name: str,
    version: str,
    config: DeploymentConfig,
    progress: Callable[[str], None],
    held: bool = False,
) -> Rollout | None:
    """Production (version `version`) served again by its warm standby, under the deploy lock: the standby's
    health is checked, the front door switched to it holding the promotion lock (production must still be
    `version`: else ProductionMoved; `held`: the caller holds it, and has just made `version` production), and the
    server that served until now becomes a standby in turn. None when no usable standby of `version` waits (or
    there is no front door): the caller starts a new server. `backend_of`: the stack's backend, asked for only
    after the switch (finding it reads the store)."""
    door_before = front_door.current(model_name) if front_door.enabled(config) else None
    if door_before is None:
        return None
    taken = standby.take(model_name, version, lambda e: e.backend == door_before.backend and _usable(e))
    if taken is None:
        return None
    endpoint = taken.endpoint
    started = time.perf_counter()
    try:
        with contextlib.nullcontext() if held else _production_held(model_name, version, progress):
            door = front_door.switch(model_name, config, endpoint.url, endpoint.health_path, version, endpoint.backend)
    except BaseException:
        standby.put_back(model_name, taken)
        raise
    switched_at = time.perf_counter()
    progress(f"front door {door.url} now answered by version {version}: its warm standby {endpoint.url}")
    backend = backend_of()
    waiting = standby.names([model_name])
    replaced = [
        e for e in backend.endpoints(model_name)
        if e.running and e.role == PRODUCTION and e.url == door_before.upstream and e.name not in waiting
    ]  # fmt: skip
    _set_aside(backend, model_name, replaced, door_before, version, config, progress)
    return Rollout(
        endpoint=endpoint,
        smoke=None,
        replaced=replaced,
        seconds_to_ready=switched_at - started,  # the front door's switch
        front_door=door,
        switched_at=switched_at,
    )


def standby_waits(model_name: str, config: DeploymentConfig) -> bool:
    """Whether a standby of the model waits on this machine (a file read): asked before a release command takes
    the promotion lock, so that the switch inside it costs nothing more when none does."""
    return config.standby.enabled and bool(standby.standbys(model_name))


def switch_to_standby_now(
    backend_of: Callable[[], ServingBackend],
    model_name: str,
    version: str,
    config: DeploymentConfig,
    progress: Callable[[str], None] = lambda _: None,
) -> Rollout | None:
    """Called holding the promotion lock, right after production became `version` (rollback): its warm standby
    answers behind the front door before the command records the change, so the old version answers within a
    fraction of a second of the command. Only when no deploy of the model runs on this machine (its deploy lock is
    free: one that runs serves production when it switches); None when it does, or no standby of `version` waits."""
    with try_file_lock(model_lock_path("deploy", model_name)) as free:
        if not free:
            return None
        return _to_standby(backend_of, model_name, version, config, progress, held=True)


def switch_to_standby(
    backend: ServingBackend,
    model_name: str,
    version: str,
    config: DeploymentConfig,
    progress: Callable[[str], None] = lambda _: None,
) -> Rollout | None:
    """After a change of production to `version` (rollback, promote): its warm standby answers again, behind the
    front door, in well under a second; None when there is none (the caller redeploys as usual) or production
    moved on meanwhile."""
    with _deploy_lock(model_name, progress, None):
        retire_standbys(backend, model_name, config, progress)
        try:
            return _to_standby(lambda: backend, model_name, version, config, progress)
        except ProductionMoved:
            return None


def newest_healthy(endpoints: list[Endpoint]) -> Endpoint | None:
    """The newest running, healthy production server among these (during a rollout the new one, once it is
    healthy); a canary or shadow is reached through the front door only."""
    waiting = standby.names({e.model_name for e in endpoints})  # standbys serve no traffic
    running = [
        e for e in endpoints
        if e.running and e.role == "production" and e.name not in waiting and is_healthy(e.health_url)
    ]  # fmt: skip
    return max(running, key=lambda e: e.created, default=None)


def live_endpoint(backend: ServingBackend, model_name: str) -> Endpoint | None:
    """The model's live server, as the backend's deployer lists them."""
    return newest_healthy(backend.endpoints(model_name))


def undeploy(backend: ServingBackend, model_name: str | None) -> list[Endpoint]:
    """Stop every server of the model (of all models when None) that the active stack's backend runs, and the
    front doors that stood in front of them."""
    stopped = backend.endpoints(model_name)
    for endpoint in stopped:
        backend.stop(endpoint)
        record_change(backend.stack_id, backend.stack_name, backend.name, removed=[endpoint])
    for name in {e.model_name for e in stopped}:
        standby.forget(name, [e.name for e in stopped])
    front_door.close_behind(stopped)
    return stopped
