"""Every command a user is shown works: the commands of the README and the guide's pages (docs/*.md) parse, their
relative links lead to a file (and heading) that exists, and the commands the CLI prints as hints (`Where to
look`, `try it`, `status`, `stop it`, `Fix:`) run, for a model trained on a CSV the project has never seen,
without `--model-name` (the commands follow the model trained last)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import PROJECT_ROOT, make_churn_table, run_cli

from lifecycle.hints import run_hint, tool_hint

README = PROJECT_ROOT / "README.md"
COMMAND_START = re.compile(r"^((?:\.venv/bin/)?python run\.py|make|(?:\.venv/bin/)?(?:zenml|mlflow|bentoml))(\s|$)")
# What a shell the user opens in the project folder has: the system's PATH, no environment activated.
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"
FENCED = re.compile(r"^```.*?^```", flags=re.S | re.M)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", flags=re.M)
# Pages a generated project renders from the template (copier.yml): checked here, in the template itself.
RENDERED_PAGES = [PROJECT_ROOT / "README.md.jinja"]


def guide_pages() -> list[Path]:
    """The README and the guide's pages in docs/."""
    return [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[tuple[str, str]]:
    """Shell commands the README and the guide's pages show, each once, with the first page that shows it."""
    commands: dict[str, str] = {}
    for page in guide_pages():
        for command in page_commands(page.read_text()):
            commands.setdefault(command, page.name)
    return list(commands.items())


def page_commands(text: str) -> list[str]:
    """Shell commands a page shows: lines of its code blocks and inline code that start with a command."""
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
    words[0] = words[0].removeprefix(".venv/bin/")
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
    """Every page of the guide is read (none is skipped by name), and each command it shows parses."""
    pages = guide_pages()
    assert len(pages) > 1 and all(page.read_text().strip() for page in pages)
    commands = readme_commands()
    assert len(commands) > 30 and any(c.startswith("python run.py train --data") for c, _ in commands)
    broken = [f"{page}: {command}: {why}" for command, page in commands for ok, why in [parses(command)] if not ok]
    assert not broken, "\n".join(broken)


def test_the_readme_shows_the_commands_to_start_with():
    shown = page_commands(README.read_text())
    assert {"make run", "make test", "make test-fast"} <= set(shown), shown


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: link text kept, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings (outside code blocks); a repeated heading gets -1, -2, ..."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCED.sub("", page.read_text())):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def relative_links(text: str) -> list[str]:
    """Link and image targets of a page outside code (no web or mail addresses); template tags left out."""
    text = re.sub(r"\[\[.*?\]\]|\[%.*?%\]", "", FENCED.sub("", text))
    text = re.sub(r"`[^`\n]*`", "", text)
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z][\w+.-]*:", target)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page.read_text()):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{page.name}: {target} (no such heading in {linked.name})")
    return broken


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    pages = guide_pages() + [page for page in RENDERED_PAGES if page.is_file()]
    assert sum(len(relative_links(page.read_text())) for page in pages) > 20
    broken = [problem for page in pages for problem in broken_links(page)]
    assert not broken, "\n".join(broken)


@pytest.mark.skipif(not (PROJECT_ROOT / "copier.yml").is_file(), reason="copier.yml stays with the template")
def test_no_link_leads_to_a_file_a_generated_project_may_leave_out():
    """Files copier.yml leaves out of a project by its answers (benchmarks, some stacks) are not linked to: the
    guide's pages are copied into every generated project, whose own run of these tests checks their links."""
    optional = [
        PROJECT_ROOT / path for path in re.findall(r"%\]/(.+?)\[% endif", (PROJECT_ROOT / "copier.yml").read_text())
    ]
    assert optional
    linked = [
        (page.name, (page.parent / target.partition("#")[0]).resolve())
        for page in guide_pages() + [page for page in RENDERED_PAGES if page.is_file()]
        for target in relative_links(page.read_text())
    ]
    assert not [(name, str(path)) for name, path in linked for out in optional if path == out or out in path.parents]


