"""Batch scoring without a server: `python run.py score` (a pipeline run on the active stack: row checks,
predictions as an artifact of the version, every row in the prediction log) against a bare `model.predict`.

In a throw-away ZenML store: trains the bike model, then scores 100k and 1M rows drawn from the bike data
(with replacement). Bare: read the Parquet file, predict, write the predictions. Ours: the scoring pipeline and
the output file, as the command does. Ratios are ours over bare, measured in the same run.

    python benchmarks/batch_scoring.py                     # 100k and 1M rows (about 5 min)
    python benchmarks/batch_scoring.py --rows 100000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
from measurement.bench import isolate, log, machine, train_bench_model  # noqa: E402

MODEL_NAME = "bench_scoring"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,1000000", help="comma-separated table sizes")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-scoring-bench-"))
    isolate(folder)

    import pandas as pd
    from zenml.client import Client

    from lifecycle.config import DeploymentConfig, load_config
    from lifecycle.data import read_table
    from workflows.runner import run_scoring

    model, schema, _ = train_bench_model(MODEL_NAME)
    Client().activate_stack("default")
    source = read_table(load_config().dataset.path).drop(columns=[schema.target])
    lines = [
        "| rows | bare predict s | bare read + predict + write s | `run.py score` s | ratio to bare | rows/s | "
        "log MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    deployment = DeploymentConfig()
    for rows in [int(n) for n in args.rows.split(",")]:
        path = folder / f"rows-{rows}.parquet"
        source.sample(rows, replace=True, random_state=0).reset_index(drop=True).to_parquet(path, index=False)
        log(f"{rows} rows: bare ...")
        started = time.perf_counter()
        table = pd.read_parquet(path)
        predict_started = time.perf_counter()
        predictions = model.predict(table[schema.model_inputs])
        predict_seconds = time.perf_counter() - predict_started
        table.assign(prediction=predictions).to_parquet(folder / "bare-out.parquet", index=False)
        bare_seconds = time.perf_counter() - started
        log(f"{rows} rows: run.py score ...")
        log_root = deployment.log.root()
        before = sum(f.stat().st_size for f in log_root.rglob("*.jsonl")) if log_root.exists() else 0
        started = time.perf_counter()
        outcome = run_scoring(MODEL_NAME, str(path), None, deployment)
        out = read_table(str(path)).iloc[outcome.scored["row"].to_numpy()].reset_index(drop=True)
        out.assign(
            request_id=outcome.scored["request_id"].to_numpy(), prediction=outcome.scored["prediction"].to_numpy()
        )
        out.to_parquet(folder / "ours-out.parquet", index=False)
        ours_seconds = time.perf_counter() - started
        logged = (sum(f.stat().st_size for f in log_root.rglob("*.jsonl")) - before) / 2**20
        assert len(outcome.scored) == rows and (outcome.scored["prediction"].to_numpy() == predictions).all()
        lines.append(
            f"| {rows:,} | {predict_seconds:.2f} | {bare_seconds:.2f} | {ours_seconds:.2f} | "
            f"{ours_seconds / bare_seconds:.1f}x | {rows / ours_seconds:,.0f} | {logged:.0f} |"
        )
    print(f"\nBatch scoring ({machine()}); same predictions as the bare call, checked\n")
    print("\n".join(lines))
    print(
        "\n`run.py score`: the batch scoring pipeline (read, row checks, predict, the predictions and skipped rows "
        "stored as artifacts, every row appended to the prediction log) and the output file."
    )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
