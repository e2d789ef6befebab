"""What the orchestration costs on top of the ML work, as the data grows.

For each size (the bike data, then the bike data enlarged by seeded resampling with noise), in separate worker
processes so that each peak memory is its own:
  * the training pipeline through ZenML on the default stack (a throw-away store), and the same plain functions
    the steps wrap, called directly in one process ("bare");
  * one monitoring batch (10 % of the rows) through ZenML and bare;
  * batch inference: the monitoring predict step vs a bare `model.predict` on the same rows.
Prints wall time, ratio, peak memory, and the time spent in ZenML itself (run wall time minus step bodies).

    python benchmarks/pipelines.py                  # 17k, 200k, 1M rows
    python benchmarks/pipelines.py --sizes 17379,50000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
BIKE = PROJECT_ROOT / "data" / "bike_sharing_hourly.csv.gz"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_data(rows: int, folder: Path, seed: int = 0) -> Path:
    """The bike data at `rows` rows: resampled with replacement, numeric columns and target jittered."""
    import numpy as np
    import pandas as pd

    path = folder / f"bike_{rows}.parquet"
    if path.exists():
        return path
    table = pd.read_csv(BIKE)
    if rows != len(table):
        rng = np.random.default_rng(seed)
        table = table.iloc[rng.integers(0, len(table), rows)].reset_index(drop=True)
        for column, scale in (("temp", 1.0), ("atemp", 1.0), ("hum", 3.0), ("windspeed", 2.0)):
            table[column] = table[column] + rng.normal(0, scale, rows)
        table["cnt"] = np.maximum(0, table["cnt"] + rng.normal(0, 10, rows)).round()
    table.to_parquet(path, index=False)
    batch = table.sample(frac=0.1, random_state=seed)
    batch.to_parquet(folder / f"batch_{rows}.parquet", index=False)
    return path


def config_for(data: Path, model_name: str):
    from lifecycle.config import apply_overrides, load_config

    config = apply_overrides(load_config(), model_name=model_name, enable_cache=False)
    return config.model_copy(update={"dataset": config.dataset.model_copy(update={"path": str(data)})})


def bare_worker(data: Path, batch: Path) -> dict:
    """The plain functions the steps wrap, called directly — the same work without ZenML."""
    from measurement.direct import run_directly

    config = config_for(data, "bench")
    after_imports = rss_mb()
    direct = run_directly(config, batch)
    return {
        "training_wall": direct.training_seconds,
        "training_steps": direct.training_steps,
        "monitoring_wall": direct.monitoring_seconds,
        "monitoring_steps": direct.monitoring_steps,
        "batch_rows": direct.batch_rows,
        "bare_predict_seconds": direct.model_predict_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": after_imports,
    }


def step_durations(run) -> dict[str, float]:
    return {
        name: (step.end_time - step.start_time).total_seconds()
        for name, step in run.steps.items()
        if step.end_time and step.start_time
    }


def zenml_worker(data: Path, batch: Path) -> dict:
    """The same work through ZenML pipelines on the default stack, in a throw-away store (after a warm-up run)."""
    from lifecycle.environment import configure_environment

    configure_environment()
    # One small warm-up run: a fresh store's one-time set-up is not what a user pays on every run.
    import pandas as pd

    from lifecycle.config import MonitoringConfig
    from workflows.runner import run_monitoring, run_training

    warm_up = data.parent / f"warm_up_{data.stem}.parquet"
    pd.read_parquet(data).head(2000).to_parquet(warm_up, index=False)
    run_training(config_for(warm_up, "warm_up"))
    config = config_for(data, "bench")
    after_imports = rss_mb()
    started = time.perf_counter()
    training = run_training(config)
    training_wall = time.perf_counter() - started
    started = time.perf_counter()
    monitoring = run_monitoring("bench", str(batch), MonitoringConfig())
    monitoring_wall = time.perf_counter() - started
    return {
        "training_wall": training_wall,
        "training_steps": step_durations(training.run),
        "monitoring_wall": monitoring_wall,
        "monitoring_steps": step_durations(monitoring.run),
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": after_imports,
    }


def run_worker(kind: str, data: Path, batch: Path, state: Path) -> dict:
    from lifecycle.environment import isolated_environment

    env = {**os.environ, **isolated_environment(state)}
    output = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--data", str(data), "--batch", str(batch)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    if output.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{output.stderr[-4000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def machine() -> str:
    import pandas
    import sklearn
    import zenml

    return (
        f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, "
        f"zenml {zenml.__version__}, scikit-learn {sklearn.__version__}, pandas {pandas.__version__}"
    )


def report(results: list[tuple[int, dict, dict]]) -> str:
    lines = [
        f"Machine: {machine()}",
        "",
        "| rows | pipeline | bare (s) | ZenML (s) | ratio | in ZenML itself (s) | bare peak MB | ZenML peak MB "
        "| memory ratio | working MB bare / ZenML |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, bare, zen in results:
        for pipeline in ("training", "monitoring"):
            b, z = bare[f"{pipeline}_wall"], zen[f"{pipeline}_wall"]
            bodies = sum(zen[f"{pipeline}_steps"].values())
            overhead = z - sum(bare[f"{pipeline}_steps"].values())
            bare_peak, zen_peak = bare["peak_rss_mb"], zen["peak_rss_mb"]
            lines.append(
                f"| {rows:,} | {pipeline} | {b:.1f} | {z:.1f} | {z / b:.2f}x | {overhead:.1f} (steps {bodies:.1f}) "
                f"| {bare_peak:.0f} | {zen_peak:.0f} | {zen_peak / bare_peak:.2f}x "
                f"| {bare['peak_rss_mb'] - bare['rss_after_imports_mb']:.0f} / "
                f"{zen['peak_rss_mb'] - zen['rss_after_imports_mb']:.0f} |"
            )
    lines += [
        "",
        "| rows | batch rows | bare model.predict rows/s | our predict step rows/s (bare) "
        "| predict step in ZenML rows/s | ZenML / bare predict |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, bare, zen in results:
        n = bare["batch_rows"]
        predict_bare = n / bare["bare_predict_seconds"]
        ours = n / bare["monitoring_steps"]["predict_batch"]
        in_zenml = n / zen["monitoring_steps"]["predict_batch"]
        ratio = in_zenml / predict_bare
        lines.append(f"| {rows:,} | {n:,} | {predict_bare:,.0f} | {ours:,.0f} | {in_zenml:,.0f} | {ratio:.2f}x |")
    lines += ["", "Per step, largest size (seconds, bare -> ZenML step duration incl. loading/saving artifacts):"]
    rows, bare, zen = results[-1]
    for pipeline in ("training", "monitoring"):
        for step, seconds in bare[f"{pipeline}_steps"].items():
            lines.append(f"  {pipeline:<10} {step:<22} {seconds:7.2f} -> {zen[f'{pipeline}_steps'].get(step, 0):7.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="17379,200000,1000000")
    parser.add_argument("--worker", choices=["bare", "zenml"])
    parser.add_argument("--data")
    parser.add_argument("--batch")
    args = parser.parse_args()
    if args.worker:
        worker = bare_worker if args.worker == "bare" else zenml_worker
        print(json.dumps(worker(Path(args.data), Path(args.batch))))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as folder:
        for rows in (int(size) for size in args.sizes.split(",")):
            data = make_data(rows, Path(folder))
            batch = Path(folder) / f"batch_{rows}.parquet"
            print(f"{rows:,} rows: bare ...", file=sys.stderr, flush=True)
            bare = run_worker("bare", data, batch, Path(folder) / f"state_bare_{rows}")
            print(f"{rows:,} rows: ZenML ...", file=sys.stderr, flush=True)
            zen = run_worker("zenml", data, batch, Path(folder) / f"state_zenml_{rows}")
            results.append((rows, bare, zen))
    print(report(results))


if __name__ == "__main__":
    main()
