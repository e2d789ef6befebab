"""The GitHub workflows' own steps that are more than one command: which store and stack a job uses (the team's,
from the repository's secrets and variables, or a throw-away store on the runner), where the monitoring batch comes
from, and whether the approval environment really has reviewers.

Standard library only: it runs on the runner's Python before `make setup` (`python3 -m workflows.github_ci ...`),
and in tests/test_github_ci.py. Each command reads the environment GitHub gives the step, writes what later steps
need to `$GITHUB_ENV`, says what it decided in `$GITHUB_STEP_SUMMARY`, and fails with one line that names the fix
(exit 2: a setting is missing or wrong)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DOCS = "docs/stacks-and-teams.md#the-team-in-github-workflows-secrets-and-variables"
TEAM_STACK = "team"  # stacks/team.yaml: artifacts in a folder every runner mounts (self-hosted runners)
TEAM_S3_STACK = "team_s3"  # stacks/team_s3.yaml: artifacts in an S3 bucket (GitHub-hosted runners)
LOCAL_STACK = "default"
# (name, kind on GitHub, what it is): the team's settings, all read by jobs in the `production` environment only.
TEAM_SETTINGS = (
    ("ZENML_STORE_URL", "secret", "the team's ZenML server"),
    ("ZENML_STORE_API_KEY", "secret", "an API key of a ZenML service account"),
    ("MLFLOW_TRACKING_URI", "variable", "the team's MLflow server"),
    ("MLFLOW_TRACKING_USERNAME", "secret", "the MLflow user of the team's stack"),
    ("MLFLOW_TRACKING_PASSWORD", "secret", "its password"),
    ("TEAM_ARTIFACT_STORE", "variable", "the artifact store every runner reaches"),
)
# With an s3:// TEAM_ARTIFACT_STORE (the `team_s3` stack), these too.
S3_SETTINGS = (
    ("AWS_ACCESS_KEY_ID", "secret", "a key that reads and writes the bucket"),
    ("AWS_SECRET_ACCESS_KEY", "secret", "its secret"),
    ("TEAM_S3_ENDPOINT", "variable", "the S3 endpoint (AWS's regional one, or your store's)"),
)
DOWNLOAD_SECONDS = 120
EXIT_SETTING = 2


class SettingError(Exception):
    """A setting the workflow needs is missing or wrong: the message names it and the fix."""


@dataclass(frozen=True)
class Decision:
    """What `team-settings` decided: the variables for later steps and the job summary's lines."""

    environment: dict[str, str]
    summary: list[str]
    warnings: list[str]


def _one_line(name: str, value: str) -> str:
    # $GITHUB_ENV is `NAME=value` per line: a line break in a value would set another variable.
    if "\n" in value or "\r" in value:
        raise SettingError(f"{name} holds a line break; set it to a single line (Settings -> Environments).")
    return value


def team_settings(env: dict[str, str]) -> Decision:
    """The team's settings when ZENML_STORE_URL is set (then every one of them is required), else a throw-away
    store on the runner. `REQUESTED_STACK` (a workflow input or variable) names the stack; empty or `team` means
    the team's stack, which a throw-away store replaces by ZenML's default stack."""
    values = {name: env.get(name, "").strip() for name, _, _ in TEAM_SETTINGS}
    requested = _one_line("the stack", env.get("REQUESTED_STACK", "").strip())
    if not values["ZENML_STORE_URL"]:
        stack = LOCAL_STACK if requested in ("", TEAM_STACK) else requested
        ignored = [name for name, value in values.items() if value]
        warnings = (
            [f"{', '.join(ignored)} set, but not ZENML_STORE_URL: ignored (the team's settings need all of them)."]
            if ignored
            else []
        )
        summary = [
            f"> **Throw-away store.** The team's settings are not configured (no `ZENML_STORE_URL` secret in the "
            f"`production` environment, or this is a pull request or a fork), so this job ran on a ZenML store "
            f"created on the runner, on the `{stack}` stack, and deleted with it: nothing it trained, promoted or "
            f"served is kept. To use the team's servers, see `{DOCS}`.",
        ]
        return Decision({"TEAM_SETTINGS": "throwaway", "RUN_STACK": stack}, summary, warnings)
    missing = [f"{name} ({kind})" for name, kind, _ in TEAM_SETTINGS if not values[name]]
    if missing:
        raise SettingError(
            f"the team's ZenML server is configured (ZENML_STORE_URL) but not {', '.join(missing)}. Fix: add "
            f"them to the `production` environment (Settings -> Environments -> production); see {DOCS}."
        )
    for name in ("ZENML_STORE_URL", "MLFLOW_TRACKING_URI"):
        if not values[name].startswith(("http://", "https://")):
            raise SettingError(f"{name} must be an http(s):// address, not {values[name]!r}. Fix: see {DOCS}.")
    store = values["TEAM_ARTIFACT_STORE"]
    team_stack = TEAM_S3_STACK if store.startswith("s3://") else TEAM_STACK
    if team_stack == TEAM_S3_STACK:
        values |= _s3_settings(env, store)
    elif "://" in store or not store.startswith("/"):
        raise SettingError(
            f"TEAM_ARTIFACT_STORE is {store!r}: set an s3:// bucket (the `team_s3` stack, for GitHub-hosted "
            "runners, with the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY secrets and the TEAM_S3_ENDPOINT "
            f"variable), or an absolute path every runner mounts (the `team` stack, self-hosted runners); see {DOCS}."
        )
    for name, value in values.items():
        _one_line(name, value)
    stack = team_stack if requested in ("", TEAM_STACK, TEAM_S3_STACK) else requested
    warnings = []
    if stack == LOCAL_STACK:
        warnings.append(
            "the `default` stack on the team's server keeps artifacts on this runner, where no other runner can "
            f"load them: use the `{team_stack}` stack."
        )
    summary = [
        # the server's address is a secret: named, not shown
        f"Team store: the team's ZenML server (`ZENML_STORE_URL`), MLflow `{values['MLFLOW_TRACKING_URI']}`, "
        f"artifacts in `{store}`; stack `{stack}`.",
    ]
    decided = {**values, "TEAM_SETTINGS": "team", "TEAM_STACK": team_stack, "RUN_STACK": stack}
    return Decision(decided, summary, warnings)


