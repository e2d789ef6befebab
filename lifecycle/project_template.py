"""Run by Copier in a project it has just generated from this template (copier.yml, `_tasks`): copy the data file
into `data/` when the answers ask for it, check the file against the answers, and scale the monitoring windows to
the data's time grain.

The check needs nothing but the standard library, because Copier often runs where the project's dependencies are
not installed (`pip install copier`, `pip install "zenml[templates]"`): the header and a sample of rows are read
with `csv`, and a target, time, segment or dropped column that is not in the header stops the generation with the
columns that are (Copier then removes the half-made project). Where the project's packages are importable too, the
file is also checked with `python run.py train`'s own checks.

    python -m lifecycle.project_template ANSWERS_JSON     # in the generated project (Copier runs it there)
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ANSWERS_FILE = ".copier-answers.yml"
DEMO_DATASET = "data/bike_sharing_hourly.csv.gz"
SAMPLE_ROWS = 500
SAMPLE_BYTES = 1 << 20
MONITORING_CONFIG = Path("configs") / "monitoring.yaml"
# Rows a monitoring retrain and the replay's first model should see, at least (a fifth of them is the test set).
WINDOW_ROWS = 365
REPLAY_PERIOD_ROWS = 90


class TemplateAnswerError(Exception):
    """An answer the generated project cannot work with."""


@dataclass
class Sample:
    """A data file's header and its first rows, read with the standard library."""

    columns: list[str]
    rows: list[dict[str, str]]
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel


def locate_dataset(answer: str, template_root: str | None) -> Path:
    """The answered data file: an absolute (or ~) path, else relative to where Copier was started (the shell's
    PWD), else to the template."""
    path = Path(answer).expanduser()
    candidates = [path] if path.is_absolute() else []
    if not path.is_absolute():
        candidates += [Path(os.environ.get("PWD", ".")) / path]
        candidates += [Path(template_root) / path] if template_root else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise TemplateAnswerError(
        f"dataset_path `{answer}` is not a file (looked at {looked}). Fix: answer with the file's absolute path."
    )


