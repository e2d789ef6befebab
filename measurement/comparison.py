"""`python run.py compare`: the same training, monitoring and serving work on each stack, measured side by side.

The comparison runs in a workspace of its own (`<state folder>/compare/`, replaced by each comparison), so your
models, stacks and servers are untouched; inside it each stack gets a fresh ZenML store, MLflow database and BentoML
home of its own, so every stack starts from the same empty state and serves the version it trained. Each stack is
measured in a child process (`python -m measurement.comparison_stack`), so that a stack which fails cannot take the
others down:

1. register the stack from its file in stacks/ (a stack that cannot be set up is reported with the reason);
2. train on the same data with the same seed (no step cache), then monitor one held-back batch;
3. serve the production version through the stack's deployer, check its predictions on the same held-out
   rows, send a bounded one-row-per-request load at each configured concurrency over loopback in rounds (their
   spread is the noise a difference must exceed), read the server's memory, probe what it offers (health,
   metrics, docs), and stop it.

The parent then calls the same step functions directly (no ZenML), and measures the same model behind a bare HTTP
server and with that server's work called in-process (the floor), as baselines, and writes
reports/comparison.{md,html,json}. Progress: `progress(stack, stage)` as each stage starts, and
`progress(stack, "finished ...")` when a stack's process has ended.

This module is the parent; the workspace is measurement/comparison_workspace.py, a stack's measuring child
measurement/comparison_stack.py, the report measurement/report.py.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lifecycle.config import PROJECT_ROOT, ComparisonConfig, ComparisonSize, RunConfig
from measurement.comparison_stack import PROGRESS
from measurement.comparison_workspace import Workspace, prepare_workspace


def run_stack_child(
    stack: str, workspace: Workspace, config: RunConfig, size: ComparisonSize, comparison: ComparisonConfig, progress
) -> dict[str, Any]:
    """One stack in a child process; its progress lines are passed on, the rest kept for the failure reason."""
    command = [
        sys.executable,
        "-m",
        "measurement.comparison_stack",
        "--stack",
        stack,
        "--workspace",
        str(workspace.root),
        "--size",
        size.model_dump_json(),
        "--config",
        config.model_dump_json(),
        "--deployment",
        comparison.deployment.model_dump_json(),
    ]
    tail: deque[str] = deque(maxlen=40)
    child = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=workspace.environment(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith(PROGRESS):
            progress(stack, line[len(PROGRESS) :].strip())
        elif line.strip():
            tail.append(line.rstrip())
    child.wait()
    path = workspace.result(stack)
    if path.exists():
        return json.loads(path.read_text())
    last = [line for line in tail if line.strip()][-3:]
    return {
        "stack": stack,
        "available": False,
        "errors": {"child process": f"exit code {child.returncode}"},
        "reason": f"the measuring process exited with code {child.returncode}: " + " | ".join(last),
    }


def measure_baselines(workspace: Workspace, config: RunConfig, size: ComparisonSize, progress) -> dict[str, Any]:
    """The same work without ZenML: the step functions called directly; the served model in-process and
    behind a bare HTTP server (when some stack served it)."""
    from measurement.direct import run_directly

    progress("baseline", "the step functions called directly (no ZenML)")
    direct_config = config.model_copy(
        update={"dataset": config.dataset.model_copy(update={"path": str(workspace.data)})}
    )
    direct = run_directly(direct_config, workspace.batch)
    baselines: dict[str, Any] = {
        "direct": {
            "training_seconds": direct.training_seconds,
            "training_steps": direct.training_steps,
            "monitoring_seconds": direct.monitoring_seconds,
            "monitoring_steps": direct.monitoring_steps,
            "metrics": direct.metrics,
        }
    }
    if not workspace.served_model.exists():
        return baselines
    from measurement.comparison_stack import WARM_UP
    from measurement.serving import bare_server_baseline, in_process_floor
    from serving.contract import prediction_difference

    served = pickle.loads(workspace.served_model.read_bytes())  # written by this comparison's own child
    model = served["model"]
    parity = json.loads(workspace.parity.read_text())
    bodies = [{"records": [record]} for record in parity["records"]]
    progress("baseline", "the bare server's work called in-process (the floor)")
    single = min(size.load, key=lambda level: level.concurrency)
    floor = in_process_floor(model, workspace.root, bodies, single.requests, warm_up=WARM_UP, rounds=size.rounds)
    baselines["in_process"] = {"load": {f"c{single.concurrency}": floor}}
    progress("baseline", "the served model behind a bare HTTP server")
    levels = [(level.concurrency, level.requests) for level in size.load]
    load, answer = bare_server_baseline(
        model, workspace.root, bodies, levels, first={"records": parity["records"]}, warm_up=WARM_UP, rounds=size.rounds
    )
    baselines["bare_http"] = {
        "load": {key: value for key, value in load.items() if key.startswith("c")},
        "rss_mb_after": load["rss_mb_after"],
        "difference_to_in_process": prediction_difference(parity["task"], answer["predictions"], parity["in_process"]),
    }
    return baselines


def compare(
    stacks: list[str],
    config: RunConfig,
    comparison: ComparisonConfig,
    quick: bool,
    workspace_root: Path,
    output_dir: Path,
    progress: Callable[[str, str], None],
) -> dict[str, Path]:
    """Measure each stack, then the baselines; write comparison.md, .html and .json to `output_dir`."""
    from measurement.report import machine, render_html, render_markdown, summarize

    started = time.perf_counter()
    size = comparison.quick if quick else comparison.full
    config = config.model_copy(update={"enable_cache": False})  # the same work on every stack: nothing cached
    workspace, data = prepare_workspace(workspace_root, config, size)
    config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"path": str(workspace.data)})})
    progress("data", f"{data['training_rows']} training rows, {data['batch_rows']} batch rows in {workspace.root}")
    results = []
    for stack in stacks:
        began = time.perf_counter()
        results.append(run_stack_child(stack, workspace, config, size, comparison, progress))
        outcome = "measured" if results[-1].get("available") else "unavailable"
        progress(stack, f"finished in {time.perf_counter() - began:.0f} s ({outcome})")
    baselines = measure_baselines(workspace, config, size, progress)
    report = summarize(
        results,
        baselines,
        {
            "data": data,
            "quick": quick,
            "size": size.model_dump(),
            "machine": machine(),
            "seconds": time.perf_counter() - started,
            "workspace": str(workspace.root),
            "inspect_prefixes": {stack: workspace.inspect_prefix(stack) for stack in stacks},
            "min_difference": comparison.min_difference,
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        },
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": output_dir / "comparison.md",
        "html": output_dir / "comparison.html",
        "json": output_dir / "comparison.json",
    }
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    paths["markdown"].write_text(render_markdown(report))
    paths["html"].write_text(render_html(report))
    return paths
