"""Reading a front door's access log: per request, which arm answered (production or canary), its status and
its time at the door. nginx writes the log (serving/front_door_config.py); `deploy --canary N --judge` reads it to
compare the arms on the same window of live traffic: the door sees every request, including the ones a canary
failed or never answered (a dead server's 502), which no server's prediction log can hold."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.front_door import access_log_path
from serving.front_door_config import upstream_address


@dataclass
class DoorRequest:
    time: float  # seconds since the epoch, when nginx finished the request
    request_id: str
    arm: str  # production or canary
    upstream: str  # host:port nginx sent it to
    status: int
    seconds: float  # from the request's first byte to the answer's last, at the door

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def parse_line(line: str) -> DoorRequest | None:
    """One access-log line as a DoorRequest; None for a line that is not a client's prediction request (a
    health check through the door) or not whole (nginx writing it now)."""
    try:
        fields: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(fields, dict) or fields.get("method") != "POST":
        return None
    upstream = str(fields.get("upstream") or "")
    return DoorRequest(
        time=float(fields["time"]),
        request_id=str(fields.get("request_id", "")),
        arm=str(fields.get("arm", "production")),
        upstream=upstream.split(",")[-1].strip(),  # nginx lists each server it tried: the last one answered
        status=int(fields["status"]),
        seconds=float(fields.get("request_time") or 0.0),
    )


@dataclass
class DoorLogTail:
    """Reads the door's log from where it stopped last time (whole lines only): a judge polling every few seconds
    reads each line once, however long the log is."""

    path: Path
    since: float = 0.0  # requests before this time are skipped
    offset: int = 0
    requests: list[DoorRequest] = field(default_factory=list)

    @classmethod
    def of(cls, model_name: str, since: float) -> DoorLogTail:
        return cls(access_log_path(model_name), since)

    def read(self) -> list[DoorRequest]:
        """Every request logged since `since`, the new lines read now."""
        if not self.path.is_file():
            return self.requests
        with self.path.open("rb") as log:
            if log.seek(0, 2) < self.offset:  # the log was started again (rotated): from its start
                self.offset = 0
            log.seek(self.offset)
            data = log.read()
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        for line in whole.decode(errors="replace").splitlines():
            request = parse_line(line)
            if request is not None and request.time >= self.since:
                self.requests.append(request)
        return self.requests


def arm_requests(requests: list[DoorRequest], arm: str, upstream_url: str | None = None) -> list[DoorRequest]:
    """The requests the door sent `arm` (and, given its server's URL, that server: an earlier canary's are not
    this one's)."""
    if upstream_url is None:
        return [r for r in requests if r.arm == arm]
    # nginx names the upstream group instead of an address when it had no live server to try (a dead canary)
    names = {upstream_address(upstream_url), arm}
    return [r for r in requests if r.arm == arm and r.upstream in names]
