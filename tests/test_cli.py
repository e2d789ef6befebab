"""The command line's shape: `python run.py` and the installed `mlops-lifecycle` are one CLI, `--verbose` reaches the
workflow as a parameter (never through the environment), and each command stays a thin layer over one workflow."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import click
import pytest
from click.testing import CliRunner
from conftest import PROJECT_ROOT

from lifecycle.errors import LifecycleError

COMMAND_LINES_LIMIT = 40


def test_the_installed_script_is_the_same_command_line():
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert '[project.scripts]\nmlops-lifecycle = "cli:main"' in pyproject
    import cli
    import run

    assert run.cli is cli.cli and run.main is cli.main
    helped = subprocess.run(
        [sys.executable, "run.py", "--help"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "Usage: run.py [OPTIONS] [COMMAND]" in helped.stdout, helped.stderr


def test_verbose_is_handed_to_the_workflow_not_set_in_the_environment():
    import workflows.training as training
    from cli import cli

    def stop(config, say, verbose=False):
        raise LifecycleError(f"verbose={verbose}")

    with mock.patch.object(training, "train", stop), mock.patch.object(training, "validate_file", lambda _: None):
        for words, verbose in ((["--verbose"], True), ([], False), (["--verbose", "train"], True), (["train"], False)):
            result = CliRunner().invoke(cli, words)
            assert result.exit_code == 2 and f"verbose={verbose}" in result.output, (words, result.output)
    assert not any("VERBOSE" in name and name.startswith("MLOPS") for name in os.environ)


def _commands(group: click.Group) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found += _commands(command) if isinstance(command, click.Group) else [command]
    return found


def test_each_command_function_is_short():
    """A command parses, calls one workflow function and prints: its function stays under the limit."""
    from cli import cli

    names = {command.callback.__name__ for command in _commands(cli) if command.callback}
    lengths = {}
    for path in (PROJECT_ROOT / "cli").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.decorator_list and node.name in names:
                lengths[f"{path.name}:{node.name}"] = (node.end_lineno or node.lineno) - node.lineno + 1
    assert len(lengths) >= 20, lengths
    long = {name: lines for name, lines in lengths.items() if lines > COMMAND_LINES_LIMIT}
    assert not long, long


def test_run_py_is_only_the_entry_point():
    assert len(Path(PROJECT_ROOT / "run.py").read_text().splitlines()) < 100


@pytest.mark.integration  # three commands in subprocesses: left out of `make test-fast`
def test_a_zenml_server_that_went_away_is_one_line_and_exit_3(tmp_path):
    """Pointed at a ZenML server that does not answer (a team's server stopped, a closed port; or an address
    that answers but is no ZenML server), a command ends with one line naming the address and the fix, exit 3,
    without ZenML's retries and traceback. `team down` still runs: it needs no store."""
    import http.server
    import threading

    from conftest import free_port_block

    closed = f"http://127.0.0.1:{free_port_block()}"
    not_zenml = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=not_zenml.serve_forever, daemon=True).start()
    try:
        for url, said in ((closed, "does not answer"), (f"http://127.0.0.1:{not_zenml.server_port}", "HTTP 404")):
            env = {**os.environ, "ZENML_STORE_URL": url, "ZENML_STORE_USERNAME": "default", "NO_COLOR": "1"}
            done = subprocess.run(
                [sys.executable, "run.py", "history"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
            )
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 3 and len(lines) == 1 and said in lines[0] and url in lines[0], done.stderr
            assert "Fix:" in lines[0]
        env["MLOPS_STATE_DIR"] = str(tmp_path)
        stopped = subprocess.run(
            [sys.executable, "run.py", "team", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
        )
        assert stopped.returncode == 0, stopped.stderr
    finally:
        not_zenml.shutdown()
