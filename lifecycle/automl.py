"""The H2O AutoML challenger: a local H2O cluster for the search (always stopped after it), the leader exported as a
MOJO and wrapped as a `MojoModel`, which every consumer of a model can call like the sklearn one.

Needs the `automl` extra (the `h2o` package) and a Java 8-17 JDK (`javac` compiles the MOJO scorer once per model);
`require_automl` says which is missing, in one line, before anything starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from lifecycle.config import H2OAutoMLConfig, TrainingConfig
from lifecycle.errors import ConfigError, LifecycleError
from lifecycle.mojo_model import SCORER_CLASS, H2OFeatures, MojoModel, java_command
from lifecycle.validation import FeatureSchema

INSTALL_EXTRA = "pip install -c constraints.txt -e '.[automl]'  (in the project's .venv: `make automl-env`)"
SCORER_SOURCE = Path(__file__).resolve().parent / "java" / f"{SCORER_CLASS}.java"
# The project's metrics as H2O names them, for ranking the leaderboard (the rest: H2O's default for the task).
SORT_METRICS = {"rmse": "RMSE", "mae": "MAE", "roc_auc": "AUC"}


def require_automl() -> None:
    """A ConfigError naming what the H2O challenger lacks (the `h2o` package, `java`, `javac`) and how to get it."""
    if importlib.util.find_spec("h2o") is None:
        raise ConfigError(
            f"the h2o_automl challenger needs the `h2o` package, which is not installed. Fix: {INSTALL_EXTRA}."
        )
    if java_command() is None or _javac() is None:
        missing = "java" if java_command() is None else "javac"
        raise ConfigError(
            f"the h2o_automl challenger needs a Java 8-17 JDK and `{missing}` was not found (JAVA_HOME or PATH). "
            "Fix: install one, e.g. `apt-get install openjdk-17-jdk-headless`."
        )


def _javac() -> str | None:
    java = java_command()
    beside = Path(java).resolve().parent / "javac" if java else None
    return str(beside) if beside is not None and beside.is_file() else shutil.which("javac")


@dataclass
class Cluster:
    """A running local H2O cluster: its process and address."""

    pid: int
    port: int
    name: str


def _children_named(name: str) -> list[psutil.Process]:
    """This process's child processes whose command line names the cluster (one that failed to start is one)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if name in " ".join(child.cmdline()):
                found.append(child)
    return found


def _stop_processes(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the cluster runs (main thread only), so its `finally` stops it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def memory_bytes(size: str) -> int:
    """`2G` or `512m` in bytes (the Java heap's notation, as `max_mem_size` is written in the config)."""
    return int(size[:-1]) << (30 if size[-1] in "gG" else 20)


@contextlib.contextmanager
def h2o_cluster(settings: H2OAutoMLConfig) -> Iterator[Cluster]:
    """A local H2O cluster bound to 127.0.0.1 (first free port from `settings.port`), connected; stopped when the
    block ends, however it ends (an error, Ctrl-C, SIGTERM): nothing is left running."""
    import h2o
    from h2o.backend import H2OLocalServer

    name = f"mlops-lifecycle-automl-{uuid.uuid4().hex[:12]}"
    with _terminate_as_interrupt():
        server = None
        try:
            H2OLocalServer._TIME_TO_START = settings.startup_timeout_secs
            server = H2OLocalServer.start(
                nthreads=settings.nthreads,
                max_mem_size=memory_bytes(settings.max_mem_size),
                port=f"{settings.port}+",
                name=name,
                verbose=False,
                bind_to_localhost=True,
            )
            with contextlib.redirect_stdout(io.StringIO()):  # its version-age notice
                h2o.connect(server=server, verbose=False)
            h2o.no_progress()
            yield Cluster(pid=server._process.pid, port=server.port, name=name)
        finally:
            with contextlib.suppress(Exception):
                h2o.connection().close()
            if server is not None:
                server._process = None  # its own shutdown also runs at exit: nothing left for it to do
            _stop_processes(_children_named(name))


def _compile_scorer(genmodel_jar: Path, directory: Path) -> bytes:
    javac = _javac()
    if javac is None:
        raise LifecycleError("`javac` not found: a Java 8-17 JDK compiles the H2O model's scorer")
    result = subprocess.run(
        [javac, "-nowarn", "-cp", str(genmodel_jar), "-d", str(directory), str(SCORER_SOURCE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise LifecycleError(f"compiling the H2O model's scorer failed: {result.stderr.strip()[-500:]}")
    return (directory / f"{SCORER_CLASS}.class").read_bytes()


@dataclass
class AutoMLResult:
    model: MojoModel
    leaderboard: pd.DataFrame
    train_seconds: float  # cluster start, search and export


def train_automl(train: pd.DataFrame, schema: FeatureSchema, training: TrainingConfig, metric: str) -> AutoMLResult:
    """Run H2O AutoML on the training rows (the same columns the sklearn model gets) and return its leader."""
    require_automl()
    settings = training.h2o_automl
    started = time.perf_counter()
    features = H2OFeatures(schema, train[schema.model_inputs])
    table = features.frame(train[schema.model_inputs])
    classification = schema.task == "classification"
    target = train[schema.target]
    table[schema.target] = target.astype(str).to_numpy() if classification else target.astype(float).to_numpy()
    types = {column: "enum" if column in features.categorical else "real" for column in features.columns}
    types[schema.target] = "enum" if classification else "real"
    with h2o_cluster(settings), tempfile.TemporaryDirectory(prefix="h2o-automl-") as work:
        import h2o
        from h2o.automl import H2OAutoML

        frame = h2o.H2OFrame(table, column_types=types)
        search = H2OAutoML(
            max_models=settings.max_models,
            max_runtime_secs=settings.max_runtime_secs,
            exclude_algos=list(settings.exclude_algos) or None,
            nfolds=settings.nfolds,
            seed=settings.seed if settings.seed is not None else training.seed,
            sort_metric=SORT_METRICS.get(metric, "AUTO"),
            verbosity=None,
        )
        search.train(x=features.columns, y=schema.target, training_frame=frame)
        leader = search.leader
        if leader is None:
            raise LifecycleError(
                "H2O AutoML built no model within its limits. Fix: raise training.h2o_automl.max_runtime_secs."
            )
        with warnings.catch_warnings():  # its advice to install polars for a faster conversion of a few rows
            warnings.simplefilter("ignore")
            leaderboard = h2o.as_list(search.leaderboard, use_pandas=True)
        mojo_path = Path(leader.download_mojo(path=work, get_genmodel_jar=True, genmodel_name="h2o-genmodel.jar"))
        domain = frame[schema.target].levels()[0] if classification else None
        algorithm = leader.algo
        model_id = leader.model_id
        genmodel = Path(work) / "h2o-genmodel.jar"
        scorer_class = _compile_scorer(genmodel, Path(work))
        model = MojoModel(
            mojo=mojo_path.read_bytes(),
            genmodel_jar=genmodel.read_bytes(),
            scorer_class=scorer_class,
            features=features,
            task=schema.task,
            classes=sorted(target.unique().tolist()) if classification else None,
            domain=domain,
            algorithm=algorithm,
            model_id=model_id,
            jvm_options=settings.scorer_jvm_options,
        )
    return AutoMLResult(model=model, leaderboard=leaderboard, train_seconds=time.perf_counter() - started)
