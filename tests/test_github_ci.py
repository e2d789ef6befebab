"""The workflows' own steps (workflows/github_ci.py), run as GitHub runs them: `python3 -m workflows.github_ci ...`
in a folder, with GitHub's files for environment and job summary. Downloads come from a real HTTP server on
127.0.0.1; GitHub's API is a stand-in on 127.0.0.1 that answers the one request the approval check makes."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

TEAM = {
    "ZENML_STORE_URL": "https://zenml.example.com",
    "ZENML_STORE_API_KEY": "fake-key-123",
    "MLFLOW_TRACKING_URI": "https://mlflow.example.com",
    "MLFLOW_TRACKING_USERNAME": "ci",
    "MLFLOW_TRACKING_PASSWORD": "fake pw $(touch INJECTED) ; x",
    "TEAM_ARTIFACT_STORE": "/mnt/team/zenml-artifacts",
}


def run(folder: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str], str]:
    """The command in `folder` (which holds the package, as a checkout does); returns the result, what it wrote to
    $GITHUB_ENV and to the job summary."""
    package = folder / "workflows"
    if not package.exists():
        package.symlink_to(PROJECT_ROOT / "workflows")
    github_env, summary = folder / "github.env", folder / "summary.md"
    github_env.write_text("")
    summary.write_text("")
    base = {"PATH": os.environ["PATH"], "GITHUB_ENV": str(github_env), "GITHUB_STEP_SUMMARY": str(summary)}
    done = subprocess.run(
        [sys.executable, "-m", "workflows.github_ci", *args],
        cwd=folder,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    return done, exported, summary.read_text()


def test_the_module_needs_only_the_standard_library():
    """It runs on the runner's Python before `make setup` installs anything."""
    tree = ast.parse((PROJECT_ROOT / "workflows" / "github_ci.py").read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)


def test_without_the_team_settings_a_job_runs_on_a_throwaway_store_and_says_so(tmp_path):
    done, exported, summary = run(tmp_path, "team-settings")
    assert done.returncode == 0, done.stderr
    assert exported == {"TEAM_SETTINGS": "throwaway", "RUN_STACK": "default"}
    assert "**Throw-away store.**" in summary and "nothing it trained, promoted or served is kept" in summary
    # the team's stack asked for, without the team: ZenML's default stack; another stack is kept as asked
    assert run(tmp_path, "team-settings", REQUESTED_STACK="team")[1]["RUN_STACK"] == "default"
    assert run(tmp_path, "team-settings", REQUESTED_STACK="mlflow")[1]["RUN_STACK"] == "mlflow"
    # a variable set without the server is named, not silently used
    done, exported, summary = run(tmp_path, "team-settings", MLFLOW_TRACKING_URI="https://mlflow.example.com")
    assert done.returncode == 0 and "MLFLOW_TRACKING_URI" not in exported
    assert "::warning::MLFLOW_TRACKING_URI set, but not ZENML_STORE_URL: ignored" in done.stdout


def test_with_the_team_settings_a_job_uses_the_team_stack_and_passes_each_value_unchanged(tmp_path):
    done, exported, summary = run(tmp_path, "team-settings", **TEAM)
    assert done.returncode == 0, done.stderr
    assert exported == {**TEAM, "TEAM_SETTINGS": "team", "TEAM_STACK": "team", "RUN_STACK": "team"}
    assert "Team store: the team's ZenML server (`ZENML_STORE_URL`), MLflow `https://mlflow.example.com`" in summary
    assert "stack `team`" in summary and "zenml.example.com" not in summary + done.stdout  # a secret: not shown
    assert not (tmp_path / "INJECTED").exists()
    done, exported, _ = run(tmp_path, "team-settings", **TEAM, REQUESTED_STACK="default")
    assert exported["RUN_STACK"] == "default" and "no other runner can" in done.stdout


S3 = {
    "TEAM_ARTIFACT_STORE": "s3://team-bucket/zenml",
    "AWS_ACCESS_KEY_ID": "fake-access-key",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-key",
    "TEAM_S3_ENDPOINT": "https://s3.example.com",
}


