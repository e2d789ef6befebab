"""`python run.py serve --follow`: on the serving machine, keep the model's production version served behind its
front door, with the ZenML store (the team's shared server) as the source of truth.

Every `follow.poll_seconds` the follower asks the store which version is production. When it is not the version
the front door serves, the follower serves it with the same zero-downtime rollout as `deploy`: its warm standby
when one waits (well under a second), else a new server, started, smoke-tested and switched to. So a `promote`,
`rollback` or judged canary made on any machine reaches this one within seconds. When the store does not answer,
what serves keeps serving; the follower says so in one line and asks again at the next poll.

It reports what it serves onto the version in the store (`served_by`: host, front door, since, and which stage
change it follows), so the machine that changed production can wait for it (`promote --wait-served SECONDS`,
`wait_served`)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from lifecycle.config import DeploymentConfig
from lifecycle.errors import EXIT_NOT_SERVED, LifecycleError
from lifecycle.hints import run_hint

SERVED_BY = "served_by"  # metadata key on a model version: {host: report}


class NotServed(LifecycleError):
    """No follower reported the new production version answering in time."""

    exit_code = EXIT_NOT_SERVED


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _one_line(error: BaseException) -> str:
    text = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def production_release_mark(model_name: str, number: str) -> int | None:
    """When `number` last entered production (the `at_ns` of its newest production release record), None when
    no command recorded it: the follower writes it beside its report, so that a waiter tells a report of this
    promotion from one of an earlier time the version was production."""
    from zenml.client import Client

    from lifecycle.model_versions import metadata_list
    from steps.training.releases import RELEASES

    version = Client().get_model_version(model_name, int(number))
    marks = [e.get("at_ns") for e in metadata_list(version.run_metadata, RELEASES) if e.get("stage") == "production"]
    marks = [int(m) for m in marks if m is not None]
    return max(marks) if marks else None


def report_served(model_name: str, number: str, host: str, report: dict[str, Any]) -> None:
    """Write `host`'s report onto version `number` (the other hosts' reports stay)."""
    from zenml import log_metadata
    from zenml.client import Client

    from lifecycle.model_versions import metadata_dict

    version = Client().get_model_version(model_name, int(number))
    reports = metadata_dict(version.run_metadata, SERVED_BY)
    reports[host] = report
    log_metadata(metadata={SERVED_BY: reports}, model_name=model_name, model_version=str(number))


def current_reports(model_name: str, number: str) -> dict[str, dict[str, Any]]:
    """The hosts whose follower serves version `number` now, for the stage change that made it production."""
    from zenml.client import Client

    from lifecycle.model_versions import metadata_dict

    mark = production_release_mark(model_name, number)
    version = Client().get_model_version(model_name, int(number))
    reports = metadata_dict(version.run_metadata, SERVED_BY)
    return {
        host: report
        for host, report in reports.items()
        if isinstance(report, dict) and not report.get("until") and report.get("release_at_ns") == mark
    }


def wait_served(
    model_name: str, number: str, timeout: float, poll: float = 1.0, say: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Wait until a follower (`serve --follow`) reports version `number` answering behind its front door for its
    latest promotion; the reports, or NotServed after `timeout` seconds."""
    started = time.monotonic()
    while True:
        found = current_reports(model_name, number)
        if found:
            waited = time.monotonic() - started
            for host, report in sorted(found.items()):
                say(
                    f"version {number} of `{model_name}` answers at {report.get('front_door')} on {host} "
                    f"(reported {waited:.1f} s after the wait began)"
                )
            return found
        if time.monotonic() - started > timeout:
            raise NotServed(
                f"no follower reported version {number} of `{model_name}` answering within {timeout:g} s. Fix: "
                f"check `{run_hint()} serve --follow --model-name {model_name}` runs on the serving machine against "
                "this store (its log says why it does not serve), or wait longer with --wait-served"
            )
        time.sleep(poll)


def serve_version(model_name: str, number: str, config: DeploymentConfig, verbose: bool = False) -> dict[str, Any]:
    """Production (version `number`) served here behind the front door: by its warm standby when one waits, else
    by a new server (the deployment pipeline, which records the deploy on the version). The deploy's record."""
    from serving.rollout import switch_to_standby
    from serving.stack_backend import active_backend
    from workflows.runner import run_deployment

    switched = switch_to_standby(active_backend(), model_name, number, config)
    if switched is not None:
        return {**switched.metadata(), "standby": True}
    return run_deployment(model_name, config, only_if_stale=True, verbose=verbose)


