"""The check Copier runs after generating a project (lifecycle/project_template.py), run as Copier runs it where
only the standard library is there (`python -S`: no site-packages, so no pandas, pydantic or PyYAML): a target or
named column that is not in the file stops it with the columns that are; the delimiter is sniffed; daily data gets
monitoring and replay windows that leave a real test set, hourly data keeps the template's."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from lifecycle.project_template import read_sample, scaled_windows, time_grain_days


def project_with(tmp_path: Path) -> Path:
    """The files the check needs, as in a generated project: itself (with the package's init and the one module
    that imports) and configs/monitoring.yaml."""
    project = tmp_path / "project"
    (project / "lifecycle").mkdir(parents=True)
    (project / "configs").mkdir()
    for name in ("__init__.py", "atomic_files.py", "project_template.py"):
        shutil.copy(PROJECT_ROOT / "lifecycle" / name, project / "lifecycle" / name)
    shutil.copy(PROJECT_ROOT / "configs" / "monitoring.yaml", project / "configs" / "monitoring.yaml")
    return project


def write_table(path: Path, step: timedelta, rows: int = 60, delimiter: str = ",") -> Path:
    start = datetime(2020, 1, 1)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(["date", "precipitation", "temp_max", "weather"])
        for index in range(rows):
            writer.writerow(
                [(start + index * step).isoformat(), f"{index % 7 / 2}", "12.5", ["sun", "rain", "fog"][index % 3]]
            )
    return path


def run_check(project: Path, **answers) -> subprocess.CompletedProcess:
    """`python -S -m lifecycle.project_template ANSWERS`, as Copier's task runs it (standard library only)."""
    return subprocess.run(
        [sys.executable, "-S", "-E", "-m", "lifecycle.project_template", json.dumps(answers)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_check_runs_with_the_standard_library_alone(tmp_path):
    project = project_with(tmp_path)
    probe = subprocess.run([sys.executable, "-S", "-E", "-c", "import pandas"], cwd=project, capture_output=True)
    assert probe.returncode != 0  # what `-S` leaves out: the project's dependencies
    data = write_table(tmp_path / "weather.csv", timedelta(days=1))
    done = run_check(project, dataset_path=str(data), target="weather", time_columns=["date"])
    assert done.returncode == 0, done.stderr
    assert "checked data/weather.csv (copied from" in done.stdout and "4 columns" in done.stdout
    assert (project / "data" / "weather.csv").read_bytes() == data.read_bytes()


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"target": "wether"}, "column `wether` (target) missing from data/weather.csv"),
        ({"target": "weather", "time_columns": ["day"]}, "column(s) `day` (time_columns) missing"),
        ({"target": "weather", "segment_columns": ["city"]}, "column(s) `city` (segment_columns) missing"),
        ({"target": "weather", "drop_columns": ["id"]}, "column(s) `id` (drop_columns) missing"),
    ],
)
def test_a_column_that_is_not_in_the_file_stops_the_generation_with_the_columns_that_are(tmp_path, answers, words):
    project = project_with(tmp_path)
    data = write_table(tmp_path / "weather.csv", timedelta(days=1))
    done = run_check(project, dataset_path=str(data), **answers)
    assert done.returncode == 1 and words in done.stderr, done.stderr
    assert "columns present: `date`, `precipitation`, `temp_max`, `weather`" in done.stderr
    assert "Traceback" not in done.stderr and "The project was not generated" in done.stderr


def test_a_semicolon_separated_gzipped_file_is_read_by_its_header(tmp_path):
    project = project_with(tmp_path)
    data = write_table(tmp_path / "weather.csv.gz", timedelta(days=1), delimiter=";")
    assert run_check(project, dataset_path=str(data), target="weather").returncode == 0
    refused = run_check(project, dataset_path=str(data), target="date;weather")
    assert refused.returncode == 1 and "columns present: `date`, `precipitation`" in refused.stderr


def test_daily_data_gets_windows_that_leave_a_real_test_set_and_hourly_data_keeps_the_templates(tmp_path):
    daily_project = project_with(tmp_path / "daily")
    data = write_table(tmp_path / "daily.csv", timedelta(days=1), rows=400)
    done = run_check(daily_project, dataset_path=str(data), target="weather", time_columns=["date"])
    assert done.returncode == 0, done.stderr
    config = (daily_project / "configs" / "monitoring.yaml").read_text()
    assert "  retrain_window_days: 365" in config and "  initial_training_days: 365" in config, config
    assert "  period_days: 90" in config and "so about 365 rows" in config
    assert "monitoring retrains on the newest 365 days" in done.stdout

    hourly_project = project_with(tmp_path / "hourly")
    data = write_table(tmp_path / "hourly.csv", timedelta(hours=1), rows=400)
    assert run_check(hourly_project, dataset_path=str(data), target="weather", time_columns=["date"]).returncode == 0
    template = (PROJECT_ROOT / "configs" / "monitoring.yaml").read_text()
    assert (hourly_project / "configs" / "monitoring.yaml").read_text() == template


def test_the_grain_is_days_per_row_over_the_whole_file_in_any_order(tmp_path):
    daily = write_table(tmp_path / "daily.csv", timedelta(days=1), rows=50)
    lines = daily.read_text().splitlines()
    daily.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # newest first
    assert time_grain_days(daily, read_sample(daily), {"time_columns": ["date"]}) == pytest.approx(1.0)
    assert time_grain_days(daily, read_sample(daily), {"time_columns": []}) is None
    # The demo's layout: shuffled rows, a date column and an hour column, 24 rows a day: hourly rows.
    demo = PROJECT_ROOT / "data" / "bike_sharing_hourly.csv.gz"
    answers = {"time_columns": ["dteday", {"column": "hr", "format": "%I%p"}]}
    assert time_grain_days(demo, read_sample(demo), answers) == pytest.approx(1 / 24, rel=0.05)
    assert scaled_windows(1 / 24) == {"retrain_window_days": 56, "initial_training_days": 42, "period_days": 28}
    assert scaled_windows(1.0) == {"retrain_window_days": 365, "initial_training_days": 365, "period_days": 90}
    assert scaled_windows(7)["retrain_window_days"] == 7 * 365
