"""The prediction log: every row a server (or a batch scoring run) answered, append-only, readable with pandas.

Layout, under the log's root (`<state folder>/predictions` unless `log.folder` or MLOPS_PREDICTION_LOG says
otherwise):

    <model>/<YYYY-MM-DD>/predictions-<backend>-<pid>-<start>.jsonl   one JSON object per answered row
    <model>/<YYYY-MM-DD>/rejected-<backend>-<pid>-<start>.jsonl      one per rejected request (status, error)
    <model>/labels/labels-<time>-<pid>.jsonl                          ground truth attached later

One writer per process and file (servers with several workers write one file each). Each request's rows are
written with one `write(2)` to a file opened with O_APPEND before the answer is returned: once a client has its
2xx, the rows are in the operating system's page cache, and a crash of the server process (even SIGKILL) loses
none of them. (A power loss can: nothing is fsync'd, which would cost a disk flush per request.)

A row: `request_id`, `row` (its position in the request), `timestamp` (UTC, ISO 8601), `model_name`,
`model_version`, `role` (`production`, `canary` or `shadow`: how the front door sent the request to that server;
a shadow's answers never reached the client), `backend`, `server`, `latency_ms` (the request's, from its arrival
to its prediction),
`prediction`, `probability` (classifiers: the positive class's), `inputs` (the model inputs, or the subset that
`log.inputs` allows), `keys` (a record's other fields, e.g. an order id, kept to join labels on).

This module is shipped inside bentos and MLflow models: it needs the standard library, numpy and pandas only.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
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
SMOKE_TEST_PREFIX = "smoke-"  # request ids of a deploy's smoke test: logged, but not traffic to monitor
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id(sent: str | None = None) -> str:
    """The client's request id when it sent a usable one (`X-Request-ID`: letters, digits, `._:-`, up to 128
    characters), else a new UUID."""
    if sent and _REQUEST_ID.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


def model_folder_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name) or "model"


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
    inputs: str | list[str] = "all"  # "all", "none", or the model inputs to keep (personal data stays out)
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
        self._lock = threading.Lock()
        self._files: dict[str, tuple[str, int, int]] = {}  # kind -> (day, pid, fd)
        self._started = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        inputs = settings.inputs
        self._keep_all = inputs == "all"
        self._keep: set[str] = set() if inputs in ("none", None) or self._keep_all else set(inputs)

    def _fd(self, kind: str, day: str) -> int:
        """The open file of this kind for today and this process (a new day or a forked worker opens its own)."""
        pid = os.getpid()
        current = self._files.get(kind)
        if current and current[0] == day and current[1] == pid:
            return current[2]
        if current and current[1] == pid:
            os.close(current[2])
        folder = self.root / model_folder_name(self.model_name) / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{kind}-{self.backend}-{pid}-{self._started}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._files[kind] = (day, pid, fd)
        if current is None or current[0] != day:
            prune(self.root, self.model_name, self.settings.retention_days)
        return fd

    def _append(self, kind: str, lines: list[str], day: str) -> None:
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            fd = self._fd(kind, day)
            view = memoryview(data)
            while view:  # a regular file takes it all at once; loop in case a write is ever partial
                view = view[os.write(fd, view) :]

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
            inputs = {k: _plain(record.get(k)) for k in model_inputs if self._keep_all or k in self._keep}
            keys = {k: _plain(v) for k, v in record.items() if k not in inputs_wanted and _scalar(v)}
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
        inputs = [c for c in model_inputs if self._keep_all or c in self._keep]
        keys = [c for c in table.columns if c not in set(model_inputs)]
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
        """Count a rejected request (4xx): its status and error, not its rows (they were never predicted)."""
        now = datetime.now(timezone.utc)
        line = {
            "timestamp": _stamp(now),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "role": self.settings.role,
            "backend": self.backend,
            "status": status,
            "error": error[:500],
        }
        with self._lock:
            self.rejected += 1
        self._append("rejected", [json.dumps(line, default=_plain)], now.strftime("%Y-%m-%d"))


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


def _read_lines(paths: Iterable[Path]) -> tuple[list[dict[str, Any]], int]:
    """Every parsable line; a line cut short by a crash in the middle of a write is skipped and counted."""
    rows, broken = [], 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    broken += 1
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
        lines = [line for line in lines if not str(line.get("request_id", "")).startswith(SMOKE_TEST_PREFIX)]
    if not lines:
        return LogTable(pd.DataFrame(columns=[*META_COLUMNS, LABEL_COLUMN]), broken_lines=broken)
    meta = pd.DataFrame([{k: line.get(k) for k in META_COLUMNS} for line in lines])
    meta["timestamp"] = pd.to_datetime(meta["timestamp"], utc=True, format="ISO8601")
    meta["role"] = meta["role"].fillna("production")  # rows logged before servers had roles
    inputs = pd.DataFrame([line.get("inputs") or {} for line in lines])
    keys = pd.DataFrame([line.get("keys") or {} for line in lines])
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
    """The logged rows of one request (every model's log unless `model_name`), labels attached."""
    needle = f'"request_id":{json.dumps(request_id)}'
    found = []
    for path in _files(root, model_name, "predictions"):
        with open(path, encoding="utf-8") as handle:
            found.extend(json.loads(line) for line in handle if needle in line)
    if not found:
        return pd.DataFrame()
    frame = pd.DataFrame(found)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    return _with_labels(root, str(frame["model_name"].iloc[0]), frame)


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
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a CSV column with a gap reads 1042 as 1042.0
    return str(value)


def _join_keys(table: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    return list(zip(*[table[c].map(_text) for c in columns], strict=True)) if len(table) else []


def attach_labels(
    root: Path, model_name: str, truth: pd.DataFrame, label_column: str, keys: Sequence[str] = (), source: str = ""
) -> LabelReport:
    """Attach ground truth to logged rows: by `request_id` (and `row`, default 0) when `keys` is empty, else by
    equality of the key columns kept in the log (compared as text: a CSV's 1042 matches a logged "1042"). A key
    that several logged rows share (the same order predicted twice) labels them all. Appends the matches to the
    model's labels folder; nothing in the log is rewritten."""
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
        folder = _labels_folder(root, model_name)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")  # file names sort in attachment order
        path = folder / f"labels-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        with open(path, "a", encoding="utf-8") as handle:
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