class Follower:
    """One follower's state between polls (what it serves, whether the store answers)."""

    def __init__(self, model_name: str, config: DeploymentConfig, say: Callable[[str], None], verbose: bool = False):
        self.model_name, self.config, self.say, self.verbose = model_name, config, say, verbose
        self.host = socket.gethostname()
        self.store_down = False
        self.reported: tuple[str, int | None] | None = None  # (version, its production mark) last reported
        self.failing: str | None = None  # the last deploy failure said (said once until it changes)
        self.checked = False  # production was served (or found serving) once since the start

    def log(self, text: str) -> None:
        self.say(f"{_now()} {text}")
        sys.stdout.flush()  # a server started by a fork must not inherit (and write again) what is said here

    def poll(self) -> None:
        """One look at the store, and what it asks for."""
        from serving import front_door
        from serving.rollout import production_now, retire_standbys
        from serving.stack_backend import active_backend

        try:
            production = production_now(self.model_name)
            mark = production_release_mark(self.model_name, production) if production else None
        except Exception as exc:  # noqa: BLE001 - the store is away: keep serving, ask again
            if not self.store_down:
                door = front_door.current(self.model_name)
                serving = f"version {door.model_version} still answers at {door.url}" if door else "nothing serves"
                self.log(f"the ZenML store does not answer ({_one_line(exc)}); {serving}; asking again every "
                         f"{self.config.follow.poll_seconds:g} s")  # fmt: skip
                self.store_down = True
            return
        if self.store_down:
            self.log("the ZenML store answers again")
            self.store_down = False
        if production is None:
            return
        door = front_door.current(self.model_name)
        if door is None or door.model_version != production or not self.checked:
            started = time.perf_counter()
            try:
                record = serve_version(self.model_name, production, self.config, self.verbose)
            except Exception as exc:  # noqa: BLE001 - what served keeps serving; tried again at the next poll
                said = _one_line(exc)
                if said != self.failing:
                    self.log(f"could not serve version {production}: {said}; trying again at the next poll")
                    self.failing = said
                return
            self.failing, self.checked = None, True
            seconds = time.perf_counter() - started
            door = front_door.current(self.model_name)
            served = str(record.get("model_version"))
            if not record.get("already_serving"):
                how = "its warm standby" if record.get("standby") else "a new server"
                self.log(
                    f"version {served} of `{self.model_name}` answers at {door.url if door else record.get('url')} "
                    f"({how}, {seconds:.1f} s after the change was seen)"
                )
        # Reported at every poll where production answers here, not only after a switch: the stage changes
        # before the promotion's release record is written, so a poll in between served the version under the
        # previous mark, and a waiter looks for the report of this promotion (`_report` writes only news).
        door = front_door.current(self.model_name)
        if door is not None and door.model_version == production and self.checked:
            self._report(production, mark, door.url)
        try:
            retire_standbys(active_backend(), self.model_name, self.config, lambda line: self.log(line))
        except Exception:  # noqa: BLE001 - the store went away meanwhile: the expired standbys go at a next poll
            return

    def _report(self, number: str, mark: int | None, url: str) -> None:
        if not self.config.follow.report or self.reported == (number, mark):
            return
        previous = self.reported
        report_served(self.model_name, number, self.host, {"front_door": url, "since": _now(), "release_at_ns": mark})
        if previous is not None and previous[0] != number:
            report_served(self.model_name, previous[0], self.host, {"front_door": url, "until": _now()})
        self.reported = (number, mark)


def follow(
    model_name: str,
    config: DeploymentConfig,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    verbose: bool = False,
) -> None:
    """Poll the store and keep production served here until `stop` is set (or the process is stopped: the
    servers and the front door keep serving; `undeploy` stops them)."""
    from serving import front_door

    if not front_door.enabled(config):
        raise LifecycleError(
            "serve --follow switches the model's front door, and `front_door.enabled` is off in the deployment "
            "config (or nginx is missing). Fix: set it to `auto` or `on`, with nginx installed"
        )
    follower = Follower(model_name, config, say, verbose)
    follower.log(f"following production of `{model_name}` (every {config.follow.poll_seconds:g} s) on {follower.host}")
    stop = stop or threading.Event()
    while not stop.is_set():
        follower.poll()
        stop.wait(config.follow.poll_seconds)
