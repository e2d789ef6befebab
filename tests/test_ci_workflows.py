"""The GitHub workflows cannot be taken over through their inputs or by a pull request: no expression is pasted into
a script, no value goes through `make run ARGS=...` (make and its shell would expand it again), the team's store
key is read only by jobs in the `production` environment, and a hostile input reaches run.py as one argument.
The workflows' commands themselves are run by tests/test_workflows.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PRODUCTION = "production"
# Values a user can type into a workflow_dispatch form or a repository variable; each must arrive unchanged.
PAYLOADS = [
    'x"; touch INJECTED; echo "',
    "$(touch INJECTED2)",
    "x; touch INJECTED3",
    "`touch INJECTED4`",
    "x' ; touch INJECTED5; echo '",
    "x && touch INJECTED6 #",
]
# The stand-in for the project's Python: records each call's arguments (NUL-separated, one file per call).
STAND_IN = """#!/usr/bin/env bash
calls="$(dirname "$0")/../../calls"
mkdir -p "$calls"
printf '%s\\0' "$@" > "$calls/$(ls "$calls" | wc -l)"
"""


def rendered_templates() -> dict[str, str]:
    """Each `*.yml.jinja` workflow as Copier renders it for a project with no extra stacks and with all of them
    (a generated project has the rendered files only)."""
    copier_file = PROJECT_ROOT / "copier.yml"
    templates = sorted(WORKFLOWS.glob("*.yml.jinja"))
    if not templates or not copier_file.is_file():
        return {}
    import jinja2

    envops = yaml.safe_load(copier_file.read_text())["_envops"]
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(PROJECT_ROOT), **envops)
    rendered = {}
    for template in templates:
        source = template.relative_to(PROJECT_ROOT).as_posix()
        for stacks in ([], ["mlflow", "bentoml", "full"]):
            text = environment.get_template(source).render(stacks=stacks)
            rendered[f"{template.name} (stacks={stacks})"] = text
    return rendered


def all_workflows() -> dict[str, str]:
    plain = {path.name: path.read_text() for path in sorted(WORKFLOWS.glob("*.yml"))}
    return {**plain, **rendered_templates()}


def triggers(spec: dict) -> dict:
    # PyYAML reads the key `on` as True
    on = spec.get("on", spec.get(True))
    return {on: None} if isinstance(on, str) else {name: None for name in on} if isinstance(on, list) else on


def steps_with_scripts(spec: dict):
    for job_name, job in spec["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                yield job_name, step


def environment_of(job: dict) -> str | None:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else environment


def secrets_in(value: object) -> set[str]:
    text = yaml.safe_dump(value)
    names = {m.group(1) for e in EXPRESSION.finditer(text) for m in re.finditer(r"secrets\.(\w+)", e.group(1))}
    return names - {"GITHUB_TOKEN"}


WORKFLOW_TEXTS = all_workflows()


def test_the_workflows_and_their_templates_are_found():
    names = {name.split(" ")[0] for name in WORKFLOW_TEXTS}
    assert {"candidate.yml", "release.yml", "monitor.yml"} <= names, names
    if (PROJECT_ROOT / "copier.yml").is_file():
        assert "candidate.yml.jinja" in names
        matrices = {
            name: yaml.safe_load(text)["jobs"]["candidate"]["strategy"]["matrix"]["stack"]
            for name, text in WORKFLOW_TEXTS.items()
            if name.startswith("candidate.yml.jinja")
        }
        assert sorted(matrices.values()) == [["default"], ["default", "mlflow", "bentoml"]], matrices


@pytest.mark.parametrize("name", sorted(WORKFLOW_TEXTS))
def test_no_expression_is_pasted_into_a_script(name):
    """`${{ ... }}` inside `run:` is pasted into the script before the shell reads it: an input or event field
    holding `"; curl ... #` becomes code. Values go through `env:` and are quoted in the script."""
    spec = yaml.safe_load(WORKFLOW_TEXTS[name])
    pasted = [
        f"{job} `{step.get('name', step['run'][:40])}`: {match.group(0)}"
        for job, step in steps_with_scripts(spec)
        for match in EXPRESSION.finditer(step["run"])
    ]
    assert not pasted, f'{name}: move these into the step\'s `env:` and use "$VAR" in the script: {pasted}'


@pytest.mark.parametrize("name", sorted(WORKFLOW_TEXTS))
def test_no_value_goes_through_make_arguments(name):
    """`make run ARGS="... $X ..."`: make puts ARGS into a recipe line that its shell reads again, so the value's
    `;`, backquotes or quotes run as commands. Workflows call `.venv/bin/python run.py` with quoted arguments."""
    spec = yaml.safe_load(WORKFLOW_TEXTS[name])
    through_make = [
        f"{job}: {line.strip()}"
        for job, step in steps_with_scripts(spec)
        for line in step["run"].replace("\\\n", " ").splitlines()
        if re.search(r"\bmake\b.*\bARGS=", line) and ("$" in line.split("ARGS=", 1)[1])
    ]
    assert not through_make, f"{name}: pass these as arguments of .venv/bin/python run.py instead: {through_make}"


@pytest.mark.parametrize("name", sorted(WORKFLOW_TEXTS))
def test_only_production_jobs_read_the_store_key(name):
    spec = yaml.safe_load(WORKFLOW_TEXTS[name])
    assert "pull_request_target" not in triggers(spec), f"{name}: pull_request_target hands secrets to forks' code"
    assert not secrets_in(spec.get("env") or {}), f"{name}: workflow-level env gives secrets to every job"
    for job_name, job in spec["jobs"].items():
        used = secrets_in(job)
        if used:
            assert environment_of(job) == PRODUCTION, (
                f"{name}: job `{job_name}` reads {sorted(used)} outside the `{PRODUCTION}` environment; "
                f"add `environment: {PRODUCTION}` and keep the secrets in that environment"
            )
        if environment_of(job) == PRODUCTION and "pull_request" in triggers(spec):
            # A pull request's code never asks for the key (its jobs use a throw-away store instead).
            assert "github.event_name == 'workflow_dispatch'" in str(job.get("if", "")), (
                f"{name}: job `{job_name}` would run for pull requests in `{PRODUCTION}`"
            )
    if any(environment_of(job) == PRODUCTION for job in spec["jobs"].values()):
        header = " ".join(line.lstrip("# ") for line in WORKFLOW_TEXTS[name].splitlines() if line.startswith("#"))
        assert "What a reviewer's approval protects" in header, f"{name}: the header must say what approval guards"


def test_the_pull_request_jobs_get_no_credentials():
    spec = yaml.safe_load((WORKFLOWS / "candidate.yml").read_text())
    assert "pull_request" in triggers(spec)
    for job_name, job in spec["jobs"].items():
        if "github.event_name == 'workflow_dispatch'" not in str(job.get("if", "")):
            assert not secrets_in(job) and environment_of(job) is None, job_name
            assert "ZENML_STORE" not in yaml.safe_dump(job), job_name


def evaluate(expression: str, payload: str) -> str:
    """`a.b` and `a.b || 'default'`: inputs, variables and matrix values are the payload, secrets are unset."""
    for part in (piece.strip() for piece in expression.split("||")):
        if part.startswith("'") and part.endswith("'"):
            return part[1:-1]
        if part.startswith("secrets."):
            continue
        assert part.split(".")[0] in {"inputs", "vars", "matrix"}, f"no value for `{part}` here"
        return payload
    return ""


def sandbox(folder: Path) -> Path:
    """A folder where `make setup` is up to date and `.venv/bin/python` records its arguments."""
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(PROJECT_ROOT / name, folder / name)
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STAND_IN)
    python.chmod(0o755)
    (folder / ".venv" / ".installed").touch()
    (folder / ".zen").mkdir()
    # the workflows' own steps (python3 -m workflows.github_ci) run for real
    (folder / "workflows").symlink_to(PROJECT_ROOT / "workflows")
    now = time.time()
    for age, name in ((30, "Makefile"), (30, "pyproject.toml"), (30, "constraints.txt"), (20, ".venv/.installed")):
        os.utime(folder / name, (now - age, now - age))
    return folder


def recorded_calls(folder: Path) -> list[list[str]]:
    calls = folder / "calls"
    files = sorted(calls.iterdir(), key=lambda path: int(path.name)) if calls.is_dir() else []
    return [path.read_bytes().decode().split("\0")[:-1] for path in files]


# Asks GitHub's API about the approval environment: tests/test_github_ci.py runs it against a stand-in of the API.
APPROVAL_CHECK = "python3 -m workflows.github_ci check-approval"


def exported(github_env: Path) -> dict[str, str]:
    """What earlier steps wrote to $GITHUB_ENV (`NAME=value` lines), as GitHub gives it to the later steps."""
    return dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)


def run_job_scripts(spec: dict, job_name: str, payload: str, folder: Path) -> list[str]:
    """The job's `run:` steps in order, as GitHub runs them (bash -eo pipefail), in the sandbox; returns the
    failed steps with their output. A variable may name a file (the monitoring batch): the payload is one there."""
    job = spec["jobs"][job_name]
    github_env, summary = folder / "github.env", folder / "summary.md"
    github_env.write_text("")
    (folder / payload).write_text("dteday,cnt\n")

    def substituted(env: dict | None) -> dict[str, str]:
        return {k: EXPRESSION.sub(lambda m: evaluate(m.group(1), payload), str(v)) for k, v in (env or {}).items()}

    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(folder),
        "GITHUB_ENV": str(github_env),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    base.update({**substituted(spec.get("env")), **substituted(job.get("env"))})
    failed = []
    for step in job["steps"]:
        if "run" not in step or step["run"].startswith(APPROVAL_CHECK):
            continue
        env = {**base, **exported(github_env), **substituted(step.get("env"))}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            failed.append(f"`{step.get('name')}`: {done.stdout}{done.stderr}")
    return failed


def jobs_calling_the_project() -> list[tuple[str, str]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        spec = yaml.safe_load(path.read_text())
        for job_name, step in steps_with_scripts(spec):
            if ("run.py" in step["run"] or "make run" in step["run"]) and (path.name, job_name) not in found:
                found.append((path.name, job_name))
    return found


@pytest.mark.skipif(not shutil.which("make"), reason="the workflows' `make setup` needs make")
@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(("workflow", "job"), jobs_calling_the_project())
def test_a_hostile_input_reaches_run_py_as_one_argument(workflow, job, payload, tmp_path):
    """Every input, variable and matrix value set to a payload that would run `touch` if a shell read it again:
    nothing is touched and each option that takes one of them gets the payload unchanged."""
    spec = yaml.safe_load((WORKFLOWS / workflow).read_text())
    folder = sandbox(tmp_path)
    failed = run_job_scripts(spec, job, payload, folder)
    touched = sorted(path.name for path in folder.iterdir() if path.name.startswith("INJECTED"))
    assert not touched, f"{workflow} {job}: the payload {payload!r} ran `touch` ({touched})"
    assert not failed, "\n".join(failed)
    calls = recorded_calls(folder)
    assert calls and all(call[0] == "run.py" for call in calls), calls
    valued = [(call, i) for call in calls for i, arg in enumerate(call) if arg in {"--model-name", "--stack"}]
    assert valued, f"{workflow} {job}: no call passed --model-name or --stack: {calls}"
    for call, index in valued:
        assert call[index + 1] == payload, f"{call[index]} got {call[index + 1]!r}, not {payload!r}: {call}"
    if workflow in {"release.yml", "monitor.yml"}:
        assert any("--model-name" in call for call in calls), calls
    if workflow == "monitor.yml":  # the batch the fetch step found (MONITOR_BATCH: a path here)
        (call,) = [call for call in calls if call[1] == "monitor"]
        assert call[call.index("--batch") + 1] == str((folder / payload).resolve()), call


def test_the_release_promotes_the_named_version_only_when_one_is_given(tmp_path):
    spec = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    step = next(s for s in spec["jobs"]["promote"]["steps"] if "run.py promote" in s.get("run", ""))
    for version, expected in (("", None), ("3", "3")):
        folder = tmp_path / (version or "staging")
        folder.mkdir()
        sandbox(folder)
        env = {"PATH": os.environ["PATH"], "MODEL_NAME": "bike_demand", "VERSION": version, "RUN_STACK": "default"}
        env["GITHUB_STEP_SUMMARY"] = str(folder / "summary.md")
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["run"]], cwd=folder, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
        (call,) = recorded_calls(folder)
        assert call[:2] == ["run.py", "promote"] and "--require-promotion" in call, call
        assert (call[call.index("--version") + 1] if "--version" in call else None) == expected, call


def production_jobs(spec: dict) -> dict[str, dict]:
    return {name: job for name, job in spec["jobs"].items() if environment_of(job) == PRODUCTION}


def step_running(job: dict, command: str) -> dict:
    found = [step for step in job["steps"] if command in step.get("run", "")]
    assert len(found) == 1, f"one step runs `{command}`; found {len(found)}"
    return found[0]


@pytest.mark.parametrize("name", sorted(WORKFLOW_TEXTS))
def test_production_jobs_take_the_team_settings_and_run_on_the_team_stack(name):
    """Each job of the `production` environment: checks the approval gate first, takes every team setting from
    the environment's secrets and variables (docs/stacks-and-teams.md's table), registers the team's stack when
    they are set, and runs every command on the stack that step chose."""
    from workflows.github_ci import S3_SETTINGS, TEAM_SETTINGS

    spec = yaml.safe_load(WORKFLOW_TEXTS[name])
    jobs = production_jobs(spec)
    assert jobs, f"{name}: no job in the `{PRODUCTION}` environment"
    for job_name, job in jobs.items():
        names = [step.get("run", step.get("uses", "")) for step in job["steps"]]
        approval = step_running(job, "github_ci check-approval production")
        settings = step_running(job, "github_ci team-settings")
        assert names.index(approval["run"]) < names.index(settings["run"]), f"{job_name}: approval first"
        assert job["permissions"] == {"contents": "read", "actions": "read"}, job_name
        for setting, kind, _ in TEAM_SETTINGS + S3_SETTINGS:
            where = "secrets" if kind == "secret" else "vars"
            assert settings["env"].get(setting) == f"${{{{ {where}.{setting} }}}}", f"{job_name}: {setting}"
        # the team's stack as team-settings chose it (`team`, or `team_s3` with its integration installed first)
        register = step_running(job, "stacks up")
        assert 'if [ "$TEAM_SETTINGS" = team ]' in register["run"] and 'stacks up "$TEAM_STACK"' in register["run"]
        setup = step_running(job, "make setup")
        assert 'if [ "${TEAM_STACK:-}" = team_s3 ]; then make s3-env; fi' in setup["run"], job_name
        assert names.index(settings["run"]) < names.index(setup["run"]) < names.index(register["run"]), job_name
        commands = [
            line
            for step in job["steps"]
            for line in step.get("run", "").replace("\\\n", " ").splitlines()
            if re.search(r"run\.py (train|promote|deploy|monitor)\b", line)
        ]
        assert commands, job_name
        assert all('--stack "$RUN_STACK"' in line for line in commands), commands


@pytest.mark.parametrize("name", [n for n in sorted(WORKFLOW_TEXTS) if n.startswith("monitor.yml")])
def test_the_monitor_fetches_its_batch_from_the_configured_location(name):
    (job,) = production_jobs(yaml.safe_load(WORKFLOW_TEXTS[name])).values()
    fetch = step_running(job, "github_ci fetch-batch")
    assert fetch["env"]["MONITOR_BATCH"] == "${{ vars.MONITOR_BATCH }}"
    monitor = step_running(job, "run.py monitor")
    assert '--batch "$MONITOR_BATCH_FILE"' in monitor["run"] and "MONITOR_BATCH" not in (monitor.get("env") or {})


def test_the_release_stops_without_reviewers_unless_the_repository_chose_so():
    (job,) = production_jobs(yaml.safe_load((WORKFLOWS / "release.yml").read_text())).values()
    approval = step_running(job, "github_ci check-approval production")
    assert approval["env"]["WITHOUT_REVIEWERS"] == "${{ vars.RELEASE_WITHOUT_REVIEWERS }}"
