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

This module is shipped inside bentos and MLflow models: it needs the standard library, numpy and pandas only.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LOG_ROOT_ENV = "MLOPS_PREDICTION_LOG"  # overrides the folder a server was built or deployed with
REQUEST_ID_HEADER = "X-Request-ID"
META_COLUMNS = (
    "request_id",
    "row",
    "timestamp",
    "model_name",
    "model_version",
    "role",
    "backend",
    "server",
    "latency_ms",
    "prediction",
    "probability",
)
LABEL_COLUMN = "label"
ROLES = ("production", "canary", "shadow")  # a server's part behind the model's front door
# How a deploy's smoke-test request ids begin, for a reader of the raw files. Readers leave a smoke test's rows
# out by the ids the deploy registered (`register_smoke_test`), never by this prefix: a client may send it too.
SMOKE_TEST_PREFIX = "smoke-"
SMOKE_TESTS = "smoke-tests"  # the kind of file a deploy registers its smoke-test request ids in
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# The request-id rule of every server and of the front door's nginx map (serving/front_door.py): keep in step.
REQUEST_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
FILE_MODE, FOLDER_MODE = 0o600, 0o700  # the log holds client data: this user's only
_WRITE_LOCK = threading.Lock()


def new_request_id(sent: str | None = None) -> str:
    """The client's request id when it sent a usable one (`X-Request-ID`: letters, digits, `._:-`, up to 128
    characters), else a new UUID."""
    if sent and _REQUEST_ID.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


def model_folder_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name) or "model"


class LogWriteError(OSError):
    """An answered request's rows could not be written (a full disk, a lost mount): the server answers 503
    rather than answer a request it could not record."""

    CLIENT_MESSAGE = "the prediction log could not record this request, so it was not answered; retry later"


def _private_folders(root: Path, *parts: str) -> Path:
    """`root/part/...`, each folder this creates 0700 (an existing one is left as its owner set it)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    folder = root
    for folder in (root, *(root.joinpath(*parts[: n + 1]) for n in range(len(parts)))):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, FOLDER_MODE)
    return folder


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


def _stamp(moment: datetime) -> str:
    """A UTC time as the log writes it: ISO 8601 with microseconds and `Z`."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, non-finite floats as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
        folder = _private_folders(self.root, model_folder_name(self.model_name), day)
        fd = _open_append(folder / f"{kind}-{self.backend}-{pid}-{self._started}.jsonl")
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
        stamp = _stamp(now)
        inputs_wanted = set(model_inputs)
        lines = []
        for row, (record, prediction) in enumerate(zip(records, predictions, strict=True)):
            inputs = {k: _plain(record.get(k)) for k in model_inputs if self.keeps(k)}
            keys = {k: _plain(v) for k, v in record.items() if k not in inputs_wanted and self.keeps(k) and _scalar(v)}
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
                "prediction": _plain(prediction),
                "probability": None if probabilities is None else _plain(probabilities[row]),
                "inputs": inputs,
                "keys": keys,
            }
            lines.append(json.dumps(line, separators=(",", ":"), allow_nan=False, default=_plain))
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
        stamp = _stamp(now)
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
            "timestamp": _stamp(now),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "role": self.settings.role,
            "backend": self.backend,
            "status": status,
            **rejection_problem(error),
        }
        self._append("rejected", [json.dumps(line, default=_plain)], now.strftime("%Y-%m-%d"))
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


def prune(root: Path, model_name: str, retention_days: int) -> list[Path]:
    """Remove the model's day folders older than `retention_days` (0: keep everything); returns what went."""
    if retention_days <= 0:
        return []
    oldest = (datetime.now(timezone.utc) - timedelta(days=retention_days)).strftime("%Y-%m-%d")
    removed = []
    folder = Path(root) / model_folder_name(model_name)
    for day in folder.iterdir() if folder.is_dir() else []:
        if _DAY.fullmatch(day.name) and day.name < oldest:
            shutil.rmtree(day, ignore_errors=True)
            removed.append(day)
    return removed


