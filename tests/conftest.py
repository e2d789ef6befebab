"""Shared fixtures: one temporary ZenML store per test session, and small data files.

The environment is set before ZenML is imported anywhere, so no test touches the user's own ZenML
configuration (~/.config/zenml), the project's `.zen` (which remembers the user's active stack), or leaves
state behind: the tests use a repository marker in a temporary folder, with the project as source root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The demo's config, which the tests train with: configs/training.yaml here; in a project generated from the
# template, configs/demo.yaml (its configs/training.yaml describes the user's data).
DEMO_CONFIG = next(
    path
    for path in (PROJECT_ROOT / "configs" / "demo.yaml", PROJECT_ROOT / "configs" / "training.yaml")
    if path.is_file()
)
_STATE = Path(tempfile.mkdtemp(prefix="mlops-lifecycle-tests-"))

from lifecycle.environment import configure_environment, isolated_environment  # noqa: E402

os.environ.update(isolated_environment(_STATE, log_level="WARN"))
configure_environment()

BIKE_DATA = PROJECT_ROOT / "data" / "bike_sharing_hourly.csv.gz"

# Notes for the end of the run (e.g. how many generated cases a property tried). Set by the main process before
# pytest-xdist starts its workers, so the workers inherit the folder and the main process prints what they wrote.
_MAIN_PROCESS = "PYTEST_XDIST_WORKER" not in os.environ
if _MAIN_PROCESS:
    os.environ["MLOPS_TEST_NOTES"] = tempfile.mkdtemp(prefix="mlops-lifecycle-test-notes-")
NOTES = Path(os.environ["MLOPS_TEST_NOTES"])


def note(text: str) -> None:
    """Printed once at the end of the test run, with or without workers."""
    with open(NOTES / f"{os.getpid()}.txt", "a") as notes:
        notes.write(text.rstrip() + "\n")


def pytest_terminal_summary(terminalreporter):
    if not _MAIN_PROCESS:
        return
    for path in sorted(NOTES.glob("*.txt")):
        terminalreporter.write_line(path.read_text().rstrip())
    shutil.rmtree(NOTES, ignore_errors=True)


ZENML_CLI = str(Path(sys.executable).parent / "zenml")


def run_cli(
    *args: str, timeout: float = 900, wrapper: tuple[str, ...] = (), unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """`python run.py ARGS` as a user runs it (in this session's store), output captured; `unset` names
    variables of this session to leave out (e.g. ZENML_LOGGING_VERBOSITY, to see the user's default output)."""
    env = {name: value for name, value in os.environ.items() if name not in unset}
    return subprocess.run(
        [*wrapper, sys.executable, "run.py", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**env, "NO_COLOR": "1"},
    )


def run_zenml(*args: str) -> subprocess.CompletedProcess:
    """ZenML's own command line (`zenml stack set ...`), in this session's store."""
    return subprocess.run(
        [ZENML_CLI, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


def start_cli(log: Path, *args: str) -> subprocess.Popen:
    """`python run.py ...` in a session of its own (so that it can be killed with all it started), output to `log`."""
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, "run.py", *args],
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,
        )


def activate_stack(name: str):
    """Make a registered stack active in this process; returns what it offers."""
    from zenml.client import Client

    from stacks.capabilities import active_capabilities

    client = Client()
    client.activate_stack(client.get_stack(name, allow_name_prefix_match=False).id)
    return active_capabilities()


def needs_stacks(*names: str) -> pytest.MarkDecorator:
    """Skip where this project has no such stack file (a project generated from the template without them)."""
    missing = [name for name in names if not (PROJECT_ROOT / "stacks" / f"{name}.yaml").is_file()]
    return pytest.mark.skipif(
        bool(missing), reason=f"this project was generated without the {', '.join(missing)} stack(s) (copier.yml)"
    )


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Waits for an event (a request answered, a line written) instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        time.sleep(0.02)


def free_port_block() -> int:
    """A free port whose next few neighbours are free too (each server test gets its own range)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 60000:
            return port
    raise RuntimeError("no free port")


# The longest test files first (measured; test_deployment.py alone is about a third of `make test`): the two
# workers take whole files in collection order (the Makefile turns xdist's own reordering off), so starting the
# long ones early keeps one worker from finishing alone with the last of them. `make test-e2e` takes its files
# (and the e2e tests of the others) in the same order.
LONGEST_FIRST = [
    "test_canary.py",  # the end-to-end suite's longest file by far (four canaries on each backend)
    "test_deployment.py",
    "test_release_race.py",
    "test_release.py",
    "test_spark_journey.py",  # one long test: last, it would run alone on one worker
    "test_compare.py",
    "test_production_loop.py",
    "test_stacks.py",
    "test_spark.py",
    "test_deployment_paths.py",
    "test_reliability.py",
    "test_template.py",
    "test_hints.py",
    "test_monitoring.py",
    "test_modeling.py",
    "test_training_pipeline.py",
    "test_dashboard.py",
    "test_served_record.py",
    "test_workflows.py",
    "test_data_contract_served.py",
    "test_security_data_paths.py",
    "test_team.py",
]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return _STATE


@pytest.fixture(scope="session")
def zenml_client():
    """A client on the session's fresh SQLite store (created on first use, with a `default` stack)."""
    from zenml.client import Client

    client = Client()
    assert Path(client.zen_store.url.removeprefix("sqlite:///")).is_relative_to(_STATE)
    return client


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _STATE / "data"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def bike_slice(data_dir: Path) -> Path:
    """Four months of the bike data (about 2,900 rows): small, but with the real defects and drift."""
    table = pd.read_csv(BIKE_DATA)
    dates = pd.to_datetime(table["dteday"])
    small = table[(dates >= "2011-05-01") & (dates < "2011-09-01")]
    path = data_dir / "bike_slice.csv"
    small.to_csv(path, index=False)
    return path


def make_churn_table(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    """A classification table with categorical features, missing values and a learnable signal."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "pro", "enterprise"], size=rows, p=[0.5, 0.35, 0.15])
    region = rng.choice(["north", "south", "east", "west"], size=rows).astype(object)
    tenure = rng.integers(1, 72, size=rows).astype(float)
    tickets = rng.poisson(2, size=rows).astype(float)
    spend = np.round(rng.normal(60, 20, size=rows), 2)
    logit = 1.2 - 0.06 * tenure + 0.5 * tickets - 1.0 * (plan == "enterprise") + 0.8 * (region == "south")
    churned = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    table = pd.DataFrame(
        {
            "customer_id": [f"C{index:05d}" for index in range(rows)],
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "support_tickets": tickets,
            "monthly_spend": spend,
            "churned": churned,
        }
    )
    # Holes in features, as real exports have them.
    table.loc[rng.random(rows) < 0.08, "region"] = None
    table.loc[rng.random(rows) < 0.05, "tenure_months"] = np.nan
    table.loc[rng.random(rows) < 0.05, "monthly_spend"] = np.nan
    return table


@pytest.fixture(scope="session")
def churn_csv(data_dir: Path) -> Path:
    path = data_dir / "churn.csv"
    make_churn_table().to_csv(path, index=False)
    return path


def _processes_started_by_this_session() -> dict[int, str]:
    """Processes (other than this one and its ancestors) whose environment points at this session's state
    (or a folder inside it, like a comparison's workspace)."""
    marker = f"MLOPS_STATE_DIR={_STATE}".encode()
    mine, pid = set(), os.getpid()
    while pid > 1:
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            in_environment = any(v.startswith(marker) for v in (entry / "environ").read_bytes().split(b"\0"))
            # nginx (a model's front door) clears its environment; its command line names its prefix
            if in_environment or str(_STATE).encode() in (entry / "cmdline").read_bytes():
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def no_server_left_behind():
    """Fails the session if any server a test started is still running at the end (and stops it)."""
    yield
    import signal
    import time

    if "lifecycle.mojo_model" in sys.modules:  # H2O models loaded by the tests themselves: their scorer JVMs
        sys.modules["lifecycle.mojo_model"].stop_scorers()
    deadline = time.monotonic() + 10  # a server's children may take a moment to see it gone (a JVM at its EOF)
    time.sleep(1)
    left = _processes_started_by_this_session()
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = _processes_started_by_this_session()
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running by the tests: {left}"
