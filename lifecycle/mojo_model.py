"""An H2O MOJO as a model like the sklearn one: `predict` / `predict_proba` on the request contract's DataFrame,
scored by one long-lived JVM per process.

The object carries everything scoring needs as bytes (the MOJO zip, H2O's `h2o-genmodel.jar` and the compiled
`MojoScorer` class from `lifecycle/java/`), so it pickles into every artifact, bento and MLflow model as it is and
needs only a `java` command where it is loaded: not the `h2o` package, not a running H2O cluster. The JVM starts on
the first prediction, answers every later one over its standard input and output, and stops when the process exits
(or the object is collected). Training, evaluation, the gates, batch scoring and every server all call this one
object, so their predictions are the same numbers by construction.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from lifecycle.errors import LifecycleError
from lifecycle.modeling import FAST_ROWS, CalendarFeatures, _calendar
from lifecycle.validation import FeatureSchema, canonical_category

SCORER_CLASS = "MojoScorer"
JAVA_MISSING = (
    "an H2O model needs Java (8 to 17) to predict, and no `java` command was found (JAVA_HOME or PATH). "
    "Fix: install it, e.g. `apt-get install openjdk-17-jre-headless`."
)


def java_command() -> str | None:
    """The `java` of JAVA_HOME, else the one on PATH (None when there is none)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


class H2OFeatures:
    """The columns an H2O model sees, derived from the model inputs: the calendar parts of the time columns (the
    same `CalendarFeatures` the sklearn model uses), numbers as floats, categories in their canonical text."""

    def __init__(self, schema: FeatureSchema, train_inputs: pd.DataFrame):
        self.inputs = list(schema.model_inputs)
        self.time_columns = list(schema.time_columns)
        self.numeric = list(schema.numeric_features)
        self.categorical = list(schema.categorical_features)
        self.calendar = CalendarFeatures(schema.time_formats).fit(train_inputs[self.time_columns])
        self.columns = [*self.calendar.kept_, *self.numeric, *self.categorical]

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """The derived columns of `table`: floats (NaN when missing) and category strings."""
        out: dict[str, Any] = {}
        if self.calendar.kept_:
            times = table[self.time_columns].to_numpy(dtype=object)
            parts = (
                _calendar(times, self.time_columns, self.calendar)
                if len(table) <= FAST_ROWS
                else self.calendar.transform(table[self.time_columns])
            )
            for index, name in enumerate(self.calendar.kept_):
                out[name] = parts[:, index]
        for column in self.numeric:
            out[column] = np.asarray(pd.to_numeric(table[column], errors="coerce"), dtype=float)
        for column in self.categorical:
            out[column] = [canonical_category(value) for value in table[column].to_numpy(dtype=object)]
        return pd.DataFrame(out, index=table.index, columns=self.columns)

    def lines(self, table: pd.DataFrame) -> list[str]:
        """One tab-separated line per row, as `MojoScorer` reads them (an empty cell is missing)."""
        frame = self.frame(table)
        cells: list[list[str]] = []
        for column in self.columns:
            values = frame[column].to_numpy(dtype=object)
            if column in self.categorical:
                cells.append([_text_cell(value) for value in values])
            else:
                cells.append(["" if value != value else repr(float(value)) for value in values])
        return ["\t".join(row) for row in zip(*cells, strict=True)] if cells else [""] * len(frame)


def _text_cell(value: str) -> str:
    return value.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _double(bits: str) -> float:
    return struct.unpack(">d", int(bits, 16).to_bytes(8, "big"))[0]


# The JVMs started here, by id: (the process that started it, the JVM, its error log). A forked child inherits
# the table but must never stop its parent's JVMs, hence the owner.
_STARTED: dict[int, tuple[int, subprocess.Popen, Any]] = {}


def stop_scorers() -> int:
    """Stops every scorer JVM this process started and still runs (a model's finalizer does it when the model is
    collected; a process about to report what it leaves running calls this first). Returns how many it stopped."""
    mine = [(process, errors) for owner, process, errors in list(_STARTED.values()) if owner == os.getpid()]
    for process, errors in mine:
        _Scorer.stop(process, errors)
    return len(mine)