# --- reading -------------------------------------------------------------------------------------------------


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def model_names(root: Path) -> list[str]:
    root = Path(root)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _files(root: Path, model_name: str | None, kind: str, since: Any = None, until: Any = None) -> list[Path]:
    first, last = _utc(since), _utc(until)
    found = []
    for model in [model_folder_name(model_name)] if model_name else model_names(root):
        for day in sorted((Path(root) / model).glob("????-??-??")):
            if first is not None and day.name < first.strftime("%Y-%m-%d"):
                continue
            if last is not None and day.name > last.strftime("%Y-%m-%d"):
                continue
            found.extend(sorted(day.glob(f"{kind}-*.jsonl")))
    return found


def _lines_of(path: Path) -> Iterator[str]:
    """The file's lines; none when it is gone (retention may remove a day folder while it is read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            yield from handle
    except FileNotFoundError:
        return


def _parsed(line: str) -> dict[str, Any] | None:
    """A whole line's record; None for a torn one (a write cut short by a crash or a full disk)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _read_lines(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], int]:
    """Every whole line's record, and how many torn lines were skipped."""
    rows, broken = [], 0
    for path in paths:
        for line in _lines_of(path):
            if not line.strip():
                continue
            record = _parsed(line)
            if record is None:
                broken += 1
            else:
                rows.append(record)
    return rows, broken


@dataclass
class LogTable:
    """Rows read from the log: meta columns, then the inputs and keys under their own names (an input or key
    whose name is a meta column's is prefixed `input.` / `key.`), and `label` where one was attached."""

    frame: pd.DataFrame
    input_columns: list[str] = field(default_factory=list)
    key_columns: list[str] = field(default_factory=list)
    broken_lines: int = 0


def read_predictions(
    root: Path,
    model_name: str | None = None,
    since: Any = None,
    until: Any = None,
    with_labels: bool = True,
    smoke_tests: bool = False,
) -> LogTable:
    """The logged rows (of one model, or all) between `since` and `until`; deploys' smoke-test requests only
    with `smoke_tests`."""
    lines, broken = _read_lines(_files(root, model_name, "predictions", since, until))
    if not smoke_tests:
        smoke = smoke_test_ids(root, model_name)
        lines = [line for line in lines if line.get("request_id") not in smoke]
    if not lines:
        return LogTable(pd.DataFrame(columns=[*META_COLUMNS, LABEL_COLUMN]), broken_lines=broken)
    meta = pd.DataFrame([{k: line.get(k) for k in META_COLUMNS} for line in lines])
    meta["timestamp"] = pd.to_datetime(meta["timestamp"], utc=True, format="ISO8601")
    meta["role"] = meta["role"].fillna("production")  # rows logged before servers had roles
    inputs = pd.DataFrame([line.get("inputs") or {} for line in lines])
    # Keys as the client sent them (a code "001042" stays text, 1042 an integer): labels join on their text.
    keys = pd.DataFrame([line.get("keys") or {} for line in lines], dtype=object)
    reserved = set(META_COLUMNS) | {LABEL_COLUMN}
    inputs.columns = [f"input.{c}" if c in reserved else c for c in inputs.columns]
    keys.columns = [f"key.{c}" if c in reserved or c in inputs.columns else c for c in keys.columns]
    frame = pd.concat([meta, inputs, keys], axis=1)
    first, last = _utc(since), _utc(until)
    if first is not None:
        frame = frame[frame["timestamp"] >= first]
    if last is not None:
        frame = frame[frame["timestamp"] < last]
    frame = frame.sort_values(["timestamp", "request_id", "row"], kind="stable").reset_index(drop=True)
    table = LogTable(frame, list(inputs.columns), list(keys.columns), broken)
    if with_labels:
        table.frame = _with_labels(root, model_name, table.frame)
    return table


def count_rejected(root: Path, model_name: str | None = None, since: Any = None, until: Any = None) -> int:
    lines, _ = _read_lines(_files(root, model_name, "rejected", since, until))
    first, last = _utc(since), _utc(until)
    stamps = [_utc(line.get("timestamp")) for line in lines]
    return sum(1 for s in stamps if (first is None or s >= first) and (last is None or s < last))