def test_a_bucket_as_the_team_artifact_store_picks_the_team_s3_stack_with_its_key_and_endpoint(tmp_path):
    """GitHub-hosted runners share no disk: an s3:// store selects stacks/team_s3.yaml, whose settings go on."""
    done, exported, summary = run(tmp_path, "team-settings", **{**TEAM, **S3})
    assert done.returncode == 0, done.stderr
    assert exported == {
        **TEAM,
        **S3,
        "AWS_ENDPOINT_URL": "https://s3.example.com",
        "TEAM_SETTINGS": "team",
        "TEAM_STACK": "team_s3",
        "RUN_STACK": "team_s3",
    }
    assert "artifacts in `s3://team-bucket/zenml`; stack `team_s3`" in summary
    assert "fake-secret-key" not in summary + done.stdout
    assert run(tmp_path, "team-settings", **{**TEAM, **S3}, REQUESTED_STACK="team")[1]["RUN_STACK"] == "team_s3"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"MLFLOW_TRACKING_PASSWORD": ""}, "but not MLFLOW_TRACKING_PASSWORD (secret)"),
        ({"TEAM_ARTIFACT_STORE": "", "ZENML_STORE_API_KEY": ""}, "ZENML_STORE_API_KEY (secret), TEAM_ARTIFACT_STORE"),
        ({"TEAM_ARTIFACT_STORE": "s3://bucket/zenml"}, "but AWS_ACCESS_KEY_ID (secret), AWS_SECRET_ACCESS_KEY"),
        ({**S3, "TEAM_S3_ENDPOINT": "s3.example.com"}, "TEAM_S3_ENDPOINT must be an http(s):// address"),
        ({**S3, "TEAM_ARTIFACT_STORE": "s3://"}, "names no bucket"),
        ({"TEAM_ARTIFACT_STORE": "gs://bucket/zenml"}, "set an s3:// bucket"),
        ({"TEAM_ARTIFACT_STORE": "artifacts"}, "or an absolute path every runner mounts"),
        ({"MLFLOW_TRACKING_URI": "mlflow.example.com"}, "MLFLOW_TRACKING_URI must be an http(s):// address"),
        ({"ZENML_STORE_API_KEY": "fake-key\nLD_PRELOAD=/tmp/x.so"}, "ZENML_STORE_API_KEY holds a line break"),
    ],
)
def test_an_incomplete_or_wrong_team_setting_stops_the_job_naming_it(tmp_path, change, said):
    done, exported, _ = run(tmp_path, "team-settings", **{**TEAM, **change})
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and exported == {}


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `folder`."""

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_batch_is_fetched_from_a_url_or_read_in_place_and_its_path_exported(tmp_path):
    published = tmp_path / "published"
    published.mkdir()
    (published / "batch-2026-12-07.csv").write_text("dteday,cnt\n2026-12-07,5\n")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    with serving(published) as url:
        done, exported, _ = run(checkout, "fetch-batch", "monitor-batch", MONITOR_BATCH=f"{url}/batch-2026-12-07.csv")
        assert done.returncode == 0, done.stderr
        fetched = Path(exported["MONITOR_BATCH_FILE"])
        assert fetched == checkout / "monitor-batch" / "batch-2026-12-07.csv"
        assert fetched.read_text() == (published / "batch-2026-12-07.csv").read_text()

        done, _, _ = run(checkout, "fetch-batch", "monitor-batch", MONITOR_BATCH=f"{url}/missing.csv")
        assert done.returncode == 2 and "failed: HTTP 404" in done.stderr, done.stderr
    done, exported, _ = run(checkout, "fetch-batch", MONITOR_BATCH=str(published / "batch-2026-12-07.csv"))
    assert exported["MONITOR_BATCH_FILE"] == str(published / "batch-2026-12-07.csv")


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("", "MONITOR_BATCH is not set. Fix: set the repository variable MONITOR_BATCH"),
        ("data/not-there.csv", "which is no file on the runner"),
        ("ftp://example.com/batch.csv", "`ftp://` is not supported"),
        ("https://example.com/exports/", "names no file"),
        ("s3://bucket/batch.csv", "the AWS CLI (`aws`) is not on this runner"),
    ],
)
def test_a_batch_that_cannot_be_fetched_stops_the_job_with_the_fix(tmp_path, source, said):
    # PATH without the AWS CLI: the s3:// case must say so (GitHub's Ubuntu runners have it)
    done, exported, _ = run(tmp_path, "fetch-batch", MONITOR_BATCH=source, PATH="/nonexistent")
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert exported == {}


def test_the_monitor_workflows_fetch_step_fails_clearly_when_the_variable_is_unset(tmp_path):
    """The step exactly as monitor.yml has it, run by bash as GitHub runs it, with MONITOR_BATCH unset."""
    spec = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / "monitor.yml").read_text())
    steps = spec["jobs"]["monitor"]["steps"]
    (fetch,) = [step for step in steps if "fetch-batch" in step.get("run", "")]
    assert fetch["env"]["MONITOR_BATCH"] == "${{ vars.MONITOR_BATCH }}"
    names = [step.get("name", "") for step in steps]
    assert names.index(fetch["name"]) < names.index("Set up the project"), "fail before the two-minute set-up"
    (tmp_path / "workflows").symlink_to(PROJECT_ROOT / "workflows")
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", fetch["run"]],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "GITHUB_ENV": str(tmp_path / "env"), "MONITOR_BATCH": ""},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done
    assert "::error::MONITOR_BATCH is not set. Fix: set the repository variable MONITOR_BATCH" in done.stdout


@contextmanager
def github_api(environments: dict[str, dict]) -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for GitHub's REST API: `GET /repos/owner/repo/environments/NAME` answers the environment's JSON
    (404 for an unknown one); the requests are recorded."""
    seen: list[dict] = []

    class Api(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            name = self.path.rsplit("/", 1)[-1]
            found = self.path.startswith("/repos/owner/repo/environments/") and name in environments
            body = json.dumps(environments[name] if found else {"message": "Not Found"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


REVIEWED = {
    "name": "production",
    "protection_rules": [
        {"id": 1, "type": "branch_policy"},
        {"id": 2, "type": "required_reviewers", "reviewers": [{"type": "User", "reviewer": {"login": "ana"}}]},
    ],
}
# What GitHub creates when a job names an environment that does not exist: no protection rules.
CREATED_BY_A_JOB = {"name": "production", "protection_rules": []}


def test_the_release_stops_when_the_approval_environment_has_no_reviewers(tmp_path):
    environments = {"production": REVIEWED, "bare": CREATED_BY_A_JOB}
    with github_api(environments) as (api, seen):
        github = {"GITHUB_API_URL": api, "GITHUB_REPOSITORY": "owner/repo", "GITHUB_TOKEN": "fake-t0ken"}
        done, _, summary = run(tmp_path, "check-approval", "production", **github)
        assert done.returncode == 0 and "required reviewers ana" in done.stdout, done.stderr
        assert seen[-1] == {"path": "/repos/owner/repo/environments/production", "authorization": "Bearer fake-t0ken"}

        done, _, summary = run(tmp_path, "check-approval", "bare", **github)
        assert done.returncode == 2, done.stdout
        assert "the GitHub environment `bare` has no required reviewers" in done.stderr
        assert "RELEASE_WITHOUT_REVIEWERS" in done.stderr and "**No approval gate:**" in summary
        # chosen on purpose (a scheduled job, a repository without reviewers): a warning, and the job goes on
        done, _, summary = run(tmp_path, "check-approval", "bare", **github, WITHOUT_REVIEWERS="true")
        assert done.returncode == 0 and "::warning::the GitHub environment `bare`" in done.stdout
        assert "**No approval gate:**" in summary

        done, _, _ = run(tmp_path, "check-approval", "unknown", **github)
        assert done.returncode == 2 and "HTTP 404" in done.stderr and "actions: read" in done.stderr