class _Scorer:
    """One JVM running `MojoScorer` on one MOJO; one request at a time (a lock), answers read exactly."""

    def __init__(self, directory: Path, columns: list[str], jvm_options: list[str]):
        java = java_command()
        if java is None:
            raise LifecycleError(JAVA_MISSING)
        self.errors = (directory / f"scorer-{os.getpid()}-{id(self)}.log").open("w+b")
        classpath = os.pathsep.join([str(directory / "h2o-genmodel.jar"), str(directory)])
        self.process = subprocess.Popen(
            [java, *jvm_options, "-cp", classpath, SCORER_CLASS, str(directory / "model.zip"), *columns],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            encoding="utf-8",
            bufsize=1 << 16,
        )
        _STARTED[self.process.pid] = (os.getpid(), self.process, self.errors)
        self.lock = threading.Lock()
        if self._readline() != "ready":
            raise LifecycleError(f"the H2O model's scorer did not start: {self._failure()}")

    def _readline(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().rstrip("\n")

    def _failure(self) -> str:
        self.errors.flush()
        self.errors.seek(0)
        text = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        return text[-1] if text else f"the JVM exited with code {self.process.poll()}"

    def score(self, lines: list[str]) -> list[str]:
        assert self.process.stdin is not None
        with self.lock:
            try:
                self.process.stdin.write(f"{len(lines)}\n" + "".join(f"{line}\n" for line in lines))
                self.process.stdin.flush()
                answers = [self._readline() for _ in lines]
            except (BrokenPipeError, OSError) as exc:
                raise LifecycleError(f"the H2O model's scorer stopped: {self._failure()}") from exc
        if len(answers) and answers[-1] == "" and self.process.poll() is not None:
            raise LifecycleError(f"the H2O model's scorer stopped: {self._failure()}")
        return answers

    @staticmethod
    def stop(process: subprocess.Popen, errors: Any) -> None:
        """Close the JVM's input (it exits at the end of it), and kill it if it does not exit soon."""
        _STARTED.pop(process.pid, None)
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        errors.close()
        Path(errors.name).unlink(missing_ok=True)


class MojoModel(BaseEstimator):
    """A trained H2O model (an AutoML leader) with the sklearn model's prediction interface (an sklearn estimator
    by type too, so the backends that store sklearn models, BentoML's among them, take it as they take those)."""

    _estimator_type: str

    def __init__(
        self,
        *,
        mojo: bytes,
        genmodel_jar: bytes,
        scorer_class: bytes,
        features: H2OFeatures,
        task: str,
        classes: list[Any] | None,
        domain: list[str] | None,
        algorithm: str,
        model_id: str,
        jvm_options: list[str],
    ):
        self.mojo, self.genmodel_jar, self.scorer_class = mojo, genmodel_jar, scorer_class
        self.features = features
        self.task = task
        self.classes, self.domain = classes, domain
        self.algorithm, self.model_id = algorithm, model_id
        self.jvm_options = list(jvm_options)
        self.feature_names_in_ = np.asarray(features.inputs, dtype=object)
        self.n_features_in_ = len(features.inputs)
        self._estimator_type = "regressor" if task == "regression" else "classifier"
        if task == "classification":
            assert classes is not None and domain is not None
            self.classes_ = np.asarray(sorted(classes))  # as sklearn orders them: predict_proba's columns
            by_text = {str(value): value for value in classes}
            positions = {value: index for index, value in enumerate(self.classes_.tolist())}
            # H2O's label index -> position in classes_
            self._domain_positions = np.asarray([positions[by_text[label]] for label in domain])
        self._scorer: _Scorer | None = None
        self._scorer_pid = 0

    # Pickles carry the bytes, never the running JVM.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_scorer=None, _scorer_pid=0)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"MojoModel({self.algorithm}, {self.model_id}, {self.size_bytes()} bytes)"

    def size_bytes(self) -> int:
        """What the model adds to an artifact: MOJO, scoring jar and scorer class."""
        return len(self.mojo) + len(self.genmodel_jar) + len(self.scorer_class)

    def _directory(self) -> Path:
        """The files the JVM reads, written once per content (a folder named by their digest)."""
        digest = hashlib.sha256(self.mojo + self.genmodel_jar + self.scorer_class).hexdigest()[:20]
        directory = Path(tempfile.gettempdir()) / f"h2o-mojo-{digest}"
        if not (directory / f"{SCORER_CLASS}.class").is_file():
            staging = Path(tempfile.mkdtemp(prefix="h2o-mojo-staging-"))
            (staging / "model.zip").write_bytes(self.mojo)
            (staging / "h2o-genmodel.jar").write_bytes(self.genmodel_jar)
            (staging / f"{SCORER_CLASS}.class").write_bytes(self.scorer_class)
            try:
                staging.rename(directory)
            except OSError:  # another process wrote it first: the same bytes
                shutil.rmtree(staging, ignore_errors=True)
        return directory

    def scorer(self) -> _Scorer:
        """This process's JVM, started on first use (a forked child starts its own)."""
        if self._scorer is None or self._scorer_pid != os.getpid() or self._scorer.process.poll() is not None:
            scorer = _Scorer(self._directory(), self.features.columns, self.jvm_options)
            weakref.finalize(self, _Scorer.stop, scorer.process, scorer.errors)
            self._scorer, self._scorer_pid = scorer, os.getpid()
        return self._scorer

    def stop_scorer(self) -> None:
        if self._scorer is not None and self._scorer_pid == os.getpid():
            _Scorer.stop(self._scorer.process, self._scorer.errors)
        self._scorer, self._scorer_pid = None, 0

    def _answers(self, table: pd.DataFrame) -> list[list[str]]:
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"an H2O model predicts from a DataFrame with columns {self.features.inputs}")
        missing = [column for column in self.features.inputs if column not in table.columns]
        if missing:
            raise ValueError(f"columns are missing: {missing}")
        if len(table) == 0:
            return []
        return [answer.split("\t") for answer in self.scorer().score(self.features.lines(table))]

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        answers = self._answers(table)
        if self.task == "regression":
            return np.asarray([_double(answer[0]) for answer in answers], dtype=float)
        labels = np.asarray([int(answer[0]) for answer in answers], dtype=int)
        return self.classes_[self._domain_positions[labels]]

    def predict_proba(self, table: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression model has no predict_proba")
        probabilities = np.zeros((len(table), len(self.classes_)))
        for row, answer in enumerate(self._answers(table)):
            probabilities[row, self._domain_positions] = [_double(bits) for bits in answer[1:]]
        return probabilities


TrainedModel = Pipeline | MojoModel  # what the training pipeline hands on, and what a served model is


def h2o_treatments(schema: FeatureSchema) -> dict[str, str]:
    """What an H2O model does with each input column, in words (for the model card)."""
    calendar = f"time: orders the rows for the split; features {', '.join(CalendarFeatures.PARTS)} (H2O)"
    treatments = {column: calendar for column in schema.time_columns}
    treatments.update({column: "numeric: as is; H2O handles missing values" for column in schema.numeric_features})
    categorical = "categorical: H2O's own encoding of the canonical text; unseen values as missing"
    treatments.update({column: categorical for column in schema.categorical_features})
    return treatments