def summary_line(table: LogTable, rejected: int = 0) -> str:
    frame = table.frame
    if frame.empty:
        return "0 rows logged" + (f"; {rejected} rejected request(s)" if rejected else "")
    versions = ", ".join(f"v{v}" for v in sorted(frame["model_version"].astype(str).unique(), key=version_order))
    labelled = int(frame[LABEL_COLUMN].notna().sum()) if LABEL_COLUMN in frame else 0
    return (
        f"{len(frame)} rows from {frame['request_id'].nunique()} requests; versions {versions}; backends "
        f"{', '.join(sorted(frame['backend'].astype(str).unique()))}; "
        f"{frame['timestamp'].min():%Y-%m-%d %H:%M:%S} .. {frame['timestamp'].max():%Y-%m-%d %H:%M:%S} UTC; "
        f"{labelled} labelled; {rejected} rejected request(s)"
        + (f"; {table.broken_lines} unreadable line(s) skipped" if table.broken_lines else "")
    )


def version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


def find_request(root: Path, request_id: str, model_name: str | None = None) -> pd.DataFrame:
    """The logged rows of one request (every model's log unless `model_name`), labels attached; torn lines
    that mention it are skipped and counted in `.attrs["broken_lines"]`."""
    needle = f'"request_id":{json.dumps(request_id)}'
    found, broken = [], 0
    for path in _files(root, model_name, "predictions"):
        for line in _lines_of(path):
            if needle in line:
                record = _parsed(line)
                if record is None:
                    broken += 1
                elif record.get("request_id") == request_id:
                    found.append(record)
    if not found:
        frame = pd.DataFrame()
        frame.attrs["broken_lines"] = broken
        return frame
    frame = pd.DataFrame(found)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame = _with_labels(root, str(frame["model_name"].iloc[0]), frame)
    frame.attrs["broken_lines"] = broken
    return frame


def register_smoke_test(root: Path | str, model_name: str, request_id: str) -> None:
    """Before a deploy's smoke test sends `request_id`: readers then leave its rows out of traffic. Written by
    the deploy, not by a server, so nothing a client sends can mark its own rows as a smoke test's."""
    now = datetime.now(timezone.utc)
    folder = _private_folders(Path(root), model_folder_name(model_name), now.strftime("%Y-%m-%d"))
    line = json.dumps({"request_id": request_id, "timestamp": _stamp(now)}) + "\n"
    fd = _open_append(folder / f"{SMOKE_TESTS}-{os.getpid()}.jsonl")
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def smoke_test_ids(root: Path, model_name: str | None = None) -> set[str]:
    """The request ids deploys registered for their smoke tests (of one model, or all)."""
    lines, _ = _read_lines(_files(root, model_name, SMOKE_TESTS))
    return {str(line["request_id"]) for line in lines if "request_id" in line}


# --- labels --------------------------------------------------------------------------------------------------


@dataclass
class LabelReport:
    labels: int  # rows in the truth file
    matched_labels: int  # labels that found at least one logged row
    labelled_rows: int  # logged rows that got a label
    unmatched: int  # labels with no logged row
    duplicates: int  # labels repeating an earlier label's request or key in the same file (the last one wins)
    relabelled: int  # logged rows that already had a label (the new one wins)
    missing_label: int  # truth rows without a value in the label column
    path: Path | None = None

    def describe(self) -> str:
        return (
            f"{self.labels} labels: {self.matched_labels} matched {self.labelled_rows} logged rows; "
            f"{self.unmatched} unmatched; {self.duplicates} duplicate(s) in the file (the last one kept); "
            f"{self.relabelled} row(s) relabelled; {self.missing_label} without a value"
        )


def _labels_folder(root: Path, model_name: str) -> Path:
    return Path(root) / model_folder_name(model_name) / "labels"


