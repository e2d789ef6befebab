"""Batch scoring on Spark against the pandas path and the bare model: rows/s and the driver's peak memory.

In a throw-away ZenML store (default stack): trains the bike model, writes Parquet batches drawn from the bike
data (with replacement; a batch is a folder of 1M-row files), then for each size measures, each in a process of
its own (so that its peak memory is its own):

- bare: `pd.read_parquet`, `model.predict`, write the predictions (one process: the physical floor here);
- pandas: `run.py score` as a function (the batch scoring pipeline run, the output file);
- spark, 1 and 2 workers (1 core each): `run.py score --engine spark` as a function (the Spark scoring pipeline
  run: the job on a cluster started by this script, Parquet output, the prediction log).

Peak memory is the driver's: the Python process (and, for Spark, its driver JVM). The fixed cost is a Spark run
on a 1,000-row batch. Ratios are measured in the same run; the machine is shared, so figures move between runs
(the load average is printed beside each figure).

`--check` runs the end-to-end check of one large batch instead: `python run.py spark up`, the batch scored with
`score --engine spark` (seconds, driver peak memory), the predictions of a seeded 100,000-row sample compared with
the pandas path's on the same rows (the largest difference must be 0), the prediction log's lines counted (every
scored row must be there), then `monitor --batch` on it (its decision, the drift tests, the driver's peak memory)
and `spark down`.

    python benchmarks/spark_scoring.py                        # 1M and 10M rows
    python benchmarks/spark_scoring.py --rows 1000000 --skip-pandas-above 5000000
    python benchmarks/spark_scoring.py --rows 10000000 --workers 2 --check
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
from measurement.bench import isolate, log, machine  # noqa: E402

MODEL_NAME = "bench_spark"
FILE_ROWS = 1_000_000


def _peak_mib() -> tuple[float, float]:
    """(this process, its largest waited-for child) peak resident memory, MiB."""
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    )


def one(variant: str, batch: str, output: str, spark_config: str) -> dict:
    """One measurement, in this process: seconds and peak memory."""
    from lifecycle.config import DeploymentConfig, load_spark_config

    started = time.perf_counter()
    extra: dict = {}
    if variant == "bare":
        import pandas as pd
        from zenml.client import Client

        from lifecycle.model_versions import loaded_artifact, loaded_model
        from lifecycle.names import FEATURE_SCHEMA, MODEL

        version = Client().get_model_version(MODEL_NAME, "production")
        model, schema = loaded_model(version, MODEL), loaded_artifact(version, FEATURE_SCHEMA)
        started = time.perf_counter()  # the model's loading is not the batch's work
        rows = 0
        Path(output).mkdir(parents=True, exist_ok=True)
        for index, file in enumerate(sorted(Path(batch).glob("*.parquet"))):
            table = pd.read_parquet(file)
            table.assign(prediction=model.predict(table[schema.model_inputs])).to_parquet(
                Path(output) / f"part-{index}.parquet", index=False
            )
            rows += len(table)
        scored = rows
    elif variant == "pandas":
        from workflows.scoring import score_file

        files = sorted(Path(batch).glob("*.parquet"))
        if len(files) != 1:
            import pandas as pd

            single = Path(output).with_suffix(".input.parquet")
            pd.concat(pd.read_parquet(f) for f in files).to_parquet(single, index=False)
            files = [single]
            started = time.perf_counter()  # one file is the pandas path's input; joining them is not its work
        lines = score_file(str(files[0]), output + ".parquet", None, str(_deployment()), lambda: MODEL_NAME)
        scored = int(lines[0].split(" scored ")[1].split(" ")[0])
    elif variant == "spark":
        from workflows.runner import run_spark_scoring
        from workflows.spark_cluster import master_url

        spark = load_spark_config(spark_config)
        outcome = run_spark_scoring(
            MODEL_NAME, batch, output, None, DeploymentConfig(), spark, master_url(spark), verbose=False
        )
        scored = outcome.summary["scored_rows"]
        extra = {"rows": outcome.summary["rows"], "run": outcome.run.name}
    if variant == "monitor":
        from lifecycle.config import load_monitoring_config
        from workflows.runner import run_monitoring

        monitored = run_monitoring(MODEL_NAME, batch, load_monitoring_config(), spark_path=spark_config)
        summary = monitored.summary
        scored = summary.batch.rows
        extra = {
            "retrain": summary.decision.retrain,
            "reasons": summary.decision.reasons,
            "drift": {c: [d.method, round(d.score, 4), d.drifted] for c, d in summary.drift.columns.items()},
            "report": str(monitored.report_path),
        }
    seconds = time.perf_counter() - started
    python_mib, child_mib = _peak_mib()
    return {"seconds": seconds, "scored": scored, "python_mib": python_mib, "child_mib": child_mib, **extra}


def _deployment() -> Path:
    from lifecycle.config import DEFAULT_DEPLOYMENT_CONFIG

    return DEFAULT_DEPLOYMENT_CONFIG


def measure(variant: str, batch: Path, output: Path, spark_config: Path, keep: bool = False) -> dict:
    """One measurement in a process of its own; logged as soon as it is known (a long run can be stopped)."""
    load_before = os.getloadavg()[0]
    done = subprocess.run(
        [sys.executable, __file__, "--one", variant, "--batch", str(batch), "--output", str(output)]
        + ["--spark-config", str(spark_config)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} on {batch} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load"] = (load_before, os.getloadavg()[0])  # the 1-minute load average before and after
    log(f"  {variant}: {result}")
    if keep:
        return result
    shutil.rmtree(output, ignore_errors=True)
    for leftover in output.parent.glob(output.name + ".*"):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
    return result


def write_batch(source, rows: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, start in enumerate(range(0, rows, FILE_ROWS)):
        part = source.sample(min(FILE_ROWS, rows - start), replace=True, random_state=index)
        part.reset_index(drop=True).to_parquet(folder / f"part-{index:04d}.parquet", index=False)
    return folder


SAMPLE_ROWS = 100_000  # rows whose predictions the check compares with the pandas path's


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def sample_rows(batch: Path, rows: int, size: int) -> tuple[list[int], Path]:
    """`size` row numbers drawn with a fixed seed, and those rows written as one Parquet file in that order (the
    batch read one 1M-row file at a time)."""
    import numpy as np
    import pandas as pd

    picked = np.sort(np.random.default_rng(0).choice(rows, size=min(size, rows), replace=False))
    parts, offset = [], 0
    for file in sorted(batch.glob("*.parquet")):
        table = pd.read_parquet(file)
        inside = picked[(picked >= offset) & (picked < offset + len(table))] - offset
        parts.append(table.iloc[inside])
        offset += len(table)
    path = batch.parent / "sample.parquet"
    pd.concat(parts, ignore_index=True).to_parquet(path, index=False)
    return picked.tolist(), path


def log_lines(root: Path) -> tuple[int, int, float]:
    """Lines, files and MiB of the Spark scoring runs' prediction-log files under `root`, read in blocks."""
    lines = files = size = 0
    for path in root.rglob("predictions-batch-spark-*.jsonl"):
        files += 1
        size += path.stat().st_size
        with path.open("rb") as handle:
            while block := handle.read(1 << 24):
                lines += block.count(b"\n")
    return lines, files, size / 2**20


