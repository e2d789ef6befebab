"""ZenML processes side by side on one configuration file: ZenML 0.98 rewrites the file in place each time a client
starts, and a process reading it meanwhile fails. With the project's environment (lifecycle/atomic_files.py) the
writes are atomic and no process fails; without it, the same race fails (so the check can fail, and a ZenML version
that fixes the race shows up here)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lifecycle.atomic_files import make_zenml_config_writes_atomic

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Loads ZenML's client configuration (which rewrites the file) again and again for a few seconds; prints how many
# loads failed. With "atomic" as the second argument, the project's environment is set first, as run.py does.
RACER = textwrap.dedent(
    """
    import sys, time
    if sys.argv[2] == "atomic":
        from lifecycle.environment import configure_environment
        configure_environment()
    from zenml.client import ClientConfiguration
    failures, end = 0, time.time() + float(sys.argv[3])
    while time.time() < end:
        try:
            ClientConfiguration(config_file=sys.argv[1])
        except Exception:
            failures += 1
            if sys.argv[2] != "atomic":
                break  # the race is shown
    print(failures)
    """
)


def race(config: Path, mode: str, seconds: float, processes: int = 3) -> list[int]:
    config.write_text("active_stack_id: 7562825b-81fd-4210-aa24-6e5d84ae61cf\n")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "ZENML_CONFIG_PATH": str(config.parent / "zenml")}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(config), mode, str(seconds)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(processes)
    ]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), outputs
    return [int(output.strip().splitlines()[-1]) for output in outputs]


@pytest.mark.integration  # three ZenML processes racing for seconds: `make test`, not `make test-fast`
def test_processes_sharing_zenmls_configuration_never_read_half_a_file(tmp_path):
    assert race(tmp_path / "config.yaml", "atomic", seconds=3) == [0, 0, 0]
    assert "active_stack_id" in (tmp_path / "config.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


@pytest.mark.integration
def test_without_atomic_writes_the_same_race_fails(tmp_path):
    assert sum(race(tmp_path / "config.yaml", "in-place", seconds=10)) > 0


def test_zenmls_writer_keeps_the_files_permissions(tmp_path):
    make_zenml_config_writes_atomic()
    from zenml.utils import yaml_utils

    path = tmp_path / "config.yaml"
    path.write_text("old: 1\n")
    path.chmod(0o600)
    yaml_utils.write_yaml(str(path), {"new": 2})
    assert path.read_text() == "new: 2\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert getattr(yaml_utils.write_yaml, "writes_atomically", False)