def test_every_guide_page_is_one_click_from_the_readme():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in relative_links(README.read_text())}
    assert not [page.name for page in guide_pages()[1:] if page.resolve() not in linked]


def test_the_link_check_catches_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "other.md").write_text(
        "# Serving: deploy, predict\n\n```\n# not a heading\n```\n## Canary and shadow\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "[a](other.md#serving-deploy-predict) [b](other.md#canary-and-shadow) [c](missing.md) "
        "[d](other.md#not-a-heading) ![e](img.png) [f](https://example.com/x.md) `[g](code.md)`\n"
    )
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#not-a-heading (no such heading in other.md)",
        "page.md: img.png (no such file)",
    ]


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


def in_plain_shell(command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """A printed command run as the user runs it: by a shell in the project folder that has not activated the
    project's `.venv` (the system's PATH; this test session's ZenML store)."""
    env = {name: value for name, value in os.environ.items() if name not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=PLAIN_PATH, NO_COLOR="1")
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.integration
def test_printed_commands_work_from_a_shell_that_activated_nothing():
    """The hints name the project's own interpreter, and what they print runs in a plain shell: `status` for a
    model nothing serves prints the deploy command, which (with no such model) fails with its own Fix, which
    parses; a bare `python run.py` in that shell would not even import the project."""
    assert run_hint("status") == ".venv/bin/python run.py status" and tool_hint("zenml model list").startswith(
        ".venv/bin/zenml "
    )
    bare = in_plain_shell("python run.py status 2>&1 || python3 run.py status 2>&1")
    assert bare.returncode != 0, bare.stdout  # why the hints do not say `python run.py`
    status = in_plain_shell(run_hint("status --model-name nobody_here"))
    assert status.returncode == 0, status.stderr[-2000:]
    deploy = status.stdout.rsplit(": ", 1)[-1].strip()
    assert deploy == ".venv/bin/python run.py deploy --model-name nobody_here", status.stdout
    deployed = in_plain_shell(deploy)
    assert deployed.returncode == 2 and "Traceback" not in deployed.stderr, deployed.stderr[-2000:]
    shown = [command for command in re.findall(r"`([^`]+)`", deployed.stderr) if COMMAND_START.match(command)]
    assert len(shown) == 3 and all(command.startswith(".venv/bin/") for command in shown), deployed.stderr
    assert all(parses(command)[0] for command in shown) and shown[-1] == ".venv/bin/zenml model list", shown


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
        if command.startswith(".venv/bin/zenml"):
            ran = in_plain_shell(command)
            assert ran.returncode == 0, f"{command}: {ran.stderr[-1500:]}"
        elif command.startswith(".venv/bin/python run.py card"):  # the model card of a model the project has never seen
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
        tried = in_plain_shell(try_it)
        assert tried.returncode == 0, tried.stderr[-2000:]
        labels_and_probabilities = [line.split("\t") for line in tried.stdout.split("\n") if line]
        assert len(labels_and_probabilities) == 3
        assert all(label in ("yes", "no") and 0 <= float(p) <= 1 for label, p in labels_and_probabilities)
        shown = in_plain_shell(status)
        assert shown.returncode == 0 and "accounts" in shown.stdout and "healthy" in shown.stdout, shown.stdout
        everything = run_cli("status")  # no name: every model served on the active stack
        assert "every model" in everything.stdout and "accounts" in everything.stdout, everything.stdout

        output = data_dir / "accounts_predictions.csv"
        predicted = run_cli("predict", "--input", str(data), "--output", str(output))
        assert predicted.returncode == 0, predicted.stderr[-2000:]
        written = pd.read_csv(output)
        assert len(written) == len(table) and {"prediction", "probability"} <= set(written.columns)
    finally:
        stopped = in_plain_shell(stop_it) if "stop_it" in locals() else run_cli("undeploy")
    assert stopped.returncode == 0 and "1 server(s) stopped" in stopped.stdout, stopped.stdout + stopped.stderr

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