def check(rows: int, workers: int, folder: Path, spark_config: Path) -> None:
    """The end-to-end check of one large batch (see the module's docstring); fails on a wrong figure."""
    import numpy as np
    import pandas as pd
    import pyarrow.dataset as ds

    from lifecycle.config import DeploymentConfig, load_config
    from lifecycle.data import read_table
    from workflows.scoring import score_file

    config = load_config()
    source = read_table(config.dataset.path).drop(columns=[config.dataset.target])
    log(f"writing {rows:,} rows as Parquet ...")
    batch = write_batch(source, rows, folder / f"batch-{rows}")
    log(f"  {folder_mib(batch):.0f} MiB in {len(list(batch.glob('*.parquet')))} files")
    up = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "run.py"), "spark", "up", "--spark-config", str(spark_config)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    if up.returncode != 0:
        raise SystemExit(f"spark up failed:\n{up.stdout}{up.stderr[-3000:]}")
    log(up.stdout.strip())
    try:
        log(f"score --engine spark, {workers} worker(s) ...")
        output = folder / "scored"
        scored = measure("spark", batch, output, spark_config, keep=True)
        assert scored["rows"] == rows, scored
        lines, files, log_mib = log_lines(DeploymentConfig().log.root())
        log(f"  prediction log: {lines:,} lines in {files} files, {log_mib:.0f} MiB")
        assert lines == scored["scored"], f"{lines} lines in the prediction log for {scored['scored']} scored rows"

        log(f"the pandas path on a seeded sample of {SAMPLE_ROWS:,} rows ...")
        picked, sample = sample_rows(batch, rows, SAMPLE_ROWS)
        score_file(str(sample), str(folder / "sample-scored.parquet"), None, str(_deployment()), lambda: MODEL_NAME)
        in_pandas = pd.read_parquet(folder / "sample-scored.parquet", columns=["prediction"])  # in the sample's order
        on_spark = (
            ds.dataset(output, format="parquet")
            .to_table(columns=["row", "prediction"], filter=ds.field("row").isin(picked))
            .to_pandas()
            .sort_values("row")
        )
        assert on_spark["row"].tolist() == picked and len(in_pandas) == len(picked)
        difference = float(np.max(np.abs(on_spark["prediction"].to_numpy() - in_pandas["prediction"].to_numpy())))
        log(f"  {len(picked):,} rows compared: largest difference {difference}")
        assert difference == 0, difference
        shutil.rmtree(output, ignore_errors=True)

        log("monitor --batch ...")
        monitored = measure("monitor", batch, folder / "monitor-out", spark_config, keep=True)
        assert monitored["scored"] == rows, monitored
    finally:
        down = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "run.py"), "spark", "down"], capture_output=True, text=True
        )
        log(down.stdout.strip())

    print(f"\nEnd-to-end check of a {rows:,}-row Parquet batch ({machine()}), {workers} Spark worker(s) of 1 core\n")
    print(f"- batch on disk: {folder_mib(batch):.0f} MiB ({rows:,} rows, {len(list(batch.glob('*.parquet')))} files)")
    print(
        f"- score --engine spark: {scored['seconds']:.0f} s ({rows / scored['seconds']:,.0f} rows/s), "
        f"{scored['scored']:,} scored; driver peak RSS {scored['python_mib']:.0f} MiB Python + "
        f"{scored['child_mib']:.0f} MiB JVM; load average {scored['load'][0]:.1f} -> {scored['load'][1]:.1f}"
    )
    print(f"- prediction log: {lines:,} lines (= scored rows) in {files} files, {log_mib:.0f} MiB")
    print(f"- {len(picked):,} sampled rows scored by the pandas path: largest difference from Spark's {difference}")
    print(
        f"- monitor --batch: {monitored['seconds']:.0f} s; driver peak RSS {monitored['python_mib']:.0f} MiB Python + "
        f"{monitored['child_mib']:.0f} MiB JVM; load average {monitored['load'][0]:.1f} -> {monitored['load'][1]:.1f}"
    )
    print(f"  decision: {'retrain' if monitored['retrain'] else 'no retraining'}: {'; '.join(monitored['reasons'])}")
    for column, (method, score, drifted) in monitored["drift"].items():
        print(f"  {column}: {method} {score} {'drifted' if drifted else ''}")
    print(f"  report: {monitored['report']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated batch sizes")
    parser.add_argument("--workers", default="1,2", help="comma-separated Spark worker counts")
    parser.add_argument("--skip-pandas-above", type=int, default=0, help="leave the pandas path out above N rows")
    parser.add_argument("--check", action="store_true", help="the end-to-end check of one batch (--rows N)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (batch, log, reports)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--batch", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--spark-config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.batch, args.output, args.spark_config)))
        return

    import yaml

    folder = Path(tempfile.mkdtemp(prefix="mlops-spark-bench-"))
    isolate(folder)
    from lifecycle.config import SparkClusterConfig, load_config
    from lifecycle.data import read_table
    from workflows import spark_cluster
    from workflows.runner import run_training

    log("training the bike model on the default stack ...")
    config = load_config()
    run_training(config.model_copy(update={"model": config.model.model_copy(update={"name": MODEL_NAME})}))
    source = read_table(config.dataset.path).drop(columns=[config.dataset.target])
    sizes = [int(n) for n in args.rows.split(",")]
    workers = [int(n) for n in args.workers.split(",")]
    results: dict[tuple[int, str], dict] = {}
    spark_config = folder / "spark.yaml"
    cluster = SparkClusterConfig(port=17077, workers=max(workers), cores=1, memory="2g")
    spark_config.write_text(yaml.safe_dump({"cluster": cluster.model_dump(), "executor_memory": "2g"}))
    if args.check:
        try:
            check(sizes[0], max(workers), folder, spark_config)
        finally:
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
        return
    small = write_batch(source, 1000, folder / "batch-1000")
    for rows in sizes:
        batch = write_batch(source, rows, folder / f"batch-{rows}")
        log(f"{rows:,} rows: bare ...")
        results[(rows, "bare")] = measure("bare", batch, folder / "out", spark_config)
    fixed = {}
    for count in workers:
        spark_cluster.down()
        spark_cluster.up(cluster.model_copy(update={"workers": count}))
        log(f"Spark, {count} worker(s): fixed cost (1,000 rows) ...")
        fixed[count] = measure("spark", small, folder / "out", spark_config)
        for rows in sizes:
            log(f"{rows:,} rows: Spark, {count} worker(s) ...")
            results[(rows, f"spark-{count}")] = measure("spark", folder / f"batch-{rows}", folder / "out", spark_config)
    spark_cluster.down()
    for rows in sizes:
        if not args.skip_pandas_above or rows <= args.skip_pandas_above:
            log(f"{rows:,} rows: pandas path ...")
            results[(rows, "pandas")] = measure("pandas", folder / f"batch-{rows}", folder / "out", spark_config)

    lines = [
        "| rows | path | seconds | rows/s | vs bare | driver peak RSS MiB (Python + its JVM) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for (rows, variant), result in results.items():
        bare = results[(rows, "bare")]["seconds"]
        jvm = f" + {result['child_mib']:.0f}" if variant.startswith("spark") else ""
        lines.append(
            f"| {rows:,} | {variant} | {result['seconds']:.1f} | {rows / result['seconds']:,.0f} | "
            f"{result['seconds'] / bare:.1f}x | {result['python_mib']:.0f}{jvm} |"
        )
    print(f"\nBatch scoring on Spark ({machine()}); one run, a shared machine\n")
    print("\n".join(lines))
    print(
        "\nFixed cost of a Spark scoring run (1,000 rows: pipeline run, driver JVM, executors, three small jobs): "
        + ", ".join(f"{count} worker(s) {fixed[count]['seconds']:.1f} s" for count in workers)
    )
    print(
        "bare: read, predict, write, in one process. pandas: `run.py score` (pipeline run, row checks, artifacts, "
        "prediction log, output file). spark-N: `run.py score --engine spark` on N workers of 1 core each."
    )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
