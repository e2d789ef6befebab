"""Batch scoring on a Spark cluster with the pandas path's own functions, partition by partition.

Each Spark task gets one slice of the input (a Parquet row group range or a range of CSV lines) as pandas
frames (`mapInPandas`), reads them the way `read_table` reads a file, and calls `score_rows`: the same row checks
and the same `predict_scores` as `python run.py score`, with the model shipped once per executor (a broadcast).
Predictions are the pandas path's by construction (and tests/test_spark.py checks it).

Row numbers are positions in the input as the pandas path counts them: a first, light pass counts the rows of
every file split; a split's first row is the sum of the rows before it (files in name order, splits in byte
order). Request ids are `batch-<run>-<row>`, as on the pandas path.

What a task writes beside Spark's own output (the rows it could not score, its prediction-log lines) goes to a
file named after its slice, written whole and renamed into place: a task retried by Spark replaces its file
instead of adding a second copy. The driver holds the split counts only: its memory does not grow with the batch.

CSV input is read as lines (UTF-8): a quoted field holding a line break is not supported on Spark (convert such a
file to Parquet)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifecycle.data import PARQUET_SUFFIXES, as_categories, read_table
from lifecycle.errors import DataError
from lifecycle.scoring import score_rows
from lifecycle.validation import FeatureSchema

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lifecycle.config import SparkConfig

PATH, START = "_split_path", "_split_start"  # which file split a row comes from
LINE = "value"  # the text source's column


@dataclass
class SparkScoring:
    """What a Spark scoring job did (the data stays on disk: `output` and `skipped_folder`)."""

    rows: int
    scored_rows: int
    skipped_rows: int
    output: str
    skipped_folder: str
    splits: int
    input_format: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def spark_session(master_url: str, config: SparkConfig, app_name: str = "mlops-lifecycle") -> SparkSession:
    """A driver on this machine's loopback, without a UI, Arrow on, times in UTC."""
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        SparkSession.builder.master(master_url)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", config.driver_memory)
        .config("spark.executor.memory", config.executor_memory)
        .config("spark.sql.files.maxPartitionBytes", config.max_partition_bytes)
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(config.arrow_batch_rows))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )


def stop_session(spark: SparkSession) -> None:
    """Stop the job's executors on the cluster and the driver's own JVM (pyspark keeps it for the life of the
    Python process otherwise)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    spark.stop()
    if gateway is not None:
        gateway.shutdown()
        process = getattr(gateway, "proc", None)
        if process is not None:
            process.stdin.close() if process.stdin else None
            try:
                process.wait(timeout=30)
            except Exception:
                process.kill()
                process.wait(timeout=10)
    SparkContext._gateway = None
    SparkContext._jvm = None


def input_files(path: str | Path) -> tuple[list[Path], str]:
    """The files of a batch (a file, or a folder of them) and their format, `parquet` or `csv`."""
    source = Path(path)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))
    elif source.is_file():
        files = [source]
    else:
        raise DataError(f"batch {path} not found. Fix: pass an existing file or folder with --input.")
    if not files:
        raise DataError(f"batch folder {path} holds no files. Fix: point --input at CSV or Parquet files.")
    kinds = {"parquet" if f.name.lower().endswith(PARQUET_SUFFIXES) else "csv" for f in files}
    if len(kinds) > 1:
        raise DataError(f"batch folder {path} mixes Parquet and CSV files. Fix: score one kind at a time.")
    return files, kinds.pop()


def _csv_layout(first: Path, schema: FeatureSchema) -> tuple[str, str]:
    """(separator, header line) of a batch's CSV files, detected as `read_table` detects them."""
    from lifecycle.data import _detect_separator, _encoding_from_bom, _head

    encoding = schema.csv_format.get("encoding") or _encoding_from_bom(first)
    if encoding.replace("-", "").lower() not in ("utf8", "utf8sig"):
        raise DataError(
            f"batch file {first} is {encoding} text; Spark reads UTF-8 only. Fix: re-save it as UTF-8 or Parquet."
        )
    sep = schema.csv_format.get("separator") or _detect_separator(first, "utf-8-sig", ",")
    header = _head(first).decode("utf-8-sig", errors="replace").splitlines()
    if not header:
        raise DataError(f"batch file {first} is empty. Fix: point --input at a file with a header and rows.")
    return sep, header[0]


