"""Batch scoring on Spark against the pandas path and the bare model: rows/s and the driver's peak memory.

In a throw-away ZenML store (default stack): trains the bike model, writes Parquet batches drawn from the bike
data (with replacement; a batch is a folder of 1M-row files), then for each size measures, each in a process of
its own (so that its peak memory is its own):

- bare: `pd.read_parquet`, `model.predict`, write the predictions (one process: the physical floor here);
- pandas: `run.py score` as a function (the batch scoring pipeline run, the output file);
- spark, 1 and 2 workers (1 core each): `run.py score --engine spark` as a function (the Spark scoring pipeline
  run: the job on a cluster started by this script, Parquet output, the prediction log).

Peak memory is the driver's: the Python process (and, for Spark, its driver JVM). The fixed cost is a Spark run
on a 1,000-row batch. Ratios are measured in the same run; the machine is shared, so figures move between runs.

    python benchmarks/spark_scoring.py                        # 1M and 10M rows
    python benchmarks/spark_scoring.py --rows 1000000 --skip-pandas-above 5000000
"""

from __future__ import annotations

import argparse
import json
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
    else:
        from workflows.runner import run_spark_scoring
        from workflows.spark_cluster import master_url

        spark = load_spark_config(spark_config)
        outcome = run_spark_scoring(
            MODEL_NAME, batch, output, None, DeploymentConfig(), spark, master_url(spark), verbose=False
        )
        scored = outcome.summary["scored_rows"]
    seconds = time.perf_counter() - started
    python_mib, child_mib = _peak_mib()
    return {"seconds": seconds, "scored": scored, "python_mib": python_mib, "child_mib": child_mib}


def _deployment() -> Path:
    from lifecycle.config import DEFAULT_DEPLOYMENT_CONFIG

    return DEFAULT_DEPLOYMENT_CONFIG


def measure(variant: str, batch: Path, output: Path, spark_config: Path) -> dict:
    """One measurement in a process of its own; logged as soon as it is known (a long run can be stopped)."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", variant, "--batch", str(batch), "--output", str(output)]
        + ["--spark-config", str(spark_config)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} on {batch} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  {variant}: {result}")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated batch sizes")
    parser.add_argument("--workers", default="1,2", help="comma-separated Spark worker counts")
    parser.add_argument("--skip-pandas-above", type=int, default=0, help="leave the pandas path out above N rows")
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