def _s3_settings(env: dict[str, str], store: str) -> dict[str, str]:
    """The `team_s3` stack's settings: the key and the endpoint, all required."""
    values = {name: env.get(name, "").strip() for name, _, _ in S3_SETTINGS}
    missing = [f"{name} ({kind})" for name, kind, _ in S3_SETTINGS if not values[name]]
    if missing:
        raise SettingError(
            f"TEAM_ARTIFACT_STORE is the bucket {store!r} (the `team_s3` stack) but {', '.join(missing)} is not "
            f"set. Fix: add them to the `production` environment; see {DOCS}."
        )
    if len(store) <= len("s3://") or store[len("s3://") :].startswith("/"):
        raise SettingError(f"TEAM_ARTIFACT_STORE {store!r} names no bucket. Fix: s3://BUCKET/FOLDER; see {DOCS}.")
    if not values["TEAM_S3_ENDPOINT"].startswith(("http://", "https://")):
        raise SettingError(
            f"TEAM_S3_ENDPOINT must be an http(s):// address (e.g. https://s3.eu-west-1.amazonaws.com), not "
            f"{values['TEAM_S3_ENDPOINT']!r}. Fix: see {DOCS}."
        )
    return values | {"AWS_ENDPOINT_URL": values["TEAM_S3_ENDPOINT"]}


def fetch_batch(source: str, folder: Path, env: dict[str, str]) -> Path:
    """The monitoring batch on this runner: downloaded from an http(s):// URL or an s3:// URI (with the AWS CLI,
    credentials and `AWS_ENDPOINT_URL` from the environment) into `folder`, or a path the runner reads."""
    source = source.strip()
    if not source:
        raise SettingError(
            "MONITOR_BATCH is not set. Fix: set the repository variable MONITOR_BATCH to the batch to monitor: an "
            "https:// URL, an s3:// URI, or a path on the runner (Settings -> Secrets and variables -> Actions -> "
            f"Variables); see {DOCS}."
        )
    scheme = urllib.parse.urlsplit(source).scheme.lower() if "://" in source else ""
    if not scheme:
        path = Path(source).expanduser()
        if not path.is_file():
            raise SettingError(
                f"MONITOR_BATCH is {source!r}, which is no file on the runner. Fix: a path in the repository or "
                "on a mounted disk, or an https:// or s3:// address."
            )
        return path.resolve()
    address_path = urllib.parse.urlsplit(source).path
    name = Path(address_path).name
    if not name or address_path.endswith("/"):
        raise SettingError(f"MONITOR_BATCH {source!r} names no file (the address ends with `/`).")
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / name).resolve()
    if scheme in ("http", "https"):
        request = urllib.request.Request(source, headers={"User-Agent": "mlops-lifecycle-monitor"})
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_SECONDS) as answer, target.open("wb") as out:
                shutil.copyfileobj(answer, out)
        except urllib.error.HTTPError as exc:
            raise SettingError(f"downloading MONITOR_BATCH {source} failed: HTTP {exc.code} {exc.reason}.") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SettingError(f"downloading MONITOR_BATCH {source} failed: {reason}.") from None
        return target
    if scheme == "s3":
        aws = shutil.which("aws", path=env.get("PATH"))
        if aws is None:
            raise SettingError(
                "MONITOR_BATCH is an s3:// URI, but the AWS CLI (`aws`) is not on this runner. Fix: install it "
                "(GitHub's Ubuntu runners have it), or give an https:// URL."
            )
        # An unset AWS_* variable arrives as an empty one, which the AWS CLI would take as a value.
        aws_env = {name: value for name, value in env.items() if value or not name.startswith("AWS_")}
        done = subprocess.run(
            [aws, "s3", "cp", "--only-show-errors", source, str(target)],
            env=aws_env,
            capture_output=True,
            text=True,
            timeout=DOWNLOAD_SECONDS,
        )
        if done.returncode:
            said = " ".join((done.stderr or done.stdout).split())[:300]
            raise SettingError(
                f"copying MONITOR_BATCH {source} failed ({said}). Fix: check the URI and the AWS_* secrets and "
                "variables of the `production` environment."
            )
        return target
    raise SettingError(f"MONITOR_BATCH {source!r}: `{scheme}://` is not supported; use https://, s3:// or a path.")


