"""Reading the prediction log (serving/prediction_log.py): the rows of a model (or all) in a time range, with
the labels attached to them, a request's rows, rejections counted; torn lines skipped and counted."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from serving.prediction_log_format import LABEL_COLUMN, META_COLUMNS, SMOKE_TESTS, model_folder_name


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


def smoke_test_ids(root: Path, model_name: str | None = None) -> set[str]:
    """The request ids deploys registered for their smoke tests (of one model, or all)."""
    lines, _ = _read_lines(_files(root, model_name, SMOKE_TESTS))
    return {str(line["request_id"]) for line in lines if "request_id" in line}


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
