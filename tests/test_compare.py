"""`python run.py compare --quick`: the stacks measured side by side, in a workspace of the comparison's own.

One real comparison runs for the module (training, monitoring and serving on each stack, through the CLI as a
user runs it); the tests then check the report's structure and that its numbers are measurements. A stack
whose MLflow server is down is part of the run: it must be reported unavailable while the others complete.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_stacks

pytestmark = [pytest.mark.integration, pytest.mark.e2e, needs_stacks("mlflow", "full")]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Every deployer once: ZenML's (`local`), MLflow's (`mlflow`) and BentoML's beside the MLflow tracker (`full`).
# The `bentoml` stack differs from `full` only by having no MLflow tracker or registry, as `local` has none.
MEASURED = ["local", "mlflow", "full"]
BROKEN = "mlflow_server"  # its MLflow server is not running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def comparison(state_dir: Path, zenml_client) -> dict:
    output = state_dir / "comparison_report"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}",
        "MLFLOW_TRACKING_USERNAME": "ci",
        "MLFLOW_TRACKING_PASSWORD": "not-a-real-secret",
    }
    finished = subprocess.run(
        [sys.executable, "run.py", "compare", "--quick", "--stacks", ",".join([*MEASURED, BROKEN])]
        + ["--workspace", str(state_dir / "comparison"), "--output", str(output)]
        + ["--summary-md", str(output / "job-summary.md"), "--summary-json", str(output / "summary.json")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    return {
        "stdout": finished.stdout,
        "stderr": finished.stderr,
        "report": json.loads((output / "comparison.json").read_text()),
        "markdown": (output / "comparison.md").read_text(),
        "html": (output / "comparison.html").read_text(),
        "html_path": output / "comparison.html",
        "summary_md": (output / "job-summary.md").read_text(),
        "summary_json": json.loads((output / "summary.json").read_text()),
    }


def by_stack(report: dict) -> dict[str, dict]:
    return {result["stack"]: result for result in report["results"]}


def test_every_stack_is_measured_and_the_broken_one_is_reported(comparison):
    results = by_stack(comparison["report"])
    assert list(results) == [*MEASURED, BROKEN]
    for stack in MEASURED:
        assert results[stack]["available"] and results[stack]["errors"] == {}, results[stack]["errors"]
        assert results[stack]["training"] and results[stack]["monitoring"] and results[stack]["serving"]
    broken = results[BROKEN]
    assert not broken["available"] and "not reachable" in broken["reason"]
    # For CI: the same report as the job summary and as JSON.
    assert comparison["summary_md"] == comparison["markdown"] and comparison["summary_json"] == comparison["report"]
    assert f"unavailable: {broken['reason']}"[:60] in comparison["markdown"].replace("\\|", "|")


def test_progress_names_stack_stage_and_elapsed_time(comparison):
    lines = comparison["stderr"].splitlines()
    total = len(MEASURED) + 1

    def shown(done: int, stack: str, stage: str) -> str:  # elapsed, bar, stacks finished so far, what runs now
        return rf"\[\d\d:\d\d\] \[[█░]+\] {done}/{total} stacks done · {stack}: {stage}"

    for done, stack in enumerate(MEASURED):
        for stage in ("set up the stack", "training", "monitoring", "serving"):
            assert any(re.match(shown(done, stack, stage), line) for line in lines), (stack, stage)
        assert any(re.match(shown(done + 1, stack, r"finished in \d+ s \(measured\)"), line) for line in lines)
    # the bar is full only once the last stack has finished, never while it still runs
    full = [index for index, line in enumerate(lines) if f"{total}/{total} stacks done" in line]
    assert full and re.search(rf"{BROKEN}: finished in \d+ s \(unavailable\)", lines[full[0]]), lines[full[0]]


def test_same_seed_same_metrics_and_same_predictions_everywhere(comparison):
    report = comparison["report"]
    checks, results = report["checks"], by_stack(report)
    assert checks["metrics_identical"] is True
    direct = report["baselines"]["direct"]["metrics"]
    for stack in MEASURED:
        assert results[stack]["training"]["metrics"] == direct
    # each stack in a store of its own: it trained v1, promoted it and served it; no versions piled up
    assert checks["served_versions"] == ["1"]
    assert checks["served_own_version"] == {stack: True for stack in MEASURED}
    for stack in MEASURED:
        assert str(results[stack]["training"]["model_version"]) == "1" and results[stack]["training"]["promoted"]
        assert results[stack]["records"]["mcp"]["versions"] == [1]
    assert "v1 (trained here)" in comparison["markdown"]
    assert checks["predictions_compared_backends"] == len(MEASURED)
    assert checks["predictions_max_difference_between_backends"] == 0.0
    for stack in MEASURED:
        serving = results[stack]["serving"]
        assert serving["difference_to_in_process"] == 0.0
        assert len(serving["predictions"]) == serving["parity_rows"] == report["meta"]["size"]["parity_rows"]
    assert report["baselines"]["bare_http"]["difference_to_in_process"] == 0.0


def test_backends_are_the_stacks_own(comparison):
    results = by_stack(comparison["report"])
    backends = {stack: results[stack]["serving"]["backend"] for stack in MEASURED}
    assert backends == {"local": "zenml", "mlflow": "mlflow", "full": "bentoml"}
    records = {stack: results[stack]["records"] for stack in MEASURED}
    assert "mlflow" not in records["local"] and "bentoml" not in records["mlflow"]
    for stack in ("mlflow", "full"):
        mlflow_records = records[stack]["mlflow"]
        assert mlflow_records["runs"] >= 1 and mlflow_records["params"] > 0 and mlflow_records["metrics"] > 0
        assert mlflow_records["aliases"]["champion"]["mcp_version"] == "1"  # the served production version
    assert records["full"]["bentoml"]["models"] and records["full"]["bentoml"]["bentos"]
    # each stack has its own MLflow database: nothing adds up across stacks
    assert records["mlflow"]["mlflow"]["tracking_uri"] != records["full"]["mlflow"]["tracking_uri"]
    assert records["mlflow"]["mlflow"]["runs"] == records["full"]["mlflow"]["runs"] == 1
    # no backend records a pipeline run per request (ZenML's deployer answers in-process; record_every is 0)
    per_request = {stack: results[stack]["serving"]["pipeline_runs_per_request"] for stack in MEASURED}
    assert all(per_request[s] == 0 for s in MEASURED), per_request


def test_times_and_latencies_are_measurements(comparison):
    report = comparison["report"]
    results, direct = by_stack(report), report["baselines"]["direct"]
    levels = [f"c{level['concurrency']}" for level in report["meta"]["size"]["load"]]
    for stack in MEASURED:
        training, serving = results[stack]["training"], results[stack]["serving"]
        assert set(training["steps"]) >= set(direct["training_steps"])
        assert all(seconds > 0 for seconds in training["steps"].values())
        assert training["wall_seconds"] >= max(training["steps"].values())
        assert serving["seconds_to_ready"] > 0 and serving["deploy_seconds"] >= serving["seconds_to_ready"]
        assert serving["rss_mb_after"] > 10
        for level in levels:
            load = serving["load"][level]
            assert load["errors"] == 0 and load["ok"] == load["requests"] > 0
            assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"]
            assert load["throughput_rps"] > 0
        assert serving["probes"]["health"]["status"] == 200
    rounds = report["meta"]["size"]["rounds"]
    for baseline in ("in_process", "bare_http"):
        for figures in report["baselines"][baseline]["load"].values():
            assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"]
            assert len(figures["rounds"]) == rounds
    for stack in MEASURED:  # every level sent in rounds, each with its own figures (the spread)
        for level in levels:
            each = results[stack]["serving"]["load"][level]["rounds"]
            assert len(each) == rounds and all(found["throughput_rps"] > 0 for found in each)
    # the floor is the floor: the bare server's own work in-process beats it through HTTP. Compared on each one's
    # best round (the least disturbed by a shared machine's other work), which is the cost of the work itself.
    floor, bare = report["baselines"]["in_process"]["load"]["c1"], report["baselines"]["bare_http"]["load"]["c1"]
    best = {
        name: min(found["p50_ms"] for found in figures["rounds"])
        for name, figures in (("floor", floor), ("bare", bare))
    }
    fastest = {
        name: max(r["throughput_rps"] for r in figures["rounds"])
        for name, figures in (("floor", floor), ("bare", bare))
    }
    assert best["floor"] < best["bare"] and fastest["floor"] > fastest["bare"], (floor, bare)
    assert all(seconds >= 0 for seconds in direct["training_steps"].values()) and direct["training_seconds"] > 0


def test_markdown_has_a_column_per_stack_and_a_value_in_every_cell(comparison):
    markdown = comparison["markdown"]
    for title in ("Stacks", "What each backend records", "Time", "Same work, same answers", "Serving", "Features"):
        assert f"## {title}" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| | local"))
    assert all(f" {stack} " in header for stack in [*MEASURED, BROKEN])
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert all(cells), line
    machine = comparison["report"]["meta"]["machine"]
    assert f"{machine['cpus']} CPUs" in markdown and "zenml 0.98" in markdown and "bentoml 1.4" in markdown
    assert comparison["stdout"].startswith("# Stacks compared")


def test_the_report_opens_with_a_reading_generated_from_the_measurements(comparison):
    markdown = comparison["markdown"]
    reading = markdown[markdown.index("## Reading") : markdown.index("## Which to pick")]
    assert "A serving difference is named only beyond this run's own noise: every one of 5 rounds" in reading
    assert "Traffic (requests/s at concurrency 16): " in reading and "One-request latency (p50 at" in reading
    assert "Floor: the bare server's whole work for a request" in reading
    assert "MLflow numbers its versions on its own" in reading and "on `mlflow`, MLflow v1 = ZenML v1" in reading
    assert "Each stack started from an empty store of its own and served the version it trained itself" in reading
    assert "Same model everywhere" in reading
    assert f"`{BROKEN}` was not measured" in reading
    assert "Caveat: --quick: each round has as few as" in reading
    assert "share one MLflow database" not in reading
    assert "zenml model version list --model=" in markdown


def test_which_to_pick_is_built_from_what_was_observed(comparison):
    markdown = comparison["markdown"]
    pick = markdown[markdown.index("## Which to pick") : markdown.index("## Stacks")]
    assert "An experiment-tracking UI and a model registry with aliases: `mlflow`, `full`" in pick
    assert "Prometheus metrics from the model server (`GET /metrics`): `full`" in pick  # probed: BentoML answers
    assert "The request your clients send: " in pick and '"dataframe_records": [...]' in pick  # MLflow's shape
    assert "The lowest one-request latency: " in pick and "The smallest server" in pick
    needs = by_stack(comparison["report"])
    assert "mlflow" in needs["mlflow"]["integrations"] and "bentoml" in needs["full"]["integrations"]
    assert needs["local"]["integrations"] == {}
    assert "The least to install: `local` (ZenML alone)" in pick


def test_html_is_self_contained_with_tables_and_plots(comparison):
    page = comparison["html"]
    assert page.count("<table>") == 6 and page.count("<svg") == 3  # training steps, latency, throughput
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing fetched when opened offline
    assert "unavailable" in page


def test_the_html_report_renders_in_a_browser(comparison):
    """Opened in a real headless Chromium: the stacks' columns, the figures and the plots are on the page; the top
    (reading, which to pick) and the serving charts are shot (docs/screenshots/ keeps a copy of each)."""
    from browser import assert_not_blank, chromium, screenshot, wait_for_text
    from selenium.webdriver.common.by import By

    with chromium(width=1300, height=1100) as driver:
        driver.get(comparison["html_path"].resolve().as_uri())
        text = wait_for_text(driver, *MEASURED, BROKEN, "unavailable", "Which to pick")
        assert "p50 / p95 / p99 ms" in text and re.search(r"\d+(\.\d+)? / \d+(\.\d+)? / \d+", text), text[:2000]
        plots = driver.find_elements(By.TAG_NAME, "svg")
        assert len(plots) == 3 and all(plot.size["height"] > 50 for plot in plots)
        assert_not_blank(screenshot(driver, "comparison-report"))
        charts = driver.find_elements(By.TAG_NAME, "h2")[-2]  # the latency chart's heading, then its figure
        driver.execute_script("arguments[0].scrollIntoView()", charts)
        assert_not_blank(screenshot(driver, "comparison-report-charts"))