def approval_rule(environment: str, env: dict[str, str]) -> list[str]:
    """The reviewers GitHub's API lists for the environment (empty: none, so nobody approved this run). GitHub
    creates an environment a job names without any protection rule: the approval gate is then silently gone."""
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    repository = env.get("GITHUB_REPOSITORY", "")
    if not repository:
        raise SettingError("GITHUB_REPOSITORY is not set: this command runs inside a GitHub workflow.")
    url = f"{api}/repos/{repository}/environments/{urllib.parse.quote(environment)}"
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if env.get("GITHUB_TOKEN"):
        headers["Authorization"] = f"Bearer {env['GITHUB_TOKEN']}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as answer:
            described = json.load(answer)
    except urllib.error.HTTPError as exc:
        raise SettingError(
            f"GitHub's API did not describe the environment `{environment}` (HTTP {exc.code}); the job needs "
            "`permissions: actions: read` to read it."
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SettingError(f"GitHub's API did not answer about the environment `{environment}`: {exc}.") from None
    reviewers = []
    for rule in described.get("protection_rules") or []:
        if rule.get("type") == "required_reviewers":
            for entry in rule.get("reviewers") or []:
                who = entry.get("reviewer") or {}
                reviewers.append(str(who.get("login") or who.get("slug") or who.get("name") or "?"))
    return reviewers


def _append(path: str | None, lines: list[str]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))


def _export(env: dict[str, str], values: dict[str, str]) -> None:
    _append(env.get("GITHUB_ENV"), [f"{name}={_one_line(name, value)}" for name, value in values.items()])


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    command = args[0] if args else ""
    try:
        if command == "team-settings":
            decision = team_settings(env)
            _export(env, decision.environment)
            for warning in decision.warnings:
                print(f"::warning::{warning}")
            _append(env.get("GITHUB_STEP_SUMMARY"), [*decision.summary, *(f"> {w}" for w in decision.warnings), ""])
            print(decision.summary[0])
        elif command == "fetch-batch":
            folder = Path(args[1] if len(args) > 1 else "monitor-batch")
            batch = fetch_batch(env.get("MONITOR_BATCH", ""), folder, env)
            _export(env, {"MONITOR_BATCH_FILE": str(batch)})
            print(f"monitoring batch: {batch} ({batch.stat().st_size} bytes)")
        elif command == "check-approval":
            environment = args[1] if len(args) > 1 else "production"
            # WITHOUT_REVIEWERS=true: a missing gate is a warning (the scheduled monitor; a repository that cannot
            # have reviewers); otherwise it stops the job before anything reads the store key.
            required = env.get("WITHOUT_REVIEWERS", "").strip().lower() != "true"
            try:
                reviewers = approval_rule(environment, env)
            except SettingError as exc:
                if required:
                    raise
                print(f"::warning::{exc}")
                return 0
            if reviewers:
                print(f"environment `{environment}`: required reviewers {', '.join(reviewers)}")
                return 0
            message = (
                f"the GitHub environment `{environment}` has no required reviewers, so nobody approved this run "
                f"(GitHub creates a missing environment without any). Fix: Settings -> Environments -> "
                f"{environment} -> Required reviewers (a private repository needs GitHub Enterprise for them); "
                "see docs/releases.md#the-approval-environment-on-github."
            )
            _append(env.get("GITHUB_STEP_SUMMARY"), [f"> **No approval gate:** {message}", ""])
            if required:
                raise SettingError(
                    f"{message} To release without reviewers on purpose, set the repository variable "
                    "RELEASE_WITHOUT_REVIEWERS to `true`."
                )
            print(f"::warning::{message}")
        else:
            raise SettingError(f"unknown command {command!r}; use team-settings, fetch-batch or check-approval.")
    except SettingError as exc:
        print(f"::error::{exc}")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SETTING
    return 0


if __name__ == "__main__":
    sys.exit(main())