def _with_labels(root: Path, model_name: str | None, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a `label` column: the latest label attached to each (request_id, row)."""
    frame = frame.copy()
    frame[LABEL_COLUMN] = None
    models = [model_name] if model_name else model_names(root)
    lines, _ = _read_lines(p for m in models for p in sorted(_labels_folder(root, m).glob("labels-*.jsonl")))
    if not lines or frame.empty:
        return frame
    labels = pd.DataFrame(lines).sort_values("attached_at", kind="stable")
    labels = labels.drop_duplicates(["request_id", "row"], keep="last")
    latest = {(r, int(w)): v for r, w, v in zip(labels["request_id"], labels["row"], labels[LABEL_COLUMN], strict=True)}
    frame[LABEL_COLUMN] = [latest.get((r, int(w))) for r, w in zip(frame["request_id"], frame["row"], strict=True)]
    return frame


def _text(value: Any) -> str:
    """A join key as text: text as it was written ("001042" stays "001042"), a number as a CSV writes it (1042
    and 1042.0 are "1042")."""
    value = _plain(value)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _join_keys(table: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    return list(zip(*[table[c].map(_text) for c in columns], strict=True)) if len(table) else []


def attach_labels(
    root: Path, model_name: str, truth: pd.DataFrame, label_column: str, keys: Sequence[str] = (), source: str = ""
) -> LabelReport:
    """Attach ground truth to logged rows: by `request_id` (and `row`, default 0) when `keys` is empty, else by
    equality of the key columns kept in the log, compared as text (`_text`: a logged "001042" matches only the
    text 001042, so read label files' key columns as text, see `workflows.served.read_labels`; a number sent
    as 1042 or 1042.0 matches "1042"). A key that several logged rows share (the same order predicted twice)
    labels them all. Appends the matches to the model's labels folder; nothing in the log is rewritten."""
    from lifecycle.errors import LifecycleError

    joins = list(keys) or ["request_id"]
    missing = [c for c in [*joins, label_column] if c not in truth.columns]
    if missing:
        raise LifecycleError(
            f"the labels file has no column {', '.join(missing)}; columns present: "
            f"{', '.join(map(str, truth.columns))}. Fix: name the label column with --label-column and the join "
            "with --key (default: request_id)."
        )
    log = read_predictions(root, model_name, with_labels=True)
    frame = log.frame
    if keys:
        absent = [k for k in joins if k not in frame.columns]
        if absent and not frame.empty:
            raise LifecycleError(
                f"the prediction log of `{model_name}` keeps no field {', '.join(absent)}; fields kept besides the "
                f"inputs: {', '.join(log.key_columns) or 'none'}. Fix: send it in each record (it is kept as a "
                "key), or join on request_id."
            )
    else:
        joins = ["request_id", "row"]
        truth = truth.assign(row=truth["row"] if "row" in truth.columns else 0)
    has_value = truth[label_column].notna()
    valued = truth[has_value]
    truth_keys = _join_keys(valued, joins)
    duplicates = len(truth_keys) - len(set(truth_keys))
    latest = dict(zip(truth_keys, valued[label_column], strict=True))  # the last label of a key wins
    logged_keys = _join_keys(frame, joins) if frame.empty or set(joins) <= set(frame.columns) else []
    hits = [index for index, key in enumerate(logged_keys) if key in latest]
    matched = frame.iloc[hits]
    now = _stamp(datetime.now(timezone.utc))
    lines = [
        json.dumps(
            {
                "request_id": rid,
                "row": int(row),
                LABEL_COLUMN: latest[logged_keys[i]],
                "attached_at": now,
                "by": source,
            },
            default=_plain,
        )
        for i, rid, row in zip(hits, matched["request_id"], matched["row"], strict=True)
    ]
    path = None
    if lines:
        folder = _private_folders(Path(root), model_folder_name(model_name), "labels")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")  # file names sort in attachment order
        path = folder / f"labels-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        with os.fdopen(_open_append(path), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    found = {logged_keys[i] for i in hits}
    return LabelReport(
        labels=len(truth),
        matched_labels=len(found),
        labelled_rows=len(lines),
        unmatched=len(latest) - len(found),
        duplicates=duplicates,
        relabelled=int(matched[LABEL_COLUMN].notna().sum()),
        missing_label=int((~has_value).sum()),
        path=path,
    )