def place_dataset(answers: dict, project: Path) -> Path | None:
    """Copy the answered file into the project's data/ (kept when already there); None when it is referenced."""
    answer = str(answers["dataset_path"])
    if answer == DEMO_DATASET or not answers.get("copy_dataset", True):
        return None
    target = project / "data" / Path(answer).name
    if target.is_file():
        return target  # an update: the copy made at generation (and perhaps edited since) stays
    source = locate_dataset(answer, answers.get("_src_path"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def data_file(answers: dict, project: Path) -> Path:
    """The file the project trains on, wherever the answers put it."""
    answer = str(answers["dataset_path"])
    if answer == DEMO_DATASET or answers.get("copy_dataset", True):
        return project / "data" / Path(answer).name
    return locate_dataset(answer, answers.get("_src_path"))


def read_sample(path: Path, rows: int = SAMPLE_ROWS) -> Sample | None:
    """The header and first rows of a CSV (.gz too); the delimiter sniffed from the first lines. None for
    Parquet, which the standard library cannot read."""
    if path.suffix in (".parquet", ".pq"):
        return None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        head = raw.read(SAMPLE_BYTES)
    text = head.decode("utf-8-sig", errors="replace")
    if len(head) == SAMPLE_BYTES:
        text = text.rsplit("\n", 1)[0]  # a partly read last line is left out
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [name.strip() for name in next(reader, [])]
    sample = [dict(zip(header, values, strict=False)) for _, values in zip(range(rows), reader, strict=False)]
    return Sample(header, sample, dialect)


def _column_names(entries: list) -> list[str]:
    return [entry["column"] if isinstance(entry, dict) else str(entry) for entry in entries or []]


def check_columns(sample: Sample, answers: dict, source: str) -> None:
    """Every column the answers name is in the file's header; the target has values in the sample."""
    present = ", ".join(f"`{name}`" for name in sample.columns)
    fix = "Fix: answer again with one of these columns (e.g. `copier copy --trust --data target=COLUMN ...`)."
    target = str(answers["target"])
    if target not in sample.columns:
        raise TemplateAnswerError(
            f"column `{target}` (target) missing from {source}; columns present: {present}. {fix}"
        )
    for role in ("time_columns", "segment_columns", "drop_columns"):
        missing = [name for name in _column_names(answers.get(role) or []) if name not in sample.columns]
        if missing:
            named = ", ".join(f"`{name}`" for name in missing)
            raise TemplateAnswerError(
                f"column(s) {named} ({role}) missing from {source}; columns present: {present}. {fix}"
            )
    if sample.rows and not any((row.get(target) or "").strip() for row in sample.rows):
        raise TemplateAnswerError(
            f"column `{target}` (target) is empty in the first {len(sample.rows)} rows of {source}. "
            "Fix: answer with the column that holds what the model should predict."
        )


def _parse_time(value: str, fmt: str | None) -> datetime | None:
    value = value.strip()
    try:
        return datetime.strptime(value, fmt) if fmt else datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def time_grain_days(path: Path, sample: Sample, answers: dict) -> float | None:
    """Days per row over the whole file: the first time column's span divided among its rows (1.0: one row a
    day; the demo's dates with 24 hourly rows each: 1/24), whatever order the rows are in. None without a time
    column or with fewer than three parseable, distinct times."""
    entries = answers.get("time_columns") or []
    if not entries:
        return None
    first = entries[0]
    column = first["column"] if isinstance(first, dict) else str(first)
    fmt = first.get("format") if isinstance(first, dict) else None
    if column not in sample.columns:
        return None
    position = sample.columns.index(column)
    earliest = latest = None
    rows = 0
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as text:
        reader = csv.reader(text, sample.dialect)
        next(reader, None)
        for values in reader:
            stamp = _parse_time(values[position], fmt) if position < len(values) else None
            if stamp is None:
                continue
            rows += 1
            earliest = stamp if earliest is None or stamp < earliest else earliest
            latest = stamp if latest is None or stamp > latest else latest
    if earliest is None or latest is None or rows < 3 or latest == earliest:
        return None
    return (latest - earliest).total_seconds() / 86400 / (rows - 1)


def scaled_windows(grain_days: float) -> dict[str, int]:
    """Monitoring and replay windows, in days, that hold enough rows at this grain: hourly data keeps the
    template's weeks; daily data gets a year for a retraining (73 test rows) and a quarter per replay period."""
    rows = math.ceil(WINDOW_ROWS * grain_days)
    return {
        "retrain_window_days": max(56, rows),
        "initial_training_days": max(42, rows),
        "period_days": max(28, math.ceil(REPLAY_PERIOD_ROWS * grain_days)),
    }


def scale_monitoring_config(project: Path, grain_days: float) -> dict[str, int] | None:
    """Write `scaled_windows` into the project's configs/monitoring.yaml; None when the template's own fit."""
    windows = scaled_windows(grain_days)
    path = project / MONITORING_CONFIG
    if not path.is_file() or windows == {"retrain_window_days": 56, "initial_training_days": 42, "period_days": 28}:
        return None
    grain = f"{grain_days:g} day" if grain_days >= 1 else f"{grain_days * 24:g} hour"
    text = path.read_text()
    for key, days in windows.items():
        note = f"# {days} days: data every {grain}, so about {round(days / grain_days)} rows"

        def rewrite(found: re.Match, days: int = days, note: str = note) -> str:
            width = len(found.group(2)) + len(found.group(3))  # the comment stays in its column
            return f"{found.group(1)}{str(days).ljust(max(width - 1, len(str(days))))} {note}"

        text = re.sub(rf"^(\s*{key}:\s*)(\d+)(\s*)#.*$", rewrite, text, count=1, flags=re.M)
    path.write_text(text)
    return windows


def full_check(project: Path) -> str | None:
    """`python run.py train`'s own checks of the file, where the project's packages are importable; None where
    they are not (the standard-library check above has run)."""
    try:
        from lifecycle.config import load_config
        from lifecycle.validation import validate_file

        config = load_config(project / "configs" / "training.yaml")
        report = validate_file(config.dataset)
    except ModuleNotFoundError:
        return None
    task = config.dataset.task or "task inferred at training"
    return f"{report.rows_out} of {report.rows_in} rows usable; target `{config.dataset.target}` ({task})"


def check_project(project: Path, answers: dict) -> str:
    """Place the data, check it against the answers, scale the windows; a summary for the user."""
    copied = place_dataset(answers, project)
    path = data_file(answers, project)
    where = f"{copied.relative_to(project)} (copied from {answers['dataset_path']})" if copied else str(path)
    lines = []
    sample = read_sample(path)
    if sample is None:
        lines.append(f"{where}: a Parquet file; its columns are checked by `make run` (training's checks).")
    else:
        check_columns(sample, answers, where)
        lines.append(
            f"checked {where}: target `{answers['target']}` and every named column are in its "
            f"{len(sample.columns)} columns ({len(sample.rows)} rows sampled)"
        )
        grain = time_grain_days(path, sample, answers)
        windows = scale_monitoring_config(project, grain) if grain is not None else None
        if windows:
            lines.append(
                f"time grain {grain:g} day(s): monitoring retrains on the newest {windows['retrain_window_days']} "
                f"days; the replay starts with {windows['initial_training_days']} and steps {windows['period_days']} "
                "(configs/monitoring.yaml)"
            )
    full = full_check(project)
    lines.append(f"training's checks: {full}" if full else "training's checks run first thing in `make run`")
    lines.append("Next: `cd` into the project, then `make run`.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    project = Path.cwd()
    try:
        answers = json.loads(argv[0]) if argv else _answers_file(project)
        print(check_project(project, answers))
    except Exception as error:  # noqa: BLE001 - each error carries its fix; Copier stops on exit 1
        print(
            f"error: {error}\n(The project was not generated: nothing is left behind.)",
            file=sys.stderr,
        )
        sys.exit(1)


def _answers_file(project: Path) -> dict:
    """The answers of a project generated before the task passed them (needs PyYAML, which Copier has)."""
    import yaml

    return yaml.safe_load((project / ANSWERS_FILE).read_text()) or {}


if __name__ == "__main__":
    main()
