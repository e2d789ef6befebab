"""Ground truth attached to the prediction log (serving/prediction_log.py): labels joined to logged rows by
request id or by the record's own keys, appended to the model's labels folder; the log itself is never
rewritten."""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from serving.prediction_log_format import (
    LABEL_COLUMN,
    model_folder_name,
    open_append,
    plain_value,
    private_folders,
    utc_stamp,
)
from serving.prediction_log_reader import read_predictions


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


def _text(value: Any) -> str:
    """A join key as text: text as it was written ("001042" stays "001042"), a number as a CSV writes it (1042
    and 1042.0 are "1042")."""
    value = plain_value(value)
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
    now = utc_stamp(datetime.now(timezone.utc))
    lines = [
        json.dumps(
            {
                "request_id": rid,
                "row": int(row),
                LABEL_COLUMN: latest[logged_keys[i]],
                "attached_at": now,
                "by": source,
            },
            default=plain_value,
        )
        for i, rid, row in zip(hits, matched["request_id"], matched["row"], strict=True)
    ]
    path = None
    if lines:
        folder = private_folders(Path(root), model_folder_name(model_name), "labels")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")  # file names sort in attachment order
        path = folder / f"labels-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}.jsonl"
        with os.fdopen(open_append(path), "w", encoding="utf-8") as handle:
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
