"""`python run.py score`: a file scored by a batch scoring pipeline run, written beside the input's columns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lifecycle.config import load_deployment_config
from lifecycle.data import read_table
from lifecycle.errors import LifecycleError
from workflows.runner import run_scoring

SUFFIXES = (".parquet", ".csv")


def score_file(
    input_path: str,
    output_path: str,
    version: str | None,
    deployment_path: str,
    model: Callable[[], str],
    verbose: bool = False,
) -> list[str]:
    """Score `input_path` with the model `model()` names (asked once the files are known to be usable) and
    write the answers, then the input's own columns, to `output_path`; rows that could not be scored go to
    <output>.skipped.csv (serving settings, for the prediction log: `deployment_path`). Returns what to tell
    the user."""
    output = Path(output_path)
    if output.suffix.lower() not in SUFFIXES:
        raise LifecycleError(f"--output {output_path}: write a .parquet or .csv file.")
    table = read_table(input_path)  # a bad input file is named before anything runs
    name = model()
    outcome = run_scoring(name, input_path, version, load_deployment_config(deployment_path), verbose=verbose)
    scored = table.iloc[outcome.scored["row"].to_numpy()].reset_index(drop=True)
    answers = outcome.scored.drop(columns="row").reset_index(drop=True)
    written = concat_columns(answers, scored)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".parquet":
        written.to_parquet(output, index=False)
    else:
        written.to_csv(output, index=False)
    lines = [
        f"`{name}` version {outcome.model_version} scored {len(outcome.scored)} of {len(table)} rows in run "
        f"{outcome.run.name}: {output} (request ids batch-..., in the prediction log)"
    ]
    if len(outcome.skipped):
        skipped_path = output.with_name(output.stem + ".skipped.csv")
        outcome.skipped.to_csv(skipped_path, index=False)
        lines.append(f"{len(outcome.skipped)} row(s) skipped (row numbers from 0, and why): {skipped_path}")
        lines += [f"  row {row}: {reason}" for row, reason in outcome.skipped.head(5).itertuples(index=False)]
    return lines


def concat_columns(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Side by side; a column of `right` named like one of `left` keeps `left`'s (the answer wins)."""
    return pd.concat([left, right.drop(columns=[c for c in right.columns if c in left.columns])], axis=1)


def chosen_engine(engine: str | None, spark_path: str) -> str:
    """--engine when given, else configs/spark.yaml's engine for the active stack (`engine_by_stack`), else its
    `engine`."""
    if engine:
        return engine
    from zenml.client import Client

    from lifecycle.config import load_spark_config

    return load_spark_config(spark_path).engine_for(Client().active_stack_model.name)


def score_on_spark(
    input_path: str,
    output_path: str,
    version: str | None,
    deployment_path: str,
    spark_path: str,
    model: Callable[[], str],
    verbose: bool = False,
) -> list[str]:
    """`score --engine spark`: the input (a CSV/Parquet file or a folder of them) scored on the Spark cluster in a
    pipeline run; predictions to the Parquet folder `output_path`, skipped rows to <output>.skipped/."""
    from lifecycle.config import load_spark_config
    from lifecycle.spark_engine import input_files
    from workflows.runner import run_spark_scoring
    from workflows.spark_cluster import master_url

    output = Path(output_path)
    if output.suffix.lower() not in ("", ".parquet"):
        raise LifecycleError(
            f"--output {output_path}: with --engine spark the predictions are a Parquet folder. Fix: name a folder "
            "(or a .parquet folder)."
        )
    input_files(input_path)  # a missing or mixed input is named before anything runs
    spark = load_spark_config(spark_path)
    master = master_url(spark)
    name = model()
    outcome = run_spark_scoring(
        name, input_path, output_path, version, load_deployment_config(deployment_path), spark, master, verbose
    )
    summary = outcome.summary
    lines = [
        f"`{name}` version {outcome.model_version} scored {summary['scored_rows']} of {summary['rows']} rows on "
        f"{master} in run {outcome.run.name}: {summary['output']} (Parquet; request ids batch-..., in the "
        "prediction log)"
    ]
    if summary["skipped_rows"]:
        lines.append(
            f"{summary['skipped_rows']} row(s) skipped (row numbers from 0, and why): {summary['skipped_folder']}/"
        )
    return lines
