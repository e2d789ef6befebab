"""Warm standby: after a production rollout, the server production had before stays up behind the model's front
door with no traffic, for `standby.seconds` and at most `standby.count` of them (configs/deployment.yaml). A
rollback (or a promotion) to its version then switches the front door back to it after a health check, in well
under a second, instead of starting and smoke-testing a new server (`serving.rollout.switch_to_standby`).

The record lives beside the model's front door (`<state>/front_door/<model>/standby.json`): each standby's
server (as its backend listed it), since when it waits and when it expires. The backend still lists a standby as
a production server; it is told apart by this record. Expired standbys are stopped by the next command that
touches the model's servers on this machine: a deploy, promote or rollback (`serving.rollout`), `status`, and
`serve --follow` on each poll. A standby without a front door cannot be switched to: without one, nothing is
kept."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lifecycle.config import StandbyConfig
from lifecycle.environment import file_lock, state_dir
from lifecycle.project_state import read_json, write_json
from serving.backends.base import Endpoint


@dataclass
class Standby:
    endpoint: Endpoint
    since: float  # epoch seconds: when it stopped taking traffic
    expires: float  # epoch seconds

    @property
    def model_version(self) -> str:
        return self.endpoint.model_version

    def expires_at(self) -> str:
        return datetime.fromtimestamp(self.expires, timezone.utc).isoformat(timespec="seconds")

    def left(self, now: float | None = None) -> float:
        return self.expires - (time.time() if now is None else now)


def _path(model_name: str) -> Path:
    return state_dir() / "front_door" / re.sub(r"[^A-Za-z0-9_.-]", "_", model_name) / "standby.json"


def _read(model_name: str) -> list[Standby]:
    stored = read_json(_path(model_name))
    found = []
    for item in stored if isinstance(stored, list) else []:
        try:
            endpoint = Endpoint(**{k: v for k, v in item["endpoint"].items() if k in Endpoint.__dataclass_fields__})
            found.append(Standby(endpoint, float(item["since"]), float(item["expires"])))
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry: its server is stopped by the next undeploy, never switched to
    return found


def _write(model_name: str, standbys: list[Standby]) -> None:
    stored = [{"endpoint": asdict(s.endpoint), "since": s.since, "expires": s.expires} for s in standbys]
    write_json(_path(model_name), stored)


def _locked(model_name: str) -> Any:
    return file_lock(_path(model_name).with_suffix(".lock"))


def standbys(model_name: str) -> list[Standby]:
    """The model's standbys as recorded, newest first (expired ones included, until someone retires them)."""
    return sorted(_read(model_name), key=lambda s: -s.since)


def names(model_names: Iterable[str]) -> set[str]:
    """The server names of these models' standbys: listed by their backend as production, serving no traffic."""
    return {s.endpoint.name for name in set(model_names) for s in _read(name)}


def keep(
    model_name: str, endpoint: Endpoint, config: StandbyConfig, serving_version: str, now: float | None = None
) -> list[Endpoint]:
    """`endpoint` (production's server until a moment ago) becomes a standby; returns the servers that are no
    longer wanted as standbys and must be stopped: expired ones, ones of the version that now serves, the oldest
    beyond `count`, and `endpoint` itself when standbys are off."""
    now = time.time() if now is None else now
    with _locked(model_name):
        found = [s for s in _read(model_name) if s.endpoint.name != endpoint.name]
        found.append(Standby(endpoint, now, now + config.seconds))
        kept, gone = _split(found, config, serving_version, now)
        _write(model_name, kept)
    return [s.endpoint for s in gone]


def _split(
    found: list[Standby], config: StandbyConfig, serving_version: str | None, now: float
) -> tuple[list[Standby], list[Standby]]:
    """(still wanted, to stop): expired, of the version serving, and beyond `count` (the oldest) go."""
    wanted: list[Standby] = []
    gone: list[Standby] = []
    for standby in sorted(found, key=lambda s: -s.since):
        fresh = standby.expires > now and standby.model_version != serving_version
        if fresh and config.enabled and len(wanted) < config.count:
            wanted.append(standby)
        else:
            gone.append(standby)
    return wanted, gone


def due(
    model_name: str, config: StandbyConfig, serving_version: str | None, now: float | None = None
) -> list[Endpoint]:
    """Take out of the record, and return, the standbys to stop now (expired, of the version serving, beyond
    `count`); the caller stops them."""
    now = time.time() if now is None else now
    with _locked(model_name):
        found = _read(model_name)
        kept, gone = _split(found, config, serving_version, now)
        if gone:
            _write(model_name, kept)
    return [s.endpoint for s in gone]


def take(model_name: str, version: str, usable: Callable[[Endpoint], bool]) -> Standby | None:
    """The newest unexpired standby of `version` that is `usable` (running and healthy), taken out of the record;
    None when there is none."""
    now = time.time()
    with _locked(model_name):
        found = _read(model_name)
        for standby in sorted(found, key=lambda s: -s.since):
            if standby.model_version == version and standby.expires > now and usable(standby.endpoint):
                _write(model_name, [s for s in found if s is not standby])
                return standby
    return None


def put_back(model_name: str, standby: Standby) -> None:
    """A standby taken for a switch that did not happen waits again, as it was."""
    with _locked(model_name):
        found = [s for s in _read(model_name) if s.endpoint.name != standby.endpoint.name]
        _write(model_name, [*found, standby])


def forget(model_name: str, stopped: Iterable[str] | None = None) -> None:
    """Drop these servers (all of the model's when None) from the record: they were stopped."""
    with _locked(model_name):
        gone = None if stopped is None else set(stopped)
        _write(model_name, [s for s in _read(model_name) if gone is not None and s.endpoint.name not in gone])
