"""The GitHub workflows shipped for the template's users: actionlint and GitHub's workflow schema accept them, and
their `run:` commands pass when run here in order, on a throw-away store, with each matrix value (checkout, Python
set-up and artifact upload are GitHub's own actions: this checkout and its .venv stand in for them)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import DEMO_CONFIG, PROJECT_ROOT

pytestmark = pytest.mark.integration
WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
BIN = PROJECT_ROOT / ".venv" / "bin"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# Steps whose command this suite already runs as a whole: `make test-fast` is the non-integration part of the
# suite this test belongs to (running it again here would add minutes and check nothing new).
RUN_BY_THE_SUITE = {"make test-fast"}
# Asks GitHub's API whether the approval environment has reviewers: tests/test_github_ci.py runs it against a
# stand-in of the API (there is no repository on GitHub here).
ASKS_GITHUB = "python3 -m workflows.github_ci check-approval"
MODEL = "ci_bike"


def evaluate(expression: str, context: dict[str, str]) -> str:
    """The expressions these workflows use: `a.b` and `a.b || 'default'`; anything else fails the test, so a new
    kind of expression gets a value here before it is trusted."""
    for part in (piece.strip() for piece in expression.split("||")):
        if part.startswith("'") and part.endswith("'"):
            return part[1:-1]
        assert part in context, f"the workflow test gives no value to `{part}`"
        if context[part]:
            return context[part]
    return ""


def substitute(text: str, context: dict[str, str]) -> str:
    return EXPRESSION.sub(lambda match: evaluate(match.group(1), context), text)


def checkout_in(folder: Path) -> Path:
    """A stand-in for GitHub's checkout inside the test's folder: every top-level entry of the project linked, so
    what the jobs write (summaries, JSON records) lands there and never in the repository."""
    checkout = folder / "checkout"
    if not checkout.exists():
        checkout.mkdir()
        for entry in PROJECT_ROOT.iterdir():
            if entry.name not in {".git", "__pycache__"}:
                (checkout / entry.name).symlink_to(entry)
    return checkout


def run_job(workflow: str, job: str, context: dict[str, str], folder: Path) -> str:
    """Each `run:` step of the job, in order, in a checkout inside `folder`, with GitHub's files for environment
    and job summary; returns the job summary written."""
    spec = yaml.safe_load((WORKFLOWS / workflow).read_text())
    steps = spec["jobs"][job]["steps"]
    github_env, summary = folder / f"{job}.env", folder / f"{job}-summary.md"
    github_env.write_text("")
    env = {**os.environ, "GITHUB_ENV": str(github_env), "GITHUB_STEP_SUMMARY": str(summary)}
    env.update({name: substitute(str(value), context) for name, value in (spec.get("env") or {}).items()})
    ran = 0
    for step in steps:
        if "run" not in step:
            assert step["uses"].split("@")[0] in {
                "actions/checkout",
                "actions/setup-python",
                "actions/upload-artifact",
            }, step
            continue
        if step["run"].strip() in RUN_BY_THE_SUITE or step["run"].startswith(ASKS_GITHUB):
            ran += 1
            continue
        step_env = {**env, **{k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()}}
        for line in github_env.read_text().splitlines():
            name, _, value = line.partition("=")
            step_env[name] = value
        done = subprocess.run(
            ["bash", "-e", "-c", substitute(step["run"], context)],
            cwd=checkout_in(folder),
            env=step_env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert done.returncode == 0, (
            f"{workflow} {job} `{step.get('name')}`:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
        ran += 1
    assert ran, f"{workflow} {job} has no run step"
    return summary.read_text() if summary.exists() else ""


def matrix(workflow: str, job: str) -> list[dict[str, str]]:
    spec = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][job].get("strategy", {}).get("matrix", {})
    names = list(spec)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(spec[n] for n in names))]


def test_actionlint_and_the_workflow_schema_accept_every_workflow(tmp_path):
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} == {"candidate.yml", "release.yml", "monitor.yml"}
    linted = subprocess.run([BIN / "actionlint", *files], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    # Both checks can fail: a job without `runs-on` and an unknown context are caught.
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: echo ${{ nowhere.value }}\n")
    assert subprocess.run([BIN / "actionlint", str(broken)], capture_output=True).returncode != 0
    assert (
        subprocess.run(
            [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(broken)], capture_output=True
        ).returncode
        != 0
    )


@pytest.mark.e2e
def test_the_workflows_commands_pass_here_in_order(zenml_client, bike_slice, tmp_path):
    from serving.rollout import undeploy
    from serving.stack_backend import active_backend

    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["dataset"]["path"], config["model"]["name"] = str(bike_slice), MODEL
    (tmp_path / "training.yaml").write_text(yaml.safe_dump(config))
    batch = tmp_path / "batch.csv"
    pd.read_csv(bike_slice).tail(400).to_csv(batch, index=False)
    context = {
        # no team settings: every job runs on a throw-away store (the team's case: tests/test_github_ci.py)
        "secrets.ZENML_STORE_URL": "",
        "secrets.ZENML_STORE_API_KEY": "",
        "secrets.MLFLOW_TRACKING_USERNAME": "",
        "secrets.MLFLOW_TRACKING_PASSWORD": "",
        "vars.MLFLOW_TRACKING_URI": "",
        "vars.TEAM_ARTIFACT_STORE": "",
        "secrets.AWS_ACCESS_KEY_ID": "",
        "secrets.AWS_SECRET_ACCESS_KEY": "",
        "vars.AWS_DEFAULT_REGION": "",
        "vars.AWS_ENDPOINT_URL": "",
        "vars.TEAM_S3_ENDPOINT": "",
        "vars.TRAINING_CONFIG": str(tmp_path / "training.yaml"),
        "vars.MODEL_NAME": MODEL,
        "vars.MONITOR_BATCH": str(batch),
        "vars.MONITOR_STACK": "",
        "inputs.model-name": MODEL,
        "inputs.version": "",
        "inputs.stack": "default",
        "inputs.wait-served": "0",
    }

    assert run_job("candidate.yml", "checks", context, tmp_path) == ""
    stacks = matrix("candidate.yml", "candidate")
    # ZenML's default stack, then this project's stacks with a deployer or tracker of their own (a project
    # generated from the template lists the ones it has)
    assert stacks[0] == {"stack": "default"} and len(stacks) == len({v["stack"] for v in stacks})
    assert all((PROJECT_ROOT / "stacks" / f"{v['stack']}.yaml").is_file() for v in stacks[1:]), stacks
    if (PROJECT_ROOT / "stacks" / "bentoml.yaml").is_file() and (PROJECT_ROOT / "stacks" / "mlflow.yaml").is_file():
        assert stacks == [{"stack": "default"}, {"stack": "mlflow"}, {"stack": "bentoml"}]
    # The job on ZenML's default stack and on the matrix's last stack (each trains a candidate version; the jobs
    # differ only by `--stack`).
    chosen = [stacks[0], stacks[-1]] if len(stacks) > 1 else stacks
    last = len(chosen)  # one candidate version per job
    for values in chosen:
        summary = run_job("candidate.yml", "candidate", {**context, "matrix.stack": values["stack"]}, tmp_path)
        assert "**promoted to staging**" in summary and "| naive_baseline | enabled | passed |" in summary, summary
        record = json.loads((checkout_in(tmp_path) / f"candidate-{values['stack']}.json").read_text())
        assert record["stack"] == values["stack"] and record["stage"] == "staging"
    stages = {v.number: str(v.stage) for v in zenml_client.list_model_versions(MODEL, size=10).items}
    # production untouched: there is none yet
    assert stages == {**{n: "archived" for n in range(1, last)}, last: "staging"}

    try:
        summary = run_job("release.yml", "promote", context, tmp_path)
        assert f"version {last} promoted to production" in summary, summary
        assert json.loads((checkout_in(tmp_path) / "promotion.json").read_text())["version"] == last
        assert zenml_client.get_model_version(MODEL, "production").number == last
        assert [e.model_version for e in active_backend().endpoints(MODEL) if e.running] == [str(last)]

        summary = run_job("monitor.yml", "monitor", context, tmp_path)
        assert summary.startswith("> **Throw-away store.**"), summary  # said first: nothing here is kept
        assert f"### Monitoring `{MODEL}` version {last}" in summary, summary
        record = json.loads((checkout_in(tmp_path) / "monitor.json").read_text())
        assert record["command"] == "monitor" and record["batch"]["rows"] == 400
    finally:
        zenml_client.activate_stack("default")
        undeploy(active_backend(), MODEL)
