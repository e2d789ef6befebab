"""Every command a user is shown works: the README's commands parse, and the commands the CLI prints as hints
(`Where to look`, `try it`, `status`, `stop it`, `Fix:`) run, for a model trained on a CSV the project has never
seen, without `--model-name` (the commands follow the model trained last)."""

from __future__ import annotations

import re
import shlex

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import PROJECT_ROOT, make_churn_table, run_cli, run_zenml

README = PROJECT_ROOT / "README.md"
COMMAND_START = re.compile(r"^(python run\.py|make|zenml|mlflow|bentoml)(\s|$)")


def readme_commands() -> list[str]:
    """Shell commands the README shows: lines of its code blocks and inline code that start with a command."""
    text = README.read_text()
    found: list[str] = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S):
        found += [line.split("  #")[0].strip() for line in block.splitlines()]
    found += re.findall(r"`([^`\n]+)`", text)
    commands = []
    for candidate in found:
        for part in candidate.split("&&"):
            part = re.sub(r"\s{2,}\(.*$", "", part.strip())  # "make dashboard   (what it does)"
            if COMMAND_START.match(part) and part not in commands:
                commands.append(part)
    return commands


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (PROJECT_ROOT / "Makefile").read_text(), flags=re.M))


def parses(command: str) -> tuple[bool, str]:
    """Whether the command names a real command and real options (parsed up to `--help`, nothing run)."""
    words = shlex.split(command.replace("…", "x"))
    if words[0] == "make":
        target = next((w for w in words[1:] if "=" not in w), "all")
        return target in makefile_targets(), f"no Makefile target `{target}`"
    if words[:2] == ["python", "run.py"]:
        from cli import cli

        result = CliRunner().invoke(cli, [*words[2:], "--help"])
        return result.exit_code == 0, result.output[-500:]
    result = CliRunner().invoke(tool_cli(words[0]), [*words[1:], "--help"])
    return result.exit_code == 0, result.output[-500:]


def tool_cli(name: str):
    """The click command line of ZenML, MLflow or BentoML, in-process (a `--help` parse needs no new process)."""
    if name == "zenml":
        from zenml.cli.cli import cli
    elif name == "mlflow":
        from mlflow.cli import cli
    else:
        from bentoml_cli.cli import cli
    return cli


def test_readme_commands_all_parse():
    commands = readme_commands()
    assert len(commands) > 30 and any(c.startswith("python run.py train --data") for c in commands)
    broken = [f"{command}: {why}" for command in commands for ok, why in [parses(command)] if not ok]
    assert not broken, "\n".join(broken)


def test_a_command_that_does_not_exist_is_caught():
    assert not parses("zenml model version describe bike_demand production")[0]
    assert not parses("python run.py train --no-such-option")[0]
    assert not parses("make no-such-target")[0]
    assert parses("python run.py deploy --model-name x --port 9000")[0]


def hint_commands(output: str) -> list[str]:
    """Commands the CLI printed as hints: `label: command` lines and the indented lines of `Where to look:`."""
    commands = []
    for line in output.splitlines():
        line = re.sub(r"\s{2,}\(.*$", "", line.strip())
        line = re.sub(r"^(try it|status|stop it):\s+", "", line)
        commands += [line] if COMMAND_START.match(line) else []
        commands += re.findall(r"Fix: `([^`]+)`", line)
    return commands


@pytest.mark.integration
def test_your_own_model_end_to_end_with_the_printed_hints(zenml_client, data_dir):
    """A churn table the project has never seen: train, then deploy, try it, status, stop it and monitor, with
    no --model-name; every hint printed on the way runs (cheap ones) or parses."""
    table = make_churn_table(rows=700, seed=11)
    table = table.rename(columns={"churned": "left_us", "customer_id": "account"})
    data = data_dir / "accounts.csv"
    table.to_csv(data, index=False)

    trained = run_cli("train", "--data", str(data), "--target", "left_us")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "model `accounts` version 1" in trained.stdout and "PROMOTED" in trained.stdout
    assert "estimator: hist_gradient_boosting (" in trained.stdout
    assert "there was no production version to compare with" in trained.stdout
    for command in hint_commands(trained.stdout[trained.stdout.index("Where to look:") :]):
        if command.startswith("zenml"):
            ran = run_zenml(*shlex.split(command)[1:])
            assert ran.returncode == 0, f"{command}: {ran.stderr[-1500:]}"
        elif command.startswith("python run.py card"):  # the model card of a model the project has never seen
            card = run_cli(*shlex.split(command)[2:])
            assert card.returncode == 0, card.stderr[-2000:]
            assert card.stdout.startswith("# Model card: accounts version 1\n"), card.stdout[:500]
            assert "Predicts `left_us` (classification), classes `no`, `yes`" in card.stdout, card.stdout[:800]
            assert "| `account` | dropped | identifier-like" in card.stdout, card.stdout
        else:
            assert parses(command)[0], command

    try:
        deployed = run_cli("deploy")
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert deployed.stderr.startswith("model `accounts` (the model most recently trained here")
        hints = hint_commands(deployed.stdout)
        assert len(hints) == 3, deployed.stdout
        try_it, status, stop_it = hints
        tried = run_cli(*shlex.split(try_it)[2:])
        assert tried.returncode == 0, tried.stderr[-2000:]
        labels_and_probabilities = [line.split("\t") for line in tried.stdout.split("\n") if line]
        assert len(labels_and_probabilities) == 3
        assert all(label in ("yes", "no") and 0 <= float(p) <= 1 for label, p in labels_and_probabilities)
        shown = run_cli(*shlex.split(status)[2:])
        assert shown.returncode == 0 and "accounts" in shown.stdout and "healthy" in shown.stdout, shown.stdout
        everything = run_cli("status")  # no name: every model served on the active stack
        assert "every model" in everything.stdout and "accounts" in everything.stdout, everything.stdout

        output = data_dir / "accounts_predictions.csv"
        predicted = run_cli("predict", "--input", str(data), "--output", str(output))
        assert predicted.returncode == 0, predicted.stderr[-2000:]
        written = pd.read_csv(output)
        assert len(written) == len(table) and {"prediction", "probability"} <= set(written.columns)
    finally:
        stopped = run_cli("undeploy")
    assert stopped.returncode == 0 and "1 server(s) stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert parses(stop_it)[0]

    missing = run_cli("predict", "--input", str(data))
    assert missing.returncode == 2
    fixes = hint_commands(missing.stderr)
    assert fixes and all(parses(fix)[0] for fix in fixes), missing.stderr

    # Monitoring follows the same model and retrains it on its own data; rows it has already seen are not doubled.
    batch = pd.concat([table.head(150), make_churn_table(rows=150, seed=12).rename(columns={"churned": "left_us"})])
    batch_path = data_dir / "accounts_batch.csv"
    batch.drop(columns=["customer_id"], errors="ignore").to_csv(batch_path, index=False)
    monitored = run_cli("monitor", "--batch", str(batch_path), "--retrain", "always")
    assert monitored.returncode == 0, monitored.stderr[-3000:]
    assert monitored.stderr.startswith("model `accounts`")
    assert (
        "Retraining on 700 rows from the dataset, 150 labelled rows from the batch, 150 exact duplicate rows dropped"
        in (monitored.stdout)
    ), monitored.stdout
