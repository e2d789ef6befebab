"""The prediction log: every row a server (or a batch scoring run) answered, append-only, readable with pandas.

Layout, under the log's root (`<state folder>/predictions` unless `log.folder` or MLOPS_PREDICTION_LOG says
otherwise):

    <model>/<YYYY-MM-DD>/predictions-<backend>-<pid>-<start>.jsonl   one JSON object per answered row
    <model>/<YYYY-MM-DD>/rejected-<backend>-<pid>-<start>.jsonl      one per rejected request (status, problem)
    <model>/<YYYY-MM-DD>/smoke-tests-<pid>.jsonl                      request ids of deploys' smoke tests
    <model>/labels/labels-<time>-<pid>.jsonl                          ground truth attached later

One writer per process and file (servers with several workers write one file each). Each request's rows are
written with one `write(2)` to a file opened with O_APPEND before the answer is returned: once a client has its
2xx, the rows are in the operating system's page cache, and a crash of the server process (even SIGKILL) loses
none of them. (A power loss can: nothing is fsync'd, which would cost a disk flush per request.) A write that
fails or is cut short (a full disk) is taken back and raises `LogWriteError`: the server answers 503 instead of
answering a request it could not record, and the next row never shares a line with a torn one. Files are 0600,
folders 0700.

A row: `request_id`, `row` (its position in the request), `timestamp` (UTC, ISO 8601), `model_name`,
`model_version`, `role` (`production`, `canary` or `shadow`: how the front door sent the request to that server;
a shadow's answers never reached the client), `backend`, `server`, `latency_ms` (the request's, from its arrival
to its prediction),
`prediction`, `probability` (classifiers: the positive class's), `inputs` (the model inputs, or the subset that
`log.inputs` allows), `keys` (a record's other fields, e.g. an order id, kept to join labels on: all of them with
`log.inputs: all`, the listed ones with a list, none with `none`).

This module is the writer of servers and batch scoring; the format on disk is serving/prediction_log_format.py,
retention serving/prediction_log_retention.py, reading serving/prediction_log_reader.py, the label join
serving/prediction_log_labels.py. The writer, the format and retention are shipped inside bentos and MLflow
models: they need the standard library, numpy and pandas only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.prediction_log_format import (
    SMOKE_TESTS,
    model_folder_name,
    open_append,
    plain_value,
    private_folders,
    utc_stamp,
)
from serving.prediction_log_retention import prune

LOG_ROOT_ENV = "MLOPS_PREDICTION_LOG"  # overrides the folder a server was built or deployed with
REQUEST_ID_HEADER = "X-Request-ID"
ROLES = ("production", "canary", "shadow")  # a server's part behind the model's front door
# How a deploy's smoke-test request ids begin, for a reader of the raw files. Readers leave a smoke test's rows
# out by the ids the deploy registered (`register_smoke_test`), never by this prefix: a client may send it too.
SMOKE_TEST_PREFIX = "smoke-"
# The request-id rule of every server and of the front door's nginx map (serving/front_door_config.py): keep in step.
REQUEST_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_WRITE_LOCK = threading.Lock()


def new_request_id(sent: str | None = None) -> str:
    """The client's request id when it sent a usable one (`X-Request-ID`: letters, digits, `._:-`, up to 128
    characters), else a new UUID."""
    if sent and _REQUEST_ID.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


class LogWriteError(OSError):
    """An answered request's rows could not be written (a full disk, a lost mount): the server answers 503
    rather than answer a request it could not record."""

    CLIENT_MESSAGE = "the prediction log could not record this request, so it was not answered; retry later"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | np.generic)


@dataclass
class LogSettings:
    """What a server needs to write its log (plain values: it travels in bento references, ZenML deployment
    settings and MLflow model configs)."""

    root: str
    enabled: bool = True
    inputs: str | list[str] = "all"  # "all", "none", or the fields to keep, inputs and keys alike (see `keeps`)
    retention_days: int = 30
    role: str = "production"  # what the server is behind the front door (see ROLES)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> LogSettings | None:
        """The settings, with MLOPS_PREDICTION_LOG (if set) as the folder; None when logging is off."""
        if not values or not values.get("enabled", True):
            return None
        settings = cls(**{k: values[k] for k in ("root", "enabled", "inputs", "retention_days", "role") if k in values})
        settings.root = os.environ.get(LOG_ROOT_ENV) or settings.root
        return settings


class PredictionLog:
    """The writer of one server process (thread-safe: one lock around each request's single write)."""

    def __init__(self, settings: LogSettings, model_name: str, model_version: str, backend: str, server: str = ""):
        self.settings = settings
        self.root = Path(settings.root)
        self.model_name = model_name
        self.model_version = str(model_version)
        self.backend = backend
        self.server = server
        self.rejected = 0
        self._files: dict[str, tuple[str, int, int]] = {}  # kind -> (day, pid, fd)
        self._torn: set[str] = set()  # kinds whose file may end in a torn line (its next write starts a new line)
        self._started = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        inputs = settings.inputs
        self._keep_all = inputs == "all"
        self._keep: set[str] = set() if inputs in ("none", None) or self._keep_all else set(inputs)

    def keeps(self, field_name: str) -> bool:
        """Whether a field a client sent is written (`log.inputs` governs model inputs and other fields alike)."""
        return self._keep_all or field_name in self._keep

    def _fd(self, kind: str, day: str) -> int:
        """The open file of this kind for today and this process (a new day or a forked worker opens its own)."""
        pid = os.getpid()
        current = self._files.get(kind)
        if current and current[0] == day and current[1] == pid:
            return current[2]
        if current and current[1] == pid:
            os.close(current[2])
        self._files.pop(kind, None)
        folder = private_folders(self.root, model_folder_name(self.model_name), day)
        fd = open_append(folder / f"{kind}-{self.backend}-{pid}-{self._started}.jsonl")
        self._files[kind] = (day, pid, fd)
        if current is None or current[0] != day:
            prune(self.root, self.model_name, self.settings.retention_days)
        return fd

    def _append(self, kind: str, lines: list[str], day: str) -> None:
        """The lines, whole, with one write; raises LogWriteError (having taken back any part written) when the
        write fails or is cut short."""
        data = ("\n".join(lines) + "\n").encode()
        with _WRITE_LOCK:  # one lock for every writer of the process: two writers may share a file name
            written = 0
            try:
                fd = self._fd(kind, day)
                if kind in self._torn:
                    data = b"\n" + data
                written = os.write(fd, data)
                if written == len(data):
                    self._torn.discard(kind)
                    return
                error = OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes written")
            except OSError as exc:
                error = exc
            self._take_back(kind, written)
            where = self.root / model_folder_name(self.model_name) / day
            raise LogWriteError(
                error.errno or errno.EIO,
                f"the prediction log could not be written in {where} ({error.strerror or error}). Fix: free space "
                f"on that disk or make it writable (or move the log: `log.folder` in configs/deployment.yaml, or "
                f"{LOG_ROOT_ENV})",
            ) from error

    def _take_back(self, kind: str, written: int) -> None:
        """Cut off what a failed write left (the file is this process's alone); when even that fails, the next
        write starts on a new line, so no row is ever glued to a torn one."""
        current = self._files.get(kind)
        if current is None:
            return
        try:
            if written:
                os.ftruncate(current[2], os.fstat(current[2]).st_size - written)
        except OSError:
            self._torn.add(kind)

    def record(
        self,
        request_id: str,
        records: Sequence[dict[str, Any]],
        model_inputs: Sequence[str],
        predictions: Sequence[Any],
        probabilities: Sequence[float] | None,
        latency_ms: float,
    ) -> None:
        """Append the request's rows (one line each, one write for the request)."""
        now = datetime.now(timezone.utc)
        stamp = utc_stamp(now)
        inputs_wanted = set(model_inputs)
        lines = []
        for row, (record, prediction) in enumerate(zip(records, predictions, strict=True)):
            inputs = {k: plain_value(record.get(k)) for k in model_inputs if self.keeps(k)}
            keys = {
                k: plain_value(v) for k, v in record.items() if k not in inputs_wanted and self.keeps(k) and _scalar(v)
            }
            line = {
                "request_id": request_id,
                "row": row,
                "timestamp": stamp,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "role": self.settings.role,
                "backend": self.backend,
                "server": self.server,
                "latency_ms": round(latency_ms, 3),
                "prediction": plain_value(prediction),
                "probability": None if probabilities is None else plain_value(probabilities[row]),
                "inputs": inputs,
                "keys": keys,
            }
            lines.append(json.dumps(line, separators=(",", ":"), allow_nan=False, default=plain_value))
        if lines:
            self._append("predictions", lines, now.strftime("%Y-%m-%d"))

    def record_table(
        self,
        request_ids: Sequence[str],
        table: pd.DataFrame,
        model_inputs: Sequence[str],
        predictions: Sequence[Any],
        probabilities: Sequence[float] | None,
        latency_ms: float,
        chunk_rows: int = 50_000,
    ) -> None:
        """Append a scored table, one request id per row (batch scoring): the same lines as `record`, built with
        pandas' JSON writer a chunk at a time (a million rows in seconds, not minutes)."""
        now = datetime.now(timezone.utc)
        stamp = utc_stamp(now)
        inputs = [c for c in model_inputs if self.keeps(c)]
        keys = [c for c in table.columns if c not in set(model_inputs) and self.keeps(c)]
        head = json.dumps(
            {
                "model_name": self.model_name,
                "model_version": self.model_version,
                "role": self.settings.role,
                "backend": self.backend,
                "server": self.server,
                "timestamp": stamp,
                "latency_ms": round(latency_ms, 3),
                "row": 0,
            }
        )[1:-1]
        for start in range(0, len(table), chunk_rows):
            part = table.iloc[start : start + chunk_rows]
            end = start + len(part)

            def column_json(columns: list[str], frame: pd.DataFrame = part) -> list[str]:
                if not columns:
                    return ["{}"] * len(frame)
                return frame[columns].to_json(orient="records", lines=True, date_format="iso").splitlines()

            answers = (
                pd.DataFrame(
                    {
                        "request_id": list(request_ids[start:end]),
                        "prediction": list(predictions[start:end]),
                        "probability": None if probabilities is None else list(probabilities[start:end]),
                    }
                )
                .to_json(orient="records", lines=True)
                .splitlines()
            )
            lines = [
                f'{answer[:-1]},{head},"inputs":{values},"keys":{extra}}}'
                for answer, values, extra in zip(answers, column_json(inputs), column_json(keys), strict=True)
            ]
            self._append("predictions", lines, now.strftime("%Y-%m-%d"))

    def reject(self, status: int, error: str) -> None:
        """Count a rejected request (4xx): its status and the kind of problem (`problem`, and the `column` or
        `record` it concerns), never the values it sent (an error message quotes them)."""
        now = datetime.now(timezone.utc)
        line = {
            "timestamp": utc_stamp(now),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "role": self.settings.role,
            "backend": self.backend,
            "status": status,
            **rejection_problem(error),
        }
        self._append("rejected", [json.dumps(line, default=plain_value)], now.strftime("%Y-%m-%d"))
        with _WRITE_LOCK:
            self.rejected += 1


# The request contract's messages (serving/contract.py), by kind; the groups name schema columns and row numbers,
# never a value the client sent.
_PROBLEMS = (
    (re.compile(r"request body (is \d+ bytes|exceeds)"), "body too large"),
    (re.compile(r"empty request body"), "empty body"),
    (re.compile(r"request body is not valid JSON"), "not JSON"),
    (re.compile(r'expected a JSON object \{"records"'), "not a records object"),
    (re.compile(r'"records" is empty'), "no records"),
    (re.compile(r'"records" has \d+ rows'), "too many rows"),
    (re.compile(r"record (?P<record>\d+) is \w+, expected an object"), "record not an object"),
    (re.compile(r"records miss the model input\(s\) (?P<column>[^;]+); every record needs"), "missing inputs"),
    (re.compile(r"record (?P<record>\d+): `(?P<column>[^`]+)` is .*; expected a time"), "not a time"),
    (re.compile(r"record (?P<record>\d+): `(?P<column>[^`]+)` is .*; expected"), "wrong type"),
)


def rejection_problem(error: str) -> dict[str, Any]:
    """What a rejection's message says is wrong, without what the client sent: `problem`, and `column` and
    `record` where the message names them."""
    for pattern, problem in _PROBLEMS:
        found = pattern.match(error)
        if found:
            named = {k: int(v) if k == "record" else v for k, v in found.groupdict().items() if v is not None}
            return {"problem": problem, **named}
    return {"problem": "invalid request"}


_WRITERS: dict[tuple[str, ...], PredictionLog] = {}


_WRITERS_LOCK = threading.Lock()


def process_log(
    settings: dict[str, Any] | None, model_name: str, model_version: str, backend: str, server: str = ""
) -> PredictionLog | None:
    """This process's writer for a model version and backend (one per process: the service and its middleware
    share it); None when logging is off."""
    parsed = LogSettings.from_dict(settings)
    if parsed is None:
        return None
    key = (parsed.root, model_name, str(model_version), backend, parsed.role)
    with _WRITERS_LOCK:
        if key not in _WRITERS:
            _WRITERS[key] = PredictionLog(parsed, model_name, model_version, backend, server)
        writer = _WRITERS[key]
        writer.server = writer.server or server  # whichever part of the server knows its name says it
        return writer


def record_slice(
    settings: dict[str, Any] | None,
    model_name: str,
    model_version: str,
    server: str,
    name: str,
    request_ids: Sequence[str],
    table: pd.DataFrame,
    model_inputs: Sequence[str],
    predictions: Sequence[Any],
    probabilities: Sequence[float] | None,
    latency_ms: float,
) -> None:
    """One slice of a batch scored on Spark, as `record_table` writes it, into a file of its own named after the
    slice (predictions-batch-spark-<server>-<name>.jsonl): written whole in a scratch folder, then renamed into
    place, so a slice that Spark runs again replaces its file instead of adding its rows twice."""
    import tempfile

    parsed = LogSettings.from_dict(settings)
    if parsed is None:
        return
    root = Path(parsed.root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=root, prefix=".slice-") as scratch:
        scratch_settings = LogSettings(scratch, True, parsed.inputs, 0, parsed.role)
        writer = PredictionLog(scratch_settings, model_name, model_version, "batch", server)
        writer.record_table(request_ids, table, model_inputs, predictions, probabilities, latency_ms)
        for written in Path(scratch).rglob("predictions-*.jsonl"):
            day = written.parent.relative_to(scratch)
            target = private_folders(root, *day.parts)
            os.replace(written, target / f"predictions-batch-spark-{server}-{name}.jsonl")


def register_smoke_test(root: Path | str, model_name: str, request_id: str) -> None:
    """Before a deploy's smoke test sends `request_id`: readers then leave its rows out of traffic. Written by
    the deploy, not by a server, so nothing a client sends can mark its own rows as a smoke test's."""
    now = datetime.now(timezone.utc)
    folder = private_folders(Path(root), model_folder_name(model_name), now.strftime("%Y-%m-%d"))
    line = json.dumps({"request_id": request_id, "timestamp": utc_stamp(now)}) + "\n"
    fd = open_append(folder / f"{SMOKE_TESTS}-{os.getpid()}.jsonl")
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