def read_input(spark: SparkSession, path: str, schema: FeatureSchema) -> tuple[DataFrame, str, str]:
    """The batch as a Spark frame with each row's split (`PATH`, `START`), its format, and (CSV) its header."""
    from pyspark.sql import functions as F

    files, kind = input_files(path)
    where = [str(f) for f in files]
    if kind == "parquet":
        frame = spark.read.parquet(*where)
        header = ""
    else:
        sep, header = _csv_layout(files[0], schema)
        frame = spark.read.text(where)
        plain = F.regexp_replace(F.col(LINE), "^\ufeff", "")
        frame = frame.where((F.col(LINE) != "") & (plain != header))  # pandas skips blank lines; headers are no rows
        header = sep + header  # the separator travels with the header (its first character)
    frame = frame.select(
        "*", F.col("_metadata.file_path").alias(PATH), F.col("_metadata.file_block_start").alias(START)
    )
    return frame, kind, header


def split_offsets(frame: DataFrame) -> tuple[dict[tuple[str, int], int], int]:
    """Each split's first row number (the rows before it, files in name order and splits in byte order), and
    the number of rows."""
    counts = frame.groupBy(PATH, START).count().collect()
    offsets, total = {}, 0
    for row in sorted(counts, key=lambda r: (r[PATH], r[START])):
        offsets[(row[PATH], int(row[START]))] = total
        total += int(row["count"])
    return offsets, total


def _as_read(part: pd.DataFrame, kind: str, header: str, schema: FeatureSchema) -> pd.DataFrame:
    """A slice as `read_table` would have read it: CSV lines parsed by the same function, Parquet columns with
    repeating text as categories."""
    if kind == "parquet":
        return as_categories(part.reset_index(drop=True))
    sep, columns = header[0], header[1:]
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as handle:
        handle.write(columns + "\n" + "\n".join(part[LINE].tolist()) + "\n")
    try:
        return read_table(handle.name, allow_empty=True, csv_format={**schema.csv_format, "separator": sep})
    finally:
        os.unlink(handle.name)


def _split_name(path: str, start: int, batch: int) -> str:
    return f"{hashlib.sha1(f'{path}:{start}'.encode()).hexdigest()[:16]}-{start}-{batch}"


def _replace(folder: Path, name: str, write: Any) -> None:
    """Write a file whole under a temporary name, then rename it into place (a retried task replaces it)."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    write(temporary)
    os.replace(temporary, folder / name)


def score_partitions(
    frames: Iterator[pd.DataFrame],
    model: Any,
    schema: FeatureSchema,
    offsets: dict[tuple[str, int], int],
    kind: str,
    header: str,
    run_key: str,
    skipped_folder: str,
    output_columns: list[str],
    log: Callable[..., None] | None,
) -> Iterator[pd.DataFrame]:
    """The body of every Spark task: slices in, scored rows out (row, request id, prediction, probability, then
    the input's own columns); skipped rows and log lines go to files named after the slice."""
    import time

    seen: dict[tuple[str, int], int] = {}
    for batch_number, part in enumerate(frames):
        started = time.perf_counter()
        for (path, start), piece in part.groupby([PATH, START], sort=False):
            first = offsets[(path, int(start))] + seen.get((path, int(start)), 0)
            seen[(path, int(start))] = seen.get((path, int(start)), 0) + len(piece)
            table = _as_read(piece.drop(columns=[PATH, START]), kind, header, schema)
            scored, skipped = score_rows(model, table, schema)
            name = _split_name(path, int(start), batch_number)
            positions = scored["row"].to_numpy()
            scored["row"] = scored["row"] + first
            scored.insert(1, "request_id", [f"batch-{run_key}-{row}" for row in scored["row"]])
            if len(skipped):
                skipped = skipped.assign(row=skipped["row"] + first)
                _replace(Path(skipped_folder), f"skipped-{name}.csv", lambda p, s=skipped: s.to_csv(p, index=False))
            if log is not None and len(scored):
                log(
                    name,
                    scored["request_id"].tolist(),
                    table.iloc[positions],
                    schema.model_inputs,
                    scored["prediction"].tolist(),
                    scored["probability"].tolist() if "probability" in scored else None,
                    (time.perf_counter() - started) * 1000,
                )
            inputs = table.iloc[positions].reset_index(drop=True)
            out = pd.concat(
                [scored.reset_index(drop=True), inputs.drop(columns=[c for c in inputs if c in scored])], axis=1
            )
            for column in output_columns:
                if column not in out:
                    out[column] = None
            yield _text_columns(out[output_columns], set(scored.columns))


def _text_columns(frame: pd.DataFrame, answers: set[str]) -> pd.DataFrame:
    """The input's own columns as text (they are written as the file held them, whatever each slice's types)."""
    return frame.assign(
        **{
            column: frame[column].astype(object).where(frame[column].notna(), None).map(_text)
            for column in frame.columns
            if column not in answers
        }
    )


def _text(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _answer_types(model: Any, schema: FeatureSchema) -> tuple[str, bool]:
    """(Spark type of `prediction`, whether a `probability` column comes): the pandas path's columns."""
    classes = getattr(model, "classes_", None)
    if schema.task == "regression" or classes is None:
        return "double", False
    kind = np.asarray(classes).dtype.kind
    prediction = "bigint" if kind in "iub" else "double" if kind == "f" else "string"
    return prediction, len(classes) == 2 and hasattr(model, "predict_proba")


def score_on_spark(
    spark: SparkSession,
    model: Any,
    schema: FeatureSchema,
    input_path: str,
    output_path: str,
    run_key: str,
    log: Callable[..., None] | None = None,
) -> SparkScoring:
    """Score `input_path` (a file or folder, CSV or Parquet) on the cluster behind `spark`: predictions to the
    Parquet folder `output_path`, skipped rows (row, reason) to `<output_path>.skipped/` as CSV parts, answered
    rows to `log` (called in the task with the slice's name, then `PredictionLog.record_table`'s arguments;
    serving.prediction_log.slice_log_writer writes the prediction log)."""
    output = Path(output_path).resolve()
    skipped_folder = output.with_name(output.name + ".skipped")
    if output.exists() and not (output / "_SUCCESS").is_file():  # Spark replaces the folder it writes
        raise DataError(
            f"--output {output_path} exists and is not a predictions folder a Spark run wrote. Fix: name a new "
            "folder (or remove that one yourself)."
        )
    frame, kind, header = read_input(spark, input_path, schema)
    offsets, rows = split_offsets(frame)
    input_columns = (
        [c for c in frame.columns if c not in (PATH, START)] if kind == "parquet" else _header_columns(header)
    )
    prediction_type, with_probability = _answer_types(model, schema)
    answers = [("row", "bigint"), ("request_id", "string"), ("prediction", prediction_type)]
    if with_probability:
        answers.append(("probability", "double"))
    answer_names = [name for name, _ in answers]
    output_columns = answer_names + [c for c in input_columns if c not in answer_names]
    ddl = ", ".join(f"`{name}` {kind_}" for name, kind_ in answers) + "".join(
        f", `{c}` string" for c in input_columns if c not in answer_names
    )
    if skipped_folder.exists():
        import shutil

        shutil.rmtree(skipped_folder)
    shipped = spark.sparkContext.broadcast(model)

    def task(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_partitions(
            frames,
            shipped.value,
            schema,
            offsets,
            kind,
            header,
            run_key,
            str(skipped_folder),
            output_columns,
            log,
        )

    frame.mapInPandas(task, ddl).write.mode("overwrite").parquet(str(output))
    shipped.unpersist()
    scored_rows = spark.read.parquet(str(output)).count()
    return SparkScoring(
        rows=rows,
        scored_rows=scored_rows,
        skipped_rows=rows - scored_rows,
        output=str(output),
        skipped_folder=str(skipped_folder),
        splits=len(offsets),
        input_format=kind,
    )


def _header_columns(header: str) -> list[str]:
    import csv

    return [c.strip() for c in next(csv.reader([header[1:].lstrip("\ufeff")], delimiter=header[0]))]


def estimated_rows(path: str | Path) -> int:
    """About how many rows a batch has, without reading it: Parquet footers, or a CSV's size over the length of
    its first lines (a folder of files: their sum)."""
    import pyarrow.parquet as pq

    from lifecycle.data import _head

    files, kind = input_files(path)
    if kind == "parquet":
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    total = 0
    for file in files:
        head = _head(file)
        lines = max(head.count(b"\n"), 1)
        total += int(file.stat().st_size / (len(head) / lines)) if file.stat().st_size > len(head) else lines - 1
    return total
